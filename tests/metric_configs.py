"""Metric configurations shared by every generic suite (properties, stability, the data users
have, parameters, the invariance table, streaming): every registered metric with its default
parameters, plus the parameter settings whose validation, invariances or numerics differ from
the defaults'."""

import numpy as np

import simmetrics

VARIANTS = [
    simmetrics.LinearCKA(debiased=True),
    simmetrics.LinearCKA(estimator="lange"),
    simmetrics.LinearCKA(estimator="chun"),
    simmetrics.KernelCKA(debiased=True),
    simmetrics.KernelCKA(kernel="linear"),
    simmetrics.KernelCKA(sigma=2.0),
    simmetrics.CCA(statistic="mean_rho_sq"),
    simmetrics.SVCCA(variance=1.0),
    simmetrics.PWCCA(side="y"),
    simmetrics.PWCCA(side="symmetric"),
    simmetrics.ShapeMetric(alpha=0.0),
    simmetrics.ShapeMetric(alpha=0.5),
    simmetrics.ShapeMetric(score_method="euclidean"),
    simmetrics.ShapeMetric(center_columns=False),
    simmetrics.PermutationMetric(score_method="euclidean"),
    simmetrics.RSA(rdm="euclidean", compare="pearson"),
    simmetrics.RSA(compare="kendall"),
    simmetrics.MutualKNN(k=3),
    simmetrics.MutualKNN(similarity="inner_product"),
    simmetrics.CKNNA(unbiased=False, similarity="inner_product"),
    simmetrics.CKNNA(k=3, unbiased=False),
    simmetrics.IntertwinerProcrustes(activation="tanh"),
    simmetrics.IntertwinerProcrustes(activation="identity"),
    simmetrics.IntertwinerProcrustes(score_method="paper"),
    simmetrics.IntertwinerProcrustes(score_method="euclidean", center=True),
    simmetrics.IntertwinerCKA(activation="tanh"),
    simmetrics.IntertwinerCKA(activation="identity"),
    # the invariance table's and the streaming tests' settings (one list for every suite)
    simmetrics.KernelCKA(kernel="linear", debiased=True),
    simmetrics.SVCCA(variance=0.9, statistic="mean_rho_sq"),
    simmetrics.ShapeMetric(alpha=0.5, score_method="euclidean"),
    simmetrics.ShapeMetric(alpha=0.3, center_columns=False),
    simmetrics.OrthogonalProcrustes(score_method="euclidean", center_columns=False),
    simmetrics.PermutationMetric(score_method="euclidean", center_columns=False),
    simmetrics.IntertwinerProcrustes(activation="gelu"),
    simmetrics.IntertwinerProcrustes(activation="tanh", score_method="euclidean"),
    simmetrics.IntertwinerProcrustes(activation="gelu", center=True),
    simmetrics.IntertwinerProcrustes(activation="abs", score_method="paper"),
    simmetrics.IntertwinerProcrustes(activation="identity", score_method="paper", center=True),
    simmetrics.IntertwinerCKA(activation="gelu"),
    simmetrics.IntertwinerCKA(activation="relu", estimator="median"),
    simmetrics.GULP(lmbda=0.1, squared=False),
    simmetrics.Stress(rescale=True),
    simmetrics.RSMNormDifference(norm="frobenius"),
    simmetrics.OrthogonalProcrustes(score_method="chordal"),
    simmetrics.PermutationMetric(score_method="chordal"),
    simmetrics.ShapeMetric(alpha=0.5, score_method="euclidean", whitening="netrep"),
    simmetrics.ShapeMetric(alpha=0.0, score_method="euclidean", whitening="covariance"),
    simmetrics.ShapeMetric(alpha=0.5, whitening="covariance"),
    simmetrics.CycleKNN(similarity="inner_product"),
    simmetrics.LCSKNN(k=3, similarity="inner_product"),
    simmetrics.EditDistanceKNN(similarity="inner_product"),
    simmetrics.RSA(rdm="euclidean", compare="cosine_cov"),
    simmetrics.RSA(rdm="correlation", compare="cosine"),
    simmetrics.RSA(rdm="euclidean", compare="bures"),
    # regression predictivity (default: least squares); the penalised and truncated regressions
    # (ridge, RidgeCV, PLS) have m(X, X) < 1 and are measured in tests/metrics/test_predictivity.py
    simmetrics.LinearPredictivity(reverse=True),
    simmetrics.LinearPredictivity(regression="neuron_to_neuron"),
]
#: Metrics whose inputs are (n_stimuli, n_repeats, n_neurons) arrays of repeated trials, not
#: (n, d) matrices: the generic suites' 2-D data are refused by them (a clear ValueError), so
#: they are kept out of CONFIGS and of the suites that loop over every registered name (those
#: use MATRIX_METRICS); tests/metrics/test_stochastic_shape.py measures the same properties
#: (invariances, symmetry, triangle inequality, bounds, bad input, numpy/torch) on 3-D data.
STOCHASTIC_INPUT = ("gaussian_stochastic_shape", "energy_stochastic_shape")
MATRIX_METRICS = [name for name in simmetrics.available_metrics()
                  if name not in STOCHASTIC_INPUT]
CONFIGS = [simmetrics.get_metric(name) for name in MATRIX_METRICS] + VARIANTS
IDS = [repr(m) for m in CONFIGS]


