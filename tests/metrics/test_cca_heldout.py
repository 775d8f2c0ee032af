"""Cross-validated CCA, SVCCA and PWCCA (issue 15): ``fit`` on training stimuli learns the
means and canonical directions, ``score`` correlates the held-out canonical variates.

Expected values come from cca-zoo run live on the same split (its ``score`` is the mean over
components of the Pearson r of ``transform``'s latent scores), from SVCCA's and PWCCA's
definitions written here on top of cca-zoo's variates, and from closed forms."""

import numpy as np
import pytest
from cca_zoo.linear import CCA as ZooCCA
from cca_zoo.metrics import pairwise_correlations
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import KFold, cross_val_score

from simmetrics import CCA, PWCCA, SVCCA, score_from_moments, stream_score
from simmetrics.moments import moments

CONFIGS = [CCA(), CCA(statistic="mean_rho_sq"), SVCCA(), SVCCA(variance=1.0),
           SVCCA(variance=0.9, statistic="mean_rho_sq"), PWCCA(), PWCCA(side="y"),
           PWCCA(side="symmetric")]


def _related(seed, n=400, dx=7, dy=5):
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n, 4))
    X = Z @ rng.normal(size=(4, dx)) + 0.7 * rng.normal(size=(n, dx)) + 3.0
    Y = np.tanh(Z @ rng.normal(size=(4, dy))) + 0.5 * rng.normal(size=(n, dy)) - 1.0
    return X, Y


def _zoo_correlations(train, test, m):
    """cca-zoo's per-component held-out Pearson r (and its score) with m components."""
    model = ZooCCA(n_components=m).fit(train)
    r = pairwise_correlations(model.transform(test))[0, 1]
    return r, model.score(test), model


# -- against cca-zoo, live ---------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_cca_held_out_equals_cca_zoo_score(seed):
    X, Y = _related(seed)
    train, test = (X[:250], Y[:250]), (X[250:], Y[250:])
    r, zoo_score, _ = _zoo_correlations(list(train), list(test), 5)
    assert CCA().fit(*train).score(*test) == pytest.approx(zoo_score, abs=1e-10)
    assert CCA(statistic="mean_rho_sq").fit(*train).score(*test) == pytest.approx(
        np.mean(r**2), abs=1e-10)
    # the variates themselves: transform's columns correlate as cca-zoo's do
    u, v = CCA().fit(*train).transform(*test)
    ours = [np.corrcoef(u[:, i], v[:, i])[0, 1] for i in range(5)]
    np.testing.assert_allclose(ours, r, rtol=0, atol=1e-10)


@pytest.mark.parametrize("variance", [0.9, 0.99])
def test_svcca_held_out_is_cca_zoo_on_the_training_pca(variance):
    # SVCCA's definition: project both splits on the top singular directions of the centred
    # training data (numpy's SVD here), then cca-zoo's held-out score of the projections
    X, Y = _related(3, dx=12, dy=9)
    Xtr, Ytr, Xte, Yte = X[:260], Y[:260], X[260:], Y[260:]
    proj = []
    for A in (Xtr, Ytr):
        _, s, Vt = np.linalg.svd(A - A.mean(axis=0), full_matrices=False)
        k = int(np.searchsorted(np.cumsum(s**2) / np.sum(s**2), variance)) + 1
        proj.append(Vt[:k].T)
    m = min(p.shape[1] for p in proj)
    train = [Xtr @ proj[0], Ytr @ proj[1]]
    test = [Xte @ proj[0], Yte @ proj[1]]
    _, zoo_score, _ = _zoo_correlations(train, test, m)
    fitted = SVCCA(variance=variance).fit(Xtr, Ytr)
    assert (fitted.n_components_x_, fitted.n_components_y_) == tuple(p.shape[1] for p in proj)
    assert fitted.score(Xte, Yte) == pytest.approx(zoo_score, abs=1e-10)


@pytest.mark.parametrize("side", ["x", "y", "symmetric"])
def test_pwcca_held_out_weights_cca_zoo_correlations_by_the_training_weights(side):
    # Morcos et al.'s weights on the training variates (cca-zoo's, scaled to unit norm),
    # alpha_i ~ sum_j |<h_i, x_j>| over the centred training neurons, times cca-zoo's held-out r
    X, Y = _related(4)
    train, test = [X[:250], Y[:250]], [X[250:], Y[250:]]
    r, _, model = _zoo_correlations(train, test, 5)
    values = []
    for A, H in zip(train, model.transform(train)):
        H = H / np.linalg.norm(H, axis=0)
        w = np.abs(H.T @ (A - A.mean(axis=0))).sum(axis=1)
        values.append(float((w / w.sum()) @ r))
    expected = {"x": values[0], "y": values[1], "symmetric": np.mean(values)}[side]
    assert PWCCA(side=side).fit(*train).score(*test) == pytest.approx(expected, abs=1e-10)


