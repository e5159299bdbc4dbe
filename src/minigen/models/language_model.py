"""An LSTM language model: an autoregressive distribution over strings, exact likelihood and
exact ancestral sampling.

Lecture deck 000 (the RNN as a directed graphical model; autoregressive LMs); Zaremba, Sutskever
& Vinyals 2014, "Recurrent Neural Network Regularization" (dropout on the non-recurrent
connections only); Karpathy's char-rnn (characters, temperature, truncated BPTT). Where the slide
draws a chain that stops at w_5, minigen follows the papers: the end symbol <eos> is predicted
too, so p sums to one over strings of every length.

Model. A sequence x = (x_1, ..., x_L) of ids in {0, ..., V-1} (none of them <eos>) is generated
left to right, each symbol a categorical given all earlier ones (the DGM of the slide, every
x_{<t} a parent of x_t), and the string ends when <eos> is drawn:

    p(x) = prod_{t=1}^{L} p(x_t | x_{<t}) * p(<eos> | x_{<=L})                            (1)
    p(. | x_{<t}) = softmax(W_o h_t + b_o),   h_t = LSTM(h_{t-1}, e(x_{t-1})),   x_0 = <bos>

with e the embedding table and h_0 = c_0 = 0 (or a given state). Because every step's
conditional sums to one and <eos> may be drawn at any step, the sum of (1) over all strings of
length <= M plus the probability of not ending before M is exactly 1; ``sample(n, max_length)``
stops at <eos> or at ``max_length`` = M, and ``log_prob(x, max_length=M)`` drops the end factor
of strings of length M, so it is the exact distribution of the sampler (tested by enumeration).

Objective: maximum likelihood, ``loss`` = -sum_n log p(x_n) / sum_n (L_n + 1), nats per
predicted symbol (the end symbols included); ``perplexity`` = exp(loss).

Truncated BPTT (char-rnn) for one long text: it is cut into ``batch_size`` streams walked in
chunks (``minigen.data.stream_batches``); ``stream_loss(inputs, targets, state)`` scores a chunk
starting from the state the previous chunk ended in, and returns the new state *detached*: the
state carries over, the graph (and the cost of backpropagating through it) does not.

Dropout (Zaremba et al.): on the embeddings, between LSTM layers and before the output layer,
never on the recurrent connections; off in ``eval()`` mode and always off when sampling.
"""
import numbers

import numpy as np

from .. import backend
from .. import functional as F
from ..autograd import Tensor, no_grad
from ..data.text import Vocabulary
from ..distributions import Categorical
from ..nn import LSTM, Embedding, Linear, Module, ModuleList
from ..random import get_generator
from ..validation import check_float, check_int

__all__ = ["LSTMLanguageModel"]


def check_token_ids(model, tokens, lengths, name="tokens"):
    """Validate a padded batch for a model with ``vocab_size`` and ``eos_id``.

    Returns (x, L): x an int64 (N, T) array on the model's device in which the padding (positions
    t >= L_n) is replaced by <eos> (so any pad value is harmless), L the int64 lengths (N,).
    Content symbols must lie in [0, vocab_size) and must not be <eos>.
    """
    data = tokens.data if isinstance(tokens, Tensor) else tokens
    if not hasattr(data, "dtype"):
        data = np.asarray(data)
    data = backend.to_device(data, model.device)
    xp = backend.get_array_module(data)
    if data.dtype.kind not in "iu":
        raise TypeError(f"{name} must hold integer ids, got dtype {data.dtype}")
    if data.ndim != 2:
        raise ValueError(f"{name} must have shape (N, T) (a batch of padded sequences), got "
                         f"shape {tuple(data.shape)}")
    n, t_len = data.shape
    if lengths is None:
        length = xp.full(n, t_len, dtype=np.int64)
    else:
        length = lengths.data if isinstance(lengths, Tensor) else lengths
        length = backend.to_device(length if hasattr(length, "dtype") else np.asarray(length),
                                   model.device)
        if length.dtype.kind not in "iu" or length.shape != (n,):
            raise ValueError(f"lengths must be {n} integers (one per sequence), got shape "
                             f"{tuple(length.shape)} and dtype {length.dtype}")
        if n and (int(length.min()) < 0 or int(length.max()) > t_len):
            raise ValueError(f"lengths must lie in [0, {t_len}] (the padded length T), got "
                             f"values in [{int(length.min())}, {int(length.max())}]")
        length = length.astype(np.int64)
    real = xp.arange(t_len) < length[:, None]
    x = xp.where(real, data, model.eos_id).astype(np.int64)
    if x.size and (int(x.min()) < 0 or int(x.max()) >= model.vocab_size):
        bad = (x < 0) | (x >= model.vocab_size)
        row, col = (int(i[0]) for i in xp.nonzero(bad))
        raise ValueError(f"{name} must lie in [0, {model.vocab_size}) (vocab_size="
                         f"{model.vocab_size}): got the out-of-vocabulary id {int(x[row, col])} "
                         f"at position ({row}, {col})")
    if bool((real & (x == model.eos_id)).any()):
        row, col = (int(i[0]) for i in xp.nonzero(real & (x == model.eos_id)))
        raise ValueError(f"{name} holds the end symbol (eos_id={model.eos_id}) inside a sequence, "
                         f"at position ({row}, {col}); pass the sequences without it and their "
                         f"lengths: the model adds the end itself")
    return x, length


