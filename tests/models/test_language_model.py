"""LSTMLanguageModel: normalised over strings (enumeration), the sampler matches log_prob
(chi-square), causal (perturbation at every step), padding ignored, truncated BPTT carries the
state but not the graph, gradients (float64), bad input."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import stats

import minigen
from devices import to_host
from minigen.models import LSTMLanguageModel
from minigen.numerics import logsumexp


def make(seed=0, vocab_size=3, scale=3.0, **kwargs):
    """A tiny float64 model whose weights are scaled up so its conditionals are far from uniform."""
    minigen.manual_seed(seed)
    kwargs = {"embedding_dim": 3, "hidden_size": 4, "num_layers": 2, **kwargs}
    model = LSTMLanguageModel(vocab_size, **kwargs).double()
    for p in model.parameters():
        p.data *= scale
    return model


def all_strings(alphabet, max_length):
    """Every string over ``alphabet`` of length 0..max_length: padded (tokens, lengths)."""
    strings = [s for n in range(max_length + 1) for s in itertools.product(alphabet, repeat=n)]
    tokens = np.zeros((len(strings), max_length), dtype=np.int64)
    for row, s in zip(tokens, strings):
        row[:len(s)] = s
    return tokens, np.array([len(s) for s in strings]), strings


# (vocab_size, bos_id, eos_id): one symbol that starts and ends strings, or the Vocabulary's
# default <bos> = 1, <eos> = 2 with <pad> = 0 and a content symbol 3
CONFIGS = [(3, 0, 0), (4, 1, 2)]


@pytest.mark.parametrize("vocab_size,bos_id,eos_id", CONFIGS)
@settings(max_examples=4)
@given(seed=st.integers(0, 1000), max_length=st.integers(1, 4))
def test_log_prob_sums_to_one_over_all_strings(vocab_size, bos_id, eos_id, seed, max_length):
    model = make(seed, vocab_size, bos_id=bos_id, eos_id=eos_id)
    alphabet = [v for v in range(vocab_size) if v != eos_id]
    tokens, lengths, _ = all_strings(alphabet, max_length)
    log_p = to_host(model.log_prob(tokens, lengths, max_length=max_length).data)
    assert logsumexp(log_p) == pytest.approx(0.0, abs=1e-10)
    # without the cut-off the strings up to max_length miss the mass of the longer ones
    log_p_free = to_host(model.log_prob(tokens, lengths).data)
    assert logsumexp(log_p_free) < -1e-6


def test_sample_frequencies_match_log_prob():
    max_length, n = 3, 6000
    model = make(1, 3, bos_id=0, eos_id=0, scale=1.5)
    tokens, lengths, strings = all_strings([1, 2], max_length)
    p = np.exp(to_host(model.log_prob(tokens, lengths, max_length=max_length).data))
    drawn, drawn_len = model.sample(n, max_length, generator=0)
    drawn, drawn_len = to_host(drawn.data), to_host(drawn_len.data)
    assert np.all(drawn[np.arange(max_length) >= drawn_len[:, None]] == 0)  # padded with <eos>
    index = {s: i for i, s in enumerate(strings)}
    counts = np.bincount([index[tuple(row[:k])] for row, k in zip(drawn, drawn_len)],
                         minlength=len(strings))
    assert stats.chisquare(counts, n * p).pvalue > 1e-3


def test_temperature_and_prefix():
    model = make(2, 4, bos_id=1, eos_id=2)
    prefix = np.array([0, 3])
    tokens, lengths = model.sample(50, 6, prefix=prefix, generator=0)
    assert np.all(to_host(tokens.data)[:, :2] == prefix) and np.all(to_host(lengths.data) >= 2)
    # a temperature near 0 is greedy decoding
    cold, _ = model.sample(50, 6, temperature=0.01, prefix=prefix, generator=0)
    greedy, _ = model.generate(50, 6, prefix=prefix, greedy=True)
    np.testing.assert_array_equal(to_host(cold.data), to_host(greedy.data))
    assert len({tuple(r) for r in to_host(greedy.data)}) == 1


@settings(max_examples=5)
@given(seed=st.integers(0, 1000))
def test_logits_at_t_ignore_tokens_from_t_on(seed):
    rng = np.random.default_rng(seed)
    model = make(seed, 5, bos_id=1, eos_id=2, num_layers=2)
    x = rng.choice([0, 1, 3, 4], size=(3, 6))
    logits = to_host(model(x).data)
    content = [0, 1, 3, 4]
    for t in range(x.shape[1]):
        changed = x.copy()
        changed[:, t:] = rng.choice(content, size=changed[:, t:].shape)
        changed[:, t] = [rng.choice([v for v in content if v != a]) for a in x[:, t]]
        new = to_host(model(changed).data)
        np.testing.assert_array_equal(new[:, :t + 1], logits[:, :t + 1])
        if t + 1 < x.shape[1]:  # while the next step does see the change
            assert not np.allclose(new[:, t + 1], logits[:, t + 1])


def test_padding_is_ignored_everywhere():
    model = make(3, 5, bos_id=1, eos_id=2)
    x = np.array([[0, 3, 4, 1], [4, 4, 0, 0], [3, 0, 0, 0]])
    lengths = np.array([4, 2, 1])
    garbage = x.copy()
    garbage[1, 2:] = [-7, 99]  # any value, even outside the vocabulary or the end symbol
    garbage[2, 1:] = [2, 2, 2]
    log_p = to_host(model.log_prob(x, lengths).data)
    np.testing.assert_allclose(to_host(model.log_prob(garbage, lengths).data), log_p, rtol=1e-12)
    assert model.loss(garbage, lengths).item() == pytest.approx(model.loss(x, lengths).item(), rel=1e-12)
    for n, k in enumerate(lengths):  # each sequence alone, unpadded
        assert to_host(model.log_prob(x[n:n + 1, :k]).data)[0] == pytest.approx(log_p[n], rel=1e-10)
    # loss: nats per predicted symbol, the end symbols counted; perplexity = exp(loss)
    loss = -log_p.sum() / (lengths.sum() + len(lengths))
    assert model.loss(x, lengths).item() == pytest.approx(loss, rel=1e-12)
    assert model.perplexity(x, lengths) == pytest.approx(np.exp(loss), rel=1e-12)


def test_truncated_bptt_carries_the_state_not_the_graph():
    model = make(4, 5, bos_id=1, eos_id=2)
    stream = np.random.default_rng(0).choice([0, 1, 3, 4], size=(2, 9))
    whole, _ = model.stream_loss(stream[:, :-1], stream[:, 1:])
    first, state = model.stream_loss(stream[:, :4], stream[:, 1:5])
    second, state2 = model.stream_loss(stream[:, 4:-1], stream[:, 5:], state)
    # chunks with the state carried = one pass over the whole stream (mean of 4 + 4 targets)
    assert (first.item() + second.item()) / 2 == pytest.approx(whole.item(), rel=1e-12)
    fresh, _ = model.stream_loss(stream[:, 4:-1], stream[:, 5:])
    assert fresh.item() != pytest.approx(second.item(), rel=1e-6)  # the state matters
    for s in state + state2:  # carried as values: no graph back into the previous chunk
        assert s.is_leaf and not s.requires_grad
    # the second chunk's gradient is the one with its start state as a constant
    model.zero_grad()
    second.backward()
    grads = [to_host(p.grad).copy() for p in model.parameters()]
    model.zero_grad()
    constant = (minigen.tensor(to_host(state[0].data)), minigen.tensor(to_host(state[1].data)))
    model.stream_loss(stream[:, 4:-1], stream[:, 5:], constant)[0].backward()
    for g, p in zip(grads, model.parameters()):
        np.testing.assert_allclose(g, to_host(p.grad), rtol=1e-12, atol=1e-15)


@settings(max_examples=4)
@given(seed=st.integers(0, 1000), data=st.data())
def test_gradcheck_loss(seed, data):
    n, t_len = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4))
    lengths = np.array(data.draw(st.lists(st.integers(0, t_len), min_size=n, max_size=n)))
    x = np.random.default_rng(seed).choice([0, 1, 3], size=(n, t_len))
    model = make(seed, 4, scale=1.0, bos_id=1, eos_id=2)
    assert minigen.gradcheck(lambda *ps: model.loss(x, lengths), list(model.parameters()))


def test_gradcheck_with_dropout_masks_fixed():
    model = make(5, 4, scale=1.0, dropout=0.3)
    x, lengths = np.array([[0, 1, 1], [1, 0, 0]]), np.array([3, 1])

    def loss(*params):
        minigen.manual_seed(7)  # the same dropout masks on every call
        return model.loss(x, lengths)
    assert minigen.gradcheck(loss, list(model.parameters()))
    assert loss().item() != pytest.approx(model.eval().loss(x, lengths).item())


def test_trains_on_a_pattern():
    """A few Adam steps on one repeated string drive its probability towards one."""
    model = make(6, 4, scale=1.0, bos_id=1, eos_id=2)
    x = np.array([[0, 3, 0, 3]])
    opt = minigen.optim.Adam(model.parameters(), lr=0.1)
    before = model.log_prob(x).item()
    for _ in range(150):
        opt.zero_grad()
        model.loss(x).backward()
        opt.step()
    assert before < -2 and model.log_prob(x).item() > -0.05


GOOD = np.array([[0, 3], [3, 0]])
BAD_INPUTS = [
    ("log_prob", (GOOD.astype(float),), {}, TypeError, "integer ids"),
    ("log_prob", (GOOD[0],), {}, ValueError, r"shape \(N, T\)"),
    ("log_prob", (GOOD + 1,), {}, ValueError, "out-of-vocabulary id 4"),
    ("log_prob", (GOOD - 1,), {}, ValueError, "out-of-vocabulary id -1"),
    ("log_prob", (np.array([[0, 2]]),), {}, ValueError, "end symbol"),
    ("log_prob", (GOOD, [2]), {}, ValueError, "lengths must be 2 integers"),
    ("log_prob", (GOOD, [3, 1]), {}, ValueError, r"lengths must lie in \[0, 2\]"),
    ("log_prob", (GOOD, [-1, 1]), {}, ValueError, r"lengths must lie in \[0, 2\]"),
    ("log_prob", (GOOD,), {"max_length": 1}, ValueError, "exceeds max_length=1"),
    ("loss", (GOOD + 5,), {}, ValueError, r"\[0, 4\) \(vocab_size=4\)"),
    ("forward", (np.array([[0, 9]]),), {}, ValueError, "out-of-vocabulary id 9"),
    ("stream_loss", (GOOD, GOOD[:, :1]), {}, ValueError, "same shape"),
    ("stream_loss", (GOOD, GOOD + 7), {}, ValueError, "targets must lie"),
    ("sample", (0, 3), {}, ValueError, "n must be >= 1"),
    ("sample", (2, 0), {}, ValueError, "max_length must be >= 1"),
    ("sample", (2, 3), {"temperature": 0}, ValueError, "temperature"),
    ("sample", (2, 1), {"prefix": [0, 3]}, ValueError, "longer than max_length"),
    ("sample", (2, 3), {"prefix": [9]}, ValueError, "prefix must lie"),
    ("sample", (2, 3), {"prefix": np.zeros((3, 1), int)}, ValueError, r"prefix must be ids"),
]


@pytest.mark.parametrize("method,args,kwargs,error,match", BAD_INPUTS)
def test_bad_input_is_rejected(method, args, kwargs, error, match):
    model = make(0, 4, bos_id=1, eos_id=2)
    with pytest.raises(error, match=match):
        getattr(model, method)(*args, **kwargs)


@pytest.mark.parametrize("kwargs,error,match", [
    ({"vocab_size": 1}, ValueError, "vocab_size must be >= 2"),
    ({"vocab_size": 2.0}, TypeError, "vocab_size must be an integer"),
    ({"hidden_size": 0}, ValueError, "hidden_size"),
    ({"dropout": 1.0}, ValueError, r"dropout must be in \[0, 1\)"),
    ({"eos_id": 4}, ValueError, "eos_id must be <= 3"),
])
def test_bad_settings_are_rejected(kwargs, error, match):
    kwargs = {"vocab_size": 4, "embedding_dim": 2, "hidden_size": 2, **kwargs}
    with pytest.raises(error, match=match):
        LSTMLanguageModel(**kwargs)
