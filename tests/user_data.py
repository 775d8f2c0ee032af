"""The data users have, shared by the test files that hold every metric to it
(tests/test_real_data.py, tests/core/test_trust_moments_conditioning.py, tests/test_stability.py).

Each generator takes a numpy Generator and (n, dx, dy) and returns related X, Y of the same
stimuli (rows): sparse ReLU activations, binary and quantised ones (exact ties), heavy tails,
dead units, one dominant stimulus, a tight cluster beside a far outlier, n < d.
"""

import numpy as np
from sklearn.base import clone


def latent(rng, n, d):
    Z = rng.normal(size=(n, 4))
    return Z @ rng.normal(size=(4, d)) + 0.5 * rng.normal(size=(n, d))


def _every_row_varies(A):
    # an all-equal row has no correlation RDM entry and no cosine neighbour: RSA and kNN need
    # every stimulus to have a pattern (documented errors, not the subject of this file)
    A = A.copy()
    flat = np.ptp(A, axis=1) == 0
    A[flat, np.arange(flat.sum()) % A.shape[1]] += 1.0
    return A


def _every_neuron_varies(A):
    A = A.copy()
    flat = np.ptp(A, axis=0) == 0
    A[np.arange(flat.sum()) % A.shape[0], flat] += 1.0
    return A


def _fix(A):
    return _every_neuron_varies(_every_row_varies(A))


def sparse(rng, n, dx, dy):
    L = latent(rng, n, dx + dy)
    return _fix(np.maximum(L[:, :dx] - 1.2, 0)), _fix(np.maximum(L[:, dx:] - 1.0, 0))


def binary(rng, n, dx, dy):
    L = latent(rng, n, dx + dy)
    return _fix((L[:, :dx] > 1.0) * 1.0), _fix((L[:, dx:] > 1.0) * 1.0)


def quantised(rng, n, dx, dy):
    L = latent(rng, n, dx + dy)
    return (_fix(np.round(np.maximum(L[:, :dx], 0) * 4) / 4),
            _fix(np.round(np.maximum(L[:, dx:], 0) * 4) / 4))


def heavy_tailed(rng, n, dx, dy):
    T = rng.standard_t(2, size=(n, dx))
    return T, T[:, :dy] @ rng.normal(size=(dy, dy)) + 0.5 * rng.standard_t(2, size=(n, dy))


def dead_units(rng, n, dx, dy):
    X, Y = sparse(rng, n, dx, dy)
    X[:, :2], Y[:, -1] = 0.0, 0.0
    return _every_row_varies(X), _every_row_varies(Y)


def dominant_stimulus(rng, n, dx, dy):
    L = latent(rng, n, dx + dy)
    X, Y = L[:, :dx], np.tanh(L[:, dx:])
    X[0] *= 1e8
    Y[0] *= 1e8
    return X, Y


def cluster_and_outlier(rng, n, dx, dy):
    L = latent(rng, n, dx + dy)
    X, Y = 1e-3 * L[:, :dx], 1e-3 * np.tanh(L[:, dx:])
    X[-1] += 1e5
    Y[-1] += 1e5
    return X, Y


def fewer_stimuli_than_neurons(rng, n, dx, dy):
    L = latent(rng, 12, 3 * dx + 3 * dy)
    return L[:, :3 * dx], np.maximum(L[:, 3 * dx:], 0)


KINDS = [sparse, binary, quantised, heavy_tailed, dead_units, dominant_stimulus,
         cluster_and_outlier, fewer_stimuli_than_neurons]


def score_in_bounds(metric, X, Y):
    """``fit_score`` of a fresh clone, checked finite and within the declared bounds."""
    value = clone(metric).fit_score(X, Y)
    assert np.isfinite(value)
    lo, hi = metric.bounds
    assert lo <= value <= hi, f"{metric!r} = {value} outside {metric.bounds}"
    return value
