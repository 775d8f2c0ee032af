"""The gradient formula of :class:`simmetrics.IntertwinerProcrustes` (``Metric._gradient_formula``)
and the conv-map rows it differentiates.

The value on the fitting data is d(X, Y) = min over the discrete part h of the group of
||c(X) - c(Y) h||, scored as an angle, an rms or the paper's 1 - rms/2. Two parts:

- the canonical forms c(X), c(Y) depend smoothly on the data and are **differentiated** (the
  value re-canonicalises the data it is given): centring with the fitted means (``center``),
  division of each neuron by its rms (G_ReLU and the scaled permutations), whitening (the
  identity group, c(X) = sqrt(m) X V (V'X'XV)^(-1/2) with V the fitted right singular
  vectors; its Cholesky root differs from the fitted symmetric one by a rotation, which the
  orthogonal alignment absorbs: at the Procrustes optimum A'B R is symmetric, so a rotation of
  a basis changes the value to first order by the trace of a skew matrix times a symmetric
  one, 0);
- the alignment h (a permutation, a signed permutation, or the identity group's rotation)
  maximises <c(X), c(Y) h>, linear in the canonical forms, and is **held fixed** (Danskin's
  theorem: the gradient of the optimal value wherever the optimum is unique; the assignment
  is then locally constant, and the rotation's objective is a nuclear norm ||c(X)'c(Y)||_*,
  whose gradient U V' exists where the singular values are nonzero; at repeated singular
  values the rotation's block is not unique but the nuclear norm is still differentiable
  where they are nonzero).

Where there is no derivative: a neuron silent on the fitting data (all zero, or constant with
``center``) under a per-neuron scale (any perturbation gives it unit rms: the value jumps);
its entries get gradient 0. For the identity group, data of lower column rank than its width
(fewer stimuli than neurons, a dead unit): the rank jumps under perturbation; the formula
keeps the fitted row space V and gives the gradient along it. Distance 0 (X and Y in one
orbit): the angle and the rms are like |t| at 0.

Written with backend operations (``nx``), so numpy evaluates the same formula.
"""

import numpy as np

from .._core.validation import layout_rows
from .intertwiner_groups import SCALED
from .matching_gradient import matched_blocks, matched_scores

__all__ = ["intertwiner_procrustes_formula", "intertwiner_rows"]


def _index_upsample(small, large, axes):
    """``small`` upsampled to ``large``'s spatial size along ``axes`` by integer indexing
    (output pixel p reads input pixel p // f, the paper's nearest-neighbour rule), so a
    tensor keeps its autograd history."""
    for axis in axes:
        s, l = small.shape[axis], large.shape[axis]
        if s != l:
            index = [p // (l // s) for p in range(l)]
            small = small[(slice(None),) * axis + (index,)]
    return small


def intertwiner_rows(metric, X, Y, nx):
    """``X`` and ``Y`` (tensors or arrays) as the rows IntertwinerProcrustes computes on: a
    4-D input read as (N, C, H, W) for the paper's score without ``layout``; conv maps of
    different spatial sizes matched by nearest-neighbour upsampling of the smaller (the
    checks of :func:`simmetrics.metrics.intertwiner_groups.upsample_to_match` have run in
    ``fit_score``); then the layout's rows."""
    layout = metric.layout
    if layout is None and metric.score_method == "paper" and (X.ndim == 4 or Y.ndim == 4):
        layout = "nchw"
    if layout in ("nchw", "nhwc") and X.ndim == 4 and Y.ndim == 4:
        axes = (2, 3) if layout == "nchw" else (1, 2)
        size_x = tuple(X.shape[i] for i in axes)
        size_y = tuple(Y.shape[i] for i in axes)
        if size_x != size_y:
            if all(a <= b for a, b in zip(size_x, size_y)):
                X = _index_upsample(X, Y, axes)
            else:
                Y = _index_upsample(Y, X, axes)
    return tuple(nx.asarray(layout_rows(nx.asarray(A), name, layout, nx))
                 for A, name in ((X, "X"), (Y, "Y")))


def _unit_rms(A, silent, nx):
    """Every neuron of ``A`` divided by its rms over the rows; the ``silent`` ones (numpy
    mask; exactly zero columns on the fitting data) stay 0 with gradient 0."""
    dead = silent.astype(np.float64)
    return A * nx.asarray(1.0 - dead) / ((A * A).mean(axis=0) + nx.asarray(dead)) ** 0.5


def _whitened(A, W, nx):
    """c(A) = sqrt(m) A V (V'A'AV)^(-1/2) with V the columns of the fitted whitening map ``W``
    (V S^-1 sqrt(m) up to a power of two) scaled to unit norm, the root a Cholesky factor:
    sqrt(m) A V L^-T, L L' = V'A'AV (at the fitted point L = S, so c(A) is the fitted one)."""
    V = nx.asarray(W / np.sqrt(np.sum(W * W, axis=0)))
    AV = A @ V
    L = nx.cholesky(AV.T @ AV)
    return np.sqrt(A.shape[0]) * nx.solve(L, AV.T).T


def intertwiner_procrustes_formula(metric, X, Y, nx):
    """IntertwinerProcrustes on its fitting rows ``X``, ``Y`` (as in the module docstring)::

        A = c(X), B = c(Y) h  (h the fitted alignment, held fixed),
        angular:   2 arctan2(||a - b||, ||a + b||),  a = A/||A||, b = B/||B||
        euclidean: ||A - B||_F / sqrt(m n),   paper: 1 - ||A - B||_F / (2 sqrt(m n))

    with n = max(n_x, n_y) (zero-padding: unmatched neurons against silent ones).
    """
    group = metric.group_
    if metric.center:
        X, Y = X - X.mean(axis=0), Y - Y.mean(axis=0)
    method = "angular" if metric.score_method == "angular" else "euclidean"
    width = max(metric._wx.shape[0], metric._wy.shape[0])
    if group == "invertible_linear":
        A, B = _whitened(X, metric._wx, nx), _whitened(Y, metric._wy, nx)
        rx = A.shape[1]
        aligned = B @ nx.asarray(metric._rotation[: B.shape[1], :])  # c(Y) R, padded width
        blocks = (A, aligned[:, :rx], A[:, :0], aligned[:, rx:])
    else:
        if group in SCALED:
            X = _unit_rms(X, metric._wx == 0.0, nx)
            Y = _unit_rms(Y, metric._wy == 0.0, nx)
        blocks = matched_blocks(X, Y, metric._perm, nx, metric._signs)
    value = matched_scores(*blocks, method, nx)
    if method == "angular":
        return value
    rms = value / np.sqrt(X.shape[0] * width)
    return rms if metric.score_method == "euclidean" else 1.0 - 0.5 * rms
