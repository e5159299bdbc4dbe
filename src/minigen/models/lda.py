"""Latent Dirichlet allocation fitted by batch mean-field variational inference.

Lecture deck 000 ("Latent Dirichlet allocation generative process", "Mean field approximation");
Blei, Ng & Jordan (2003), "Latent Dirichlet Allocation", JMLR 3, section 5 and appendix A, with
the smoothed model of their section 5.4 (a Dirichlet prior on the topics, fitted by its own
variational factor q(beta_k) = Dir(lambda_k)); the notation lambda is Hoffman, Blei & Bach (2010).
minigen follows the paper's smoothed model where the slide's generative process is the same.

Generative process (K topics, V words, D documents):

    beta_k   ~ Dir(eta)                    topic k's distribution over words
    theta_d  ~ Dir(alpha)                  document d's distribution over topics
    z_dn     ~ Categorical(theta_d),   w_dn ~ Categorical(beta_{z_dn})

Mean field: q(theta_d) = Dir(gamma_d), q(z_dn) = Categorical(phi_dn), q(beta_k) = Dir(lambda_k).
With E[log theta_dk] = psi(gamma_dk) - psi(sum_k gamma_dk) and E[log beta_kw] likewise from
lambda (psi the digamma function), the coordinate-ascent updates are (BNJ eqs. 6, 7 and A.4.2):

    phi_dwk   propto exp(E[log theta_dk] + E[log beta_kw])
    gamma_dk  = alpha + sum_w n_dw phi_dwk
    lambda_kw = eta   + sum_d n_dw phi_dwk

where n_dw counts word w in document d. Each update maximises the ELBO in its block, so the
ELBO never decreases. With phi at its optimum the phi terms collapse to a log-normaliser and

    ELBO = sum_d sum_w n_dw log sum_k exp(E[log theta_dk] + E[log beta_kw])
         + sum_d [log G(K alpha) - K log G(alpha) + sum_k ((alpha - gamma_dk) E[log theta_dk]
                  + log G(gamma_dk)) - log G(sum_k gamma_dk)]
         + sum_k [log G(V eta) - V log G(eta) + sum_w ((eta - lambda_kw) E[log beta_kw]
                  + log G(lambda_kw)) - log G(sum_w lambda_kw)]

(G the gamma function). One sweep of ``fit``: the E step (phi and gamma updates, alternated per
document until gamma settles) run from the previous sweep's gamma and from a fresh random one,
keeping for each document the one with the higher bound (where minigen departs from the paper:
a warm start alone never lowers the ELBO but leaves short documents stuck in their first local
optimum; scikit-learn's fresh start alone can lower it), then the lambda update.
``tol`` is the change of the ELBO per word between sweeps. The perplexity of documents is
exp(-(sum of their ELBO terms) / n_words) at the fitted q(beta): the topic terms belong to the
training fit, not to the documents scored.

Computation works on the non-zero counts (d, w, n_dw) only: exp(E[log theta]) exp(E[log beta])
summed over k is the normaliser of phi at each of them, as in Hoffman et al.'s online LDA code.
"""
import math

from .. import backend
from ..backend import get_array_module, special
from ..random import get_generator
from ..validation import check_float, check_int, check_is_fitted
from .estimator import Estimator, coordinate_ascent

E_STEP_MAX_ITER = 100  # gamma/phi updates per E step at most
E_STEP_TOL = 1e-3      # ... until no document's gamma moves by more than this on average


