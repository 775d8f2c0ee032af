"""RSA at rsatoolbox's depth: five RDMs x ten comparisons, crossnobis over runs, noise
ceilings, against the seed11 reference values (rsatoolbox 0.3.2, tests/data/reference/seed11/
README.md, section rsatoolbox) and against rsatoolbox installed from PyPI, run here."""

import numpy as np
import pytest
from scipy.spatial.distance import squareform

import simmetrics
from simmetrics import RSA
from simmetrics.metrics.rdm_compare import RSATOOLBOX_NAMES, compare_rdms

PAIRS = ["X_Y", "X_Z", "X_Xpd", "X_Xq"]
RDMS = ["euclidean", "correlation", "mahalanobis", "poisson"]
COMPARES = list(RSATOOLBOX_NAMES)
# Bures: rsatoolbox takes square roots of the rounding of zero eigenvalues of rank-deficient
# kernels, about 1e-7 (seed11 README, "Where peers differ": 1.0000001 on X_Xq, where the exact
# value is 1); here they count as 0. bures_metric: relative to tr G_X + tr G_Y.
BURES_TOL = 2e-7


def _other(seed11, pair):
    return seed11[pair.split("_")[1]]


def _trace_sum(X, Y, method, n):
    # tr(-1/2 H R H) = 1'R1 / (2 n) = sum of the condensed RDM / n
    return (simmetrics.rdm(X, method).sum() + simmetrics.rdm(Y, method).sum()) / n


def _check(value, ref, compare, X, Y, rdm_method):
    if compare == "bures":
        assert value == pytest.approx(ref, abs=BURES_TOL)
    elif compare == "bures_metric":
        tol = BURES_TOL * _trace_sum(X, Y, rdm_method, X.shape[0])
        assert value == pytest.approx(ref, abs=tol)
    else:
        assert value == pytest.approx(ref, abs=1e-10)


# -- the seed11 values of rsatoolbox_{rdm}_rdm_{comparison}_compare_n{300,100} -------------------
@pytest.mark.parametrize("pair", PAIRS)
@pytest.mark.parametrize("rdm_method", RDMS)
@pytest.mark.parametrize("compare", COMPARES)
@pytest.mark.parametrize("n", [300, 100])
def test_rsa_matches_seed11_rsatoolbox_keys(seed11, pair, rdm_method, compare, n):
    # values.json[pair]["rsatoolbox_{rdm}_rdm_{cmp}_compare_n{n}"]: rsatoolbox 0.3.2 calc_rdm on
    # the first n rows then compare (README: cosine_cov and corr_cov at n = 100 only; no poisson
    # on X_Xq, which has negative entries)
    key = f"rsatoolbox_{rdm_method}_rdm_{RSATOOLBOX_NAMES[compare]}_compare_n{n}"
    values = seed11["values"][pair]
    X, Y = seed11["X"][:n], _other(seed11, pair)[:n]
    if key not in values:
        assert (compare in ("cosine_cov", "corr_cov") and n == 300) or (
            rdm_method == "poisson" and pair == "X_Xq")
        return
    value = RSA(rdm=rdm_method, compare=compare).fit_score(X, Y)
    _check(value, values[key], compare, X, Y, rdm_method)


def test_poisson_rdm_refuses_negative_rates(seed11):
    # the README: rsatoolbox's poisson RDM was not computed for X_Xq (negative entries)
    with pytest.raises(ValueError, match=r"rdm='poisson' needs .* but Y has entries"):
        RSA(rdm="poisson").fit_score(seed11["X"], seed11["Xq"])


# -- crossnobis over runs (R_M keys) ------------------------------------------------------------
def _runs(seed11):
    # R.npy is (runs, stimuli, neurons) = (5, 60, 30); simmetrics takes (stimuli, runs, neurons)
    return seed11["R"].transpose(1, 0, 2)


NOISES = {"identity": None, "shrinkdiag": "shrinkage_diag"}


@pytest.mark.parametrize("noise", list(NOISES))
def test_crossnobis_rdm_matches_seed11(seed11, noise):
    # R_M: rsatoolbox_crossnobis_{identity,shrinkdiag}_rdm_mean, and the saved identity RDM
    r = simmetrics.rdm(_runs(seed11), "crossnobis", noise=NOISES[noise])
    ref = seed11["values"]["R_M"][f"rsatoolbox_crossnobis_{noise}_rdm_mean"]
    assert r.mean() == pytest.approx(ref, abs=1e-12)
    if noise == "identity":
        saved = np.load("tests/data/reference/seed11/rsatoolbox_crossnobis_identity_rdm_R.npy")
        np.testing.assert_allclose(r, squareform(saved, checks=False), atol=1e-12)


