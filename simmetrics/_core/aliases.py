"""similarity-repository's standardised measure names, as (registered metric, parameters).

nacloos/similarity-repository (Cloos, Yang & Cueva, "A Framework for Standardizing Similarity
Measures in a Rapidly Evolving Field", UniReps 2024; snapshot 035b3be) gives every measure a
standardised name, ``measure/<repository>/<name>``, whose ``<name>`` spells the measure and its
conventions: ``cka-kernel=linear-hsic=song-score``, ``rsa-rdm=correlation-compare=spearman``,
``svcca-var=0.99-score``, ``shape_metric-alpha={alpha}-distance=angular``. Its conventions, as
its ``standardization.py`` defines them:

- ``-score`` is the similarity and ``-distance=angular`` its arccos (Williams et al. 2021);
- ``-distance=euclidean`` of a shape metric is ``||X - Y Q||_F`` of the centred (and, for
  alpha < 1, partially whitened) data, netrep's ``LinearMetric(score_method="euclidean")``;
- ``procrustes-distance=angular`` is ``nbs-distance=angular`` (Harvey et al. 2023: the angular
  Procrustes distance is the arccos of the normalised Bures similarity), so ``procrustes-score``
  is the NBS;
- ``hsic=gretton`` the biased HSIC, ``hsic=song`` Song et al. 2012's unbiased one, ``hsic=lange``
  Lange et al.'s zero-diagonal estimator; ``kernel=(rbf-sigma=s)`` ``exp(-d^2 / (2 s^2))``;
- rsatoolbox's ``euclidean`` RDM (which is squared) is renamed ``rdm=squared_euclidean``;
  ``rdm=euclidean`` is the plain distance (same ranks, so equal under ``spearman``);
- ``svcca-var=v``: PCA of each representation keeping the fraction v of its variance, then CCA.

:data:`SIMILARITY_REPOSITORY_NAMES` maps a name to the simmetrics metric that computes exactly
that measure, with those parameters; a name left out is one simmetrics lacks or whose convention
differs (every ``-distance=squared_euclidean``, angular CKA and CCA forms, ``svcca-dim=...``,
``pwcca`` (google/svcca's code differs from Morcos et al.'s definition), ``rdm=cosine``, rank
comparisons ``rho_a``/``tau_a``, regression predictivity with cross-validation, ...).
``{alpha}``, ``{sigma}`` and ``{topk}`` are placeholders: ``shape_metric-alpha=0.5-distance=angular``
matches the template and sets ``alpha=0.5``. :data:`SHORTHANDS` adds names without their form
suffix (the issue's ``svcca-var=0.99``, ``shape_metric-alpha=0.5``) for the form simmetrics
computes by default; they are not similarity-repository names and are not counted.
"""

__all__ = ["SIMILARITY_REPOSITORY_NAMES", "SHORTHANDS", "PLACEHOLDERS",
           "SIMILARITY_REPOSITORY_TOTAL"]

#: placeholder -> (simmetrics parameter, type of its value)
PLACEHOLDERS = {"alpha": ("alpha", float), "sigma": ("sigma", float), "topk": ("k", int)}

#: distinct standardised names under ``measure/`` in similarity-repository 035b3be
#: (``similarity/types/__init__.py``, ``measure/<repo>/<name>``, de-duplicated over repositories)
SIMILARITY_REPOSITORY_TOTAL = 207

_ANG = {"score_method": "angular"}
_EUC = {"score_method": "euclidean"}


def _rsa():
    out = {}
    for repo_rdm, rdm in (("correlation", "correlation"), ("squared_euclidean", "euclidean")):
        for repo_cmp, cmp in (("spearman", "spearman"), ("pearson", "pearson"),
                              ("kendall", "kendall"), ("tau_b", "kendall")):
            out[f"rsa-rdm={repo_rdm}-compare={repo_cmp}"] = ("rsa", {"rdm": rdm, "compare": cmp})
    # ranks of ||x_i - x_j|| and of ||x_i - x_j||^2 / d are the same
    out["rsa-rdm=euclidean-compare=spearman"] = ("rsa", {"rdm": "euclidean", "compare": "spearman"})
    return out


