"""Linear mode connectivity on the digits with no alignment, permutation-only alignment and the
full G_sigma alignment (issue 17's study), run as ``python -m simmetrics.paper barrier``.

For pairs of independently trained networks (MLPs 64-w-w-10 and a small CNN, with ReLU, GELU,
tanh and sigmoid) the loss barrier along the straight line between their weights (Entezari,
Sedghi, Saukh, Neyshabur, ICLR 2022; :func:`simmetrics.loss_barrier`)

    B = max_lambda  L(theta(lambda)) - ((1 - lambda) L(theta_a) + lambda L(theta_b)),
    theta(lambda) = (1 - lambda) theta_a + lambda theta_b,

is measured after five alignments of model_b to model_a (:func:`simmetrics.align_models`):

- ``none``: model_b as trained;
- ``perm_w`` / ``perm_a``: permutations only (``groups="permutation"``), Git Re-Basin's weight
  matching and activation matching (Ainsworth, Hayase, Srinivasa, ICLR 2023);
- ``g_w`` / ``g_a``: each hidden layer's own intertwiner group G_sigma (Godfrey, Brown,
  Emerson, Kvinge, NeurIPS 2022): signed permutations for tanh, positive scaled permutations
  for ReLU, permutations for GELU and sigmoid (there ``g_*`` and ``perm_*`` must coincide);

each also with REPAIR (Jordan et al., ICLR 2023; ``repair="repair"``). Beside the barriers: the
G_sigma-Procrustes and permutation-Procrustes angles and linear CKA between the two models'
hidden layers (invariant to the alignment), and the mean correlation of matched units (unit i
of model_a with unit i of the aligned model_b), which is what an alignment changes. A planted
control aligns a model with a copy of itself transformed by a random element of each layer's
G_sigma: the G_sigma alignments must give barrier 0, the permutation-only ones cannot undo the
signs (tanh) or scales (ReLU).

Means over pairs carry 95% Student-t intervals, mean +- t_{0.975, n-1} s / sqrt(n) over the n
pairs (simmetrics.stats resamples stimuli, not seeds, so it has no helper for this); the
comparison of two alignments uses the same interval on the paired differences. Everything in the
report (:func:`format_report`) is written from the result dict of :func:`run_study` (saved as
``alignment_results.json``); no torch is needed to render it again from that file.
"""

import json
import time
from dataclasses import asdict, dataclass
from math import sqrt
from pathlib import Path

import numpy as np

__all__ = ["BarrierStudyConfig", "CONDITIONS", "mean_ci", "run_study", "format_report",
           "write_figures", "write_study", "main"]

#: The alignments compared: key -> (label, align_models keywords or None).
CONDITIONS = {
    "none": ("no alignment", None),
    "perm_w": ("permutation, weights", {"method": "weights", "groups": "permutation"}),
    "perm_a": ("permutation, activations", {"method": "activations", "groups": "permutation"}),
    "g_w": ("G_sigma, weights", {"method": "weights"}),
    "g_a": ("G_sigma, activations", {"method": "activations"}),
}
ACTIVATIONS = {"relu": "ReLU", "gelu": "GELU", "tanh": "Tanh", "sigmoid": "Sigmoid"}
_N_TRAIN = 1257  # the digits training split of simmetrics.nn.digits.load_digits_split