@pytest.mark.parametrize("noise", list(NOISES))
@pytest.mark.parametrize("m_rdm", ["euclidean", "correlation"])
@pytest.mark.parametrize("compare", ["corr", "corr_cov", "cosine", "cosine_cov", "rho-a",
                                     "spearman", "tau-a"])
def test_crossnobis_vs_M_matches_seed11(seed11, noise, m_rdm, compare):
    # R_M: rsatoolbox_crossnobis_{noise}_vs_M_{euclidean|correlation}_{comparison}
    key = f"rsatoolbox_crossnobis_{noise}_vs_M_{m_rdm}_{compare}"
    values = seed11["values"]["R_M"]
    if key not in values:
        assert noise == "shrinkdiag" and m_rdm == "correlation"  # not computed (README)
        return
    ours = {v: k for k, v in RSATOOLBOX_NAMES.items()}[compare]
    a = simmetrics.rdm(_runs(seed11), "crossnobis", noise=NOISES[noise])
    b = simmetrics.rdm(seed11["M"], m_rdm)
    assert compare_rdms(a, b, ours) == pytest.approx(values[key], abs=1e-10)


def test_rsa_class_takes_runs_for_crossnobis(seed11):
    # RSA(rdm="crossnobis") on two (stimuli, runs, neurons) arrays is compare_rdms of the two
    # crossnobis RDMs; R against its own runs reversed: the same RDM, so 1
    R = _runs(seed11)
    metric = RSA(rdm="crossnobis", compare="pearson", noise="shrinkage_diag")
    assert metric.input_repeats and metric.invariances >= {"translation", "permutation"}
    assert metric.fit_score(R, R[:, ::-1]) == pytest.approx(1.0, abs=1e-12)
    R2 = R + 0.5 * np.random.default_rng(0).normal(size=R.shape)
    expected = compare_rdms(simmetrics.rdm(R, "crossnobis", noise="shrinkage_diag"),
                            simmetrics.rdm(R2, "crossnobis", noise="shrinkage_diag"), "pearson")
    assert metric.fit_score(R, R2) == pytest.approx(expected, abs=1e-14)


def test_crossnobis_input_is_validated(seed11):
    R = _runs(seed11)
    with pytest.raises(ValueError, match=r"X must be 3-D \(n_stimuli, n_runs, n_neurons\) for "
                                         r"rdm='crossnobis'"):
        RSA(rdm="crossnobis").fit_score(R[:, 0], R[:, 1])
    with pytest.raises(ValueError, match="Y has 1 run"):
        RSA(rdm="crossnobis").fit_score(R, R[:, :1])
    with pytest.raises(ValueError, match=r"noise must be a \(30, 30\) precision matrix"):
        simmetrics.rdm(R, "crossnobis", noise=np.eye(4))
    with pytest.raises(ValueError, match="noise must be positive definite"):
        simmetrics.rdm(R, "crossnobis", noise=-np.eye(30))
    with pytest.raises(ValueError, match="only rdm='crossnobis' takes it"):
        RSA(rdm="mahalanobis", noise="shrinkage_diag").fit_score(R[:, 0], R[:, 1])
    with pytest.raises(ValueError, match="rdm='correlation' takes none"):
        RSA(noise=np.eye(30)).fit_score(R[:, 0], R[:, 1])
    with pytest.raises(ValueError, match="parameter 'noise'"):
        RSA(rdm="crossnobis", noise="ledoit").fit_score(R, R)


# -- noise ceilings (R_M keys) -------------------------------------------------------------------
@pytest.mark.parametrize("rdm_method", ["correlation", "euclidean"])
@pytest.mark.parametrize("compare", ["corr", "cosine", "rho-a", "spearman"])
def test_noise_ceiling_matches_seed11(seed11, rdm_method, compare):
    # R_M: rsatoolbox_boot_noise_ceiling_{rdm}_rdm_per_rep_{comparison}_{lower,upper}: one RDM
    # per repetition of R, rsatoolbox.inference.noise_ceiling.boot_noise_ceiling
    rdms = [simmetrics.rdm(Rk, rdm_method) for Rk in seed11["R"]]
    ours = {v: k for k, v in RSATOOLBOX_NAMES.items()}[compare]
    lower, upper = simmetrics.rsa_noise_ceiling(rdms, ours)
    key = f"rsatoolbox_boot_noise_ceiling_{rdm_method}_rdm_per_rep_{compare}"
    assert lower == pytest.approx(seed11["values"]["R_M"][key + "_lower"], abs=1e-10)
    assert upper == pytest.approx(seed11["values"]["R_M"][key + "_upper"], abs=1e-10)
    assert lower < upper


