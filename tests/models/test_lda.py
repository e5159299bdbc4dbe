"""LatentDirichletAllocation: the ELBO (checked term by term against a direct computation) never
decreases, planted topics are recovered, and the perplexity matches scikit-learn's batch LDA."""
import numpy as np
import pytest
import scipy.sparse
from scipy import special, stats
from scipy.optimize import linear_sum_assignment

import minigen
from minigen import backend
from devices import on_device, to_host
from minigen.models import LatentDirichletAllocation
from minigen.models.lda import _counts
from minigen.validation import NotFittedError


def planted(seed, n_topics=3, vocabulary=30, n_documents=150, length=80, alpha=0.2):
    """Documents from topics on disjoint blocks of the vocabulary (plus a little mass everywhere)."""
    rng = np.random.default_rng(seed)
    block = vocabulary // n_topics
    beta = np.full((n_topics, vocabulary), 0.02 / vocabulary)
    for k in range(n_topics):
        beta[k, k * block:(k + 1) * block] += rng.dirichlet(np.full(block, 5.0))
    beta /= beta.sum(axis=1, keepdims=True)
    theta = rng.dirichlet(np.full(n_topics, alpha), size=n_documents)
    X = np.stack([rng.multinomial(length, t @ beta) for t in theta]).astype(float)
    return X, beta


def direct_elbo(X, gamma, lam, alpha, eta):
    """The ELBO of Blei et al. (2003) written out term by term with an explicit phi (D, V, K) at
    its optimum and scipy's Dirichlet entropies: an independent check of the collapsed form."""
    E_log_theta = special.digamma(gamma) - special.digamma(gamma.sum(1, keepdims=True))
    E_log_beta = special.digamma(lam) - special.digamma(lam.sum(1, keepdims=True))
    logits = E_log_theta[:, None, :] + E_log_beta.T[None, :, :]           # (D, V, K)
    phi = np.exp(logits - special.logsumexp(logits, axis=2, keepdims=True))
    K, V = lam.shape
    elbo = np.sum(X[:, :, None] * phi * (E_log_theta[:, None, :]           # E log p(z | theta)
                                         + E_log_beta.T[None, :, :]        # E log p(w | z, beta)
                                         - np.log(phi)))                   # -E log q(z)
    for q, prior, E_log in ((gamma, alpha, E_log_theta), (lam, eta, E_log_beta)):
        for a, e in zip(q, E_log):
            elbo += special.gammaln(len(a) * prior) - len(a) * special.gammaln(prior) + (prior - 1) * e.sum()
            elbo += stats.dirichlet(a).entropy()                           # -E log q(theta), -E log q(beta)
    return elbo


def test_elbo_equals_the_term_by_term_computation():
    rng = np.random.default_rng(0)
    X = rng.poisson(1.5, (6, 7)).astype(float)
    X[2] = 0  # an empty document is allowed
    gamma, lam = rng.gamma(2.0, 1.0, (6, 3)), rng.gamma(2.0, 1.0, (3, 7))
    model = LatentDirichletAllocation(3, doc_topic_prior=0.4, topic_word_prior=0.7)
    model.doc_topic_prior_, model.topic_word_prior_, model.n_topics = 0.4, 0.7, 3
    counts = _counts(on_device(X))[:3]
    assert model._elbo(counts, on_device(gamma), on_device(lam)) == \
        pytest.approx(direct_elbo(X, gamma, lam, 0.4, 0.7), rel=1e-12)


@pytest.mark.parametrize("seed, alpha, eta", [(0, None, None), (1, 0.05, 0.5), (2, 1.0, 0.01)])
def test_elbo_never_decreases(seed, alpha, eta):
    X, _ = planted(seed, n_documents=60)
    model = LatentDirichletAllocation(4, doc_topic_prior=alpha, topic_word_prior=eta, max_iter=12,
                                      tol=0.0, random_state=seed)
    with pytest.warns(minigen.models.estimator.ConvergenceWarning):
        model.fit(on_device(X))
    elbo = np.array(model.elbo_history_)
    assert len(elbo) == model.n_iter_ + 1 == 13 and not model.converged_
    assert np.all(np.diff(elbo) >= -1e-12 * np.abs(elbo).max()), np.diff(elbo).min()
    # elbo_history_ is per word; the last entry is the ELBO of the fitted parameters
    assert np.all(elbo < 0) and elbo[-1] > elbo[0]


def test_planted_topics_are_recovered():
    X, beta = planted(3)
    model = LatentDirichletAllocation(3, max_iter=100, tol=1e-5, random_state=0).fit(on_device(X))
    assert model.converged_
    topics = to_host(model.components_)
    topics /= topics.sum(axis=1, keepdims=True)
    tv = 0.5 * np.abs(topics[:, None, :] - beta[None, :, :]).sum(axis=2)  # (fitted, true)
    rows, cols = linear_sum_assignment(tv)
    assert tv[rows, cols].max() < 0.06, tv[rows, cols]
    # document proportions: each row sums to one and is close to the generating theta's block mass
    theta = to_host(model.transform(on_device(X)))
    np.testing.assert_allclose(theta.sum(axis=1), 1.0)
    block_mass = X.reshape(len(X), 3, 10).sum(axis=2) / X.sum(axis=1, keepdims=True)
    assert np.abs(theta[:, np.argsort(cols)] - block_mass).mean() < 0.05


