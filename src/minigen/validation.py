"""Argument and input checks for the whole library: one home, one convention.

A wrong *type* is a ``TypeError`` and a wrong *value* is a ``ValueError``; every message names
the argument, what was expected and what was given, so that bad input never turns into a
silent NaN deep inside an EM loop or a training step.
"""
import numbers

import numpy

from .backend import device_of, get_array_module, to_device


class NotFittedError(ValueError, AttributeError):
    """An estimator was used before ``fit``."""


def check_array(X, name="X", ndim=2, like=None):
    """``X`` as a float32/float64 array of ``ndim`` dims holding only finite values.

    Lists, integer and boolean arrays become float64; float32 and float64 are kept.
    ``like``: an array whose device ``X`` is moved to (a fitted model's parameters).
    """
    if getattr(X, "_is_minigen_tensor", False):
        X = X.data
    if not hasattr(X, "shape"):  # a (possibly ragged) nested list: a clear error before any move
        X = as_array(X, name, numpy)
    if like is not None:
        X = to_device(X, device_of(like))
    xp = get_array_module(X)
    X = xp.asarray(X)
    if X.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got an array of dtype {X.dtype}")
    if X.dtype not in (numpy.float32, numpy.float64):
        X = X.astype(numpy.float64)
    if X.ndim != ndim:
        shape = "(n_samples, n_features)" if ndim == 2 else f"{ndim} dimensions"
        raise ValueError(f"{name} must be a {ndim}-D array of shape {shape}, "
                         f"got an array of shape {X.shape}")
    if X.size == 0:
        raise ValueError(f"{name} is empty (shape {X.shape}); at least one sample and one "
                         "feature are needed")
    if not bool(xp.isfinite(X).all()):
        n_nan, n_inf = int(xp.isnan(X).sum()), int(xp.isinf(X).sum())
        raise ValueError(f"{name} must hold only finite values, but it contains {n_nan} NaN "
                         f"and {n_inf} infinite entries (of {X.size}); remove or impute them")
    return X


def as_array(data, name, xp):
    """``xp.asarray(data)``, with a clear error for ragged nested lists (rows of unequal length)."""
    try:
        return xp.asarray(data)
    except ValueError as e:
        if not isinstance(data, (list, tuple)):
            raise
        lengths = sorted({len(row) for row in data if hasattr(row, "__len__")})
        raise ValueError(f"{name} is a ragged nested list: its rows have different lengths "
                         f"({', '.join(map(str, lengths))} at the first level); every row must "
                         f"have the same length to form an array") from e


def numeric_array(x, name):
    """The raw array behind ``x`` (a Tensor, an array or a nested list; lists become NumPy
    arrays), with a clear error for what is no numeric array: None or a string (TypeError), a
    ragged list (ValueError)."""
    data = x.data if getattr(x, "_is_minigen_tensor", False) else x
    if not hasattr(data, "shape"):
        data = as_array(data, name, numpy)
    if data.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got {type(x).__name__} of dtype {data.dtype}")
    return data


def check_channels(layer, x, expected):
    """``x`` must be a 4-D (N, C, H, W) input with C == ``expected`` (``layer`` names the caller)."""
    if x.ndim != 4:
        raise ValueError(f"{layer}: expected a 4-D input (N, C, H, W), got shape {tuple(x.shape)}")
    if x.shape[1] != expected:
        raise ValueError(f"{layer}: expected {expected} input channels, got {x.shape[1]} "
                         f"(input shape {tuple(x.shape)})")


def check_n_features(X, expected, name="X", estimator=None):
    """Raise unless ``X`` has ``expected`` columns (the number seen by ``fit``)."""
    if X.shape[1] != expected:
        fitted = f"{type(estimator).__name__} was" if estimator is not None else "the model was"
        raise ValueError(f"{name} has {X.shape[1]} features, but {fitted} fitted with "
                         f"{expected} features")


def check_int(value, name, minimum=None, maximum=None):
    """``value`` as a Python int in [minimum, maximum] (bools are rejected)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return int(value)


def check_positive_int(layer, name, value):
    """``value`` as an int >= 1, for argument ``name`` of ``layer`` (a layer's sizes)."""
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise TypeError(f"{layer}: {name} must be a positive int, got {value!r} "
                        f"({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")
    return int(value)


def check_float(value, name, minimum=None, strict=False):
    """``value`` as a finite Python float, >= ``minimum`` (> when ``strict``)."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {minimum}, got {value}")
    return value


def check_option(value, name, options):
    """Raise unless ``value`` is one of ``options``."""
    if value not in options:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, options))}, got {value!r}")
    return value


def check_n_components(n_components, n_samples, name="n_components"):
    """An int in [1, n_samples]: each component needs at least one sample to be estimated."""
    n_components = check_int(n_components, name, minimum=1)
    if n_components > n_samples:
        raise ValueError(f"{name}={n_components} is larger than n_samples={n_samples}: "
                         f"each component needs at least one sample; use {name} <= {n_samples}")
    return n_components


def check_is_fitted(estimator, attribute):
    """Raise ``NotFittedError`` unless ``estimator`` has the fitted ``attribute``."""
    if getattr(estimator, attribute, None) is None:
        raise NotFittedError(f"this {type(estimator).__name__} is not fitted yet; "
                             "call fit(X) first")


def count_distinct_rows(X, at_most):
    """min(at_most, number of distinct rows of ``X``), in ``at_most`` passes over ``X``."""
    xp = get_array_module(X)
    unseen = xp.ones(X.shape[0], dtype=bool)
    count = 0
    while count < at_most and bool(unseen.any()):
        row = X[int(xp.argmax(unseen))]  # the first row equal to none counted so far
        unseen &= xp.any(X != row, axis=1)
        count += 1
    return count
