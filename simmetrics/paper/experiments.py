"""The paper's experiments at laptop scale: model stitching (E1), the intertwiner sanity test
(E2) and the metric comparison across seeds (E3), on scikit-learn's digits.

Godfrey, Brown, Emerson, Kvinge, "On the Symmetries of Deep Learning Models and their Internal
Representations" (NeurIPS 2022) ran these on CIFAR-10 with GPUs. Here every model is trained on
the 1,797 8 x 8 digit images that ship with scikit-learn (no download), on one CPU thread, so the
whole study runs in minutes::

    python -m simmetrics.paper.experiments --out results/            # the full study
    python -m simmetrics.paper.experiments --out results/ --docs docs # and a copy of the report in docs/

Architectures: MLPs 64-h-h-h-10 and a small CNN (the digits as 1 x 8 x 8 images: three 3 x 3
convolutions, average pooling after the second), each with ReLU, GELU, tanh and sigmoid, each
trained from ``n_models`` seeds. The pairs are (model i, model i+1 mod n).

- **E1, stitching** (:mod:`simmetrics.nn.stitching`): model i up to hidden layer l, a stitch, model
  i+1 after it; penalty = mean clean accuracy of the two - stitched accuracy, per layer and
  stitch kind (full, rank 1/2/4, orthogonal, intertwiner, direct).
- **E2, sanity test**: a fixed random map M is inserted before the activation of hidden layer l
  of a trained model, everything up to it frozen, the rest fine-tuned; penalty = clean - final
  accuracy, for M = identity (control), random elements of G_sigma and of the positive scaled
  permutations, and a random orthogonal matrix.
- **E3, metrics across seeds**: G_sigma-Procrustes vs orthogonal Procrustes and G_sigma-CKA vs
  linear CKA, layer by layer and layer x layer, on the held-out digits.

Every number in the report is formatted from the result dictionary that
:func:`run_experiments` returns (also saved as ``results.json``); fixed seeds and single-thread
deterministic torch make a rerun give the same tables.
"""

import argparse
import copy
import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..metrics.cka import LinearCKA
from ..demo import load_digits_split, make_mlp, train_classifier
from ..nn.extract import extract_activations
from ..symmetry.groups import get_group
from ..metrics.intertwiner import (IntertwinerCKA, IntertwinerProcrustes, intertwiner_group_name,
                          paper_ortho_procrustes_similarity, upsample_to_match)
from ..metrics.shape import OrthogonalProcrustes
from ..nn.stitching import (FixedStitch, direct_stitch, make_stitch, stitch_accuracy,
                        train_stitch)

__all__ = ["ACTIVATIONS", "ExperimentConfig", "make_cnn", "run_experiments", "format_report",
           "write_report", "main"]

#: The activations of the study: name -> torch module class.
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}

# The paper's numbers (CIFAR-10, Myrtle CNN), as collected in the project's paper notes,
# section 3 (read off the paper's figures, +-1 point): literature values shown beside ours.
PAPER_STITCH_LAYERS = (3, 6, 10, 14)
PAPER_STITCH = {  # penalty in accuracy points, mean of 32 pairs
    "full": (1.5, 1.5, 2.5, 2.5),
    "rank 4": (8.5, 14.0, 26.5, 16.0),
    "rank 2": (21.0, 28.0, 40.5, 31.5),
    "rank 1": (42.0, 53.5, 57.0, 62.0),
    "intertwiner": (8.0, 7.5, 17.0, 6.0),
}
PAPER_SANITY_LAYERS = (0, 2, 5)
PAPER_SANITY = {"G_ReLU (log-normal scales, mean 1)": (0.0, 1.7, 1.3),
                "orthogonal": (0.7, 4.6, 8.3)}
PAPER_METRICS = {  # similarity on the diagonal (same layer, two seeds), mean of 32 pairs
    "G_ReLU-Procrustes (1 - d)": (0.621, 0.511, 0.443, 0.490),
    "orthogonal Procrustes (1 - d)": (0.772, 0.574, 0.509, 0.583),
    "G_ReLU-CKA": (0.84, 0.61, 0.45, 0.43),
    "per-channel-normalised CKA": (0.98, 0.97, 0.92, 0.93),
}


