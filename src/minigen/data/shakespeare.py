"""The tiny Shakespeare corpus bundled with minigen (public domain; see ``DATA_LICENSE.md``).

1,115,394 characters of speaker names and speeches, 65 distinct characters: the usual small
corpus for character-level language models (Karpathy's char-rnn), also cut into speeches as the
documents of a topic model.
"""
import gzip
from importlib import resources

SPLITS = {"train": (0.0, 0.9), "valid": (0.9, 0.95), "test": (0.95, 1.0), "all": (0.0, 1.0)}
N_CHARACTERS = 1_115_394


def load_shakespeare(split="train"):
    """The corpus as one string: ``split`` is "train" (the first 90% of the characters),
    "valid" (the next 5%), "test" (the last 5%) or "all". The split is by position, fixed, so
    every model's test bits per character are computed on the same text."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(map(repr, SPLITS))}, got {split!r}")
    with resources.files(__package__).joinpath("tinyshakespeare.txt.gz").open("rb") as raw, \
            gzip.open(raw) as f:
        text = f.read().decode("utf-8")
    if len(text) != N_CHARACTERS:
        raise ValueError(f"bundled tinyshakespeare.txt.gz is corrupt: expected {N_CHARACTERS} "
                         f"characters, got {len(text)}")
    start, stop = SPLITS[split]
    return text[round(start * len(text)):round(stop * len(text))]


def load_shakespeare_lines(split="train"):
    """The verse lines of ``split`` as a list of strings: every non-empty line, stripped,
    except the speaker headings (a line ending in ":", e.g. "First Citizen:"). Short, sentence-like
    units for sentence-level models (the sentence VAE)."""
    return [line.strip() for line in load_shakespeare(split).splitlines()
            if line.strip() and not line.rstrip().endswith(":")]
