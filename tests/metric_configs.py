"""Metric configurations shared by the property and stability tests: every registered metric
with its default parameters, plus the parameter settings whose validation, invariances or
numerics differ from the defaults'."""

import simmetrics

VARIANTS = [
    simmetrics.LinearCKA(debiased=True),
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
    simmetrics.IntertwinerProcrustes(activation="tanh"),
    simmetrics.IntertwinerProcrustes(activation="identity"),
    simmetrics.IntertwinerProcrustes(score_method="paper"),
    simmetrics.IntertwinerProcrustes(score_method="euclidean", center=True),
    simmetrics.IntertwinerCKA(activation="tanh"),
    simmetrics.IntertwinerCKA(activation="identity"),
]
CONFIGS = [simmetrics.get_metric(name) for name in simmetrics.available_metrics()] + VARIANTS
IDS = [repr(m) for m in CONFIGS]