@dataclass(frozen=True)
class ExperimentConfig:
    """Everything that decides the study's numbers (the defaults are the full run).

    Attributes
    ----------
    activations, architectures : tuple of str
        From :data:`ACTIVATIONS`; ``"mlp"`` and/or ``"cnn"``.
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


# -- models ----------------------------------------------------------------------------------
def make_cnn(channels=(8, 16, 16), activation=nn.ReLU, seed=0):
    """A small CNN for the 8 x 8 digits (input: the 64 standardised pixels).

    ``Unflatten -> conv3x3(1, c1) -> act -> avgpool2 -> conv3x3(c1, c2) -> act ->
    conv3x3(c2, c3) -> act -> Flatten -> Linear(16 c3, 10)`` (layer 1 at 8 x 8, layers 2 and
    3 at 4 x 4); seeded like
    :func:`simmetrics.demo.make_mlp`.

    Examples
    --------
    >>> net = make_cnn((4, 4, 4))
    >>> tuple(net(torch.zeros(2, 64)).shape)
    (2, 10)
    """
    c1, c2, c3 = channels
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            nn.Unflatten(1, (1, 8, 8)),
            nn.Conv2d(1, c1, 3, padding=1), activation(),
            nn.AvgPool2d(2),
            nn.Conv2d(c1, c2, 3, padding=1), activation(),
            nn.Conv2d(c2, c3, 3, padding=1), activation(),
            nn.Flatten(),
            nn.Linear(16 * c3, 10),
        )


def _build(arch, activation, seed, config):
    cls = ACTIVATIONS[activation]
    if arch == "mlp":
        return make_mlp(hidden=config.mlp_hidden, activation=cls, seed=seed)
    if arch == "cnn":
        return make_cnn(config.cnn_channels, cls, seed)
    raise ValueError(f"architecture must be 'mlp' or 'cnn', got {arch!r}")


def _activation_indices(model, activation):
    cls = ACTIVATIONS[activation]
    return [i for i, m in enumerate(model) if isinstance(m, cls)]


def _accuracy(model, X, y):
    with torch.no_grad():
        return float((model(torch.as_tensor(X)).argmax(1).numpy() == y).mean())


@contextmanager
def _deterministic_torch():
    """One thread (torch and the BLAS under numpy) and deterministic algorithms while the study
    runs, restored afterwards. The matrices here are small: a second BLAS thread makes them
    slower (about 4 times on a loaded 2-core machine), not faster."""
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(det)


# -- E1: stitching ---------------------------------------------------------------------------
def _stitch_kinds(config):
    return (["full"] + [f"rank {r}" for r in config.ranks]
            + ["orthogonal", "intertwiner", "direct"])


def _run_e1(models, activation, data, config, clean, arch="mlp"):
    X_tr, X_te, y_tr, y_te = data
    epochs = config.stitch_epochs if arch == "mlp" else config.cnn_stitch_epochs
    idx = _activation_indices(models[0], activation)
    n = len(models)
    kinds = _stitch_kinds(config)
    extra = ["intertwiner (soft)"]
    if config.ablation and activation == "relu" and arch == "mlp":
        extra += ["intertwiner (relaxation only)"]
    out = {k: [[None] * n for _ in idx] for k in kinds + extra}
    gaps = [[None] * n for _ in idx]
    feats = [extract_activations(m, X_tr, [str(i) for i in idx]) for m in models]
    feats_te = [extract_activations(m, X_te, [str(i) for i in idx]) for m in models]
    for p in range(n):
        a, b = p, (p + 1) % n
        ref = 0.5 * (clean[a] + clean[b])
        for li, i in enumerate(idx):
            back = models[b][i + 1:]
            F_tr, F_te = feats[a][str(i)], feats_te[a][str(i)]
            width = F_tr.shape[1]
            seed = 100 * p + li
            for kind in kinds:
                if kind == "direct":
                    stitch = direct_stitch(F_tr, feats[b][str(i)], activation)
                else:
                    rank = int(kind.split()[1]) if kind.startswith("rank") else None
                    stitch = make_stitch("lowrank" if rank else kind, width, rank=rank,
                                         activation=activation, seed=seed,
                                         n_iter=config.sinkhorn_iter)
                    lr = config.intertwiner_lr if kind == "intertwiner" else config.stitch_lr
                    train_stitch(stitch, back, F_tr, y_tr, epochs=epochs, lr=lr,
                                 batch_size=config.stitch_batch, seed=seed,
                                 straight_through=config.straight_through)
                out[kind][li][p] = ref - stitch_accuracy(stitch, back, F_te, y_te)
                if kind == "intertwiner":
                    stitch.unround_()
                    gaps[li][p] = stitch.vertex_gap()
                    out["intertwiner (soft)"][li][p] = ref - stitch_accuracy(stitch, back, F_te,
                                                                             y_te)
            if "intertwiner (relaxation only)" in out:
                stitch = make_stitch("intertwiner", width, activation=activation, seed=seed,
                                     n_iter=config.sinkhorn_iter)
                train_stitch(stitch, back, F_tr, y_tr, epochs=epochs,
                             lr=config.intertwiner_lr, batch_size=config.stitch_batch,
                             seed=seed, straight_through=None)
                out["intertwiner (relaxation only)"][li][p] = \
                    ref - stitch_accuracy(stitch, back, F_te, y_te)
    return {"penalty": out, "vertex_gap": gaps,
            "n_parameters": _stitch_parameters(kinds, _widths(models[0], idx, X_te[:2]),
                                               activation)}


def _widths(model, idx, X):
    acts = extract_activations(model, X, [str(i) for i in idx])
    return [a.shape[1] for a in acts.values()]


def _stitch_parameters(kinds, widths, activation):
    out = {}
    for kind in kinds:
        counts = []
        for w in widths:
            if kind == "direct":
                counts.append(0)
                continue
            rank = int(kind.split()[1]) if kind.startswith("rank") else None
            s = make_stitch("lowrank" if rank else kind, w, rank=rank, activation=activation)
            counts.append(s.n_parameters())
        out[kind] = counts
    return out


# -- E2: sanity test -------------------------------------------------------------------------
def _e2_conditions(activation, config):
    """(label, group name, sigma) of the inserted maps."""
    group = intertwiner_group_name(activation)
    conds = [("identity", None, None)]
    if group != "positive_scaled_permutation":
        conds.append((f"G_sigma ({group.replace('_', ' ')})", group, None))
    for s in config.e2_sigmas:
        label = f"P D, sigma {s}" + (" (= G_ReLU)" if group == "positive_scaled_permutation"
                                     else " (not in G_sigma)")
        conds.append((label, "positive_scaled_permutation", s))
    conds.append(("orthogonal", "orthogonal", None))
    return conds


def _insert_before(model, index, M):
    """A copy of ``model`` with the fixed channel map M inserted before ``model[index]``."""
    mods = [copy.deepcopy(m) for m in model]
    return nn.Sequential(*mods[:index], FixedStitch(M), *mods[index:])


def _run_e2(models, activation, data, config, clean):
    X_tr, X_te, y_tr, y_te = data
    idx = _activation_indices(models[0], activation)
    widths = _widths(models[0], idx, X_te[:2])
    conds = _e2_conditions(activation, config)
    out = {label: {"before": [[None] * len(models) for _ in idx],
                   "after": [[None] * len(models) for _ in idx]} for label, _, _ in conds}
    scales = {label: [] for label, g, s in conds if s is not None}
    for m, model in enumerate(models):
        for li, i in enumerate(idx):
            n = widths[li]
            for c, (label, group, sigma) in enumerate(conds):
                rs = 10_000 + 1000 * m + 10 * li + c
                if group is None:
                    A = np.eye(n)
                elif sigma is not None:
                    A = get_group(group, sigma=sigma).sample(n, random_state=rs)
                    scales[label].append(np.abs(A).sum(axis=0))
                else:
                    A = get_group(group).sample(n, random_state=rs)
                # pre-activation row vectors z -> z A' (the column-vector form z -> A z)
                net = _insert_before(model, i, A.T)
                for j, mod in enumerate(net):
                    mod.requires_grad_(j > i)  # frozen up to and including the inserted map
                out[label]["before"][li][m] = _accuracy(net.eval(), X_te, y_te)
                train_classifier(net, X_tr, y_tr, epochs=config.e2_epochs, lr=config.e2_lr,
                                 seed=rs)
                out[label]["after"][li][m] = _accuracy(net, X_te, y_te)
    spread = {}
    for label, values in scales.items():
        d = np.concatenate(values)
        ratio = [v.max() / v.min() for v in values]
        spread[label] = {"p05": float(np.quantile(d, 0.05)), "p95": float(np.quantile(d, 0.95)),
                         "median_max_over_min": float(np.median(ratio)),
                         "std_log": float(np.std(np.log(d)))}
    return {"accuracy": out, "clean": clean, "scale_spread": spread}


# -- E3: metrics across seeds ----------------------------------------------------------------
E3_METRICS = ("G-Procrustes (angular)", "orthogonal Procrustes (angular)", "G-CKA",
              "linear CKA")
E3_PAPER_FORMS = ("G-Procrustes (1 - d)", "orthogonal Procrustes (1 - d)")


def _e3_values(A, B, activation, conv):
    """The metrics between two features (numpy, (n, c) or (n, c, h, w))."""
    layout = "nchw" if conv else None
    vals = {}
    vals["G-Procrustes (angular)"] = IntertwinerProcrustes(activation, layout=layout) \
        .fit_score(A, B)
    A2, B2 = upsample_to_match(A, B) if conv else (A, B)
    vals["orthogonal Procrustes (angular)"] = OrthogonalProcrustes(
        center_columns=False, layout=layout).fit_score(A2, B2)
    if conv:
        vals["G-CKA"] = IntertwinerCKA(activation, positions="sum", layout="nchw") \
            .fit_score(A, B)
        vals["linear CKA"] = LinearCKA(layout="flatten").fit_score(A, B)
    else:
        vals["G-CKA"] = IntertwinerCKA(activation).fit_score(A, B)
        vals["linear CKA"] = LinearCKA().fit_score(A, B)
    if intertwiner_group_name(activation) == "positive_scaled_permutation":
        vals["G-Procrustes (1 - d)"] = IntertwinerProcrustes(
            activation, score_method="paper", layout=layout).fit_score(A, B)
        vals["orthogonal Procrustes (1 - d)"] = paper_ortho_procrustes_similarity(A, B)
    return vals


def _run_e3(models, activation, data, conv, n_samples=None):
    X_te = data[1][:n_samples]
    idx = _activation_indices(models[0], activation)
    feats = [list(extract_activations(m, X_te, [str(i) for i in idx]).values()) for m in models]
    n, L = len(models), len(idx)
    names = E3_METRICS + (E3_PAPER_FORMS if intertwiner_group_name(activation)
                          == "positive_scaled_permutation" else ())
    out = {name: np.zeros((n, L, L)) for name in names}
    for p in range(n):
        a, b = p, (p + 1) % n
        for i in range(L):
            for j in range(L):
                for name, v in _e3_values(feats[a][i], feats[b][j], activation, conv).items():
                    out[name][p, i, j] = v
    return {name: v.tolist() for name, v in out.items()}


# -- the study ---------------------------------------------------------------------------------
def _run_one(arch, activation, config):
    """Everything for one architecture and activation (one parallel task)."""
    with _deterministic_torch():
        t0 = time.perf_counter()
        data = load_digits_split()
        X_tr, X_te, y_tr, y_te = data
        epochs = config.mlp_epochs if arch == "mlp" else config.cnn_epochs
        models = [train_classifier(_build(arch, activation, s, config), X_tr, y_tr,
                                   epochs=epochs, lr=config.train_lr, seed=s)
                  for s in range(config.n_models)]
        clean = [_accuracy(m, X_te, y_te) for m in models]
        t1 = time.perf_counter()
        e1 = _run_e1(models, activation, data, config, clean, arch)
        t2 = time.perf_counter()
        e2 = _run_e2(models, activation, data, config, clean) \
            if arch in config.e2_architectures else None
        t3 = time.perf_counter()
        e3 = _run_e3(models, activation, data, arch == "cnn", config.e3_samples)
        t4 = time.perf_counter()
    return {"architecture": arch, "activation": activation, "clean": clean,
            "group": intertwiner_group_name(activation),
            "widths": _widths(models[0], _activation_indices(models[0], activation),
                                 X_te[:2]),
            "e1": e1, "e2": e2, "e3": e3,
            "seconds": {"train": t1 - t0, "e1": t2 - t1, "e2": t3 - t2, "e3": t4 - t3}}


def run_experiments(config=None, n_jobs=1, progress=False):
    """Run E1, E2 and E3 for every architecture and activation of ``config``.

    Parameters
    ----------
    config : ExperimentConfig, optional
        Default: the full study.
    n_jobs : int
        Parallel processes (one task per architecture and activation); every task runs on one
        thread with deterministic torch, so the numbers do not depend on ``n_jobs``.
    progress : bool
        A progress bar on stderr.

    Returns
    -------
    dict
        ``config`` (as a dict) and ``runs``: one dict per (architecture, activation) with the
        clean accuracies, ``e1`` (penalties per stitch kind, layer and pair, as fractions),
        ``e2`` (accuracies before and after fine-tuning per inserted map, layer and model;
        the spread of the inserted scales), ``e3`` (metric values per pair, layer x layer)
        and the seconds each part took. JSON-serialisable.
    """
    from .._core.parallel import parallel_map

    config = config or ExperimentConfig()
    tasks = [(arch, act, config) for arch in config.architectures for act in config.activations]
    runs = parallel_map(_run_one, tasks, n_jobs=n_jobs, progress=progress, desc="experiments")
    return {"config": asdict(config), "runs": runs}


# -- the report ------------------------------------------------------------------------------
def _ms(values, scale=100.0, digits=1):
    """'mean +- std' of a list (sample std, ddof=1; just the mean for one value)."""
    v = scale * np.asarray(values, dtype=float)
    if len(v) < 2:
        return f"{v.mean():.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std(ddof=1):.{digits}f}"


def _mean(values, scale=100.0):
    return float(scale * np.mean(values))


def _table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _run_title(run):
    arch = "MLP 64-" + "-".join(map(str, run["widths"])) + "-10" if run["architecture"] == "mlp" \
        else "CNN " + "-".join(map(str, run["widths"])) + " channels"
    return f"{arch}, {run['activation']}"


def _e1_table(run):
    pen = run["e1"]["penalty"]
    L = len(run["widths"])
    head = ["stitch", "parameters"] + [f"layer {l + 1}" for l in range(L)]
    rows = []
    for kind, per_layer in pen.items():
        params = run["e1"]["n_parameters"].get(kind)
        params = "/".join(map(str, params)) if params else "-"
        rows.append([kind, params] + [_ms(v) for v in per_layer])
    return _table(head, rows)


def _e2_table(run):
    acc = run["e2"]["accuracy"]
    clean = np.asarray(run["clean"])
    L = len(run["widths"])
    head = ["inserted map"] + [f"layer {l + 1}: before / after fine-tuning" for l in range(L)]
    rows = []
    for label, d in acc.items():
        cells = []
        for li in range(L):
            before = clean - np.asarray(d["before"][li])
            after = clean - np.asarray(d["after"][li])
            cells.append(f"{_ms(before)} / **{_ms(after)}**")
        rows.append([label] + cells)
    return _table(head, rows)


def _e3_table(run, names):
    e3 = run["e3"]
    L = len(run["widths"])
    head = ["metric", "kind"] + [f"layer {l + 1}" for l in range(L)]
    rows = []
    for name in names:
        if name not in e3:
            continue
        M = np.asarray(e3[name])
        kind = "distance (rad)" if "angular" in name else "similarity"
        rows.append([name, kind] + [_ms(M[:, l, l], scale=1.0, digits=3) for l in range(L)])
    return _table(head, rows)


def _e3_matrix_table(run, name):
    M = np.asarray(run["e3"][name]).mean(axis=0)
    L = M.shape[0]
    head = [f"{name}: A \\ B"] + [f"B layer {j + 1}" for j in range(L)]
    rows = [[f"A layer {i + 1}"] + [f"{M[i, j]:.3f}" for j in range(L)] for i in range(L)]
    return _table(head, rows)


def _find(results, arch, activation):
    for run in results["runs"]:
        if run["architecture"] == arch and run["activation"] == activation:
            return run
    return None


def _layer_means(run, kind):
    return [_mean(v) for v in run["e1"]["penalty"][kind]]


def _yes(flag):
    return "yes" if flag else "no"


def _short(run):
    return f"{run['architecture'].upper()} {run['activation']}"


def _checks(results):
    """The paper's orderings, counted per model: [(statement, paper's count, {model: (k, L)})].

    Every count is computed from ``results`` (layer means over the pairs or models)."""
    checks = {}

    def add(statement, paper, run, k, L):
        checks.setdefault((statement, paper), {})[_short(run)] = (int(k), L)

    for run in results["runs"]:
        pen = run["e1"]["penalty"]
        g = _layer_means(run, "intertwiner")
        L = len(g)
        for kind, paper in (("rank 1", "4/4"), ("rank 4", "3/4")):
            if kind in pen:
                other = _layer_means(run, kind)
                add(f"stitching: intertwiner < {kind}", paper, run,
                    sum(g[l] < other[l] for l in range(L)), L)
        full = _layer_means(run, "full")
        add("stitching: full <= intertwiner", "4/4", run, sum(full[l] <= g[l] for l in range(L)),
            L)
        direct = _layer_means(run, "direct")
        add("stitching: trained intertwiner < direct matching", "-", run,
            sum(g[l] < direct[l] for l in range(L)), L)
        diag = {k: np.asarray(v).mean(axis=0).diagonal() for k, v in run["e3"].items()}
        add("metrics: G-Procrustes says less alike than orthogonal Procrustes (angular "
            "distance larger)", "4/4", run,
            sum(diag["G-Procrustes (angular)"] > diag["orthogonal Procrustes (angular)"]), L)
        add("metrics: G-CKA < linear CKA (paper: < per-channel-normalised CKA)", "4/4", run,
            sum(diag["G-CKA"] < diag["linear CKA"]), L)
        for key in ("G-CKA", "linear CKA"):
            M = np.asarray(run["e3"][key]).mean(axis=0)
            add(f"metrics: {key} layer x layer peaks on the diagonal (rows)", "4/4", run,
                sum(np.argmax(M[i]) == i for i in range(L)), L)
        if run["e2"]:
            clean = np.asarray(run["clean"])
            after = {label: [_mean(clean - np.asarray(a)) for a in d["after"]]
                     for label, d in run["e2"]["accuracy"].items()}
            ortho = after["orthogonal"]
            for label, values in after.items():
                if label in ("identity", "orthogonal"):
                    continue
                short = label.split(" (")[0] if label.startswith("G_sigma") else label
                short = short.replace(" (= G_ReLU)", "").replace(" (not in G_sigma)",
                                                                 " (not in G)")
                add(f"sanity test: inserting {short} costs less than orthogonal", "3/3 (ReLU)",
                    run, sum(values[l] < ortho[l] for l in range(L)), L)
    return [(statement, paper, counts) for (statement, paper), counts in checks.items()]


def _ordering_section(results):
    """A table of the paper's orderings (rows) against the models (columns), and one line per
    ordering saying where it holds at every layer, at some, at none."""
    models = [_short(run) for run in results["runs"]]
    rows, lines = [], []
    for statement, paper, counts in _checks(results):
        rows.append([statement, paper] + [f"{counts[m][0]}/{counts[m][1]}" if m in counts
                                          else "" for m in models])
        every = [m for m, (k, L) in counts.items() if k == L]
        none = [m for m, (k, L) in counts.items() if k == 0]
        some = [m for m, (k, L) in counts.items() if 0 < k < L]
        parts = []
        for label, group in (("at every layer", every), ("at some layers", some),
                             ("at no layer", none)):
            if group:
                parts.append(f"{label}: {', '.join(group)}"
                             if len(group) < len(counts) or len(counts) == 1
                             else f"{label} in all {len(counts)} models")
        lines.append(f"- *{statement}* (paper: {paper}) holds " + "; ".join(parts) + ".")
    table = _table(["ordering (our layers)", "paper"] + models, rows)
    return table + "\n\n" + "\n".join(lines)


def _paper_tables(results):
    out = []
    head = ["stitch"] + [f"layer {l}" for l in PAPER_STITCH_LAYERS]
    out.append("Paper, Myrtle CNN on CIFAR-10, stitching penalty (points, mean of 32 pairs):\n")
    out.append(_table(head, [[k] + [f"{v:g}" for v in vals] for k, vals in PAPER_STITCH.items()]))
    for arch in ("mlp", "cnn"):
        run = _find(results, arch, "relu")
        if run is None:
            continue
        L = len(run["widths"])
        kinds = [k for k in PAPER_STITCH if k in run["e1"]["penalty"]] + ["direct"]
        rows = [[k] + [f"{v:.1f}" for v in _layer_means(run, k)] for k in kinds]
        out.append(f"\nHere, {_run_title(run)} on digits, stitching penalty (points, mean of "
                   f"{len(run['clean'])} pairs):\n")
        out.append(_table(["stitch"] + [f"layer {l + 1}" for l in range(L)], rows))
    out.append("\nPaper, sanity test (Myrtle without BN), penalty after fine-tuning (points):\n")
    out.append(_table(["inserted map"] + [f"layer {l}" for l in PAPER_SANITY_LAYERS],
                      [[k] + [f"{v:g}" for v in vals] for k, vals in PAPER_SANITY.items()]))
    for arch in ("mlp", "cnn"):
        run = _find(results, arch, "relu")
        if run is None or not run["e2"]:
            continue
        clean = np.asarray(run["clean"])
        rows = [[label] + [f"{_mean(clean - np.asarray(a)):.1f}" for a in d["after"]]
                for label, d in run["e2"]["accuracy"].items()]
        out.append(f"\nHere, {_run_title(run)}, penalty after fine-tuning (points, mean of "
                   f"{len(clean)} models):\n")
        out.append(_table(["inserted map"] + [f"layer {l + 1}" for l in range(len(run["widths"]))],
                          rows))
    out.append("\nPaper, similarity of the same layer in two seeds (mean of 32 pairs), Myrtle "
               "CNN layers 3 / 6 / 10 / 14:\n")
    out.append(_table(["metric"] + [f"layer {l}" for l in PAPER_STITCH_LAYERS],
                      [[k] + [f"{v:g}" for v in vals] for k, vals in PAPER_METRICS.items()]))
    for arch in ("mlp", "cnn"):
        run = _find(results, arch, "relu")
        if run is None:
            continue
        L = len(run["widths"])
        rows = []
        for name in E3_PAPER_FORMS + ("G-CKA", "linear CKA"):
            M = np.asarray(run["e3"][name]).mean(axis=0)
            rows.append([name] + [f"{M[l, l]:.3f}" for l in range(L)])
        out.append(f"\nHere, {_run_title(run)} (mean of {len(run['clean'])} pairs):\n")
        out.append(_table(["metric"] + [f"layer {l + 1}" for l in range(L)], rows))
    return "\n".join(out)


def _headline(results):
    """Layer-averaged penalties per stitch kind (and per inserted map), one row per model."""
    runs = results["runs"]
    kinds = list(dict.fromkeys(k for run in runs for k in run["e1"]["penalty"]))
    rows = []
    for run in runs:
        pen = run["e1"]["penalty"]
        rows.append([_run_title(run), _ms(run["clean"]), f"{100 * min(run['clean']):.1f}"]
                    + [f"{_mean(pen[k]):.1f}" if k in pen else "-" for k in kinds])
    out = ["Stitching penalty (points), mean over the layers and pairs; clean test accuracy "
           "in % (mean ± std, and the worst model):\n",
           _table(["model", "clean", "worst"] + kinds, rows)]
    e2 = [run for run in runs if run["e2"]]
    if e2:
        out.append("\nSanity test, penalty after fine-tuning (points), mean over the layers and "
                   "models (columns as in the E2 section):\n")
        for run in e2:
            clean = np.asarray(run["clean"])
            cells = [f"{label}: {_mean([clean - np.asarray(a) for a in d['after']]):.1f}"
                     for label, d in run["e2"]["accuracy"].items()]
            out.append(f"- {_run_title(run)}: " + "; ".join(cells))
    return "\n".join(out)


def format_report(results, wall_seconds=None, figures=None):
    """The markdown report of :func:`run_experiments`'s results.

    Every number is formatted from ``results``; ``wall_seconds`` (the run's wall time) is the
    only number that changes between reruns, on its own line starting with "Wall time".
    ``figures`` maps a figure key to its relative path.
    """
    cfg = results["config"]
    figures = figures or {}
    s = []
    s.append("# Symmetries of small networks: stitching, sanity test and metrics across seeds\n")
    s.append(
        "Generated by `python -m simmetrics.paper.experiments`; every number below is formatted from "
        "the same result dictionary (saved as `results.json`). Reproduction at laptop scale of "
        "Godfrey, Brown, Emerson, Kvinge, *On the Symmetries of Deep Learning Models and their "
        "Internal Representations* (NeurIPS 2022), on scikit-learn's digits (1,257 training and "
        "540 test images, 8 x 8 pixels, standardised), extended to GELU, tanh and sigmoid.\n")
    if wall_seconds is not None:
        s.append(f"Wall time of this run: {wall_seconds:.0f} s "
                 f"({os.cpu_count()} CPU cores visible, one process per core, torch on one "
                 "thread per process).\n")
    s.append("## Setup\n")
    s.append(
        f"- Models: MLP 64-{'-'.join(map(str, cfg['mlp_hidden']))}-10 "
        f"({cfg['mlp_epochs']} epochs) and a CNN with {'-'.join(map(str, cfg['cnn_channels']))} "
        "channels (3 x 3 convolutions; 2 x 2 average pooling after the first, so layer 1 is "
        f"8 x 8 and layers 2-3 are 4 x 4; {cfg['cnn_epochs']} epochs); Adam lr "
        f"{cfg['train_lr']:g}, batch 128; {cfg['n_models']} seeds per architecture and "
        f"activation; pairs (i, i+1 mod {cfg['n_models']}), so every model appears in two "
        "pairs and the pairs are not independent. Layers are the post-activation outputs of "
        "the three hidden layers. No BatchNorm, no dropout.\n"
        "- Narrow layers on purpose: at width 64-128 the task is so easy that every stitch but "
        "rank 1 and 2 loses under a point (the project's paper notes, section 5) and the kinds "
        "cannot be told apart; narrower layers separate them.\n"
        "- Penalties are in accuracy points on the 540 test images (one image = 0.19 points), "
        "mean ± sample standard deviation (ddof 1) over the pairs (or models).\n"
        "- Everything runs on one torch thread per task, with "
        "`torch.use_deterministic_algorithms(True)` and one BLAS thread, from fixed seeds: a "
        "rerun gives the same tables (only the wall time differs).\n")
    s.append("## Summary\n")
    s.append(_headline(results) + "\n")
    s.append("## E1: stitching penalties\n")
    s.append(
        "Model i up to hidden layer l, a stitching layer (a c x c map of the channel axis, no "
        "bias: a linear layer or 1 x 1 convolution), model i+1 after layer l; both frozen, only "
        f"the stitch trains: Adam, lr {cfg['stitch_lr']:g} (intertwiner "
        f"{cfg['intertwiner_lr']:g}), batch {cfg['stitch_batch']}, "
        + (f"{cfg['stitch_epochs']} epochs. " if cfg["stitch_epochs"] == cfg["cnn_stitch_epochs"]
           else f"{cfg['stitch_epochs']} epochs for the MLPs and {cfg['cnn_stitch_epochs']} "
                "for the CNNs. ")
        + "Penalty = mean "
        "clean accuracy of the two models - stitched accuracy (the paper's definition). "
        "Kinds: *full* (any matrix); *rank r* (c -> r -> c); *orthogonal* (torch's orthogonal "
        "parametrisation); *intertwiner* (an exact element of G_sigma: a permutation times "
        "positive scales for ReLU, times signs for tanh, alone for GELU and sigmoid); *direct* "
        "(no training: the alignment IntertwinerProcrustes finds from the two models' training "
        "features, i.e. Csiszarik et al.'s direct matching, with least-squares positive scales "
        "for ReLU and the matched signs for tanh). *Parameters*: free parameters of the "
        "evaluated map, per layer.\n")
    s.append(
        "**Intertwiner stitch variant.** The permutation is relaxed to "
        f"S = Sinkhorn(exp(L / tau)) ({cfg['sinkhorn_iter']} log-domain Sinkhorn iterations) "
        "with tau falling geometrically from 1 to 0.01 over training (the temperature-annealed "
        "parametrisation of the paper notes, section 5); from "
        f"{cfg['straight_through']:.0%} of the steps on, the forward pass uses the exact "
        "permutation nearest S (linear assignment; and rounded signs for tanh) while the "
        "gradient is that of the relaxation (straight-through), so the map that is evaluated, "
        "rounded by `scipy.optimize.linear_sum_assignment`, is the map that was trained. Why: "
        "the paper's projected variant (S <- Sinkhorn(ReLU(S)) after each step, "
        "-0.1 ||S||_F) stayed near the uniform matrix and lost 41-69 points when rounded "
        "(paper notes, section 5); pure annealing reached near-permutations at width 128, but "
        "at the narrow widths used here it keeps mixing a few neurons and rounding costs "
        "several points: see the row *intertwiner (relaxation only)* (ReLU MLP; annealing "
        "only, rounded at the end). Switching to the exact map earlier (half-way) hurt in "
        "trials: it locks in the permutation nearest a still blurred S (on a planted "
        "permutation that annealing alone recovers, a switch at half-way found 3-5 of 8 "
        "neurons). The row *intertwiner (soft)* evaluates the trained stitch with S before "
        "rounding (not a group element). The stitch is trained on the task loss from a "
        "near-uniform S, so it can end in a local optimum: the penalties are those of this "
        "optimiser, an upper bound on the best G_sigma stitch.\n")
    for arch in cfg["architectures"]:
        for run in results["runs"]:
            if run["architecture"] != arch:
                continue
            s.append(f"### {_run_title(run)}\n")
            s.append(f"Clean test accuracy {_ms(run['clean'])} % over {len(run['clean'])} "
                     f"seeds. Mean vertex gap of the intertwiner relaxation at the end "
                     f"(1 - mean row maximum of S; 0 = a permutation): "
                     f"{np.mean(run['e1']['vertex_gap']):.3f}.\n")
            s.append(_e1_table(run) + "\n")
        if f"e1_{arch}" in figures:
            s.append(f"![E1 {arch}]({figures[f'e1_{arch}']})\n")
    s.append("## E2: sanity test for intertwiners\n")
    s.append(
        f"A fixed random map M is inserted before the activation of hidden layer l of a trained "
        f"model (pre-activations z -> M z), the layers up to it frozen, the layers after it "
        f"fine-tuned with Adam (lr {cfg['e2_lr']:g}, {cfg['e2_epochs']} epochs). An element of "
        "G_sigma can be undone exactly by the next layer (W -> W phi(M)^-1), an orthogonal map "
        "in general cannot. Cells: penalty (points, clean - accuracy) right after inserting M "
        "/ **after fine-tuning**, mean ± std over the models. *P D*: random permutation times "
        "log-normal positive scales exp(sigma z), z ~ N(0, 1) (median 1; the paper used mean "
        "1); for ReLU that is G_ReLU, for the other activations it is not in G_sigma.\n")
    for run in results["runs"]:
        if not run["e2"]:
            continue
        s.append(f"### {_run_title(run)}\n")
        s.append(_e2_table(run) + "\n")
        spread = run["e2"]["scale_spread"]
        parts = [f"{label}: 90 % of the scales in [{v['p05']:.2f}, {v['p95']:.2f}], "
                 f"median max/min ratio per matrix {v['median_max_over_min']:.1f}, "
                 f"std of log-scale {v['std_log']:.2f}" for label, v in spread.items()]
        s.append("Spread of the inserted scales: " + "; ".join(parts) + ".\n")
    if "e2" in figures:
        s.append(f"![E2]({figures['e2']})\n")
    s.append("## E3: metrics across seeds\n")
    s.append(
        "Same layer of two seeds, on the 540 test images (fitted and scored on them, as in the "
        "paper). *G-Procrustes (angular)*: IntertwinerProcrustes(activation) (per-neuron rms "
        "normalisation for ReLU, exact (signed) permutation by linear assignment), a distance in "
        "radians; *orthogonal Procrustes (angular)*: OrthogonalProcrustes without centring "
        "(both uncentred, so the only difference is the group and, for ReLU, the per-neuron "
        "normalisation); *G-CKA*: IntertwinerCKA(activation) (max-over-channels kernel, "
        "unbiased HSIC; for the CNN the paper's form, positions summed); *linear CKA*: "
        "LinearCKA (for the CNN on the flattened c x h x w features). For ReLU also the "
        "paper's similarities 1 - d. Mean ± std over the pairs; the layer x layer matrices "
        "(means over the pairs) are in the figures.\n")
    for run in results["runs"]:
        s.append(f"### {_run_title(run)}\n")
        s.append(_e3_table(run, E3_METRICS + E3_PAPER_FORMS) + "\n")
        for name in ("G-CKA", "linear CKA"):
            s.append(_e3_matrix_table(run, name) + "\n")
    for arch in cfg["architectures"]:
        if f"e3_{arch}" in figures:
            s.append(f"![E3 {arch}]({figures[f'e3_{arch}']})\n")
    s.append("## Beside the paper\n")
    s.append(_paper_tables(results) + "\n")
    s.append("### Where the orderings agree with the paper, and where not\n")
    s.append("Each cell counts the layers at which the paper's ordering holds here (layer "
             "means); the column *paper* gives the paper's count (Myrtle CNN, 4 layers; "
             "3 layers in the sanity test).\n")
    s.append(_ordering_section(results) + "\n")
    return "\n".join(s)


# -- figures ---------------------------------------------------------------------------------
def _figures(results, folder):
    """Write the PNG figures into ``folder``; returns {key: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..plots import plot_similarity_matrix, plot_stitching_penalties

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = results["config"]
    out = {}
    for arch in cfg["architectures"]:
        runs = [r for r in results["runs"] if r["architecture"] == arch]
        L = len(runs[0]["widths"])
        fig, axes = plt.subplots(len(runs), L, figsize=(3.6 * L, 2.6 * len(runs)),
                                 squeeze=False, layout="constrained")
        for r, run in enumerate(runs):
            for l in range(L):
                pen = {k: (_mean(v[l]), float(100 * np.std(v[l], ddof=1)) if len(v[l]) > 1
                           else 0.0)
                       for k, v in run["e1"]["penalty"].items() if k != "intertwiner (soft)"}
                pen = {k.replace("intertwiner (relaxation only)", "inter. relax."): v
                       for k, v in pen.items()}
                plot_stitching_penalties(pen, ax=axes[r, l], annotate=False,
                                         ylabel="penalty (points)" if l == 0 else "",
                                         title=f"{run['activation']}, layer {l + 1}")
                axes[r, l].tick_params(axis="x", labelsize=7)
        name = f"e1_{arch}.png"
        fig.savefig(folder / name, dpi=70)
        plt.close(fig)
        out[f"e1_{arch}"] = name
        fig, axes = plt.subplots(len(runs), 4, figsize=(13, 2.7 * len(runs)), squeeze=False,
                                 layout="constrained")
        for r, run in enumerate(runs):
            for c, metric in enumerate(E3_METRICS):
                M = np.asarray(run["e3"][metric]).mean(axis=0)
                labels = [f"L{l + 1}" for l in range(L)]
                plot_similarity_matrix(M, labels, labels, ax=axes[r, c], fmt=".2f",
                                       cmap="viridis_r" if "angular" in metric else "viridis",
                                       title=f"{run['activation']}: {metric}", colorbar=False)
                axes[r, c].title.set_fontsize(8)
        name = f"e3_{arch}.png"
        fig.savefig(folder / name, dpi=70)
        plt.close(fig)
        out[f"e3_{arch}"] = name
    runs = [r for r in results["runs"] if r["e2"]]
    if runs:
        fig, axes = plt.subplots(len(runs), 1, figsize=(9, 2.8 * len(runs)), squeeze=False,
                                 layout="constrained")
        for r, run in enumerate(runs):
            clean = np.asarray(run["clean"])
            pen = {}
            for label, d in run["e2"]["accuracy"].items():
                short = label.split(" (")[0] if label.startswith("G_sigma") else label
                short = short.replace(" (= G_ReLU)", "").replace(" (not in G_sigma)", "*")
                for l, after in enumerate(d["after"]):
                    v = 100 * (clean - np.asarray(after))
                    pen[f"L{l + 1} {short}"] = (float(v.mean()),
                                                float(v.std(ddof=1)) if len(v) > 1 else 0.0)
            plot_stitching_penalties(pen, ax=axes[r, 0], annotate=False,
                                     ylabel="penalty (points)",
                                     title=f"E2 {_run_title(run)} (* = not in G_sigma)")
            axes[r, 0].tick_params(axis="x", labelsize=7)
        fig.savefig(folder / "e2.png", dpi=70)
        plt.close(fig)
        out["e2"] = "e2.png"
    return out


def write_report(results, folder, wall_seconds=None, figures=True):
    """Write ``report.md``, ``results.json`` and (with matplotlib) ``figures/*.png`` into
    ``folder``; returns the report's text."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    if figures:
        paths = {k: f"figures/{v}" for k, v in _figures(results, folder / "figures").items()}
    text = format_report(results, wall_seconds, paths)
    (folder / "report.md").write_text(text)
    saved = dict(results, wall_seconds=wall_seconds) if wall_seconds is not None else results
    (folder / "results.json").write_text(json.dumps(saved, indent=1))
    return text


def main(argv=None):
    """``python -m simmetrics.paper.experiments --out results/ [--docs docs/] [--smoke]
    [--n-jobs N] [--no-figures] [--from-json results/results.json]``."""
    parser = argparse.ArgumentParser(prog="python -m simmetrics.paper.experiments",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results", help="output folder (default results/)")
    parser.add_argument("--docs", default=None,
                        help="also write the report as DOCS/experiments.md with figures in "
                             "DOCS/figures/ (the committed copy)")
    parser.add_argument("--smoke", action="store_true", help="the tiny test configuration")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="parallel processes (default: one per CPU core, at most one per "
                             "task); the numbers do not depend on it")
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--from-json", default=None, metavar="RESULTS_JSON",
                        help="do not run anything: render the report and figures again from a "
                             "results.json written by an earlier run (same numbers)")
    args = parser.parse_args(argv)
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        wall = results.pop("wall_seconds", None)
    else:
        config = ExperimentConfig.smoke() if args.smoke else ExperimentConfig()
        n_jobs = args.n_jobs or min(os.cpu_count() or 1,
                                    len(config.architectures) * len(config.activations))
        start = time.perf_counter()
        results = run_experiments(config, n_jobs=n_jobs, progress=True)
        wall = time.perf_counter() - start
    text = write_report(results, args.out, wall, figures=not args.no_figures)
    if args.docs:
        docs = Path(args.docs)
        docs.mkdir(parents=True, exist_ok=True)
        paths = {}
        if not args.no_figures:
            paths = {k: f"figures/{v}" for k, v in _figures(results, docs / "figures").items()}
        (docs / "experiments.md").write_text(format_report(results, wall, paths))
    print(text)
    print(f"\nwrote {Path(args.out) / 'report.md'}" +
          (f" and {Path(args.docs) / 'experiments.md'}" if args.docs else ""), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