def test_noise_ceiling_bad_input(rng):
    with pytest.raises(ValueError, match=r"rdms must be a \(K, m\) array of K >= 2"):
        simmetrics.rsa_noise_ceiling(rng.normal(size=(1, 45)))
    with pytest.raises(ValueError, match="rsatoolbox's 'corr' is 'pearson'"):
        simmetrics.rsa_noise_ceiling(rng.normal(size=(3, 45)), "corr")
    with pytest.raises(ValueError, match="method must be one of"):
        simmetrics.rsa_noise_ceiling(rng.normal(size=(3, 45)), "bures")


# -- rsatoolbox from PyPI, run here: the whole RDM x comparison grid ------------------------------
def _rsatoolbox(X, Y, rdm_method, compare, **kw):
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm
    from rsatoolbox.rdm import compare as rsa_compare

    def calc(A):
        if rdm_method == "crossnobis":
            n, runs, d = A.shape
            ds = Dataset(A.transpose(1, 0, 2).reshape(runs * n, d),
                         obs_descriptors={"conds": np.tile(np.arange(n), runs),
                                          "runs": np.repeat(np.arange(runs), n)})
            return calc_rdm(ds, method="crossnobis", descriptor="conds",
                            cv_descriptor="runs", **kw)
        return calc_rdm(Dataset(A), method=rdm_method, **kw)

    return float(rsa_compare(calc(X), calc(Y), method=RSATOOLBOX_NAMES[compare])[0, 0])


def _grid_data(rng, rdm_method):
    n = 40
    if rdm_method == "crossnobis":
        S = rng.normal(size=(n, 1, 9))
        return S + 0.7 * rng.normal(size=(n, 4, 9)), S @ rng.normal(size=(9, 7)) + rng.normal(
            size=(n, 4, 7))
    X = rng.normal(size=(n, 9))
    Y = np.tanh(X @ rng.normal(size=(9, 7))) + 0.4 * rng.normal(size=(n, 7))
    if rdm_method == "poisson":
        return np.exp(X / 2), np.exp(Y)
    return X, Y


@pytest.mark.parametrize("rdm_method", ["euclidean", "correlation", "mahalanobis", "crossnobis",
                                        "poisson"])
@pytest.mark.parametrize("compare", COMPARES)
def test_rsa_equals_rsatoolbox_live(rng, rdm_method, compare):
    X, Y = _grid_data(rng, rdm_method)
    value = RSA(rdm=rdm_method, compare=compare).fit_score(X, Y)
    _check(value, _rsatoolbox(X, Y, rdm_method, compare), compare, X, Y, rdm_method)


def test_mahalanobis_with_a_precision_equals_rsatoolbox_live(rng):
    X, Y = _grid_data(rng, "mahalanobis")
    A = rng.normal(size=(9, 9))
    P = A @ A.T + np.eye(9)
    from rsatoolbox.data import Dataset
    from rsatoolbox.rdm import calc_rdm

    expected = calc_rdm(Dataset(X), method="mahalanobis", noise=P).get_vectors()[0]
    np.testing.assert_allclose(simmetrics.rdm(X, "mahalanobis", noise=P), expected,
                               rtol=1e-12, atol=1e-12)
    value = RSA(rdm="mahalanobis", compare="pearson", noise=P).fit_score(X, X @ A)
    ref = compare_rdms(expected, simmetrics.rdm(X @ A, "mahalanobis", noise=P), "pearson")
    assert value == pytest.approx(ref, abs=1e-12)


# -- closed forms -------------------------------------------------------------------------------
def test_cosine_cov_of_euclidean_rdms_is_linear_cka(rng):
    # the README: rsatoolbox's cosine_cov of squared Euclidean RDMs equals linear CKA
    X, Y = _grid_data(rng, "euclidean")
    cka = simmetrics.LinearCKA().fit_score(X, Y)
    assert RSA(rdm="euclidean", compare="cosine_cov").fit_score(X, Y) == pytest.approx(
        cka, abs=1e-12)


def test_bures_of_euclidean_rdms_is_nbs(rng):
    # -1/2 H D H = Xc Xc' / d, so the RDM Bures similarity is the NBS of the data
    X, Y = _grid_data(rng, "euclidean")
    nbs = simmetrics.NormalizedBuresSimilarity().fit_score(X, Y)
    assert RSA(rdm="euclidean", compare="bures").fit_score(X, Y) == pytest.approx(nbs,
                                                                                 abs=1e-12)


