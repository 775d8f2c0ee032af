"""simmetrics: representation-similarity metrics that respect the symmetries of networks.

Every metric is a scikit-learn style estimator over pairs of activation matrices
(n_samples, n_neurons)::

    >>> import numpy as np, simmetrics
    >>> X = np.random.default_rng(0).normal(size=(200, 16))
    >>> simmetrics.LinearCKA().fit_score(X, 2 * X)
    1.0

``available_metrics()`` lists the registered names and ``get_metric(name, **params)`` builds one.
"""

from ._core.registry import available_metrics, get_metric, metric_class
from ._core.registry import similarity_repository_names
from ._core.validation import LAYOUTS
from .base import GROUP_NAMES, AlignmentMetric, Metric, metric_scorer
from ._core.memory import MemoryBudgetError, get_memory_budget, memory_budget, set_memory_budget

# metric families
from .metrics.cka import LinearCKA
from .metrics.kernel_cka import KernelCKA
from .metrics.cca import CCA, PWCCA, SVCCA
from .metrics.shape import OrthogonalProcrustes, ShapeMetric
from .metrics.matching import PermutationMetric, SoftMatching
from .metrics.rsa import RSA
from .metrics.rdm import rdm
from .metrics.rsa_ceiling import rsa_noise_ceiling
from .metrics.unit_matching import AlignedCosine, HardCorrelationMatch, SoftCorrelationMatch
from .metrics.rsm import RSMNormDifference
from .metrics.stress import Stress
from .metrics.descriptive import ConcentricityDifference, MagnitudeDifference, UniformityDifference
from .metrics.prediction import GULP, LinearRegressionR2
from .metrics.dependence import DistanceCorrelation
from .metrics.subspace import EigenspaceOverlap
from .metrics.bures import BuresDistance, NormalizedBuresSimilarity
from .metrics.ensd import ENSD, ENSDDistance, participation_ratio
from .metrics.riemannian import AffineInvariantRiemannian
from .metrics.knn import MutualKNN
from .metrics.cknna import CKNNA
from .metrics.knn_lists import LCSKNN, CycleKNN, EditDistanceKNN
from .metrics.neighbourhood import JaccardKNN, RankSimilarity, SecondOrderCosine
from .metrics.intertwiner_cka import IntertwinerCKA
from .metrics.intertwiner_procrustes import IntertwinerProcrustes
from .metrics.stochastic_shape import EnergyStochasticShape, GaussianStochasticShape
from .metrics.predictivity import LinearPredictivity

# symmetry groups, intertwiners, measured invariances
from .symmetry.groups import Group, available_groups, get_group, is_subgroup
from .symmetry.activations import Intertwiner, intertwiner_group
from .symmetry.homogeneity import homogeneity_defect
from .symmetry.weights import apply_intertwiner, apply_intertwiner_
from .invariance import check_invariance, invariance_table

# many representations, large data
from .moments import PairMoments, RepresentationMoments
from .streaming import (
    MinibatchCKA,
    minibatch_cka,
    score_from_moments,
    stream_moments,
    stream_score,
    streaming_metrics,
)

# statistics, files, plots
from .pairwise import pairwise
from .ceiling import SplitHalfConsistency, ceiled_score, split_half_consistency
from .stats import (BootstrapResult, IntervalExcludesEstimateWarning, PermutationTestResult,
                    bootstrap_ci, permutation_test)
from .io import load_representation
from .plots import plot_invariance_table, plot_similarity_matrix, plot_stitching_penalties

# every metric as a function, differentiable on torch tensors (after the families register)
from . import functional

__version__ = "0.1.0"

#: Public names whose modules need torch, imported on first use (``import simmetrics`` must not
#: import torch): name -> the module that defines it.
_LAZY = {"compare_models": "simmetrics.nn.compare", "loss_barrier": "simmetrics.nn.barrier",
         "align_models": "simmetrics.nn.align", "AlignmentSpec": "simmetrics.nn.align_spec",
         "spec_from_sequential": "simmetrics.nn.align_spec"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'simmetrics' has no attribute {name!r}")


__all__ = [name for name in dir() if not name.startswith("_")] + sorted(_LAZY)