def ideal_value(metric, X=None):
    """m(X, X): 1 for a similarity (all of them are normalised to 1 for equal inputs: CKA,
    CCA, RSA, mutual kNN, the paper's 1 - d) but ENSD, whose ENSD(X, X) is the participation
    ratio of X (in dimensions), LCSKNN, which is not divided by k (k for equal lists), and
    CycleKNN, whose self-excluded neighbourhoods make CycleKNN(X, X) the fraction of samples
    with a mutual neighbour, below 1 (computed from the definition by cycle_knn_of_itself),
    and Chun et al.'s CKA (LinearCKA(estimator="chun")), whose self-terms drop the same-neuron
    products: HSIC1(X, X) / D(X) (chun_cka_of_itself), 0 for a distance."""
    if isinstance(metric, simmetrics.ENSD):
        return simmetrics.participation_ratio(X)
    if isinstance(metric, simmetrics.LCSKNN):
        return float(metric.k)
    if isinstance(metric, simmetrics.CycleKNN):
        return cycle_knn_of_itself(X, metric.k, metric.similarity)
    if is_chun(metric):
        return chun_cka_of_itself(X)
    return 1.0 if metric.kind == "similarity" else 0.0


def is_chun(metric):
    """Whether ``metric`` is LinearCKA with Chun et al.'s estimator, whose domain is narrower
    than the other CKAs': it refuses (a documented ValueError) 1-neuron inputs and inputs whose
    neurons are (nearly) uncorrelated, where its feature-corrected self-term is not positive."""
    return isinstance(metric, simmetrics.LinearCKA) and metric.estimator == "chun"


def chun_self_terms(A):
    """(HSIC1(K, K), sum_a HSIC1(k_a, k_a)) of Chun, Canatar, Chung and Lee 2025 by their
    definition: Song et al.'s (2012, JMLR, eq. 5) unbiased HSIC of the whole n x n kernel
    K = A A' with itself, and of each neuron's rank-1 kernel k_a = a a', one kernel at a time,
    written out here on kernels whose diagonals are set to zero (not subtracted afterwards: one
    dominant stimulus would leave its 1e32-sized diagonal products to cancel), with n x n
    matrices, not the metric's feature-space or power-sum route. Each column's median is
    subtracted first: every term is invariant to a translation of the neurons, and the kernels
    then keep their digits beside a large mean, where the mean itself would not (one dominant
    stimulus or a far outlier drags the mean away from every other stimulus). Their difference
    times Q/(Q - 1), Q the width, is D(A), the feature-corrected self-term of chun_cka."""
    A = np.asarray(A, dtype=np.float64)
    A = A - np.median(A, axis=0)
    n = A.shape[0]

    def song(K):  # [tr(K~K~) + (1'K~1)^2 / ((n-1)(n-2)) - 2/(n-2) ||K~1||^2] / (n(n-3))
        K = K.copy()
        np.fill_diagonal(K, 0.0)
        rows = K.sum(axis=1)
        return (np.sum(K * K) + rows.sum() ** 2 / ((n - 1) * (n - 2))
                - 2.0 / (n - 2) * (rows @ rows)) / (n * (n - 3))

    return song(A @ A.T), sum(song(np.outer(a, a)) for a in A.T)


def chun_cka_of_itself(X):
    """Chun et al.'s CKA of (X, X) from the definition (chun_cka's docstring): the numerator
    HSIC1(XX', XX') over sqrt(D(X) D(X)) = D(X) = Q/(Q - 1) (HSIC1(XX', XX') - sum_a
    HSIC1(x_a x_a', x_a x_a')), the terms of chun_self_terms. Not 1: (Q - 1)/Q over one
    minus the same-neuron share of the self-HSIC (above 1 for correlated neurons)."""
    total, same = chun_self_terms(X)
    width = X.shape[1]
    return total / (width / (width - 1.0) * (total - same))


def chun_refuses(A):
    """Whether Chun et al.'s CKA must refuse A (a documented ValueError): one neuron, or a
    feature-corrected self-term that is not positive (chun_self_terms: computed from the
    definition, not by the metric's route)."""
    if A.shape[1] < 2:
        return True
    total, same = chun_self_terms(A)
    return not total - same > 0.0


def cycle_knn_of_itself(X, k, similarity):
    """CycleKNN(X, X) by loops over its definition (Huh et al. 2024; CycleKNN's docstring):
    the mean over samples i of P(some neighbour j of i has i among its own neighbours), a
    sample never its own neighbour, ties at the k-th place broken uniformly at random. Sample j
    is a neighbour of i with probability w[i, j]: 1 above the k-th largest similarity v of i,
    p / t for each of the t samples tied with v (here: within 1e-12 of the similarities'
    scale, far above the rounding of equal values and below the gaps of distinct ones) when p
    places are left. P(no return) over a random p-subset of the tie is e_p(1 - w[., i]) /
    C(t, p), the elementary symmetric polynomial read off numpy's polynomial from its roots."""
    from math import comb, prod
    n = X.shape[0]
    norms = np.linalg.norm(X, axis=1)
    P = X / norms[:, None] if similarity == "cosine" else X
    S = P @ P.T
    w = np.zeros((n, n))
    for i in range(n):
        tol = 1e-12 * (1.0 if similarity == "cosine" else norms[i] * norms.max())
        others = [j for j in range(n) if j != i]
        v = sorted((S[i, j] for j in others), reverse=True)[k - 1]
        above = [j for j in others if S[i, j] > v + tol]
        tied = [j for j in others if abs(S[i, j] - v) <= tol]
        for j in above:
            w[i, j] = 1.0
        for j in tied:
            w[i, j] = (k - len(above)) / len(tied)
    total = 0.0
    for i in range(n):
        sure = [j for j in range(n) if w[i, j] == 1.0]
        tied = [j for j in range(n) if 0.0 < w[i, j] < 1.0]
        miss = prod(1.0 - w[j, i] for j in sure)
        if tied:
            p = k - len(sure)
            e = np.poly([-(1.0 - w[j, i]) for j in tied])  # prod_j (z + x_j): e_0, e_1, ...
            miss *= e[p] / comb(len(tied), p)
        total += 1.0 - miss
    return total / n
