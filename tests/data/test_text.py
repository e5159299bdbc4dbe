"""Vocabulary, padded batches and TBPTT streams; the Shakespeare lines."""
import os
import tempfile

import numpy as np
import pytest
from hypothesis import given, strategies as st

import minigen
from minigen.data import (Vocabulary, load_shakespeare, load_shakespeare_lines, pad_sequences,
                          padding_mask, sequence_batches, stream_batches)


def test_specials_take_the_first_ids():
    for level in ("char", "word"):
        vocab = Vocabulary("ab" if level == "char" else ["a", "b"], level=level)
        assert vocab.symbols[:4] == ["<pad>", "<bos>", "<eos>", "<unk>"]
        assert [vocab.index[s] for s in Vocabulary.SPECIALS] == [Vocabulary.PAD_ID, Vocabulary.BOS_ID,
                                                                 Vocabulary.EOS_ID, Vocabulary.UNK_ID]
        assert len(vocab) == 6


@given(st.text(alphabet="abc d\n", max_size=30))
def test_char_round_trip(text):
    vocab = Vocabulary.build("abc d\n")
    ids = vocab.encode(text)
    assert ids.dtype == np.int64 and len(ids) == len(text)
    assert vocab.decode(ids) == text


def test_word_level_tokens_unknowns_and_decode():
    corpus = ["O Romeo, Romeo! wherefore art thou Romeo?", "Thou art o'er Romeo."]
    vocab = Vocabulary.build(corpus, level="word", lowercase=True)
    assert vocab.tokenize("O'er thou, art!") == ["o'er", "thou", ",", "art", "!"]
    assert vocab.symbols[4] == "romeo"  # most frequent first
    ids = vocab.encode("Romeo art Juliet")
    assert ids.tolist() == [vocab.index["romeo"], vocab.index["art"], Vocabulary.UNK_ID]
    assert vocab.decode(ids) == "romeo art <unk>"
    # decode drops <pad> and <bos> and stops at the first <eos>
    assert vocab.decode([1, *ids[:2], 2, *ids, 0]) == "romeo art"
    assert len(Vocabulary.build(corpus, level="word", min_count=2)) == 4 + 2  # Romeo, art
    assert len(Vocabulary.build(corpus, level="word", min_count=2, lowercase=True)) == 4 + 3  # + thou
    assert Vocabulary.build(corpus, level="word", max_size=1).symbols[4:] == ["Romeo"]


@pytest.mark.parametrize("level, lowercase", [("char", False), ("word", True), ("word", False)])
def test_vocabulary_saves_and_loads_with_the_same_ids(level, lowercase):
    """save / load (and state_dict inside a checkpoint beside other entries) rebuild the same
    symbols with the same ids, level and case folding: encode and decode agree, unknowns too."""
    corpus = ["O Romeo, Romeo! wherefore art thou Romeo?", "Thou art o'er Romeo. ÆØÅ ß 世界 \x00"]
    vocab = Vocabulary.build(corpus, level=level, lowercase=lowercase)
    path = os.path.join(tempfile.mkdtemp(), "vocab.npz")
    assert vocab.save(path) == path
    loaded = Vocabulary.load(path)
    both = os.path.join(os.path.dirname(path), "checkpoint.npz")
    minigen.save({"epoch": 3, "vocabulary": vocab.state_dict()}, both)
    nested = Vocabulary.from_state_dict(minigen.load(both)["vocabulary"])
    for other in (loaded, nested):
        assert (other.symbols, other.level, other.lowercase) == (vocab.symbols, level, lowercase)
        for text in corpus + ["Romeo, where art THOU? zzz"]:
            np.testing.assert_array_equal(other.encode(text), vocab.encode(text))
            assert other.decode(other.encode(text)) == vocab.decode(vocab.encode(text))
    empty = Vocabulary((), level=level)
    assert Vocabulary.from_state_dict(empty.state_dict()).symbols == list(Vocabulary.SPECIALS)


