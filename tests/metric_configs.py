"""Metric configurations shared by every generic suite (properties, stability, the data users
have, parameters, the invariance table, streaming): every registered metric with its default
parameters, plus the parameter settings whose validation, invariances or numerics differ from
the defaults'."""

import simmetrics

VARIANTS = [
    simmetrics.LinearCKA(debiased=True),
    simmetrics.LinearCKA(estimator="lange"),
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
]
CONFIGS = [simmetrics.get_metric(name) for name in simmetrics.available_metrics()] + VARIANTS
IDS = [repr(m) for m in CONFIGS]
