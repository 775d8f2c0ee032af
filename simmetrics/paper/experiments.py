"""The paper's experiments at laptop scale: model stitching (E1), the intertwiner sanity test
(E2) and the metric comparison across seeds (E3), on scikit-learn's digits.

Godfrey, Brown, Emerson, Kvinge, "On the Symmetries of Deep Learning Models and their Internal
Representations" (NeurIPS 2022) ran these on CIFAR-10 with GPUs. Here every model is trained on
the 1,797 8 x 8 digit images that ship with scikit-learn (no download), on one CPU thread, so the
whole study runs in minutes::

    python -m simmetrics.paper --out results/            # the full study
    python -m simmetrics.paper --out results/ --docs docs # and a copy of the report in docs/

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

Every number in the report (:mod:`simmetrics.paper.report`) is formatted from the result
dictionary that :func:`run_experiments` returns (also saved as ``results.json``); fixed seeds
and single-thread deterministic torch make a rerun give the same tables. The settings are in
:mod:`simmetrics.paper.config`, the command line in :mod:`simmetrics.paper.cli`.
"""

import copy
import time
from contextlib import contextmanager
from dataclasses import asdict

import numpy as np
import torch
from torch import nn

from ..metrics.cka import LinearCKA
from ..metrics.intertwiner_cka import IntertwinerCKA
from ..metrics.intertwiner_groups import intertwiner_group_name, upsample_to_match
from ..metrics.intertwiner_procrustes import IntertwinerProcrustes
from ..metrics.shape import OrthogonalProcrustes
from ..nn.digits import accuracy, load_digits_split, make_mlp, train_classifier
from ..nn.extract import extract_activations
from ..nn.stitching import (FixedStitch, direct_stitch, make_stitch, stitch_accuracy,
                            train_stitch)
from ..symmetry.groups import get_group
from .config import E3_METRICS, E3_PAPER_FORMS, ExperimentConfig
from .reference import paper_ortho_procrustes_similarity

__all__ = ["ACTIVATIONS", "make_cnn", "run_experiments"]


#: The activations of the study: name -> torch module class.
ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}


# -- models ----------------------------------------------------------------------------------
def make_cnn(channels=(8, 16, 16), activation=nn.ReLU, seed=0):
    """A small CNN for the 8 x 8 digits (input: the 64 standardised pixels).

    ``Unflatten -> conv3x3(1, c1) -> act -> avgpool2 -> conv3x3(c1, c2) -> act ->
    conv3x3(c2, c3) -> act -> Flatten -> Linear(16 c3, 10)`` (layer 1 at 8 x 8, layers 2 and
    3 at 4 x 4); seeded like
    :func:`simmetrics.nn.digits.make_mlp`.

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
                out[label]["before"][li][m] = accuracy(net.eval(), X_te, y_te)
                train_classifier(net, X_tr, y_tr, epochs=config.e2_epochs, lr=config.e2_lr,
                                 seed=rs)
                out[label]["after"][li][m] = accuracy(net, X_te, y_te)
    spread = {}
    for label, values in scales.items():
        d = np.concatenate(values)
        ratio = [v.max() / v.min() for v in values]
        spread[label] = {"p05": float(np.quantile(d, 0.05)), "p95": float(np.quantile(d, 0.95)),
                         "median_max_over_min": float(np.median(ratio)),
                         "std_log": float(np.std(np.log(d)))}
    return {"accuracy": out, "clean": clean, "scale_spread": spread}


# -- E3: metrics across seeds ----------------------------------------------------------------
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
        clean = [accuracy(m, X_te, y_te) for m in models]
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