def _counts(X, name="X"):
    """The non-zero entries of a (D, V) count matrix (dense or scipy/cupyx sparse) as
    (d, w, n_dw) arrays, and its shape."""
    if hasattr(X, "tocoo"):  # scipy.sparse or cupyx.scipy.sparse
        X = X.tocoo()
        d, w, n, shape = X.row, X.col, X.data, X.shape
        xp = get_array_module(n)
    else:
        xp = get_array_module(X)
        X = xp.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"{name} must be a 2-D (n_documents, vocabulary) count matrix, "
                             f"got shape {X.shape}")
        d, w = xp.nonzero(X)
        n, shape = X[d, w], X.shape
    if n.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold word counts (numbers), got dtype {n.dtype}")
    n = n.astype(xp.float64)
    if not bool(xp.all(xp.isfinite(n))) or bool(xp.any(n < 0)):
        raise ValueError(f"{name} must hold finite non-negative word counts")
    if shape[0] == 0 or shape[1] == 0 or not float(n.sum()) > 0:
        raise ValueError(f"{name} must have at least one document, one word and a positive total "
                         f"count, got shape {shape} and total {float(n.sum())}")
    return xp.asarray(d, dtype=xp.int64), xp.asarray(w, dtype=xp.int64), n, tuple(shape)


def _sum_by(index, values, size):
    """(size, K) sums of the rows of ``values`` (nnz, K) grouped by ``index`` (nnz,): one
    weighted bincount per column (much faster than a scatter-add of whole rows)."""
    xp = get_array_module(values)
    return xp.stack([xp.bincount(index, weights=values[:, k], minlength=size)
                     for k in range(values.shape[1])], axis=1)


def _phi_counts(counts, gamma, exp_E_log_beta_w):
    """(nnz, K) n_dw phi_dwk, with phi_dwk propto exp(E[log theta_dk] + E[log beta_kw]) at each
    non-zero count (the phi update)."""
    d, _, n = counts
    phi = get_array_module(gamma).exp(_dirichlet_expectation(gamma))[d] * exp_E_log_beta_w
    return phi * (n / phi.sum(axis=1))[:, None]


def _dirichlet_expectation(a):
    """E[log x] under x ~ Dir(a), row by row: psi(a) - psi(sum a)."""
    psi = special(get_array_module(a)).digamma
    return psi(a) - psi(a.sum(axis=1, keepdims=True))


def _dirichlet_terms(a, prior, E_log):
    """sum over rows of E_q[log Dir(x; prior)] - E_q[log Dir(x; a)] for q = Dir(a)."""
    gammaln = special(get_array_module(a)).gammaln
    n_rows, dim = a.shape
    return float(n_rows * (gammaln(dim * prior) - dim * gammaln(prior))
                 + ((prior - a) * E_log + gammaln(a)).sum() - gammaln(a.sum(axis=1)).sum())