#: similarity-repository name -> (registered simmetrics metric, parameters)
SIMILARITY_REPOSITORY_NAMES = {
    # CKA
    "cka-kernel=linear-hsic=gretton-score": ("linear_cka", {"estimator": "gretton"}),
    "cka-kernel=linear-hsic=song-score": ("linear_cka", {"estimator": "song"}),
    "cka-kernel=linear-hsic=lange-score": ("linear_cka", {"estimator": "lange"}),
    "cka-kernel=(rbf-sigma={sigma})-hsic=gretton-score":
        ("kernel_cka", {"kernel": "rbf", "sigma": "{sigma}", "debiased": False}),
    "cka-kernel=(rbf-sigma={sigma})-hsic=song-score":
        ("kernel_cka", {"kernel": "rbf", "sigma": "{sigma}", "debiased": True}),
    # CCA
    "cca-score": ("cca", {"statistic": "mean_rho"}),
    "cca-squared_score": ("cca", {"statistic": "mean_rho_sq"}),
    "svcca-var=0.99-score": ("svcca", {"variance": 0.99, "statistic": "mean_rho"}),
    "svcca-var=0.99-squared_score": ("svcca", {"variance": 0.99, "statistic": "mean_rho_sq"}),
    "svcca-var=0.95-score": ("svcca", {"variance": 0.95, "statistic": "mean_rho"}),
    "svcca-var=0.95-squared_score": ("svcca", {"variance": 0.95, "statistic": "mean_rho_sq"}),
    # shape metrics, Procrustes, Bures
    "shape_metric-alpha={alpha}-distance=angular": ("shape_metric", {"alpha": "{alpha}", **_ANG}),
    "shape_metric-alpha={alpha}-distance=euclidean": ("shape_metric", {"alpha": "{alpha}", **_EUC}),
    "procrustes-distance=angular": ("procrustes", dict(_ANG)),
    "procrustes-distance=euclidean": ("procrustes", dict(_EUC)),
    "orthogonal_angular_shape_metric_centered": ("procrustes", dict(_ANG)),
    "procrustes-score": ("nbs", {}),
    "nbs-score": ("nbs", {}),
    "nbs-distance=angular": ("procrustes", dict(_ANG)),
    "bures_distance": ("bures_distance", {}),
    "permutation_metric-distance=angular": ("permutation_metric", dict(_ANG)),
    "permutation_metric-distance=euclidean": ("permutation_metric", dict(_EUC)),
    # spectral
    "ensd": ("ensd", {}),
    "ensd-distance=angular_normalized": ("ensd_distance", {}),
    # RSA
    **_rsa(),
    # neighbourhoods (ReSi: k = 10, cosine; platonic-rep: raw inner products)
    "jaccard_similarity": ("jaccard_knn", {"k": 10}),
    "rank_similarity": ("rank_similarity", {"k": 10}),
    "second_order_cosine_similarity": ("second_order_cosine", {"k": 10}),
    "mutual_knn-topk={topk}": ("mutual_knn", {"k": "{topk}", "similarity": "inner_product"}),
    "cknna-topk={topk}": ("cknna", {"k": "{topk}", "similarity": "inner_product"}),
    "cycle_knn-topk={topk}": ("cycle_knn", {"k": "{topk}", "similarity": "inner_product"}),
    "lcs_knn-topk={topk}": ("lcs_knn", {"k": "{topk}", "similarity": "inner_product"}),
    "edit_distance_knn-topk={topk}":
        ("edit_distance_knn", {"k": "{topk}", "similarity": "inner_product"}),
    # ReSi's other measures
    "hard_correlation_match": ("hard_correlation_match", {}),
    "soft_correlation_match": ("soft_correlation_match", {}),
    "aligned_cosine_similarity": ("aligned_cosine", {}),
    "distance_correlation": ("distance_correlation", {}),
    "eigenspace_overlap_score": ("eigenspace_overlap", {}),
    "gulp": ("gulp", {"lmbda": 0.0}),
    "linear_regression": ("linear_regression", {}),
    "rsm_norm_difference": ("rsm_norm_difference", {"norm": "spectral"}),
    "concentricity_difference": ("concentricity_difference", {}),
    "magnitude_difference": ("magnitude_difference", {}),
    "uniformity_difference": ("uniformity_difference", {"t": 2.0}),
}

#: names without the form suffix, for simmetrics' default form (not similarity-repository names)
SHORTHANDS = {
    "svcca-var=0.99": "svcca-var=0.99-score",
    "svcca-var=0.95": "svcca-var=0.95-score",
    "shape_metric-alpha={alpha}": "shape_metric-alpha={alpha}-distance=angular",
    "cka-kernel=linear-hsic=gretton": "cka-kernel=linear-hsic=gretton-score",
    "cka-kernel=linear-hsic=song": "cka-kernel=linear-hsic=song-score",
    "cka-kernel=linear-hsic=lange": "cka-kernel=linear-hsic=lange-score",
}
