"""Text as integer tokens: a ``Vocabulary`` of characters or words, padded batches with lengths,
and the contiguous streams that truncated backpropagation through time walks over.

Special symbols take the first four ids of every vocabulary, so models can default to them:

    <pad> = 0   fills a batch after each sequence's end (every loss masks it out by ``lengths``)
    <bos> = 1   the start symbol a language model conditions its first prediction on
    <eos> = 2   the end symbol: predicting it ends a sequence, which makes p(x) a distribution
                over strings of every length (it sums to one, see ``LSTMLanguageModel``)
    <unk> = 3   any symbol not in the vocabulary (and the word-dropout symbol of Bowman et al.)

``encode`` returns the content ids only (no <bos> / <eos>): the models add the start and the end
themselves. ``decode`` stops at the first <eos> and drops <pad> and <bos>.
"""
import collections
import json
import re

import numpy as np

from .. import serialization
from ..backend import to_numpy
from ..random import get_generator, permutation
from ..validation import check_int, check_option

__all__ = ["Vocabulary", "pad_sequences", "padding_mask", "sequence_batches", "stream_batches"]

# a word is a run of letters/digits (with an inner apostrophe: "o'er", "thou'rt"); every other
# non-space character is a token of its own (punctuation)
_WORD = re.compile(r"\w+(?:'\w+)*|[^\w\s]")


