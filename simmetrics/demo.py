"""The built-in example: two small networks trained on scikit-learn's digits, compared layer by
layer with every registered metric.

Everything here runs on a CPU in seconds and downloads nothing: the digits data ship with
scikit-learn (1,797 images of 8 x 8 pixels, 10 classes).
"""

import numpy as np
import torch
from torch import nn

from ._core.registry import available_metrics, get_metric

__all__ = ["load_digits_split", "make_mlp", "train_classifier", "hidden_representations", "run_demo"]


def load_digits_split(test_size=0.3, random_state=0):
    """scikit-learn's digits, standardised, split into train and test.

    Returns
    -------
    X_train, X_test : numpy.ndarray of float32, shape (n, 64)
    y_train, y_test : numpy.ndarray of int64

    Examples
    --------
    >>> X_train, X_test, y_train, y_test = load_digits_split()
    >>> X_train.shape, X_test.shape
    ((1257, 64), (540, 64))
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=random_state, stratify=y
    )
    scaler = StandardScaler().fit(X_train)
    return (
        scaler.transform(X_train).astype(np.float32),
        scaler.transform(X_test).astype(np.float32),
        y_train.astype(np.int64),
        y_test.astype(np.int64),
    )


def make_mlp(n_in=64, hidden=(64, 64), n_out=10, activation=nn.ReLU, seed=0):
    """An MLP ``Linear -> activation`` per hidden layer, then a linear read-out.

    Parameters
    ----------
    activation : type of torch.nn.Module
        Instantiated once per hidden layer (nn.ReLU, nn.GELU, nn.Tanh, ...).
    seed : int
        Seeds the weight initialisation (through a local torch.Generator state).

    Examples
    --------
    >>> make_mlp(hidden=(8,), seed=0)
    Sequential(
      (0): Linear(in_features=64, out_features=8, bias=True)
      (1): ReLU()
      (2): Linear(in_features=8, out_features=10, bias=True)
    )
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers = []
        width = n_in
        for h in hidden:
            layers += [nn.Linear(width, h), activation()]
            width = h
        layers.append(nn.Linear(width, n_out))
        return nn.Sequential(*layers)


def train_classifier(model, X, y, epochs=60, lr=1e-2, batch_size=128, seed=0):
    """Train ``model`` with Adam and cross-entropy on (X, y); returns the model (in eval mode).

    Mini-batch order is drawn from a local generator seeded by ``seed``, so runs repeat.
    """
    X = torch.as_tensor(X)
    y = torch.as_tensor(y)
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=gen)
        for start in range(0, len(X), batch_size):
            idx = order[start : start + batch_size]
            opt.zero_grad()
            loss_fn(model(X[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def hidden_representations(model, X):
    """Post-activation outputs of every hidden layer of an ``nn.Sequential`` MLP.

    Returns a list of float32 numpy arrays, one (n_samples, width) array per activation module
    (every module that is not ``nn.Linear``), in order.
    """
    out = []
    h = torch.as_tensor(X)
    with torch.no_grad():
        for module in model:
            h = module(h)
            if not isinstance(module, nn.Linear):
                out.append(h.numpy().copy())
    return out


def _accuracy(model, X, y):
    with torch.no_grad():
        return float((model(torch.as_tensor(X)).argmax(1).numpy() == y).mean())


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
        accs.append(_accuracy(model, X_test, y_test))
        reps.append(hidden_representations(model, X_test))
    rows = []
    for name in metrics or available_metrics():
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