# -- closed forms ------------------------------------------------------------------------------
@pytest.mark.parametrize("metric", CONFIGS, ids=repr)
def test_held_out_data_equal_to_the_training_data_give_fit_score(metric):
    X, Y = _related(5)
    expected = clone(metric).fit_score(X, Y)
    assert clone(metric).fit(X, Y).score(X, Y) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("metric", CONFIGS, ids=repr)
def test_a_held_out_copy_under_the_same_map_scores_one(metric, seed=6):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    Q, _ = np.linalg.qr(rng.normal(size=(6, 6)))
    # an orthogonal map and a scale (SVCCA's cut is invariant to those), plus a shift
    Y = 2.5 * X @ Q + 4.0
    fitted = clone(metric).fit(X[:200], Y[:200])
    assert fitted.score(X[200:], Y[200:]) == pytest.approx(1.0, abs=1e-10)


def test_a_held_out_copy_under_an_invertible_map_scores_one_for_cca():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(300, 5))
    A = rng.normal(size=(5, 5))
    fitted = CCA().fit(X[:150], X[:150] @ A)
    assert fitted.score(X[150:], X[150:] @ A - 7.0) == pytest.approx(1.0, abs=1e-10)
    # the opposite sign on the held-out stimuli: every held-out variate pair anti-correlates
    assert fitted.score(X[150:], -X[150:] @ A) == pytest.approx(-1.0, abs=1e-10)


@pytest.mark.parametrize("metric", [CCA(), SVCCA(variance=1.0), PWCCA(side="symmetric")], ids=repr)
def test_held_out_scores_on_noise_are_below_in_sample_ones(metric):
    # independent X and Y: in sample CCA overfits (positive correlations by construction);
    # held out the correlations scatter about 0
    held, fitted_values = [], []
    for seed in range(5):
        rng = np.random.default_rng(100 + seed)
        X, Y = rng.normal(size=(120, 10)), rng.normal(size=(120, 10))
        fitted_values.append(clone(metric).fit_score(X[:60], Y[:60]))
        held.append(clone(metric).fit(X[:60], Y[:60]).score(X[60:], Y[60:]))
    assert all(h < f - 0.15 for h, f in zip(held, fitted_values)), (held, fitted_values)
    assert abs(np.mean(held)) < 0.1 < min(fitted_values)


# -- refusals ----------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [CCA, SVCCA, PWCCA])
def test_fewer_training_stimuli_than_directions_are_refused(cls):
    rng = np.random.default_rng(8)
    X, Y = rng.normal(size=(60, 30)), rng.normal(size=(60, 25))
    metric = cls(variance=1.0) if cls is SVCCA else cls()
    fitted = metric.fit(X[:20], Y[:20])
    match = r"cannot score held-out stimuli .* 20 training stimuli: X spans 19 and Y 19"
    with pytest.raises(ValueError, match=match):
        fitted.score(X[20:], Y[20:])
    with pytest.raises(ValueError, match=match):
        fitted.transform(X[20:], Y[20:])
    assert clone(metric).fit_score(X[:20], Y[:20]) == pytest.approx(1.0, abs=1e-12)  # unchanged


def test_svcca_scores_held_out_data_where_its_cut_leaves_room():
    # low-rank data wider than the training set: CCA refuses, SVCCA(0.9) keeps 3 + 3 < 39
    rng = np.random.default_rng(9)
    Z = rng.normal(size=(100, 3))
    X = Z @ rng.normal(size=(3, 50)) + 0.01 * rng.normal(size=(100, 50))
    Y = Z @ rng.normal(size=(3, 45)) + 0.01 * rng.normal(size=(100, 45))
    with pytest.raises(ValueError, match="SVCCA with variance < 1"):
        CCA().fit(X[:40], Y[:40]).score(X[40:], Y[40:])
    fitted = SVCCA(variance=0.9).fit(X[:40], Y[:40])
    assert fitted.n_components_x_ + fitted.n_components_y_ <= 6
    assert fitted.score(X[40:], Y[40:]) > 0.99


