"""The estimator contract (scikit-learn's) and the one coordinate-ascent loop the estimators share.

Every estimator fitted by EM, coordinate ascent (CAVI) or contrastive divergence derives from
``Estimator``:

- every setting is an argument of ``__init__``, stored under its own name and never changed by
  ``fit``; ``get_params()`` lists them and ``repr`` shows the ones that differ from the defaults
  (so a printed repr is valid constructor arguments);
- ``fit(X)`` returns ``self``; what it learns is stored in attributes whose names end in ``_``;
- ``score_samples(X)`` is the per-example log-likelihood (or the bound the model can compute)
  in nats, shape (N,), and ``score(X)`` its mean;
- ``sample(n_samples=1, random_state=None)``; all randomness comes through ``random_state``
  (None: the global generator seeded by ``minigen.manual_seed``; an int; a Generator);
- iterative fits set ``n_iter_`` and ``converged_`` and warn with ``ConvergenceWarning`` when they
  stop at ``max_iter``;
- ``state_dict()`` / ``load_state_dict(state)`` hold the settings and the fitted attributes as
  arrays only, so ``minigen.save(est.state_dict(), path)`` and ``minigen.load`` round-trip an
  estimator without pickle.
"""
import inspect
import json
import math
import warnings

import numpy

from .. import backend
from ..utils.progress import progress
from ..random import get_generator
from ..validation import check_array, check_is_fitted, check_n_features


class ConvergenceWarning(UserWarning):
    """An iterative fit stopped at ``max_iter`` before its objective settled within ``tol``."""


def coordinate_ascent(step, start, tol, max_iter, name, verbose=False):
    """Run ``step`` until the per-sample objective changes by at most ``tol``.

    ``start`` is the objective (per sample: mean log-likelihood, mean ELBO) at the starting
    parameters; each call of ``step()`` performs one full sweep (an E step and an M step, or one
    pass of CAVI updates) and returns the objective at the parameters it produced. The same
    ``tol`` therefore means the same thing for every model: the change of the per-sample
    objective between two successive sweeps.

    Returns ``(history, n_iter, converged)``; ``history[0]`` is ``start`` and ``history[t]`` the
    objective after sweep t. Warns with ``ConvergenceWarning`` when ``max_iter`` sweeps did not
    converge. ``verbose``: a progress line (sweeps, rate, time left at most, objective).
    """
    history = [float(start)]
    sweeps = progress(range(1, max_iter + 1), desc=name, disable=not verbose)
    for n_iter in sweeps:
        history.append(float(step()))
        sweeps.set_postfix(objective=f"{history[-1]:.6g}")
        if not math.isfinite(history[-1]):
            raise FloatingPointError(f"{name}: the objective became {history[-1]} at iteration "
                                     f"{n_iter}; check the data scale and the regularisation")
        if abs(history[-1] - history[-2]) <= tol:
            return history, n_iter, True
    change = abs(history[-1] - history[-2]) if len(history) > 1 else float("nan")
    warnings.warn(f"{name} did not converge in max_iter={max_iter} iterations (the last change "
                  f"of the per-sample objective was {change:.3g} > tol={tol}); increase max_iter "
                  f"or tol", ConvergenceWarning, stacklevel=3)
    return history, max_iter, False


_ESTIMATORS = {}


def _qualified_name(cls):
    return f"{cls.__module__}.{cls.__qualname__}"


def estimator_class(name):
    """The ``Estimator`` subclass registered under its qualified ``name`` (for loading)."""
    if name not in _ESTIMATORS:
        raise ValueError(f"no estimator class named {name!r} is known; import the module that "
                         f"defines it first (known: {', '.join(sorted(_ESTIMATORS))})")
    return _ESTIMATORS[name]