def test_perplexity_matches_scikit_learn_batch_lda():
    sklearn_lda = pytest.importorskip("sklearn.decomposition", reason="scikit-learn is the reference")
    X, _ = planted(4, n_documents=100)
    model = LatentDirichletAllocation(3, doc_topic_prior=0.3, topic_word_prior=0.2, max_iter=100,
                                      tol=1e-5, random_state=0).fit(on_device(X))
    reference = sklearn_lda.LatentDirichletAllocation(3, doc_topic_prior=0.3, topic_word_prior=0.2,
                                                      learning_method="batch", max_iter=30,
                                                      random_state=0).fit(X)
    # scikit-learn's perplexity also charges the topic terms KL(q(beta) || p(beta)) to X (about
    # 2% here); like for like, the same bound at scikit-learn's topics:
    assert model.perplexity(on_device(X)) == pytest.approx(reference.perplexity(X), rel=0.05)
    at_reference = LatentDirichletAllocation(3, doc_topic_prior=0.3, topic_word_prior=0.2).load_state_dict(
        model.state_dict(), device=backend.default_device())
    at_reference.components_ = on_device(reference.components_)
    assert model.perplexity(on_device(X)) == pytest.approx(at_reference.perplexity(on_device(X)), rel=0.01)


def test_sparse_input_transform_sample_and_score():
    X, _ = planted(5, n_documents=40)
    model = LatentDirichletAllocation(3, max_iter=20, tol=1e-4, random_state=1).fit(on_device(X))
    sparse = scipy.sparse.csr_matrix(X)
    np.testing.assert_allclose(to_host(model.transform(sparse)), to_host(model.transform(on_device(X))), rtol=1e-12)
    scores = to_host(model.score_samples(on_device(X)))
    assert scores.shape == (40,) and model.score(on_device(X)) == pytest.approx(scores.mean())
    assert model.perplexity(on_device(X)) == pytest.approx(np.exp(-scores.sum() / X.sum()))
    fitted = LatentDirichletAllocation(3, max_iter=20, tol=1e-4, random_state=1).fit(sparse)
    dense = LatentDirichletAllocation(3, max_iter=20, tol=1e-4, random_state=1).fit(X)  # both on the host
    np.testing.assert_allclose(fitted.components_, dense.components_, rtol=1e-10)
    docs = to_host(model.sample(5, random_state=0))
    assert docs.shape == (5, 30) and np.all(docs.sum(axis=1) == 80) and np.all(docs >= 0)


def test_state_dict_round_trip(tmp_path):
    X, _ = planted(6, n_documents=30)
    model = LatentDirichletAllocation(3, max_iter=10, tol=1e-3, random_state=0).fit(on_device(X))
    loaded = LatentDirichletAllocation().load_state_dict(
        minigen.load(minigen.save(model.state_dict(), tmp_path / "lda.npz")),
        device=backend.default_device())
    assert repr(loaded) == repr(model)
    np.testing.assert_array_equal(to_host(loaded.score_samples(on_device(X))), to_host(model.score_samples(on_device(X))))
    np.testing.assert_array_equal(to_host(loaded.sample(3, random_state=2)),
                                  to_host(model.sample(3, random_state=2)))
    assert loaded.elbo_history_ == model.elbo_history_


@pytest.mark.parametrize("make, error, match", [
    (lambda X: LatentDirichletAllocation(2).fit(-X), ValueError, "X must hold finite non-negative word counts"),
    (lambda X: LatentDirichletAllocation(2).fit(X[0]), ValueError, r"2-D \(n_documents, vocabulary\)"),
    (lambda X: LatentDirichletAllocation(2).fit(0 * X), ValueError, "positive total count"),
    (lambda X: LatentDirichletAllocation(0).fit(X), ValueError, "n_topics must be >= 1"),
    (lambda X: LatentDirichletAllocation(2, doc_topic_prior=0.0).fit(X), ValueError, "doc_topic_prior must be > 0"),
    (lambda X: LatentDirichletAllocation(2, topic_word_prior=-1.0).fit(X), ValueError, "topic_word_prior must be > 0"),
    (lambda X: LatentDirichletAllocation(2, max_iter=0).fit(X), ValueError, "max_iter must be >= 1"),
    (lambda X: LatentDirichletAllocation(2, tol=-1.0).fit(X), ValueError, "tol must be >= 0"),
    (lambda X: LatentDirichletAllocation(2).transform(X), NotFittedError, "not fitted yet"),
    (lambda X: LatentDirichletAllocation(2, max_iter=2, tol=1.0).fit(X).transform(X[:, :5]), ValueError,
     "X has a vocabulary of 5 words, but LatentDirichletAllocation was fitted with 30"),
])
def test_bad_input_is_rejected_with_a_clear_message(make, error, match):
    with pytest.raises(error, match=match):
        make(on_device(planted(0, n_documents=10)[0]))