class LSTMLanguageModel(Module):
    """An LSTM language model p(x) = prod_t p(x_t | x_{<t}) p(<eos> | x), eq. (1) above.

    ``forward(tokens)`` returns the next-token logits (N, T, vocab_size): logits[:, t] parameterise
    p(x_t | <bos>, x_{<t}), so they depend on tokens[:, :t] only.

    ``bos_id`` / ``eos_id``: the start and end symbols (by default those of
    ``minigen.data.Vocabulary``); they may be the same id (one symbol that separates strings).
    """

    def __init__(self, vocab_size, embedding_dim, hidden_size, num_layers=1, dropout=0.0,
                 bos_id=Vocabulary.BOS_ID, eos_id=Vocabulary.EOS_ID):
        super().__init__()
        self.vocab_size = check_int(vocab_size, "vocab_size", minimum=2)
        self.embedding_dim = check_int(embedding_dim, "embedding_dim", minimum=1)
        self.hidden_size = check_int(hidden_size, "hidden_size", minimum=1)
        self.num_layers = check_int(num_layers, "num_layers", minimum=1)
        self.dropout = check_float(dropout, "dropout", minimum=0.0)
        if self.dropout >= 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.bos_id = check_int(bos_id, "bos_id", minimum=0, maximum=self.vocab_size - 1)
        self.eos_id = check_int(eos_id, "eos_id", minimum=0, maximum=self.vocab_size - 1)
        self.embedding = Embedding(vocab_size, embedding_dim)
        # one single-layer LSTM per layer, so dropout can sit between them (Zaremba et al.)
        self.layers = ModuleList(LSTM(embedding_dim if k == 0 else hidden_size, hidden_size)
                                 for k in range(num_layers))
        self.output = Linear(hidden_size, vocab_size)

    def _xp(self):
        return backend.get_array_module(self.output.weight.data)

    # ------------------------------------------------------------------ the network
    def run(self, inputs, state=None, training=None):
        """The recurrence on time-major ids ``inputs`` (T, N) from ``state`` ((h, c), each
        (num_layers, N, hidden_size); None for zeros): returns logits (T, N, vocab_size) of the
        symbol after each input, and the final state (h_T, c_T)."""
        training = self.training if training is None else training
        h = F.dropout(self.embedding(inputs), self.dropout, training)
        h_n, c_n = [], []
        for k, layer in enumerate(self.layers):
            hx = None if state is None else (state[0][k:k + 1], state[1][k:k + 1])
            h, (h_k, c_k) = layer(h, hx)
            h = F.dropout(h, self.dropout, training)
            h_n.append(h_k)
            c_n.append(c_k)
        return self.output(h), (F.concatenate(h_n), F.concatenate(c_n))

    def _inputs_targets(self, x, length):
        """Teacher forcing for eq. (1): inputs <bos>, x_1..x_T and targets x_1..x_T, <eos>, both
        time-major (T + 1, N); the target at t = L_n is <eos> (the padding already is)."""
        xp = backend.get_array_module(x)
        n = x.shape[0]
        inputs = xp.concatenate([xp.full((1, n), self.bos_id, dtype=np.int64), x.T])
        targets = xp.concatenate([x.T, xp.full((1, n), self.eos_id, dtype=np.int64)])
        return inputs, targets

    def forward(self, tokens):
        """Next-token logits (N, T, vocab_size): logits[:, t] for p(x_t | <bos>, x_{<t})."""
        x, _ = check_token_ids(self, tokens, None)
        inputs, _ = self._inputs_targets(x, None)
        logits, _ = self.run(inputs[:-1])
        return F.transpose(logits, 1, 0, 2)

    def sequence_log_prob(self, x, length, state=None, max_length=None, inputs=None):
        """log p(x_n) (N,) of checked ids (``check_token_ids``), from the initial ``state``.

        ``inputs`` (T + 1, N): teacher-forcing inputs to use instead of <bos>, x (word dropout).
        """
        xp = backend.get_array_module(x)
        teacher, targets = self._inputs_targets(x, length)
        logits, _ = self.run(teacher if inputs is None else inputs, state)
        t_len, n, v = logits.shape
        nll = F.reshape(F.cross_entropy(F.reshape(logits, (t_len * n, v)), targets.reshape(-1),
                                        reduction="none"), (t_len, n))
        # count x_1..x_L and the end symbol at t = L, unless the sampler's cut-off forced the end
        last = length if max_length is None else xp.where(length < max_length, length, -1)
        steps = xp.arange(t_len)[:, None]
        mask = (steps < length) | (steps == last)
        return -F.sum(nll * mask.astype(logits.dtype), axis=0)

    def log_prob(self, tokens, lengths=None, max_length=None):
        """Exact log p(x) per sequence (N,) in nats, eq. (1), the end symbol included.

        ``tokens`` (N, T): the sequences without <bos> / <eos>, padded after ``lengths`` (None:
        all of length T); the padding's values are ignored. ``max_length``: the cut-off of
        ``sample``; sequences that reach it get no end factor (the sampler stops there).
        """
        x, length = check_token_ids(self, tokens, lengths)
        if max_length is not None:
            max_length = check_int(max_length, "max_length", minimum=0)
            if x.size and int(length.max()) > max_length:
                raise ValueError(f"a sequence of length {int(length.max())} exceeds max_length="
                                 f"{max_length}")
        return self.sequence_log_prob(x, length, max_length=max_length)

    def loss(self, tokens, lengths=None):
        """Mean negative log-likelihood per predicted symbol (the end symbols included), nats."""
        x, length = check_token_ids(self, tokens, lengths)
        return -F.sum(self.sequence_log_prob(x, length)) / float(length.sum() + len(length))

    def perplexity(self, tokens, lengths=None):
        """exp(loss): the perplexity per predicted symbol of the batch, a float."""
        with no_grad():
            return float(np.exp(self.loss(tokens, lengths).item()))

    # ------------------------------------------------------------------ truncated BPTT
    def stream_loss(self, inputs, targets, state=None):
        """One chunk of truncated BPTT over parallel streams (``minigen.data.stream_batches``).

        ``inputs``, ``targets`` (N, T) ids with targets[:, t] the symbol after inputs[:, t];
        ``state``: the state the previous chunk ended in (None at the start of the streams).
        Returns (mean NLL per target symbol in nats, the final state (h, c) detached): pass it
        to the next chunk, whose backward pass then stops at this chunk's start.
        """
        x, _ = check_token_ids(self, inputs, None, "inputs")
        y, _ = check_token_ids(self, targets, None, "targets")
        if x.shape != y.shape:
            raise ValueError(f"inputs and targets must have the same shape, got {x.shape} and "
                             f"{y.shape}")
        logits, (h, c) = self.run(x.T, state)
        loss = F.cross_entropy(F.reshape(logits, (-1, self.vocab_size)), y.T.reshape(-1))
        return loss, (h.detach(), c.detach())

    # ------------------------------------------------------------------ sampling
    def sample(self, n, max_length, temperature=1.0, prefix=None, generator=None):
        """``n`` strings by ancestral sampling, x_t ~ softmax(logits_t / temperature).

        Each string stops when <eos> is drawn or at ``max_length`` symbols. ``prefix``: ids (P,)
        every string starts with (or (n, P), one each), continued by the model. Returns
        (tokens (n, max_length) int64, padded with <eos> after each string, lengths (n,)).
        """
        return self.generate(n, max_length, temperature=temperature, prefix=prefix,
                             generator=generator)

    def generate(self, n, max_length, state=None, temperature=1.0, prefix=None, greedy=False,
                 generator=None):
        """``sample`` from an initial ``state`` (a conditional LM, e.g. a VAE's decoder given z);
        ``greedy``: the most probable symbol at every step instead of a draw."""
        n = check_int(n, "n", minimum=1)
        max_length = check_int(max_length, "max_length", minimum=1)
        if not (isinstance(temperature, numbers.Real) and temperature > 0):
            raise ValueError(f"temperature must be a positive number, got {temperature!r}")
        xp = self._xp()
        if prefix is None:
            prefix = xp.zeros((n, 0), dtype=np.int64)
        else:
            prefix = backend.unwrap(prefix)
            prefix = backend.to_device(prefix if hasattr(prefix, "dtype") else np.asarray(prefix),
                                       self.device)
            if prefix.ndim == 1:
                prefix = xp.broadcast_to(prefix, (n, prefix.shape[0]))
            if prefix.ndim != 2 or prefix.shape[0] != n:
                raise ValueError(f"prefix must be ids (P,) or ({n}, P), got shape {prefix.shape}")
            prefix, _ = check_token_ids(self, prefix, None, "prefix")
        p_len = prefix.shape[1]
        if p_len > max_length:
            raise ValueError(f"the prefix ({p_len} symbols) is longer than max_length={max_length}")
        rng = get_generator(generator, xp)
        tokens = xp.full((n, max_length), self.eos_id, dtype=np.int64)
        tokens[:, :p_len] = prefix
        lengths = xp.full(n, max_length, dtype=np.int64)
        running = xp.ones(n, dtype=bool)
        with no_grad():
            inputs, _ = self._inputs_targets(prefix, None)
            logits, state = self.run(inputs, state, training=False)  # <bos>, prefix
            for t in range(p_len, max_length):
                scores = logits.data[-1] / temperature
                if greedy:
                    x_t = xp.argmax(scores, axis=1)
                else:
                    x_t = Categorical(logits=Tensor(scores)).sample(generator=rng).data
                ended = running & (x_t == self.eos_id)
                lengths[ended] = t
                running &= ~ended
                tokens[:, t] = xp.where(running, x_t, self.eos_id)
                if not bool(running.any()) or t == max_length - 1:
                    break
                logits, state = self.run(tokens[:, t][None], state, training=False)
        return Tensor(tokens), Tensor(lengths)
