"""SentenceVAE on a tiny vocabulary with a 1-D latent: log p(x) by Gauss-Hermite quadrature over
z (summing the decoder's exact probabilities) normalises, bounds the ELBO from above and is the
limit of the importance-weighted bound; prior samples follow it (chi-square); gradients with the
noise fixed; word dropout, annealing schedules, homotopies, bad input."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

import minigen
from devices import to_host
from minigen.models import SentenceVAE, kl_annealing
from minigen.numerics import logsumexp

MAX_LENGTH = 2


def make(seed=0, latent_dim=1, word_dropout=0.0, scale=2.0, encoder_scale=None):
    """Vocabulary {0: <bos> = <eos>, 1, 2} (1 doubles as <unk>); the decoder's weights scaled up so
    that it depends strongly on z, the encoder's by ``encoder_scale`` (default: the same)."""
    minigen.manual_seed(seed)
    model = SentenceVAE(3, 3, 4, latent_dim, word_dropout, bos_id=0, eos_id=0, unk_id=1).double()
    for name, p in model.named_parameters():
        decoding = name.startswith(("decoder.", "to_state."))
        p.data *= scale if decoding or encoder_scale is None else encoder_scale
    return model


def all_sentences(max_length=MAX_LENGTH):
    strings = [s for n in range(max_length + 1) for s in itertools.product([1, 2], repeat=n)]
    tokens = np.zeros((len(strings), max_length), dtype=np.int64)
    for row, s in zip(tokens, strings):
        row[:len(s)] = s
    return tokens, np.array([len(s) for s in strings]), strings


def quadrature_log_px(model, tokens, lengths, n_points=2001, max_length=None):
    """log p(x) = log int N(z; 0, 1) p(x | z) dz over the 1-D z, by the trapezoid rule on
    [-10, 10] (exponentially accurate for a smooth integrand that vanishes at the ends)."""
    z = np.linspace(-10, 10, n_points)
    log_w = np.log(z[1] - z[0]) + stats.norm.logpdf(z)
    log_w[[0, -1]] -= np.log(2)
    z = np.broadcast_to(z[:, None, None], (n_points, len(tokens), 1))
    log_px_z = to_host(model.log_px(tokens, z, lengths, max_length=max_length).data)  # (K, N)
    return logsumexp(log_w[:, None] + log_px_z, axis=0)


def exact_elbo(model, tokens, lengths, n_nodes=60):
    """E_q[log p(x | z)] by Gauss-Hermite quadrature under each q(z | x), minus the KL."""
    t, w = np.polynomial.hermite.hermgauss(n_nodes)
    q = model.posterior(tokens, lengths)
    z = to_host(q.loc.data)[None] + to_host(q.scale.data)[None] * np.sqrt(2) * t[:, None, None]
    reconstruction = w / np.sqrt(np.pi) @ to_host(model.log_px(tokens, z, lengths).data)
    kl = to_host(model.elbo(tokens, lengths, eps=np.zeros((len(tokens), 1))).kl.data)
    return reconstruction - kl


@settings(max_examples=3)
@given(seed=st.integers(0, 1000))
def test_elbo_below_log_px_and_iwae_reaches_it(seed):
    # an encoder close to the prior: a wide proposal, under which L_k converges fast
    model = make(seed, encoder_scale=0.5).eval()
    tokens, lengths, _ = all_sentences()
    log_px = quadrature_log_px(model, tokens, lengths)
    np.testing.assert_allclose(quadrature_log_px(model, tokens, lengths, n_points=4001), log_px,
                               atol=1e-10)  # the quadrature has converged
    # with the sampler's cut-off the marginal is a distribution over the strings
    assert logsumexp(quadrature_log_px(model, tokens, lengths, max_length=MAX_LENGTH)) == \
        pytest.approx(0.0, abs=1e-10)
    elbo = exact_elbo(model, tokens, lengths)
    gap = log_px - elbo  # KL(q(z|x) || p(z|x)) >= 0, and > 0 for this q
    assert np.all(gap > 0) and gap.mean() > 1e-3
    # L_k -> log p(x): with k = 5000 most of the gap is closed, and never overshot by much
    iwae = to_host(model.log_likelihood(tokens, 5000, lengths, generator=seed).data)
    np.testing.assert_allclose(iwae, log_px, atol=0.03)
    assert np.abs(iwae - log_px).mean() < 0.5 * gap.mean()


def test_prior_samples_follow_the_marginal():
    model = make(3).eval()
    tokens, lengths, strings = all_sentences()
    p = np.exp(quadrature_log_px(model, tokens, lengths, max_length=MAX_LENGTH))
    p /= p.sum()  # the quadrature's last 1e-10
    n = 4000
    drawn, drawn_len = (to_host(a.data) for a in model.sample(n, MAX_LENGTH, generator=0))
    index = {s: i for i, s in enumerate(strings)}
    counts = np.bincount([index[tuple(r[:k])] for r, k in zip(drawn, drawn_len)],
                         minlength=len(strings))
    assert stats.chisquare(counts, n * p).pvalue > 1e-3