class LatentDirichletAllocation(Estimator):
    """LDA by batch mean-field variational inference (Blei, Ng & Jordan 2003).

    ``doc_topic_prior`` alpha and ``topic_word_prior`` eta default to 1 / n_topics (as in
    scikit-learn). Fitted attributes: ``components_`` (K, V) lambda, the variational Dirichlet
    parameters of the topics (normalise the rows for the topic-word distributions E_q[beta]);
    ``elbo_history_`` (the ELBO per word after each sweep, the start first); ``n_iter_``,
    ``converged_``; ``doc_topic_prior_``, ``topic_word_prior_``; ``n_features_in_``;
    ``mean_document_length_`` (used by ``sample``).
    ``score_samples(X)`` gives each document's part of the ELBO (its bound under the fitted
    q(beta)), ``score(X)`` their mean; the training ELBO adds the topic terms to their sum.
    """

    def __init__(self, n_topics=10, doc_topic_prior=None, topic_word_prior=None, max_iter=100,
                 tol=1e-4, random_state=None):
        self.n_topics = n_topics
        self.doc_topic_prior = doc_topic_prior
        self.topic_word_prior = topic_word_prior
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def _prior(self, value, name):
        if value is None:
            return 1.0 / self.n_topics
        return check_float(value, name, minimum=0, strict=True)

    # ---- the updates -----------------------------------------------------------------------
    def _e_step(self, counts, E_log_beta, starts):
        """The E step from each gamma in ``starts``: alternate the phi and gamma updates (phi
        implicit) until gamma settles, then keep for each document the gamma whose bound is the
        highest. Returns that gamma and the statistics sum_d n_dw phi_dwk (K, V) at it.

        A document's bound has several local optima when alpha < 1 (it commits to one topic or
        another); a warm start alone keeps every document in its optimum, fresh starts let it
        move, and keeping the better of the two per document never lowers the ELBO.
        """
        d, w, n = counts
        xp = get_array_module(n)
        exp_E_log_beta_w = xp.exp(E_log_beta).T[w]  # (nnz, K): exp E[log beta_kw] at each count
        best = best_bound = None
        for gamma in starts:
            for _ in range(E_STEP_MAX_ITER):
                new_gamma = self.doc_topic_prior_ + _sum_by(d, _phi_counts(counts, gamma, exp_E_log_beta_w),
                                                            gamma.shape[0])
                change = float(xp.abs(new_gamma - gamma).mean(axis=1).max())
                gamma = new_gamma
                if change < E_STEP_TOL:
                    break
            bound = self._document_elbo(counts, gamma, E_log_beta)
            if best is None:
                best, best_bound = gamma, bound
            else:
                best = xp.where((bound > best_bound)[:, None], gamma, best)
                best_bound = xp.maximum(bound, best_bound)
        # one more phi update, at the kept gamma, for the lambda update
        sstats = _sum_by(w, _phi_counts(counts, best, exp_E_log_beta_w), self.n_features_in_).T
        return best, sstats

    def _initial_gamma(self, counts, n_documents):
        """gamma_dk = alpha + N_d / K (Blei et al. 2003, figure 6): the deterministic start of
        ``transform`` and ``score_samples``, whose topics are already fitted."""
        d, _, n = counts
        xp = get_array_module(n)
        length = xp.bincount(d, weights=n, minlength=n_documents)
        return xp.repeat((self.doc_topic_prior_ + length / self.n_topics)[:, None], self.n_topics, axis=1)

    def _document_elbo(self, counts, gamma, E_log_beta):
        """(D,) each document's ELBO terms (all but the topic terms) at phi's optimum."""
        d, w, n = counts
        xp = get_array_module(n)
        gammaln = special(xp).gammaln
        E_log_theta = _dirichlet_expectation(gamma)
        log_norm = xp.log((xp.exp(E_log_theta)[d] * xp.exp(E_log_beta).T[w]).sum(axis=1))
        alpha, K = self.doc_topic_prior_, self.n_topics
        word_terms = xp.bincount(d, weights=n * log_norm, minlength=gamma.shape[0])
        theta_terms = (math.lgamma(K * alpha) - K * math.lgamma(alpha)
                       + ((alpha - gamma) * E_log_theta + gammaln(gamma)).sum(axis=1)
                       - gammaln(gamma.sum(axis=1)))
        return word_terms + theta_terms

    def _elbo(self, counts, gamma, lam):
        E_log_beta = _dirichlet_expectation(lam)
        return float(self._document_elbo(counts, gamma, E_log_beta).sum()) + \
            _dirichlet_terms(lam, self.topic_word_prior_, E_log_beta)

    # ---- the estimator ---------------------------------------------------------------------
    def fit(self, X):
        """Batch CAVI sweeps until the ELBO per word changes by at most ``tol``; returns self."""
        check_int(self.n_topics, "n_topics", minimum=1)
        self.doc_topic_prior_ = self._prior(self.doc_topic_prior, "doc_topic_prior")
        self.topic_word_prior_ = self._prior(self.topic_word_prior, "topic_word_prior")
        max_iter = check_int(self.max_iter, "max_iter", minimum=1)
        tol = check_float(self.tol, "tol", minimum=0)
        d, w, n, (n_documents, self.n_features_in_) = _counts(X)
        counts = (d, w, n)
        xp = get_array_module(n)
        n_words = float(n.sum())
        self.mean_document_length_ = n_words / n_documents
        rng = get_generator(self.random_state, xp)
        # random starts as in Hoffman et al. (2010): lambda, and each E step's fresh gamma,
        # drawn from Gamma(100, 1/100)
        lam = rng.gamma(100.0, 0.01, (self.n_topics, self.n_features_in_))
        gamma = rng.gamma(100.0, 0.01, (n_documents, self.n_topics))

        def sweep():
            nonlocal gamma, lam
            fresh = rng.gamma(100.0, 0.01, gamma.shape)
            gamma, sstats = self._e_step(counts, _dirichlet_expectation(lam), [gamma, fresh])
            lam = self.topic_word_prior_ + sstats
            return self._elbo(counts, gamma, lam) / n_words

        self.elbo_history_, self.n_iter_, self.converged_ = coordinate_ascent(
            sweep, self._elbo(counts, gamma, lam) / n_words, tol, max_iter,
            "LatentDirichletAllocation")
        self.components_ = lam
        return self

    def _infer(self, X):
        """Counts of X (checked against the fitted vocabulary) and gamma from a full E step."""
        check_is_fitted(self, "components_")
        d, w, n, (n_documents, V) = _counts(X)
        if V != self.n_features_in_:
            raise ValueError(f"X has a vocabulary of {V} words, but LatentDirichletAllocation was "
                             f"fitted with {self.n_features_in_}")
        counts = (backend.to_device(d, backend.device_of(self.components_)),
                  backend.to_device(w, backend.device_of(self.components_)),
                  backend.to_device(n, backend.device_of(self.components_)))
        gamma, _ = self._e_step(counts, _dirichlet_expectation(self.components_),
                                [self._initial_gamma(counts, n_documents)])
        return counts, gamma

    def transform(self, X):
        """(D, K) document-topic proportions E_q[theta_d] = gamma_d / sum_k gamma_dk."""
        _, gamma = self._infer(X)
        return gamma / gamma.sum(axis=1, keepdims=True)

    def score_samples(self, X):
        """(D,) each document's bound, E_q[log p(w_d, theta_d, z_d | beta) - log q(theta_d, z_d)]
        under the fitted q(beta), a lower bound on log E_q(beta)[p(w_d | beta)], nats."""
        counts, gamma = self._infer(X)
        return self._document_elbo(counts, gamma, _dirichlet_expectation(self.components_))

    def perplexity(self, X):
        """exp(-sum_d bound_d / number of words in X): an upper bound on the per-word perplexity
        of X under the fitted model (Blei et al. 2003, section 7.1). scikit-learn's perplexity
        also charges the topic terms KL(q(beta) || p(beta)) of the training fit to X."""
        n_words = float(_counts(X)[2].sum())
        return math.exp(-float(self.score_samples(X).sum()) / n_words)

    def sample(self, n_samples=1, random_state=None):
        """(n_samples, V) word counts of new documents of the mean training length: theta ~
        Dir(alpha), topics beta_k ~ q(beta_k) = Dir(lambda_k), words ~ Categorical(theta beta)."""
        check_is_fitted(self, "components_")
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        xp = get_array_module(self.components_)
        rng = self._generator(random_state, xp)  # None: the random_state setting
        theta = rng.standard_gamma(xp.full((n_samples, self.n_topics), self.doc_topic_prior_))
        theta /= theta.sum(axis=1, keepdims=True)
        beta = rng.standard_gamma(self.components_)
        beta /= beta.sum(axis=1, keepdims=True)
        cdf = xp.cumsum(theta @ beta, axis=1)
        length = max(1, round(self.mean_document_length_))
        u = rng.random((n_samples, length))
        counts = xp.zeros((n_samples, self.n_features_in_))
        for i in range(n_samples):  # inverse CDF for each word of document i
            words = xp.minimum(xp.searchsorted(cdf[i], u[i] * cdf[i, -1]), self.n_features_in_ - 1)
            counts[i] = xp.bincount(words, minlength=self.n_features_in_)
        return counts