@dataclass(frozen=True)
class BarrierStudyConfig:
    """Every setting that decides the study's numbers (the defaults are the full run).

    Attributes
    ----------
    activations : tuple of str
        Keys of :data:`ACTIVATIONS`.
    mlp_widths : tuple of int
        One MLP 64-w-w-10 per width.
    cnn_channels : tuple of tuple of int
        One CNN per channel triple (empty: no CNN).
    cnn_activations : tuple of str
        The CNNs' activations (sigmoid CNNs stay near chance accuracy with this recipe, about
        10% test accuracy after 200 Adam steps at lr 1e-2, so they are left out).
    n_pairs : int
        Independent pairs per setting: models trained from seeds (2p, 2p + 1), p < n_pairs.
    epochs, cnn_epochs, lr, batch_size : int, int, float, int
        :func:`simmetrics.nn.digits.train_classifier` (Adam, cross-entropy); the MLPs train
        for ``epochs``, the CNNs for ``cnn_epochs`` (their accuracy saturates sooner and an
        epoch costs about 8 times an MLP's).
    steps : int
        Points of the line, lambda = linspace(0, 1, steps).
    planted_sigma : float
        Log-normal spread of the positive scales of the planted G_sigma element.
    """

    activations: tuple = ("relu", "gelu", "tanh", "sigmoid")
    mlp_widths: tuple = (32, 128)
    cnn_channels: tuple = ((8, 16, 16),)
    cnn_activations: tuple = ("relu", "gelu", "tanh")
    n_pairs: int = 6
    epochs: int = 60
    cnn_epochs: int = 20
    lr: float = 1e-2
    batch_size: int = 128
    steps: int = 11
    planted_sigma: float = 0.5

    @classmethod
    def smoke(cls):
        """The test configuration: seconds."""
        return cls(activations=("relu", "tanh"), mlp_widths=(8,), cnn_channels=((4, 4, 4),),
                   cnn_activations=("relu", "tanh"), n_pairs=2, epochs=3, cnn_epochs=1,
                   steps=5)

    def adam_steps(self, arch):
        """Adam steps per model of ``arch``: epochs x ceil(1257 / batch_size)."""
        epochs = self.epochs if arch == "mlp" else self.cnn_epochs
        return epochs * -(-_N_TRAIN // self.batch_size)


def mean_ci(values, confidence=0.95):
    """(mean, low, high): the Student-t interval mean +- t_{(1+c)/2, n-1} s / sqrt(n), s the
    sample standard deviation (ddof=1); low = high = NaN for one value."""
    from scipy.stats import t

    v = np.asarray(values, dtype=float)
    m = float(v.mean())
    if len(v) < 2:
        return m, float("nan"), float("nan")
    half = float(t.ppf((1 + confidence) / 2, len(v) - 1) * v.std(ddof=1) / sqrt(len(v)))
    return m, m - half, m + half


# -- models --------------------------------------------------------------------------------
def _make_model(arch, widths, activation, seed):
    """MLP 64-w-w-10 (:func:`simmetrics.nn.digits.make_mlp`) or the CNN of
    :func:`simmetrics.paper.experiments.make_cnn` on 1 x 8 x 8 images (the Unflatten done on
    the data instead, so that the model is a plain Sequential of layers, activations and
    pooling that :func:`simmetrics.align_models` reads)."""
    import torch
    from torch import nn

    from ..nn.digits import make_mlp

    cls = getattr(nn, ACTIVATIONS[activation])
    if arch == "mlp":
        return make_mlp(hidden=tuple(widths), activation=cls, seed=seed)
    c1, c2, c3 = widths
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(nn.Conv2d(1, c1, 3, padding=1), cls(), nn.AvgPool2d(2),
                             nn.Conv2d(c1, c2, 3, padding=1), cls(),
                             nn.Conv2d(c2, c3, 3, padding=1), cls(), nn.Flatten(),
                             nn.Linear(16 * c3, 10))


def _hidden_names(model):
    """The names of the activation modules (the hidden layers' post-activations)."""
    from torch import nn

    return [n for n, m in model.named_children()
            if not isinstance(m, (nn.Linear, nn.Conv2d, nn.AvgPool2d, nn.Flatten))]


def _single_thread():
    """Set one torch thread and one BLAS thread (the matrices are small); returns a restorer."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    limiter = threadpool_limits(limits=1)
    torch.set_num_threads(1)

    def restore():
        torch.set_num_threads(threads)
        limiter.restore_original_limits()
    return restore


def _planted(model, rng, sigma):
    """(copy, alignment): ``model`` moved by a random element of each hidden layer's largest
    group (signs for the signed groups, log-normal(0, sigma) scales for the scaled ones)."""
    from ..metrics.intertwiner_groups import SCALED, SIGNED
    from ..nn.align import Alignment, GroupElement
    from ..nn.align_spec import spec_from_sequential

    spec = spec_from_sequential(model)
    elements = {}
    for a, ax in spec.axes.items():
        g = ax.max_group
        signs = rng.choice([-1.0, 1.0], ax.size) if g in SIGNED else np.ones(ax.size)
        scales = np.exp(sigma * rng.normal(size=ax.size)) if g in SCALED else np.ones(ax.size)
        elements[a] = GroupElement(a, g, rng.permutation(ax.size), signs, scales)
    return Alignment(spec, elements, "planted").apply(model)


# -- metrics ---------------------------------------------------------------------------------
def _rows(a):
    return a if a.ndim == 2 else np.moveaxis(a, 1, -1).reshape(-1, a.shape[1])


def _matched_correlation(A, B):
    """Mean over units of the Pearson correlation of unit i of A with unit i of B (rows: samples
    and positions); units constant on the data are left out."""
    A, B = _rows(A), _rows(B)
    A, B = A - A.mean(0), B - B.mean(0)
    den = np.sqrt((A ** 2).sum(0) * (B ** 2).sum(0))
    live = den > 1e-12 * max(float(den.max()), 1e-300)
    return float(np.mean((A * B).sum(0)[live] / den[live])) if live.any() else float("nan")


def _layer_metrics(A, B, activation, conv):
    from ..metrics.cka import LinearCKA
    from ..metrics.intertwiner_procrustes import IntertwinerProcrustes

    layout = "nchw" if conv else None
    return {"G-Procrustes angle": IntertwinerProcrustes(activation, layout=layout)
            .fit_score(A, B),
            "permutation-Procrustes angle": IntertwinerProcrustes("permutation", layout=layout)
            .fit_score(A, B),
            "linear CKA": LinearCKA(layout="flatten" if conv else None).fit_score(A, B)}


# -- one setting -----------------------------------------------------------------------------
def _barrier_values(result):
    lam = result.lambdas
    return {"barrier": result.barrier, "accuracy_barrier": result.accuracy_barrier,
            "midpoint_excess": float(np.interp(0.5, lam, result.loss_excess)),
            "excess_curve": result.loss_excess.tolist(), "end_losses":
            [float(result.losses[0]), float(result.losses[-1])]}


def _run_setting(arch, widths, activation, config):
    """Train the pairs of one (architecture, widths, activation) and measure everything."""
    import torch

    from ..metrics.intertwiner_groups import intertwiner_group_name
    from ..nn.align import align_models
    from ..nn.barrier import loss_barrier
    from ..nn.digits import accuracy, load_digits_split, train_classifier
    from ..nn.extract import extract_activations

    restore = _single_thread()
    try:
        t0 = time.perf_counter()
        X_tr, X_te, y_tr, y_te = load_digits_split()
        if arch == "cnn":
            X_tr, X_te = X_tr.reshape(-1, 1, 8, 8), X_te.reshape(-1, 1, 8, 8)
        train = (torch.as_tensor(X_tr), torch.as_tensor(y_tr))
        test = (torch.as_tensor(X_te), torch.as_tensor(y_te))
        models = [train_classifier(_make_model(arch, widths, activation, s), X_tr, y_tr,
                                   epochs=config.epochs if arch == "mlp"
                                   else config.cnn_epochs, lr=config.lr,
                                   batch_size=config.batch_size, seed=s)
                  for s in range(2 * config.n_pairs)]
        clean = [accuracy(m, X_te, y_te) for m in models]
        t1 = time.perf_counter()
        names = _hidden_names(models[0])
        keys = ("test", "repair", "train")
        out = {c: {k: [] for k in keys} for c in CONDITIONS}
        corr = {c: [] for c in CONDITIONS}
        metrics = {}
        align_seconds = {c: 0.0 for c in CONDITIONS}
        for p in range(config.n_pairs):
            a, b = models[2 * p], models[2 * p + 1]
            feats_a = extract_activations(a, X_te, names)
            for c, (_, kw) in CONDITIONS.items():
                s = time.perf_counter()
                al = None if kw is None else align_models(a, b, train[0], **kw)
                align_seconds[c] += time.perf_counter() - s
                for key, data, rep in (("test", test, None), ("repair", test, "repair"),
                                       ("train", train, None)):
                    r = loss_barrier(a, b, data, steps=config.steps, alignment=al, repair=rep)
                    out[c][key].append(_barrier_values(r))
                aligned = b if al is None else al.apply(b)
                feats_b = extract_activations(aligned, X_te, names)
                corr[c].append([_matched_correlation(feats_a[n], feats_b[n]) for n in names])
                if c == "none":
                    for n in names:
                        for k, v in _layer_metrics(feats_a[n], feats_b[n], activation,
                                                   arch == "cnn").items():
                            metrics.setdefault(k, [[] for _ in range(config.n_pairs)])[p] \
                                .append(float(v))
        t2 = time.perf_counter()
        rng = np.random.default_rng(1000 + len(widths) * 7 + sum(widths))
        copy_b = _planted(models[0], rng, config.planted_sigma)
        planted = {}
        for c, (_, kw) in CONDITIONS.items():
            al = None if kw is None else align_models(models[0], copy_b, train[0], **kw)
            r = loss_barrier(models[0], copy_b, test, steps=config.steps, alignment=al)
            planted[c] = {"barrier": r.barrier,
                          "max_abs_excess": float(np.max(np.abs(r.loss_excess)))}
        t3 = time.perf_counter()
    finally:
        restore()
    return {"architecture": arch, "widths": list(widths), "activation": activation,
            "group": intertwiner_group_name(activation), "clean_accuracy": clean,
            "barriers": out, "matched_correlation": corr, "metrics": metrics,
            "planted": planted,
            "seconds": {"train": t1 - t0, "pairs": t2 - t1, "planted": t3 - t2,
                        "align": align_seconds}}


def run_study(config=None, n_jobs=1, progress=False):
    """Run every (architecture, widths, activation) of ``config``; returns a JSON-serialisable
    dict ``{"config", "lambdas", "runs"}``, one run per setting (in parallel processes over
    settings; each runs on one thread, so the numbers do not depend on ``n_jobs``)."""
    from .._core.parallel import parallel_map

    config = config or BarrierStudyConfig()
    tasks = [("mlp", (w, w), act, config) for w in config.mlp_widths
             for act in config.activations]
    tasks += [("cnn", tuple(c), act, config) for c in config.cnn_channels
              for act in config.cnn_activations]
    runs = parallel_map(_run_setting, tasks, n_jobs=n_jobs, progress=progress,
                        desc="barrier study")
    return {"config": asdict(config),
            "adam_steps": {a: config.adam_steps(a) for a in ("mlp", "cnn")},
            "lambdas": np.linspace(0.0, 1.0, config.steps).tolist(), "runs": runs}


# -- the report ------------------------------------------------------------------------------
def _title(run):
    w = "-".join(map(str, run["widths"]))
    return f"MLP 64-{w}-10" if run["architecture"] == "mlp" else f"CNN {w}"


def _values(run, cond, key="test", field="barrier", scale=1.0):
    return [scale * d[field] for d in run["barriers"][cond][key]]


def _fmt(values, digits=3):
    m, lo, hi = mean_ci(values)
    if not np.isfinite(lo):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(map(str, r)) + " |" for r in rows])


def _barrier_table(results, key="test", field="barrier", scale=1.0, digits=3):
    head = ["model", "activation (G_sigma)"] + [CONDITIONS[c][0] for c in CONDITIONS]
    rows = [[_title(r), f"{r['activation']} ({r['group']})"]
            + [_fmt(_values(r, c, key, field, scale), digits) for c in CONDITIONS]
            for r in results["runs"]]
    return _table(head, rows)


def comparison(run, method, key="test"):
    """Paired differences barrier(permutation) - barrier(G_sigma) over the pairs, for
    ``method`` "w" or "a": (mean, low, high, verdict) with verdict "lower" (G_sigma's barrier
    lower: the interval above 0), "higher", "no difference" (the interval contains 0) or
    "identical" (the same alignment: G_sigma is the permutation group, or every pair equal)."""
    d = np.subtract(_values(run, f"perm_{method}", key), _values(run, f"g_{method}", key))
    m, lo, hi = mean_ci(d)
    if np.all(np.abs(d) <= 1e-12):
        return m, lo, hi, "identical"
    if np.isfinite(lo) and lo > 0:
        return m, lo, hi, "lower"
    if np.isfinite(hi) and hi < 0:
        return m, lo, hi, "higher"
    return m, lo, hi, "no difference"


def _comparison_table(results):
    head = ["model", "activation (G_sigma)"] + \
        [f"perm - G_sigma, {m} (test)" for m in ("weights", "activations")] + \
        [f"perm - G_sigma, {m} (train)" for m in ("weights", "activations")]
    rows = []
    for r in results["runs"]:
        cells = [_title(r), f"{r['activation']} ({r['group']})"]
        for key in ("test", "train"):
            for m in ("w", "a"):
                mean, lo, hi, verdict = comparison(r, m, key)
                ci = "" if not np.isfinite(lo) else f" [{lo:.3f}, {hi:.3f}]"
                cells.append(f"{mean:.3f}{ci} ({verdict})")
        rows.append(cells)
    return _table(head, rows)


def _metric_table(results):
    names = ("G-Procrustes angle", "permutation-Procrustes angle", "linear CKA")
    head = ["model", "activation"] + list(names) + \
        [f"matched corr., {CONDITIONS[c][0]}" for c in CONDITIONS]
    rows = []
    for r in results["runs"]:
        cells = [_title(r), r["activation"]]
        cells += [_fmt(np.mean(r["metrics"][n], axis=1)) for n in names]
        cells += [_fmt(np.nanmean(r["matched_correlation"][c], axis=1)) for c in CONDITIONS]
        rows.append(cells)
    return _table(head, rows)


def _planted_table(results):
    head = ["model", "activation (G_sigma)"] + [CONDITIONS[c][0] for c in CONDITIONS]
    rows = [[_title(r), f"{r['activation']} ({r['group']})"]
            + [f"{r['planted'][c]['barrier']:.2g} / {r['planted'][c]['max_abs_excess']:.2g}"
               for c in CONDITIONS] for r in results["runs"]]
    return _table(head, rows)


def _planted_sentence(results):
    runs = results["runs"]
    g = max(r["planted"][c]["barrier"] for r in runs for c in ("g_w", "g_a"))
    g_abs = max(r["planted"][c]["max_abs_excess"] for r in runs for c in ("g_w", "g_a"))
    text = (f"Planted control: a model against a copy of itself moved by a random element of "
            f"G_sigma in every hidden layer. The G_sigma alignments give barriers of at most "
            f"{g:.1e} and a loss that moves by at most {g_abs:.1e} along the whole line (the "
            "interpolated networks are the model itself, up to float32 rounding).")
    for group in sorted({r["group"] for r in runs} - {"permutation"}):
        sub = [r for r in runs if r["group"] == group]
        b = [r["planted"][c]["barrier"] for r in sub for c in ("perm_w", "perm_a")]
        e = [r["planted"][c]["max_abs_excess"] for r in sub for c in ("perm_w", "perm_a")]
        text += (f" For {', '.join(sorted({r['activation'] for r in sub}))} ({group}), "
                 f"permutation-only alignment leaves the rest of the element in place: barrier "
                 f"{min(b):.3g} to {max(b):.3g}, the loss moving by {min(e):.3g} to "
                 f"{max(e):.3g} along the line.")
    return text


def _findings(results):
    """The sentences of the summary, each with its numbers."""
    lines = []
    for r in results["runs"]:
        where = f"{_title(r)}, {r['activation']}"
        for m, name in (("w", "weight"), ("a", "activation")):
            mean, lo, hi, verdict = comparison(r, m)
            pw = mean_ci(_values(r, f"perm_{m}"))[0]
            gw = mean_ci(_values(r, f"g_{m}"))[0]
            if verdict == "identical" and r["group"] == "permutation":
                text = (f"same alignment as permutations (G_sigma = {r['group']}): barrier "
                        f"{gw:.3f} either way")
            elif verdict == "identical":
                mp = mean_ci(_values(r, f"perm_{m}", field="midpoint_excess"))[0]
                mg = mean_ci(_values(r, f"g_{m}", field="midpoint_excess"))[0]
                text = (f"both barriers are {gw:.3f} on every pair (the loss lies below the "
                        f"chord along both lines); midpoint excess {mp:.3f} (permutation) vs "
                        f"{mg:.3f} (G_sigma)")
            else:
                ci = "" if not np.isfinite(lo) else f", paired difference {mean:.3f} " \
                    f"[{lo:.3f}, {hi:.3f}]"
                word = {"lower": "**lowers** the barrier beyond permutations",
                        "higher": "**raises** the barrier compared with permutations",
                        "no difference": "does not change the barrier measurably"}[verdict]
                text = f"G_sigma {word} ({pw:.3f} -> {gw:.3f}{ci})"
            if r["group"] != "permutation":
                cp = mean_ci(np.nanmean(r["matched_correlation"][f"perm_{m}"], axis=1))[0]
                cg = mean_ci(np.nanmean(r["matched_correlation"][f"g_{m}"], axis=1))[0]
                text += f"; matched-unit correlation {cp:.3f} -> {cg:.3f}"
            lines.append(f"- {where}, {name} matching: {text}.")
    return "\n".join(lines)


def _verdict_counts(results):
    counts = {}
    for r in results["runs"]:
        for m in ("w", "a"):
            v = comparison(r, m)[3]
            v = "both 0" if v == "identical" and r["group"] != "permutation" else v
            counts.setdefault(r["activation"], {}).setdefault(v, 0)
            counts[r["activation"]][v] += 1
    return "; ".join(f"{act}: " + ", ".join(f"{n} {v}" for v, n in sorted(c.items()))
                     for act, c in counts.items())


def format_report(results, wall_seconds=None, figures=None):
    """The markdown report (docs/alignment.md), every number from ``results``."""
    cfg = results["config"]
    n_models = sum(len(r["clean_accuracy"]) for r in results["runs"])
    acc = [100 * np.mean(r["clean_accuracy"]) for r in results["runs"]]
    out = [
        "# Linear mode connectivity modulo G_sigma: barriers with no, permutation-only and "
        "full G_sigma alignment",
        "",
        "Written by `python -m simmetrics.paper barrier --out results/ --docs docs` "
        "(`simmetrics/paper/barrier_study.py`) from the run's results "
        "(`results/alignment_results.json`); every number below comes from that run.",
        "",
        "## Setup",
        "",
        "- **Data**: scikit-learn's digits, standardised, 1,257 training and 540 test images "
        "(`simmetrics.nn.digits.load_digits_split`).",
        "- **Models**: " + ", ".join(sorted({_title(r) for r in results["runs"]}))
        + " (CNN: three 3 x 3 convolutions with average pooling after the first activation, "
        f"then a linear read-out); MLPs with {', '.join(cfg['activations'])}, CNNs with "
        f"{', '.join(cfg['cnn_activations'])} (sigmoid CNNs stay near chance accuracy with "
        "this recipe and are left out).",
        f"- **Training** (`simmetrics.nn.digits.train_classifier`): Adam, lr {cfg['lr']}, "
        f"cross-entropy, batch {cfg['batch_size']}; MLPs {cfg['epochs']} epochs = "
        f"{results['adam_steps']['mlp']} Adam steps, CNNs {cfg['cnn_epochs']} epochs = "
        f"{results['adam_steps']['cnn']} steps; seeded initialisation and batch order. "
        f"{n_models} models; mean test accuracy per setting {min(acc):.1f}% to {max(acc):.1f}% "
        "(table below).",
        f"- **Pairs**: {cfg['n_pairs']} independent pairs per setting (seeds 2p and 2p + 1).",
        f"- **Barrier** (`simmetrics.loss_barrier`): cross-entropy at {cfg['steps']} evenly "
        "spaced lambda in [0, 1], B = max over lambda of L(lambda) minus the straight line "
        "between the end losses (>= 0); accuracy barrier likewise for the drop in accuracy. "
        "On the test images unless said otherwise; REPAIR renormalises each hidden channel's "
        "mean and standard deviation on the test images.",
        "- **Alignments** (`simmetrics.align_models`, model_b to model_a): weight matching "
        "(coordinate descent of linear assignments on the weights) and activation matching (on "
        "the 1,257 training images' pre-activations), with `groups=\"permutation\"` (Git "
        "Re-Basin) or each layer's G_sigma (signed permutations for tanh, positive scaled "
        "permutations for ReLU, permutations for GELU and sigmoid).",
        "- **Intervals**: 95% Student-t intervals over the pairs, mean +- t(0.975, n - 1) s / "
        "sqrt(n) (n pairs); comparisons use the paired differences of the same pairs.",
        "",
        "",
        _table(["model", "activation", "test accuracy (%), mean [95% CI] over models"],
               [[_title(r), r["activation"], _fmt(100 * np.asarray(r["clean_accuracy"]), 1)]
                for r in results["runs"]]),
        "",
        "## Findings",
        "",
        f"Per activation, how G_sigma compares with permutation-only alignment (both methods, "
        f"every setting): {_verdict_counts(results)}. \"lower\" means that the 95% interval "
        "of the paired difference barrier(permutation) - barrier(G_sigma) lies above 0.",
        "",
        _findings(results),
        "",
        _planted_sentence(results),
        "",
        "## Test loss barrier",
        "",
        "Mean [95% CI] over pairs.",
        "",
        _barrier_table(results),
        "",
        "## Permutation minus G_sigma (paired)",
        "",
        "barrier(permutation) - barrier(G_sigma) per pair, mean [95% CI]; positive: G_sigma "
        "lower.",
        "",
        _comparison_table(results),
        "",
        "## Test accuracy barrier (percentage points)",
        "",
        _barrier_table(results, field="accuracy_barrier", scale=100.0, digits=2),
        "",
        "## Training loss barrier",
        "",
        _barrier_table(results, key="train"),
        "",
        "## Test loss barrier after REPAIR",
        "",
        _barrier_table(results, key="repair"),
        "",
        "## Midpoint excess L(0.5) - (L(0) + L(1)) / 2 (test; may be negative)",
        "",
        _barrier_table(results, field="midpoint_excess"),
        "",
        "## The hidden layers: G_sigma metrics and matched-unit correlation",
        "",
        "Means over hidden layers, then over pairs [95% CI], on the test images. The "
        "Procrustes angles (radians, lower is more similar; `IntertwinerProcrustes` with the "
        "activation's group or with permutations) and linear CKA do not depend on the "
        "alignment; the matched correlation (mean Pearson correlation of unit i of model_a "
        "with unit i of aligned model_b, post-activations) is what an alignment changes.",
        "",
        _metric_table(results),
        "",
        "## Planted control (one model per setting)",
        "",
        "Test loss barrier / max over lambda of |loss excess|, model (seed 0) against its copy "
        "moved by a random element of each hidden layer's G_sigma (uniform permutation, "
        f"random signs, log-normal scales with sigma {cfg['planted_sigma']}).",
        "",
        _planted_table(results),
    ]
    if figures:
        out += ["", "## Figures", ""]
        out += [f"![{k}]({v})" for k, v in figures.items()]
    if wall_seconds is not None:
        out += ["", f"Wall time of the run: {wall_seconds:.0f} s."]
    return "\n".join(out) + "\n"


def write_figures(results, folder):
    """alignment_barriers.png (mean test barrier with 95% CI per alignment) and
    alignment_curves.png (mean loss excess along the line); returns {key: file name}."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    runs = results["runs"]
    titles = list(dict.fromkeys(_title(r) for r in runs))
    acts = list(dict.fromkeys(r["activation"] for r in runs))
    of = {(_title(r), r["activation"]): r for r in runs}
    colors = ["0.6", "#4c72b0", "#8172b2", "#c44e52", "#dd8452"]
    fig, axes = plt.subplots(1, len(titles), figsize=(4.2 * len(titles), 3.2), squeeze=False,
                             layout="constrained")
    width = 0.8 / len(CONDITIONS)
    for k, title in enumerate(titles):
        ax = axes[0, k]
        here = [a for a in acts if (title, a) in of]
        for j, c in enumerate(CONDITIONS):
            stats = [mean_ci(_values(of[title, a], c)) for a in here]
            m = np.array([s[0] for s in stats])
            err = np.nan_to_num(np.array([[s[0] - s[1], s[2] - s[0]] for s in stats]).T)
            ax.bar(np.arange(len(here)) + (j - 2) * width, m, width, yerr=err, capsize=2,
                   color=colors[j], label=CONDITIONS[c][0])
        ax.set_xticks(np.arange(len(here)), here)
        ax.set_title(title)
        ax.set_ylabel("test loss barrier" if k == 0 else "")
    axes[0, 0].legend(fontsize=7)
    fig.savefig(folder / "alignment_barriers.png", dpi=80)
    plt.close(fig)
    lam = np.asarray(results["lambdas"])
    fig, axes = plt.subplots(len(titles), len(acts), figsize=(3.0 * len(acts),
                             2.3 * len(titles)), squeeze=False, layout="constrained")
    for i, title in enumerate(titles):
        for k, a in enumerate(acts):
            ax = axes[i, k]
            if (title, a) not in of:
                ax.axis("off")
                continue
            for j, c in enumerate(CONDITIONS):
                curves = [d["excess_curve"] for d in of[title, a]["barriers"][c]["test"]]
                ax.plot(lam, np.mean(curves, axis=0), color=colors[j], label=CONDITIONS[c][0])
            ax.axhline(0.0, color="0.3", linewidth=0.5)
            ax.set_title(f"{title}, {a}", fontsize=8)
            ax.set_xlabel("lambda" if i == len(titles) - 1 else "")
    axes[0, 0].set_ylabel("loss excess (test)")
    axes[0, 0].legend(fontsize=6)
    fig.savefig(folder / "alignment_curves.png", dpi=70)
    plt.close(fig)
    return {"barriers": "alignment_barriers.png", "curves": "alignment_curves.png"}


def write_study(results, out, docs=None, wall_seconds=None, figures=True):
    """Write OUT/alignment_results.json and OUT/alignment.md (figures in OUT/figures/), and
    with ``docs`` DOCS/alignment.md with figures in DOCS/figures/; returns the report text."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved = dict(results, wall_seconds=wall_seconds)
    (out / "alignment_results.json").write_text(json.dumps(saved, indent=1))
    text = None
    for folder in [out] + ([Path(docs)] if docs else []):
        folder.mkdir(parents=True, exist_ok=True)
        paths = {k: f"figures/{v}" for k, v in write_figures(results, folder / "figures")
                 .items()} if figures else {}
        text = format_report(results, wall_seconds, paths)
        (folder / "alignment.md").write_text(text)
    return text


def main(argv=None):
    """``python -m simmetrics.paper barrier --out results/ [--docs docs] [--smoke]
    [--n-jobs N] [--no-figures] [--from-json results/alignment_results.json]``."""
    import argparse
    import os
    import sys

    parser = argparse.ArgumentParser(prog="python -m simmetrics.paper barrier",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results", help="output folder (default results/)")
    parser.add_argument("--docs", default=None, help="also write DOCS/alignment.md and "
                        "DOCS/figures/alignment_*.png (the committed copy)")
    parser.add_argument("--smoke", action="store_true", help="the tiny test configuration")
    parser.add_argument("--n-jobs", type=int, default=None,
                        help="parallel processes (default: one per CPU core)")
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--from-json", default=None, metavar="RESULTS_JSON",
                        help="render the report again from a saved alignment_results.json")
    args = parser.parse_args(argv)
    if args.from_json:
        results = json.loads(Path(args.from_json).read_text())
        wall = results.pop("wall_seconds", None)
    else:
        config = BarrierStudyConfig.smoke() if args.smoke else BarrierStudyConfig()
        start = time.perf_counter()
        results = run_study(config, n_jobs=args.n_jobs or os.cpu_count() or 1, progress=True)
        wall = time.perf_counter() - start
    text = write_study(results, args.out, args.docs, wall, figures=not args.no_figures)
    print(text)
    print(f"\nwrote {Path(args.out) / 'alignment.md'}"
          + (f" and {Path(args.docs) / 'alignment.md'}" if args.docs else ""), file=sys.stderr)
    return 0