def test_gradcheck_loss_with_the_noise_fixed():
    model = make(4, latent_dim=2, word_dropout=0.4, scale=1.0)  # training mode: words dropped
    tokens, lengths = np.array([[1, 2, 2], [2, 1, 0]]), np.array([3, 1])
    eps = np.random.default_rng(0).standard_normal((2, 2))
    loss = lambda *params: model.loss(tokens, lengths, kl_weight=0.7, eps=eps, generator=5)
    assert minigen.gradcheck(loss, list(model.parameters()))
    # the int generator fixes the dropped words: the same loss twice, another seed another loss
    assert loss().item() == model.loss(tokens, lengths, 0.7, eps, 5).item()
    assert any(model.loss(tokens, lengths, 0.7, eps, s).item() != loss().item() for s in range(6, 10))


def test_loss_is_the_annealed_negative_elbo():
    model = make(5, latent_dim=2)
    tokens, lengths = np.array([[1, 2], [2, 0]]), np.array([2, 1])
    eps = np.ones((2, 2))
    terms = model.elbo(tokens, lengths, eps=eps)
    np.testing.assert_allclose(to_host(terms.elbo.data), to_host((terms.reconstruction - terms.kl).data))
    assert np.all(to_host(terms.kl.data) > 0)
    for beta in (0.0, 0.3, 1.0):
        expected = np.mean(beta * to_host(terms.kl.data) - to_host(terms.reconstruction.data))
        assert model.loss(tokens, lengths, beta, eps).item() == pytest.approx(expected, rel=1e-12)


def test_word_dropout_only_while_training():
    model = make(6, word_dropout=0.5)
    tokens = np.random.default_rng(0).choice([1, 2], size=(400, 5))
    inputs = model._word_dropout(tokens, np.full(400, 5), np.random.default_rng(0))
    assert np.all(inputs[0] == model.bos_id)
    dropped = (inputs[1:] == model.unk_id) & (tokens.T != model.unk_id)  # changed to <unk>
    assert abs(dropped.sum() / (tokens != model.unk_id).sum() - 0.5) < 0.05
    eps = np.zeros((400, 1))
    training = to_host(model.elbo(tokens, eps=eps, generator=0).reconstruction.data)
    model.eval()
    evaluation = to_host(model.elbo(tokens, eps=eps, generator=0).reconstruction.data)
    model.word_dropout = 0.0
    np.testing.assert_array_equal(to_host(model.train().elbo(tokens, eps=eps).reconstruction.data),
                                  evaluation)
    assert not np.allclose(training, evaluation)


def test_homotopy_ends_are_the_reconstructions():
    model = make(7, latent_dim=2).eval()
    a, b = np.array([1, 2, 2]), np.array([2])
    path, path_len = (to_host(v.data) for v in model.interpolate(a, b, steps=4, max_length=6))
    assert path.shape == (4, 6) and path_len.shape == (4,)
    for end, row in ((a, 0), (b, -1)):
        rec, rec_len = (to_host(v.data) for v in model.reconstruct(end[None], max_length=6))
        np.testing.assert_array_equal(path[row], rec[0])
        assert path_len[row] == rec_len[0]


def test_kl_annealing_schedules():
    assert [kl_annealing(s, "linear", 100) for s in (0, 50, 100, 500)] == [0.0, 0.5, 1.0, 1.0]
    sigmoid = [kl_annealing(s, "sigmoid", 100) for s in range(0, 201)]
    assert np.all(np.diff(sigmoid) > 0) and sigmoid[0] < 0.01 and sigmoid[100] > 0.99
    assert sigmoid[50] == pytest.approx(0.5)


@pytest.mark.parametrize("call,error,match", [
    (lambda m: m.loss(np.array([[3]])), ValueError, "out-of-vocabulary id 3"),
    (lambda m: m.loss(np.array([[1.0]])), TypeError, "integer ids"),
    (lambda m: m.loss(np.array([[1]]), kl_weight=-1), ValueError, "kl_weight must be >= 0"),
    (lambda m: m.log_likelihood(np.array([[1]]), 0), ValueError, "n_samples must be >= 1"),
    (lambda m: m.log_px(np.array([[1]]), np.zeros((1, 2))), ValueError, r"z must have shape \(1, 1\)"),
    (lambda m: m.decode(np.zeros((2, 3)), 4), ValueError, r"z must have shape \(n, 1\)"),
    (lambda m: m.interpolate([[1]], [2]), ValueError, "a must be one sentence"),
    (lambda m: m.interpolate([1], [2], steps=1), ValueError, "steps must be >= 2"),
    (lambda m: m.sample(2, 0), ValueError, "max_length must be >= 1"),
    (lambda m: SentenceVAE(3, 2, 2, 0), ValueError, "latent_dim must be >= 1"),
    (lambda m: SentenceVAE(3, 2, 2, 1, word_dropout=1.5), ValueError, "word_dropout"),
    (lambda m: SentenceVAE(3, 2, 2, 1, unk_id=3), ValueError, "unk_id must be <= 2"),
    (lambda m: kl_annealing(5, "cosine"), ValueError, "schedule must be one of"),
    (lambda m: kl_annealing(-1), ValueError, "step must be >= 0"),
])
def test_bad_input_is_rejected(call, error, match):
    model = make(0)
    with pytest.raises(error, match=match):
        call(model)
