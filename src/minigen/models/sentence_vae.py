"""The sentence VAE: an LSTM encoder, a Gaussian latent code, an LSTM language-model decoder.

Lecture deck 000 ("VAEs for Text Generation"); Bowman, Vilnis, Vinyals, Dai, Jozefowicz & Bengio
2016, "Generating Sentences from a Continuous Space" (Sec. 3, Fig. 1; KL annealing and word
dropout Sec. 3.1-3.2; homotopies Sec. 4.3). The slide writes p_phi(x | z) and q_theta(z | x);
minigen keeps Kingma & Welling's letters, theta for the decoder p and phi for the encoder q.

Model, for a sentence x = (x_1..x_L) of ids (no <bos> / <eos>):

    p(z) = N(0, I),   p_theta(x | z) = LSTM language model started from (h_0, c_0) = g(z)
    p_theta(x | z) = prod_{t=1}^{L} p(x_t | x_{<t}, z) * p(<eos> | x, z)    (``LSTMLanguageModel``)
    (h_0, c_0) = (tanh(W_h z + b_h), W_c z + b_c)
    q_phi(z | x) = N(mu, diag exp(logvar)),   [mu, logvar] = W_q h_enc(x) + b_q

where h_enc(x) is the encoder LSTM's state after reading x_1..x_L and then <eos> (so the empty
sentence has a code too). Objective, per sentence (Kingma & Welling 2014, eq. 10):

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z))  <=  log p(x)
    z = mu + exp(logvar / 2) * eps,  eps ~ N(0, I);   KL = 1/2 sum_j (exp(logvar_j) + mu_j^2 - 1 - logvar_j)

``loss(x, kl_weight=beta)`` = mean_n [beta KL_n - E_q log p(x_n | z)], one z per sentence.

Against posterior collapse (the decoder ignores z, KL -> 0), two training devices of the paper:
KL annealing, beta rising from 0 to 1 (``kl_annealing``: a logistic or a linear schedule), and
word dropout: while training, each conditioned-on word of the decoder (its input x_{t-1}, not
<bos>) becomes <unk> with probability ``word_dropout``, so the decoder has to lean on z.
``elbo(...).kl`` reports the KL per sentence, so a collapse is visible.

``log_likelihood(x, k)``: the importance-weighted bound L_k (Burda et al. 2016) with
log w_i = log p(x | z_i) + log p(z_i) - log q(z_i | x); ELBO = L_1 <= L_k -> log p(x) as k grows.
"""
import math

import numpy as np

from .. import backend
from .. import functional as F
from ..autograd import Tensor, no_grad
from ..data.text import Vocabulary
from ..distributions import Normal, kl_divergence
from ..nn import LSTM, Embedding, Linear, Module
from ..random import get_generator
from ..validation import check_float, check_int, check_option
from .language_model import LSTMLanguageModel, check_token_ids
from .vae import ELBO

__all__ = ["SentenceVAE", "kl_annealing"]


def kl_annealing(step, schedule="sigmoid", warmup_steps=1000):
    """The KL weight beta at training ``step`` (Bowman et al. Sec. 3.1), rising from 0 to 1.

    "linear": min(1, step / warmup_steps). "sigmoid": the logistic
    1 / (1 + exp(-10 (step / warmup_steps - 1/2))), 0.007 at step 0, 1/2 at half the warm-up,
    0.993 at its end.
    """
    step = check_int(step, "step", minimum=0)
    warmup_steps = check_int(warmup_steps, "warmup_steps", minimum=1)
    schedule = check_option(schedule, "schedule", ("sigmoid", "linear"))
    if schedule == "linear":
        return min(1.0, step / warmup_steps)
    return 1.0 / (1.0 + math.exp(-10.0 * (step / warmup_steps - 0.5)))


