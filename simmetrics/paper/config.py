"""The configuration of the paper's reproduction: :class:`ExperimentConfig` (every setting that
decides the study's numbers; the defaults are the full run, :meth:`ExperimentConfig.smoke` the
tiny test run) and the names of the E3 metrics (the keys of each run's ``e3`` results).

No torch here: the report can be rendered again from a saved ``results.json`` without it.
"""

from dataclasses import dataclass

__all__ = ["ExperimentConfig", "E3_METRICS", "E3_PAPER_FORMS"]


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that decides the study's numbers (the defaults are the full run).

    Attributes
    ----------
    activations, architectures : tuple of str
        From :data:`simmetrics.paper.experiments.ACTIVATIONS`; ``"mlp"`` and/or ``"cnn"``.
    n_models : int
        Independently seeded models per architecture and activation (seeds 0 .. n-1); the
        pairs (i, i+1 mod n) give n pairs.
    mlp_hidden, cnn_channels : tuple of int
        Widths of the three hidden layers.
    mlp_epochs, cnn_epochs, train_lr : training of the models (Adam, batch 128).
    ranks : ranks of the low-rank stitches.
    stitch_epochs, stitch_lr, intertwiner_lr, straight_through : stitch training
        (:func:`simmetrics.nn.stitching.train_stitch`).
    ablation : bool
        Also train the intertwiner stitch without the straight-through phase (ReLU only).
    e2_architectures : architectures of the sanity test.
    e2_epochs, e2_lr : fine-tuning in the sanity test.
    e2_sigmas : log-normal spreads of the positive scales of the inserted P D.
    e3_samples : int or None
        Compare the layers on the first ``e3_samples`` test images (None: all 540).
    """

    activations: tuple = ("relu", "gelu", "tanh", "sigmoid")
    architectures: tuple = ("mlp", "cnn")
    n_models: int = 8
    mlp_hidden: tuple = (32, 32, 32)
    cnn_channels: tuple = (8, 16, 16)
    mlp_epochs: int = 60
    cnn_epochs: int = 60
    train_lr: float = 1e-2
    ranks: tuple = (1, 2, 4)
    stitch_epochs: int = 20
    cnn_stitch_epochs: int = 20
    stitch_batch: int = 128
    sinkhorn_iter: int = 20
    stitch_lr: float = 2e-2
    intertwiner_lr: float = 5e-2
    straight_through: float = 0.9
    ablation: bool = True
    e2_architectures: tuple = ("mlp",)
    e2_epochs: int = 20
    e2_lr: float = 1e-2
    e2_sigmas: tuple = (0.5, 1.0)
    e3_samples: int = None

    @classmethod
    def smoke(cls):
        """A tiny configuration for tests: seconds, not minutes."""
        return cls(activations=("relu", "tanh"), architectures=("mlp", "cnn"), n_models=2,
                   mlp_hidden=(8, 8, 8), cnn_channels=(4, 4, 4), mlp_epochs=3, cnn_epochs=1,
                   ranks=(1, 2), stitch_epochs=1, cnn_stitch_epochs=1, stitch_batch=512,
                   e2_epochs=1, e2_sigmas=(1.0,), e3_samples=60)


# -- E3: the metrics, as named in the results and the report ------------------------------
E3_METRICS = ("G-Procrustes (angular)", "orthogonal Procrustes (angular)", "G-CKA",
              "linear CKA")
E3_PAPER_FORMS = ("G-Procrustes (1 - d)", "orthogonal Procrustes (1 - d)")
