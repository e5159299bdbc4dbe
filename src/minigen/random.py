"""Seeding: one global generator per array module, reset by ``manual_seed``.

Functions that sample take an optional ``generator`` (a ``numpy.random.Generator`` or
``cupy.random.Generator``); without one they draw from the global generator of the
array module in use, so ``manual_seed(0)`` makes a whole run reproducible.
"""
import numpy

from . import backend
from .validation import check_int

_seed = None
_generators = {}


def manual_seed(seed):
    """Seed every backend's global generator (NumPy now, CuPy when first used).

    ``seed``: an int >= 0 (a float such as 1.7 is a TypeError, not silently seed 1).
    """
    global _seed
    _seed = check_int(seed, "manual_seed: seed", minimum=0)
    _generators.clear()


def default_generator(xp=numpy):
    """The global generator for array module ``xp`` (created on first use)."""
    key = xp.__name__
    if key not in _generators:
        _generators[key] = xp.random.default_rng(_seed)
    return _generators[key]


def get_generator(random_state=None, xp=numpy):
    """scikit-learn's ``check_random_state`` for Generators: None -> global, int -> new, Generator -> itself."""
    if random_state is None:
        return default_generator(xp)
    if isinstance(random_state, (int, numpy.integer)):
        return xp.random.default_rng(int(random_state))
    if hasattr(random_state, "standard_normal"):
        return random_state
    raise TypeError(f"random_state must be None, an int or a Generator, got {type(random_state).__name__}")


def permutation(n, generator):
    """A random ordering of range(n) from ``generator`` (NumPy or CuPy: CuPy's Generator has
    no ``permutation``, so sort uniform draws instead)."""
    u = generator.random(n)
    return backend.get_array_module(u).argsort(u)
