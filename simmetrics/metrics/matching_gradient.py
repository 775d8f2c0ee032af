"""The gradient formulas of the neuron-matching shape distances (``Metric._gradient_formula``):
:class:`simmetrics.PermutationMetric` and :class:`simmetrics.SoftMatching`, and the scores
between two matched representations that :mod:`simmetrics.metrics.intertwiner_gradient` shares.

Each value is an optimum over a discrete or polyhedral set of alignments (a permutation, a
transport plan) of an objective that is smooth in the data. The formulas hold the fitted
optimum fixed and differentiate the objective: by Danskin's theorem that is the gradient of
the optimal value wherever the optimum is unique (the assignment, a vertex of the
transport polytope, is then locally constant); where several are optimal (exact ties) the
value has one-sided derivatives only and the formula gives the gradient of the fitted one.
Centring with means learned on the same data is differentiated (the value refits them).

Written with backend operations (``nx``), so numpy evaluates the same formula (the tests
compare it with the class's guarded route) and torch differentiates it. Matched columns are
gathered by integer indices (no zero-padded copies); memory O(n (d_x + d_y)).
"""

import numpy as np

__all__ = ["matched_scores", "matched_blocks", "permutation_formula", "soft_matching_formula", "square_sum"]


def square_sum(A):
    """sum_ij A_ij^2 (0 for an empty block)."""
    return (A * A).sum() if A.shape[1] else 0.0


def _columns(A, index):
    """The columns ``index`` (ints) of ``A``, as a value of A's backend."""
    return A[:, [int(i) for i in index]]


def matched_scores(pa, pb, rest_a, rest_b, score_method, nx):
    """The score between two aligned matrices A' = [pa, rest_a, 0] and B' = [pb, 0, rest_b]
    (the matched columns side by side; the columns matched with silent padding on the other
    side), in backend ``nx``. With q(s, t) = ||s A' - t B'||_F^2 and u = 1/||A'||, v = 1/||B'||::

        "euclidean":  sqrt(q(1, 1))
        "chordal":    sqrt(q(u, v))               = ||A'/||A'|| - B'/||B'|| ||_F
        "angular":    2 arctan2(sqrt(q(u, v)), sqrt(q(u, -v)))   (Kahan's accurate angle)

    The Euclidean distance and the angle have no derivative where A' = B' (the distance is
    like |t| at 0): the gradient is then not a number.
    """
    extra_a, extra_b = square_sum(rest_a), square_sum(rest_b)

    def q(s, t):
        D = s * pa - t * pb
        return (D * D).sum() + s * s * extra_a + t * t * extra_b

    if score_method == "euclidean":
        return nx.sqrt(q(1.0, 1.0))
    u = 1.0 / nx.sqrt((pa * pa).sum() + extra_a)
    v = 1.0 / nx.sqrt((pb * pb).sum() + extra_b)
    chord = nx.sqrt(q(u, v))
    if score_method == "chordal":
        return chord
    return 2.0 * nx.arctan2(chord, nx.sqrt(q(u, -v)))


def matched_blocks(A, B, perm, nx, signs=None):
    """(pa, pb, rest_a, rest_b) of :func:`matched_scores` for ``A`` (d_x columns) against
    ``B`` (d_y columns) under a permutation ``perm`` of the padded width max(d_x, d_y): neuron
    ``perm[i]`` of B is matched with neuron i of A (an index past either width is a silent
    padding neuron), with sign ``signs[i]`` (default +1)."""
    perm = np.asarray(perm)
    dx, dy = A.shape[1], B.shape[1]
    rows = np.flatnonzero((np.arange(perm.size) < dx) & (perm < dy))
    cols = perm[rows]
    unmatched_a = np.setdiff1d(np.arange(dx), rows)
    unmatched_b = np.setdiff1d(np.arange(dy), cols)
    pb = _columns(B, cols)
    if signs is not None and np.any(np.asarray(signs)[rows] != 1.0):
        pb = pb * nx.asarray(np.asarray(signs, dtype=np.float64)[rows])
    return _columns(A, rows), pb, _columns(A, unmatched_a), _columns(B, unmatched_b)


def permutation_formula(metric, X, Y, nx):
    """:class:`simmetrics.PermutationMetric` on its fitting rows ``X``, ``Y`` with the fitted
    ``permutation_`` held fixed (Danskin's theorem: the best permutation maximises
    <Xc, Yc P>, a linear function of the data, and is locally constant where it is unique)::

        Xc = X - mean(X)  (center_columns),  Y' = Yc P,
        angular: angle(Xc, Y'),  euclidean: ||Xc - Y'||_F,  chordal: 2 sin(angle / 2)

    (:func:`matched_scores`).
    """
    if metric.center_columns:
        X, Y = X - X.mean(axis=0), Y - Y.mean(axis=0)
    return matched_scores(*matched_blocks(X, Y, metric.permutation_, nx), metric.score_method, nx)


def soft_matching_formula(metric, X, Y, nx):
    """:class:`simmetrics.SoftMatching` on its fitting rows with the fitted transport plan P
    (``plan_``) held fixed (Danskin's theorem: the value's square is the minimum over the
    transport polytope of sum_ij P_ij ||x_i - y_j||^2, linear in P; the optimal vertex is
    locally constant where it is unique)::

        d(X, Y) = sqrt( sum_{ij: P_ij > 0} P_ij ||x_i - y_j||^2 )

    over the at most N_x + N_y - 1 transported pairs (x_i, y_j the centred neurons), formed
    as differences of columns (accurate near 0, like the class's route there)."""
    if metric.center_columns:
        X, Y = X - X.mean(axis=0), Y - Y.mean(axis=0)
    rows, cols = np.nonzero(metric.plan_)
    D = _columns(X, rows) - _columns(Y, cols)
    weights = nx.asarray(metric.plan_[rows, cols])
    return nx.sqrt(((D * D).sum(axis=0) * weights).sum())