def test_rank_comparisons_by_their_definitions(rng):
    # rho-a: 12 sum (ranks - mean) products / (m^3 - m); tau-a: (C - D) / (m (m - 1) / 2),
    # counted over all pairs by loops, on tied integer data
    a = rng.integers(0, 5, size=30).astype(float)
    b = rng.integers(0, 4, size=30).astype(float)
    from scipy.stats import rankdata
    m = a.size
    ra, rb = rankdata(a) - (m + 1) / 2, rankdata(b) - (m + 1) / 2
    assert compare_rdms(a, b, "rho_a") == pytest.approx(12 * ra @ rb / (m**3 - m), abs=1e-14)
    s = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i in range(m) for j in range(i))
    assert compare_rdms(a, b, "tau_a") == pytest.approx(s / (m * (m - 1) / 2), abs=1e-14)


def test_rdm_blocks_agree_with_pdist(rng, monkeypatch):
    # many blocks of rows (a tiny block size) give the same condensed RDMs as scipy's pdist
    from scipy.spatial.distance import pdist

    import simmetrics.metrics.rdm as rdm_module

    X = rng.normal(size=(37, 5)) + 3.0
    monkeypatch.setattr(rdm_module, "_BLOCK_VALUES", 50)
    np.testing.assert_allclose(simmetrics.rdm(X, "correlation"), pdist(X, "correlation"),
                               atol=1e-13)
    np.testing.assert_allclose(simmetrics.rdm(X, "euclidean"), pdist(X, "sqeuclidean") / 5,
                               atol=1e-12)


# -- the statistics drivers on RSA --------------------------------------------------------------
def test_permutation_test_and_bootstrap_ci_with_rsa(seed11):
    X, Y, Z = seed11["X"][:80], seed11["Y"][:80], seed11["Z"][:80]
    metric = RSA(rdm="euclidean", compare="cosine_cov")
    related = simmetrics.permutation_test(metric, X, Y, n_permutations=99, random_state=0)
    unrelated = simmetrics.permutation_test(metric, X, Z, n_permutations=99, random_state=0)
    # X and Y are related (Y = relu(X B + noise)): no shuffle reaches the observed value
    assert related.pvalue == pytest.approx(1 / 100)
    assert unrelated.pvalue > 0.05
    assert related.statistic == pytest.approx(metric.fit_score(X, Y), abs=1e-14)
    ci = simmetrics.bootstrap_ci(RSA(compare="spearman"), X, Y, n_bootstraps=50, random_state=0)
    estimate = RSA(compare="spearman").fit_score(X, Y)
    assert ci.low < estimate < ci.high


# -- gradients of the new comparisons and RDMs (as tests/core/test_functional.py checks them) ---
GRADIENT_CASES = [("euclidean", "cosine"), ("correlation", "cosine_cov"),
                  ("euclidean", "corr_cov"), ("correlation", "corr_cov"),
                  ("poisson", "pearson"), ("poisson", "cosine_cov"), ("mahalanobis", "cosine"),
                  ("mahalanobis", "soft_spearman")]


@pytest.mark.parametrize("rdm_method,compare", GRADIENT_CASES)
def test_gradient_formulas_of_the_new_comparisons(rdm_method, compare):
    import torch
    from sklearn.base import clone

    from simmetrics import functional
    from simmetrics._core.backend import NUMPY

    rng = np.random.default_rng(3)
    Z = rng.normal(size=(14, 4))
    X = Z @ rng.normal(size=(4, 4)) + 0.3 * rng.normal(size=(14, 4))
    Y = np.tanh(Z[:, :3]) + 0.4 * rng.normal(size=(14, 3))
    noise = None
    if rdm_method == "poisson":
        X, Y = np.exp(X / 3), np.exp(Y)
    if rdm_method == "mahalanobis":
        Y = Z @ rng.normal(size=(4, 4))  # the same width: one precision matrix for both
        A = rng.normal(size=(4, 4))
        noise = A @ A.T + np.eye(4)
    metric = RSA(rdm=rdm_method, compare=compare, noise=noise)
    assert functional.is_differentiable(metric)
    # the formula's value is the class's (fit_score, an independent route: condensed RDMs)
    fitted = clone(metric)
    expected = fitted.fit_score(X, Y)
    value = float(fitted._gradient_formula(*fitted._gradient_rows(X, Y, NUMPY), NUMPY))
    assert value == pytest.approx(expected, abs=1e-10)
    inputs = (torch.tensor(X, requires_grad=True), torch.tensor(Y, requires_grad=True))
    assert torch.autograd.gradcheck(lambda a, b: functional.evaluate(clone(metric), a, b),
                                    inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("compare", ["rho_a", "tau_a", "bures", "bures_metric"])
def test_no_gradient_notes(compare):
    from simmetrics import functional

    metric = RSA(rdm="euclidean", compare=compare)
    assert not functional.is_differentiable(metric)
    word = "ranks" if compare in ("rho_a", "tau_a") else "eigenvalues"
    assert word in metric._gradient_note
