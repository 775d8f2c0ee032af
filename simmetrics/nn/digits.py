"""The digits models shared by the demo (:mod:`simmetrics.demo`) and the paper's reproduction
(:mod:`simmetrics.paper`): scikit-learn's digits split and standardised, seeded MLPs, their
training with Adam, their hidden representations and their test accuracy.

Everything here runs on a CPU in seconds and downloads nothing: the digits data ship with
scikit-learn (1,797 images of 8 x 8 pixels, 10 classes).
"""

import numpy as np
import torch
from torch import nn

__all__ = ["load_digits_split", "make_mlp", "train_classifier", "hidden_representations",
           "accuracy"]


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


def accuracy(model, X, y):
    """Fraction of the rows of X that ``model`` classifies as y (no gradient)."""
    with torch.no_grad():
        return float((model(torch.as_tensor(X)).argmax(1).numpy() == y).mean())