def test_pad_sequences_and_mask():
    tokens, lengths = pad_sequences([[5, 6, 7], [], [8]])
    np.testing.assert_array_equal(tokens, [[5, 6, 7], [0, 0, 0], [8, 0, 0]])
    np.testing.assert_array_equal(lengths, [3, 0, 1])
    np.testing.assert_array_equal(padding_mask(lengths, 3), tokens != 0)
    cut, cut_lengths = pad_sequences([[5, 6, 7], [8]], max_length=2)
    np.testing.assert_array_equal(cut, [[5, 6], [8, 0]])
    np.testing.assert_array_equal(cut_lengths, [2, 1])
    vocab = Vocabulary("ab")
    batch, batch_lengths = vocab.encode_batch(["ab", "b"])
    np.testing.assert_array_equal(batch, [[4, 5], [5, 0]])
    np.testing.assert_array_equal(batch_lengths, [2, 1])


@given(st.lists(st.lists(st.integers(0, 9), max_size=5), max_size=12), st.integers(1, 5),
       st.booleans())
def test_sequence_batches_hold_every_sequence_once(sequences, batch_size, shuffle):
    seen = []
    for tokens, lengths in sequence_batches(sequences, batch_size, shuffle, generator=0):
        assert len(tokens) <= batch_size and tokens.shape[1] == lengths.max(initial=0)
        seen += [tuple(row[:k]) for row, k in zip(tokens, lengths)]
    assert sorted(seen) == sorted(tuple(s) for s in sequences)


@given(st.integers(4, 60), st.integers(1, 4), st.integers(1, 7))
def test_stream_batches_continue_row_by_row(n, batch_size, bptt):
    ids = np.arange(n)
    if n // batch_size < 2:
        with pytest.raises(ValueError, match="too few"):
            list(stream_batches(ids, batch_size, bptt))
        return
    chunks = list(stream_batches(ids, batch_size, bptt))
    inputs = np.concatenate([x for x, _ in chunks], axis=1)
    targets = np.concatenate([y for _, y in chunks], axis=1)
    width = n // batch_size
    rows = ids[:batch_size * width].reshape(batch_size, width)
    np.testing.assert_array_equal(inputs, rows[:, :-1])  # row b continues across chunks
    np.testing.assert_array_equal(targets, rows[:, 1:])  # each target is the next symbol
    assert all(x.shape[1] <= bptt for x, _ in chunks)


def test_shakespeare_lines():
    lines = load_shakespeare_lines("valid")
    assert lines and all(line == line.strip() and line and not line.endswith(":") for line in lines)
    text = load_shakespeare("valid")
    assert all(line in text for line in lines[:50])


@pytest.mark.parametrize("call,error,match", [
    (lambda: Vocabulary("ab", level="byte"), ValueError, "level must be one of"),
    (lambda: Vocabulary(["ab"]), ValueError, "single characters"),
    (lambda: Vocabulary([3]), TypeError, "non-empty strings"),
    (lambda: Vocabulary("ab").encode(b"ab"), TypeError, "text must be a string"),
    (lambda: Vocabulary("ab").decode([0, 9]), ValueError, r"\[0, 6\)"),
    (lambda: Vocabulary("ab").decode([[0]]), ValueError, "1-D"),
    (lambda: Vocabulary.build("ab", min_count=0), ValueError, "min_count must be >= 1"),
    (lambda: Vocabulary.from_state_dict({"symbols": np.array(["a"])}), ValueError,
     r"keys \['level', 'lowercase', 'symbols'\], got \['symbols'\]"),
    (lambda: Vocabulary.from_state_dict({"symbols": np.array([[1]]), "level": "char", "lowercase": False}),
     ValueError, "JSON list of strings"),
    (lambda: Vocabulary.from_state_dict({"symbols": "{not json", "level": "char", "lowercase": False}),
     ValueError, "JSON list of strings"),
    (lambda: Vocabulary.from_state_dict({"symbols": "[1]", "level": "char", "lowercase": False}),
     ValueError, "JSON list of strings"),
    (lambda: Vocabulary.from_state_dict([1]), ValueError, "got list"),
    (lambda: pad_sequences([[0.5]]), ValueError, "integer ids"),
    (lambda: pad_sequences([[1]], max_length=-1), ValueError, "max_length must be >= 0"),
    (lambda: list(sequence_batches([[1]], 0)), ValueError, "batch_size must be >= 1"),
    (lambda: list(stream_batches(np.arange(9), 2, 0)), ValueError, "bptt must be >= 1"),
    (lambda: list(stream_batches(np.ones(9), 2, 3)), ValueError, "integer ids"),
])
def test_bad_input_is_rejected(call, error, match):
    with pytest.raises(error, match=match):
        call()