class Estimator:
    """Base class of the estimators: parameters, repr and array-only state dicts (see module doc)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _ESTIMATORS[_qualified_name(cls)] = cls

    @classmethod
    def _param_names(cls):
        signature = inspect.signature(cls.__init__)
        return [p.name for p in signature.parameters.values()
                if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]

    def get_params(self):
        """The settings given to ``__init__``, by name."""
        return {name: getattr(self, name) for name in self._param_names()}

    def __repr__(self):
        defaults = {p.name: p.default for p in inspect.signature(type(self).__init__).parameters.values()}
        shown = [f"{name}={value!r}" for name, value in self.get_params().items()
                 if defaults.get(name, inspect.Parameter.empty) is inspect.Parameter.empty
                 or not _same(value, defaults[name])]
        return f"{type(self).__name__}({', '.join(shown)})"

    # ---- shared parts of the contract --------------------------------------------------------
    #: names of the fitted attributes that one run of ``fit`` produces; ``_get_parameters`` and
    #: ``_set_parameters`` read and write exactly these (best of ``n_init``, no copy of vars).
    _parameter_names = ()

    def _get_parameters(self):
        """The fitted parameters listed in ``_parameter_names``, by name."""
        return {name: getattr(self, name) for name in self._parameter_names}

    def _set_parameters(self, parameters):
        """Set the fitted parameters from a dict returned by ``_get_parameters``."""
        for name in self._parameter_names:
            setattr(self, name, parameters[name])

    def _check_X(self, X, fitted="n_features_in_"):
        """``X`` for a fitted model: fitted (``fitted`` is set), a finite 2-D float array on the
        device of the parameters, with the number of features seen by ``fit``."""
        check_is_fitted(self, fitted)
        like = next((value for value in (getattr(self, name, None) for name in self._parameter_names)
                     if hasattr(value, "dtype") and getattr(value, "ndim", 0) > 0), None)
        X = check_array(X, like=like)
        check_n_features(X, self.n_features_in_, estimator=self)
        return X

    def _generator(self, random_state, xp):
        """The generator for a method's ``random_state`` argument; None falls back to the
        estimator's own ``random_state`` setting (scikit-learn's rule), which may itself be None
        (the global generator seeded by ``minigen.manual_seed``)."""
        return get_generator(self.random_state if random_state is None else random_state, xp)

    def score(self, X):
        """The mean of ``score_samples(X)``: the per-sample log-likelihood (or bound) in nats."""
        return float(self.score_samples(X).mean())

    def _fitted_names(self):
        return sorted(name for name in vars(self) if name.endswith("_") and not name.startswith("_"))

    def state_dict(self):
        """Settings and fitted attributes as a flat dict of arrays (host NumPy arrays for data).

        Keys: ``class`` (qualified class name), ``params`` (the settings as JSON), ``kinds``
        (how to rebuild each fitted attribute, as JSON) and one key per fitted attribute; dicts,
        lists of arrays and sub-estimators (a DBN's RBMs) become nested dicts, which
        ``minigen.save`` writes with "/"-joined keys.
        """
        params = {}
        for name, value in self.get_params().items():
            params[name] = None if _is_generator(value) else _jsonable(value, name)
        state, kinds = {}, {}
        for name in self._fitted_names():
            kinds[name] = _pack(getattr(self, name), name, state)
        state["class"] = numpy.array(_qualified_name(type(self)))
        state["params"] = numpy.array(json.dumps(params))
        state["kinds"] = numpy.array(json.dumps(kinds))
        return state

    def load_state_dict(self, state, device=None):
        """Restore what ``state_dict`` saved: all of it, or nothing (errors leave ``self`` unchanged).

        The fitted arrays go to ``device`` ('cpu' or 'cuda'); None: the estimator's own ``device``
        setting where it has one (the RBM's), else the host.
        """
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict (from state_dict() or minigen.load), got "
                            f"{type(state).__name__}")
        expected = _qualified_name(type(self))
        for key in ("class", "params", "kinds"):
            if key not in state:
                raise ValueError(f"state is missing the key {key!r}; it was not written by "
                                 f"{type(self).__name__}.state_dict()")
        saved = str(numpy.asarray(state["class"]))
        if saved != expected:
            raise ValueError(f"state holds a {saved}, not a {expected}")
        params = json.loads(str(numpy.asarray(state["params"])))
        unknown = set(params) - set(self._param_names())
        if unknown:
            raise ValueError(f"state has settings {sorted(unknown)} that "
                             f"{type(self).__name__}.__init__ does not take")
        kinds = json.loads(str(numpy.asarray(state["kinds"])))
        if device is None:
            device = getattr(self, "device", None) if isinstance(getattr(self, "device", None), str) else None
        else:
            device = backend.check_device(device)
        fitted = {name: _unpack(kind, name, state, device) for name, kind in kinds.items()}
        for name in self._fitted_names():  # forget what an earlier fit left behind
            delattr(self, name)
        for name, value in params.items():
            setattr(self, name, tuple(value) if isinstance(value, list) else value)
        for name, value in fitted.items():
            setattr(self, name, value)
        return self


def _same(a, b):
    try:
        return bool(a == b) and type(a) is type(b)
    except Exception:  # arrays and other objects without a single truth value
        return a is b


def _is_generator(value):
    return hasattr(value, "standard_normal") and hasattr(value, "random")


def _jsonable(value, name):
    if isinstance(value, tuple):
        value = list(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # an array setting (a prior mean)
        value = backend.to_numpy(value).tolist()
    try:
        json.dumps(value)
    except TypeError:
        raise TypeError(f"setting {name}={value!r} cannot be saved in a state dict: settings "
                        "must be numbers, strings, booleans, None or lists of them") from None
    return value


def _pack(value, name, state):
    """Store ``value`` under ``name`` in the dict ``state``; return its kind for ``_unpack``."""
    if value is None:
        return "none"
    if isinstance(value, Estimator):
        state[name] = value.state_dict()
        return "estimator"
    if isinstance(value, (bool, numpy.bool_)):
        state[name] = numpy.asarray(bool(value))
        return "bool"
    if isinstance(value, (int, numpy.integer)):
        state[name] = numpy.asarray(int(value))
        return "int"
    if isinstance(value, (float, numpy.floating)):
        state[name] = numpy.asarray(float(value))
        return "float"
    if isinstance(value, str):
        state[name] = numpy.asarray(value)
        return "str"
    if isinstance(value, dict):
        keys = [_jsonable(key, name) for key in value]
        state[name] = {}
        kinds = [_pack(item, str(i), state[name]) for i, item in enumerate(value.values())]
        return {"dict": kinds, "keys": keys}
    if isinstance(value, (list, tuple)) and value and not all(
            isinstance(item, (int, float, bool, numpy.number)) for item in value):
        state[name] = {}
        kinds = [_pack(item, str(i), state[name]) for i, item in enumerate(value)]
        return {"list": kinds, "tuple": isinstance(value, tuple)}
    if isinstance(value, (list, tuple)):
        state[name] = numpy.asarray(value)
        return "tuple" if isinstance(value, tuple) else "list"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        state[name] = backend.to_device(value, "cpu")
        return "array"
    raise TypeError(f"fitted attribute {name} of type {type(value).__name__} cannot be stored in "
                    "a state dict; override state_dict/load_state_dict for it")


def _unpack(kind, name, state, device):
    """Rebuild what ``_pack`` stored under ``name`` in the dict ``state``."""
    if kind == "none":
        return None
    if isinstance(kind, dict) and not kind.get("dict", kind.get("list", True)) and name not in state:
        return {} if "dict" in kind else ([] if not kind["tuple"] else ())  # empty: no key saved
    if name not in state:
        raise ValueError(f"state is missing the fitted attribute {name!r}")
    value = state[name]
    if kind == "estimator":
        cls = estimator_class(str(numpy.asarray(value["class"])))
        params = json.loads(str(numpy.asarray(value["params"])))
        return cls(**params).load_state_dict(value, device=device)
    if isinstance(kind, dict) and "dict" in kind:
        return {(tuple(key) if isinstance(key, list) else key): _unpack(item, str(i), value, device)
                for i, (key, item) in enumerate(zip(kind["keys"], kind["dict"]))}
    if isinstance(kind, dict) and "list" in kind:
        items = [_unpack(item, str(i), value, device) for i, item in enumerate(kind["list"])]
        return tuple(items) if kind["tuple"] else items
    value = numpy.asarray(value)
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    if kind == "str":
        return str(value)
    if kind in ("list", "tuple"):
        items = value.tolist()
        return tuple(items) if kind == "tuple" else items
    if kind == "array":
        return backend.to_device(value, device) if device not in (None, "cpu") else value
    raise ValueError(f"unknown kind {kind!r} for fitted attribute {name!r} in the state")