@pytest.mark.parametrize("metric", [CCA(), SVCCA(variance=1.0), PWCCA()], ids=repr)
def test_held_out_variation_the_fit_did_not_see_is_refused(metric):
    X, Y = _related(10)
    X = X.copy()
    X[:250, 2] = 1.5  # neuron 2 constant on the training stimuli
    fitted = clone(metric).fit(X[:250], Y[:250])
    with pytest.raises(ValueError, match="X varies on the scored stimuli in directions its "
                                         "training stimuli did not span"):
        fitted.score(X[250:], Y[250:])
    test = X[250:].copy()
    test[:, 2] = -4.0  # constant there on the scored stimuli too: nothing unseen
    assert np.isfinite(fitted.score(test, Y[250:]))


def test_svcca_allows_unseen_variation_up_to_the_share_its_cut_discards():
    X, Y = _related(10)
    X = X.copy()
    X[:250, 2] = 1.5  # neuron 2 constant on the training stimuli
    unseen = X[250:] - X[250:].mean(axis=0)
    share = np.sum(unseen[:, 2] ** 2) / np.sum(unseen**2)  # its share of the held-out norm
    assert 0.01 < share < 0.5
    with pytest.raises(ValueError, match="did not span"):
        SVCCA(variance=1.0 - 0.9 * share).fit(X[:250], Y[:250]).score(X[250:], Y[250:])
    fitted = SVCCA(variance=1.0 - 1.1 * share).fit(X[:250], Y[:250])
    test = X[250:].copy()
    test[:, 2] = 0.0
    # allowed: neuron 2 is discarded as the cut discards, the value that of data without it
    assert fitted.score(X[250:], Y[250:]) == pytest.approx(fitted.score(test, Y[250:]),
                                                           abs=1e-12)


@pytest.mark.parametrize("cls", [CCA, SVCCA, PWCCA])
def test_score_needs_fit_and_the_fitted_widths(cls):
    X, Y = _related(11)
    with pytest.raises(NotFittedError):
        cls().score(X, Y)
    fitted = cls().fit(X[:200], Y[:200])
    with pytest.raises(ValueError, match="fitted with"):
        fitted.score(X[200:, :-1], Y[200:])


# -- scikit-learn and streaming ----------------------------------------------------------------
@pytest.mark.parametrize("metric", [CCA(), SVCCA(), PWCCA()], ids=repr)
def test_cross_val_score_gives_the_per_fold_held_out_values(metric):
    X, Y = _related(12)
    cv = KFold(5, shuffle=True, random_state=0)
    values = cross_val_score(clone(metric), X, Y, cv=cv, error_score="raise")
    expected = [clone(metric).fit(X[tr], Y[tr]).score(X[te], Y[te]) for tr, te in cv.split(X)]
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("metric", CONFIGS, ids=repr)
def test_a_held_out_stream_scores_as_the_whole_data(metric):
    X, Y = _related(13, n=500)
    reference = clone(metric).fit(X[:300], Y[:300]).score(X[300:], Y[300:])
    streamed = clone(metric)
    in_sample = stream_score(streamed, [(X[:120], Y[:120]), (X[120:300], Y[120:300])])
    assert in_sample == pytest.approx(clone(metric).fit_score(X[:300], Y[:300]), abs=1e-12)
    held = stream_score(streamed, [(X[300:400], Y[300:400]), (X[400:], Y[400:])], fit=False)
    assert held == pytest.approx(reference, abs=1e-10)
    # statistics without the factor: the covariance route
    no_factor = moments(X[300:], Y[300:])
    assert no_factor.factor is None
    assert score_from_moments(streamed, no_factor, fit=False) == pytest.approx(reference,
                                                                               abs=1e-10)
    # the whole-data score of a stream fit, and the fitted means, in the data's units
    assert streamed.score(X[300:], Y[300:]) == pytest.approx(reference, abs=1e-10)
    np.testing.assert_allclose(streamed.mean_x_, X[:300].mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("scale", [1e-300, 1e300])
def test_held_out_scores_at_extreme_scales(scale):
    X, Y = _related(14)
    expected = CCA().fit(X[:250], Y[:250]).score(X[250:], Y[250:])
    fitted = CCA().fit(scale * X[:250], scale * Y[:250])
    assert fitted.score(scale * X[250:], scale * Y[250:]) == pytest.approx(expected, abs=1e-10)
    u, _ = fitted.transform(scale * X[250:], scale * Y[250:])
    assert np.all(np.isfinite(u))
