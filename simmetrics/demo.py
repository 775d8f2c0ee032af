"""The built-in example: two small networks trained on scikit-learn's digits, compared layer by
layer with every registered metric (the ``simmetrics demo`` command).

Everything here runs on a CPU in seconds and downloads nothing: the digits data ship with
scikit-learn (1,797 images of 8 x 8 pixels, 10 classes); the models are those of
:mod:`simmetrics.nn.digits`.
"""

from ._core.registry import available_metrics, get_metric, metric_class
from .nn.digits import (accuracy, hidden_representations, load_digits_split, make_mlp,
                        train_classifier)

__all__ = ["run_demo", "format_demo"]


def run_demo(seeds=(0, 1), hidden=(64, 64), epochs=60, metrics=None):
    """Train two MLPs (different seeds) on digits and score their hidden layers pairwise.

    Layer l of the first network is compared with layer l of the second, on the 540 held-out
    test images, with every metric in ``metrics`` (default: all registered, default
    parameters). Alignment metrics are fitted and scored on the same test images here.

    Returns
    -------
    dict
        ``accuracies`` (two floats), ``layers`` (names) and ``rows``: one dict per metric with
        ``metric``, ``kind``, ``bounds`` and ``values`` (one float per layer).
    """
    X_train, X_test, y_train, y_test = load_digits_split()
    reps, accs = [], []
    for seed in seeds:
        model = train_classifier(make_mlp(hidden=hidden, seed=seed), X_train, y_train,
                                 epochs=epochs, seed=seed)
        accs.append(accuracy(model, X_test, y_test))
        reps.append(hidden_representations(model, X_test))
    rows = []
    # the default: every metric of (n_samples, n_neurons) activations (the stochastic shape
    # metrics compare repeated trials, which a deterministic MLP does not have)
    defaults = [name for name in available_metrics() if not metric_class(name).input_repeats]
    for name in metrics or defaults:
        metric = get_metric(name)
        values = [metric.fit_score(a, b) for a, b in zip(*reps)]
        rows.append({"metric": name, "kind": metric.kind, "bounds": metric.bounds,
                     "values": values})
    layers = [f"hidden {i + 1}" for i in range(len(hidden))]
    return {"accuracies": accs, "layers": layers, "hidden": tuple(hidden), "rows": rows}


def format_demo(result):
    """The demo's result as a plain-text table."""
    head = ["metric", "kind", "range"] + result["layers"]
    lines = [[r["metric"], r["kind"], "[{:.3g}, {:.3g}]".format(*r["bounds"])]
             + [f"{v:.4f}" for v in r["values"]] for r in result["rows"]]
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    fmt = "  ".join("{:<%d}" % w for w in widths)
    acc = ", ".join(f"{a:.1%}" for a in result["accuracies"])
    out = [
        "simmetrics demo: two ReLU MLPs 64-{}-10 trained on scikit-learn's digits, seeds differ".format(
            "-".join(map(str, result["hidden"]))
        ),
        f"test accuracy {acc}; each layer compared on the 540 held-out test images",
        "",
        fmt.format(*head),
        fmt.format(*["-" * w for w in widths]),
    ]
    out += [fmt.format(*line) for line in lines]
    return "\n".join(line.rstrip() for line in out)