class Vocabulary:
    """A bijection between symbols (characters or words) and the ids 0..len-1.

    ``Vocabulary(symbols, level="char")`` takes the symbols in id order (specials are added in
    front); ``Vocabulary.build(texts, level, min_count, max_size)`` counts them in ``texts``
    (most frequent first, ties in order of first appearance).

    level="char": a text is its sequence of characters. level="word": a text is split into words
    and punctuation marks (``tokenize``); ``lowercase`` folds case first.
    """

    PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
    SPECIALS = (PAD, BOS, EOS, UNK)
    PAD_ID, BOS_ID, EOS_ID, UNK_ID = range(4)

    def __init__(self, symbols, level="char", lowercase=False):
        self.level = check_option(level, "level", ("char", "word"))
        self.lowercase = bool(lowercase)
        symbols = list(symbols)
        for s in symbols:
            if not isinstance(s, str) or not s:
                raise TypeError(f"symbols must be non-empty strings, got {s!r}")
            if level == "char" and len(s) != 1:
                raise ValueError(f"a character vocabulary holds single characters, got {s!r}")
        self.symbols = list(self.SPECIALS) + [s for s in dict.fromkeys(symbols)
                                              if s not in self.SPECIALS]
        self.index = {s: i for i, s in enumerate(self.symbols)}

    @classmethod
    def build(cls, texts, level="char", min_count=1, max_size=None, lowercase=False):
        """The vocabulary of ``texts`` (a string or an iterable of strings): the symbols seen at
        least ``min_count`` times, the ``max_size`` most frequent (specials not counted)."""
        min_count = check_int(min_count, "min_count", minimum=1)
        if max_size is not None:
            max_size = check_int(max_size, "max_size", minimum=1)
        vocab = cls((), level, lowercase)
        counts = collections.Counter()
        for text in [texts] if isinstance(texts, str) else texts:
            counts.update(vocab.tokenize(text))
        kept = [s for s, c in counts.most_common() if c >= min_count]  # stable for ties
        return cls(kept[:max_size], level, lowercase)

    def __len__(self):
        return len(self.symbols)

    def __contains__(self, symbol):
        return symbol in self.index

    def __repr__(self):
        return f"Vocabulary({len(self)} symbols, level={self.level!r})"

    def tokenize(self, text):
        """The symbols of ``text``: its characters, or its words and punctuation marks."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a string, got {type(text).__name__}")
        if self.lowercase:
            text = text.lower()
        return list(text) if self.level == "char" else _WORD.findall(text)

    def encode(self, text):
        """int64 ids (L,) of the symbols of ``text``; unknown symbols become <unk>."""
        return np.array([self.index.get(s, self.UNK_ID) for s in self.tokenize(text)],
                        dtype=np.int64)

    def decode(self, ids):
        """The text of ``ids`` (a 1-D sequence): up to the first <eos>, without <pad> and <bos>;
        words are joined by spaces, characters by nothing."""
        ids = np.asarray(to_numpy(ids))  # a list, a NumPy or CuPy array, or a Tensor
        if ids.ndim != 1 or (ids.size and ids.dtype.kind not in "iu"):
            raise ValueError(f"ids must be a 1-D sequence of integers, got shape {ids.shape} "
                             f"and dtype {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= len(self)):
            raise ValueError(f"ids must lie in [0, {len(self)}) for this vocabulary, got values "
                             f"in [{ids.min()}, {ids.max()}]")
        out = []
        for i in ids.tolist():
            if i == self.EOS_ID:
                break
            if i not in (self.PAD_ID, self.BOS_ID):
                out.append(self.symbols[i])
        return ("" if self.level == "char" else " ").join(out)

    # -- saving and loading
    def state_dict(self):
        """What rebuilds this vocabulary, as ``minigen.save`` stores it (no pickle): the symbols
        after the specials in id order (as one JSON list: NumPy's string arrays would drop a
        trailing NUL character), the level and the case folding. Save it beside a model's state
        dict, e.g. ``minigen.save({"model": model.state_dict(), "vocabulary":
        vocab.state_dict()}, path)``."""
        return {"symbols": json.dumps(self.symbols[len(self.SPECIALS):]), "level": self.level,
                "lowercase": self.lowercase}

    @classmethod
    def from_state_dict(cls, state):
        """The vocabulary that ``state_dict`` described (the same symbols with the same ids)."""
        if not isinstance(state, dict) or set(state) != {"symbols", "level", "lowercase"}:
            found = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"a Vocabulary state dict has the keys ['level', 'lowercase', "
                             f"'symbols'], got {found}")
        text = state["symbols"]  # a str, or the 0-d string array that minigen.load gives back
        try:
            symbols = json.loads(str(np.asarray(text)[()])) if np.ndim(text) == 0 else None
        except json.JSONDecodeError:
            symbols = None
        if not (isinstance(symbols, list) and all(isinstance(x, str) for x in symbols)):
            raise ValueError(f"a Vocabulary state dict's 'symbols' must be a JSON list of strings "
                             f"(as state_dict writes it), got {str(state['symbols'])[:60]!r}")
        return cls(symbols, str(np.asarray(state["level"])[()]),
                   bool(np.asarray(state["lowercase"])[()]))

    def save(self, path):
        """Write ``state_dict()`` to ``path`` with ``minigen.save`` (atomic, no pickle)."""
        return serialization.save(self.state_dict(), path)

    @classmethod
    def load(cls, path):
        """The vocabulary saved at ``path`` by ``save``."""
        return cls.from_state_dict(serialization.load(path))

    def encode_batch(self, texts, max_length=None):
        """``texts`` as a padded batch: (tokens (N, T) int64, lengths (N,) int64); see
        ``pad_sequences`` (texts longer than ``max_length`` are cut)."""
        return pad_sequences([self.encode(t) for t in texts], max_length=max_length)


def pad_sequences(sequences, max_length=None, pad_id=Vocabulary.PAD_ID):
    """Sequences of ids of different lengths as one array: (tokens (N, T) int64 with
    ``tokens[n, t] = pad_id`` for t >= lengths[n], lengths (N,) int64). T is the longest length,
    or ``max_length``, beyond which sequences are cut."""
    sequences = [np.asarray(s) for s in sequences]
    for i, s in enumerate(sequences):
        if s.ndim != 1 or (s.size and s.dtype.kind not in "iu"):
            raise ValueError(f"sequence {i} must be a 1-D sequence of integer ids, got shape "
                             f"{s.shape} and dtype {s.dtype}")
    lengths = np.array([len(s) for s in sequences], dtype=np.int64)
    if max_length is not None:
        lengths = np.minimum(lengths, check_int(max_length, "max_length", minimum=0))
    tokens = np.full((len(sequences), int(lengths.max(initial=0))), pad_id, dtype=np.int64)
    for row, s, n in zip(tokens, sequences, lengths):
        row[:n] = s[:n]
    return tokens, lengths


def padding_mask(lengths, max_length):
    """Boolean (N, T): True at the positions t < lengths[n] that hold real tokens."""
    lengths = np.asarray(lengths)
    return np.arange(max_length) < lengths[:, None]


def sequence_batches(sequences, batch_size, shuffle=False, generator=None):
    """Mini-batches (tokens (B, T_b), lengths (B,)) of a list of id sequences, each padded only
    to its own longest sequence; a new order every call with ``shuffle`` (from ``generator``)."""
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    n = len(sequences)
    order = permutation(n, get_generator(generator, np)) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield pad_sequences([sequences[i] for i in order[start:start + batch_size]])


def stream_batches(ids, batch_size, bptt):
    """A long text as ``batch_size`` parallel streams, walked in chunks for truncated BPTT.

    The ids are cut into ``batch_size`` contiguous rows (the tail that does not fill a row is
    dropped); chunk k yields (inputs, targets), each (batch_size, <= bptt), with
    targets[:, t] = inputs[:, t + 1] in the stream, so row b of chunk k + 1 continues row b of
    chunk k: the state a model ends chunk k in is the right start for chunk k + 1.
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    bptt = check_int(bptt, "bptt", minimum=1)
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        raise ValueError(f"ids must be a 1-D array of integer ids, got shape {ids.shape} and "
                         f"dtype {ids.dtype}")
    width = len(ids) // batch_size
    if width < 2:
        raise ValueError(f"{len(ids)} ids are too few for {batch_size} streams of at least 2")
    rows = ids[:batch_size * width].reshape(batch_size, width)
    for start in range(0, width - 1, bptt):
        stop = min(start + bptt, width - 1)
        yield rows[:, start:stop], rows[:, start + 1:stop + 1]