class SentenceVAE(Module):
    """Bowman et al.'s VAE for sentences (see the module docstring).

    ``forward(tokens, lengths=None)`` returns the posterior's parameters (mu, logvar), each
    (N, latent_dim). ``bos_id``, ``eos_id``, ``unk_id``: the special symbols (by default those of
    ``minigen.data.Vocabulary``); <unk> replaces the dropped words.
    """

    def __init__(self, vocab_size, embedding_dim, hidden_size, latent_dim, word_dropout=0.0,
                 bos_id=Vocabulary.BOS_ID, eos_id=Vocabulary.EOS_ID, unk_id=Vocabulary.UNK_ID):
        super().__init__()
        self.decoder = LSTMLanguageModel(vocab_size, embedding_dim, hidden_size,
                                         bos_id=bos_id, eos_id=eos_id)
        self.vocab_size, self.embedding_dim = self.decoder.vocab_size, self.decoder.embedding_dim
        self.hidden_size, self.bos_id, self.eos_id = hidden_size, bos_id, eos_id
        self.latent_dim = check_int(latent_dim, "latent_dim", minimum=1)
        self.word_dropout = check_float(word_dropout, "word_dropout", minimum=0.0)
        if self.word_dropout > 1:
            raise ValueError(f"word_dropout must be in [0, 1], got {word_dropout}")
        self.unk_id = check_int(unk_id, "unk_id", minimum=0, maximum=vocab_size - 1)
        self.encoder_embedding = Embedding(vocab_size, embedding_dim)
        self.encoder = LSTM(embedding_dim, hidden_size)
        self.to_posterior = Linear(hidden_size, 2 * latent_dim)
        self.to_state = Linear(latent_dim, 2 * hidden_size)

    def _xp(self):
        return backend.get_array_module(self.to_state.weight.data)

    def _check(self, tokens, lengths):
        return check_token_ids(self, tokens, lengths)

    # ------------------------------------------------------------------ the two networks
    def _encode(self, x, length):
        """(mu, logvar) of q(z | x), each (N, latent_dim), from the encoder state at <eos>."""
        xp = backend.get_array_module(x)
        n = x.shape[0]
        inputs = xp.concatenate([x.T, xp.full((1, n), self.eos_id, dtype=np.int64)])  # (T+1, N)
        out, _ = self.encoder(self.encoder_embedding(inputs))
        h = out[length, xp.arange(n)]  # the state after x_L and <eos>; padding comes later
        params = self.to_posterior(h)
        return params[:, :self.latent_dim], params[:, self.latent_dim:]

    def forward(self, tokens, lengths=None):
        """The posterior's parameters (mu, logvar), each (N, latent_dim)."""
        return self._encode(*self._check(tokens, lengths))

    def posterior(self, tokens, lengths=None):
        """q(z | x) = N(mu, diag exp(logvar)), a ``Normal`` with batch shape (N, latent_dim)."""
        mu, logvar = self.forward(tokens, lengths)
        return Normal(mu, logvar=logvar)

    def prior(self):
        xp, dtype = self._xp(), self.to_state.weight.dtype
        return Normal(Tensor(xp.zeros(self.latent_dim, dtype=dtype)),
                      Tensor(xp.ones(self.latent_dim, dtype=dtype)))

    def _initial_state(self, z):
        """(h_0, c_0), each (1, N, hidden_size), from codes z (N, latent_dim)."""
        hc = self.to_state(z)
        return F.unsqueeze(F.tanh(hc[:, :self.hidden_size]), 0), F.unsqueeze(hc[:, self.hidden_size:], 0)

    def _log_px(self, x, length, z, inputs=None, max_length=None):
        """log p(x | z): z (N, D) -> (N,), or z (k, N, D) -> (k, N), decoded in one pass."""
        lead = z.shape[:-1]
        if len(lead) == 2:  # row i * N + n of the tiled batch is sentence n with code z_i
            xp = backend.get_array_module(x)
            x, length = xp.tile(x, (lead[0], 1)), xp.tile(length, lead[0])
            z = F.reshape(z, (-1, self.latent_dim))
        log_p = self.decoder.sequence_log_prob(x, length, self._initial_state(z),
                                               max_length=max_length, inputs=inputs)
        return F.reshape(log_p, lead)

    def log_px(self, tokens, z, lengths=None, max_length=None):
        """log p(x | z) per sentence: z (N, latent_dim) -> (N,), or (k, N, latent_dim) -> (k, N).
        ``max_length``: as in ``LSTMLanguageModel.log_prob`` (the sampler's cut-off)."""
        x, length = self._check(tokens, lengths)
        z = z if isinstance(z, Tensor) else Tensor(backend.to_device(np.asarray(z), self.device))
        if z.shape[-1] != self.latent_dim or z.ndim not in (2, 3) or z.shape[-2] != x.shape[0]:
            raise ValueError(f"z must have shape ({x.shape[0]}, {self.latent_dim}) or (k, "
                             f"{x.shape[0]}, {self.latent_dim}), got {tuple(z.shape)}")
        return self._log_px(x, length, z.to(dtype=self.to_state.weight.dtype), max_length=max_length)

    def _word_dropout(self, x, length, rng):
        """Decoder inputs <bos>, x_1..x_T with each x_t replaced by <unk> w.p. ``word_dropout``."""
        xp = backend.get_array_module(x)
        inputs, _ = self.decoder._inputs_targets(x, length)
        dropped = rng.random(inputs.shape) < self.word_dropout
        dropped[0] = False  # <bos> is always seen
        return xp.where(dropped, self.unk_id, inputs)

    # ------------------------------------------------------------------ objectives
    def elbo(self, tokens, lengths=None, eps=None, generator=None):
        """Per-sentence ``ELBO(elbo, reconstruction, kl)``, each (N,), with one z per sentence.

        ``eps`` (N, latent_dim): the reparameterisation noise, to hold it fixed (gradient checks);
        ``generator`` draws eps and, while training with word dropout, the dropped words (an int
        seed fixes both).
        """
        x, length = self._check(tokens, lengths)
        rng = get_generator(generator, self._xp())
        mu, logvar = self._encode(x, length)
        q = Normal(mu, logvar=logvar)
        z = q.rsample(eps=eps, generator=rng)
        inputs = self._word_dropout(x, length, rng) if self.training and self.word_dropout else None
        reconstruction = self._log_px(x, length, z, inputs=inputs)
        kl = F.sum(kl_divergence(q, self.prior()), axis=-1)
        return ELBO(reconstruction - kl, reconstruction, kl)

    @staticmethod
    def objective(terms, kl_weight=1.0):
        """mean_n [kl_weight * KL_n - reconstruction_n] of an ``ELBO`` (the training loss)."""
        return F.mean(kl_weight * terms.kl - terms.reconstruction)

    def loss(self, tokens, lengths=None, kl_weight=1.0, eps=None, generator=None):
        """Batch mean of kl_weight * KL - E_q[log p(x | z)], nats per sentence (kl_weight = 1:
        the negative ELBO; anneal it with ``kl_annealing``)."""
        kl_weight = check_float(kl_weight, "kl_weight", minimum=0.0)
        return self.objective(self.elbo(tokens, lengths, eps, generator), kl_weight)

    def log_likelihood(self, tokens, n_samples=1000, lengths=None, generator=None,
                       batch_size=4096):
        """Importance-weighted estimate L_k of log p(x) (N,), nats, k = ``n_samples``; no word
        dropout, no gradient. Works in passes of at most ``batch_size`` decoded sentences whose
        log-sum-exps are merged, so any k fits in memory."""
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        xp = self._xp()
        rng = get_generator(generator, xp)
        with no_grad():
            x, length = self._check(tokens, lengths)
            mu, logvar = self._encode(x, length)
            q = Normal(mu, logvar=logvar)
            log_sum = xp.full(x.shape[0], -xp.inf, dtype=mu.dtype)
            chunk = max(1, batch_size // max(1, x.shape[0]))  # samples per pass
            for done in range(0, n_samples, chunk):
                z = q.rsample((min(chunk, n_samples - done),), generator=rng)  # (k, N, D)
                log_w = (self._log_px(x, length, z) + F.sum(self.prior().log_prob(z), axis=-1)
                         - F.sum(q.log_prob(z), axis=-1))
                log_sum = xp.logaddexp(log_sum, F.logsumexp(log_w, axis=0).data)
            return Tensor(log_sum - math.log(n_samples))

    # ------------------------------------------------------------------ generation
    def decode(self, z, max_length, greedy=False, temperature=1.0, generator=None):
        """Sentences from codes z (n, latent_dim): ancestral draws from p(x | z), or the greedy
        (most probable symbol at each step) decoding. Returns (tokens (n, max_length) padded
        with <eos>, lengths (n,)), as ``LSTMLanguageModel.sample``."""
        with no_grad():
            z = z if isinstance(z, Tensor) else Tensor(backend.to_device(np.asarray(z), self.device))
            if z.ndim != 2 or z.shape[1] != self.latent_dim:
                raise ValueError(f"z must have shape (n, {self.latent_dim}), got {tuple(z.shape)}")
            z = z.to(dtype=self.to_state.weight.dtype)
            return self.decoder.generate(z.shape[0], max_length, self._initial_state(z),
                                         temperature=temperature, greedy=greedy,
                                         generator=generator)

    def sample(self, n, max_length, generator=None, greedy=False, temperature=1.0):
        """``n`` sentences x ~ p(x | z), z ~ p(z) (``greedy``: the greedy decoding of each z)."""
        n = check_int(n, "n", minimum=1)
        rng = get_generator(generator, self._xp())  # one stream for z and the words
        return self.decode(self.prior().sample((n,), generator=rng), max_length, greedy,
                           temperature, rng)

    def reconstruct(self, tokens, lengths=None, max_length=None):
        """The greedy decoding of z = mu(x) (the posterior mean) for each sentence; ``max_length``
        defaults to twice the padded length (at least 1)."""
        with no_grad():
            x, length = self._check(tokens, lengths)
            mu, _ = self._encode(x, length)
        return self.decode(mu, max(1, 2 * x.shape[1]) if max_length is None else max_length,
                           greedy=True)

    def interpolate(self, a, b, steps=5, max_length=20):
        """The homotopy between sentences ``a`` and ``b`` (1-D id sequences; Bowman et al. Sec.
        4.3): greedy decodings of z_s = (1 - s) mu(a) + s mu(b) for ``steps`` values of s from 0
        to 1. Returns (tokens (steps, max_length), lengths (steps,))."""
        steps = check_int(steps, "steps", minimum=2)
        ends = []
        for name, s in (("a", a), ("b", b)):
            s = np.asarray(backend.to_numpy(s))
            if s.ndim != 1:
                raise ValueError(f"{name} must be one sentence, a 1-D sequence of ids, got shape "
                                 f"{s.shape}")
            ends.append(s)
        with no_grad():
            mu_a, mu_b = (self.forward(s[None])[0].data for s in ends)
        xp = self._xp()
        t = xp.linspace(0, 1, steps, dtype=mu_a.dtype)[:, None]
        return self.decode(Tensor((1 - t) * mu_a + t * mu_b), max_length, greedy=True)
