"""Bayesian networks (directed graphical models) with tables and conditional linear Gaussians.

Lecture deck 000 ("Directed graphical model", "Quantitative specification"); Koller & Friedman
(2009), "Probabilistic Graphical Models", chapters 3 (factorisation), 5.5 and 7 (conditional
linear Gaussians), 9 (variable elimination) and 17 (maximum-likelihood estimation). minigen
follows Koller & Friedman where the slide is silent: a continuous node may have discrete parents
(one linear Gaussian per configuration of them), and query() conditions in closed form.

Model: a directed acyclic graph over X_1..X_T and, for each node, a conditional distribution
given its parents:

    P(X_1, ..., X_T) = prod_t P(X_t | parents(X_t))                              (factorisation)

- a discrete node has a conditional probability table (CPT)
      P(X_t = x | parents = u) = cpt[u_1, ..., u_k, x],   each row cpt[u] sums to one;
- a continuous node has a (conditional) linear-Gaussian CPD: for each configuration u of its
  discrete parents and values y of its continuous parents,
      X_t | u, y  ~  N(bias[u] + weights[u] . y,  variance[u]).
  The lecture's C ~ N(A + B, Sigma_c) is weights (1, 1), bias 0; D ~ N(mu_d + C, Sigma_d) is
  weights (1,), bias mu_d.

Ancestral sampling: draw the nodes in a topological order, each from its CPT/CPD given the values
already drawn for its parents.

Maximum likelihood from complete data decomposes over nodes (Koller & Friedman, 17.2):
CPT rows are normalised counts (plus alpha pseudo-counts), and a linear Gaussian is the
least-squares regression of the node on its continuous parents, one per discrete configuration,
with the mean squared residual as its variance.

Exact inference (query):
- all-discrete networks: variable elimination (Koller & Friedman, Algorithm 9.1): restrict each
  CPT factor to the evidence, multiply the factors that mention a hidden variable, sum it out,
  repeat; multiply what is left and normalise;
- all-continuous (linear-Gaussian) networks: the joint is Gaussian; in topological order
      mu_t = bias_t + sum_j w_tj mu_j,     Cov(X_t, X_s) = sum_j w_tj Cov(X_j, X_s)  (s before t),
      Var(X_t) = variance_t + sum_j w_tj Cov(X_j, X_t),
  and conditioning on evidence e is the Gaussian conditional
      mu_q|e = mu_q + S_qe S_ee^-1 (e - mu_e),     S_q|e = S_qq - S_qe S_ee^-1 S_eq.
"""
import math

import numpy

from .. import backend
from ..backend import get_array_module
from ..random import get_generator
from ..validation import NotFittedError, check_float, check_int
from .estimator import Estimator

MAX_JOINT_ENTRIES = 2 ** 22  # joint() refuses tables larger than this


def _topological_order(parents, cardinality):
    """Check the structure and return its nodes in a topological order (Kahn's algorithm).

    Ties are broken by the order of ``parents``, so the order is deterministic.
    """
    if not isinstance(parents, dict):
        raise TypeError(f"parents must be a dict mapping each node to a tuple of its parents, "
                        f"got {type(parents).__name__}")
    if not isinstance(cardinality, dict):
        raise TypeError(f"cardinality must be a dict mapping each discrete node to its number of "
                        f"values, got {type(cardinality).__name__}")
    for node, pa in parents.items():
        if not isinstance(node, str):
            raise TypeError(f"node names must be strings, got {node!r} ({type(node).__name__})")
        if not isinstance(pa, (tuple, list)):
            raise TypeError(f"parents[{node!r}] must be a tuple of parent names, got {pa!r}")
        for p in pa:
            if p not in parents:
                raise ValueError(f"node {node!r} has an unknown parent {p!r}; every parent must "
                                 f"itself be a key of parents (known: {', '.join(map(repr, parents))})")
        if len(set(pa)) != len(pa):
            raise ValueError(f"parents[{node!r}] = {tuple(pa)!r} lists a parent twice")
    for node, card in cardinality.items():
        if node not in parents:
            raise ValueError(f"cardinality names an unknown node {node!r}")
        check_int(card, f"cardinality[{node!r}]", minimum=1)
    for node, pa in parents.items():
        continuous = [p for p in pa if p not in cardinality]
        if node in cardinality and continuous:
            raise ValueError(f"discrete node {node!r} has continuous parent(s) "
                             f"{', '.join(map(repr, continuous))}; a discrete node needs discrete "
                             f"parents (give them a cardinality, or make {node!r} continuous)")
    order, placed = [], set()
    while len(order) < len(parents):
        ready = [n for n in parents if n not in placed and all(p in placed for p in parents[n])]
        if not ready:
            raise ValueError(f"the graph has a cycle through the nodes "
                             f"{' -> '.join(_cycle(parents, placed))}; a Bayesian network must be acyclic")
        order.extend(ready)
        placed.update(ready)
    return order


def _cycle(parents, placed):
    """The names of one directed cycle among the nodes not in ``placed`` (for the error message)."""
    node = next(n for n in parents if n not in placed)
    path = []
    while node not in path:  # every unplaced node has an unplaced parent: walk up until we repeat
        path.append(node)
        node = next(p for p in parents[node] if p not in placed)
    cycle = path[path.index(node):][::-1]  # parent -> child order
    listed = list(parents)
    first = min(range(len(cycle)), key=lambda i: listed.index(cycle[i]))  # the first-listed node
    cycle = cycle[first:] + cycle[:first]
    return [repr(n) for n in cycle + [cycle[0]]]


class BayesianNetwork(Estimator):
    """A directed graphical model with CPTs (discrete nodes) and linear-Gaussian CPDs (continuous).

    ``parents``: dict node name -> tuple of parent names. ``cardinality``: dict discrete node ->
    number of values; nodes not in it are continuous (real-valued scalars). Discrete values are
    the integers 0..card-1.

    Data: a (N, n_nodes) array with columns in ``nodes`` order, or a dict node -> (N,) column.
    Fitted attributes: ``cpts_`` (node -> table of shape (card(parent_1), ..., card(parent_k),
    card(node))) and ``cpds_`` (node -> dict with ``weights`` (card(discrete parents)...,
    n_continuous_parents), ``bias`` and ``variance`` (card(discrete parents)...)), set by
    ``fit`` or by ``set_cpt`` / ``set_cpd``.
    """

    def __init__(self, parents, cardinality):
        self.parents = parents
        self.cardinality = cardinality
        _topological_order(parents, cardinality)

    def load_state_dict(self, state, device=None):
        """``Estimator.load_state_dict``, with the parent lists (JSON arrays) back as tuples."""
        super().load_state_dict(state, device=device)
        self.parents = {node: tuple(pa) for node, pa in self.parents.items()}
        return self

    # ---- structure -------------------------------------------------------------------------
    @property
    def nodes(self):
        """The node names in a topological order (parents before children)."""
        return _topological_order(self.parents, self.cardinality)

    def _parents(self, node):
        return tuple(self.parents[node])

    def _is_discrete(self, node):
        return node in self.cardinality

    def _discrete_parents(self, node):
        return tuple(p for p in self._parents(node) if self._is_discrete(p))

    def _continuous_parents(self, node):
        return tuple(p for p in self._parents(node) if not self._is_discrete(p))

    def _check_node(self, node, discrete):
        if node not in self.parents:
            raise ValueError(f"unknown node {node!r} (nodes: {', '.join(map(repr, self.nodes))})")
        if self._is_discrete(node) != discrete:
            kind, other = ("discrete", "set_cpt") if self._is_discrete(node) else ("continuous", "set_cpd")
            raise ValueError(f"node {node!r} is {kind}; use {other} for it")

    # ---- parameters ------------------------------------------------------------------------
    def set_cpt(self, node, table):
        """Set the CPT of discrete ``node``: shape (card(parent_1), ..., card(parent_k), card(node)),
        non-negative, each row (last axis) summing to one. Returns self."""
        self._check_node(node, discrete=True)
        xp = get_array_module(table)
        table = xp.asarray(table, dtype=xp.float64)
        shape = tuple(self.cardinality[p] for p in self._parents(node)) + (self.cardinality[node],)
        if table.shape != shape:
            raise ValueError(f"the CPT of {node!r} must have shape {shape} (card of parents "
                             f"{self._parents(node)}, then of {node!r}), got {table.shape}")
        if not bool(xp.all(xp.isfinite(table))) or bool(xp.any(table < 0)):
            raise ValueError(f"the CPT of {node!r} must hold finite non-negative probabilities")
        row_error = xp.abs(table.sum(axis=-1) - 1)
        if bool(xp.any(row_error > 1e-6)):
            worst = tuple(int(i) for i in numpy.unravel_index(int(xp.argmax(row_error)), shape[:-1]))
            raise ValueError(f"each row of the CPT of {node!r} must sum to one; the row at parent "
                             f"values {worst} sums to {float(table[worst].sum()):.6g}")
        if not hasattr(self, "cpts_"):
            self.cpts_ = {}
        self.cpts_[node] = table
        return self

    def set_cpd(self, node, weights, bias, variance):
        """Set the linear-Gaussian CPD of continuous ``node``:
        X | u, y ~ N(bias[u] + weights[u] . y, variance[u]) for each configuration u of the
        discrete parents and values y of the continuous parents (in ``parents`` order).
        Shapes: weights (card(discrete parents)..., n_continuous_parents); bias and variance
        (card(discrete parents)...) (scalars without discrete parents). Returns self."""
        self._check_node(node, discrete=False)
        xp = get_array_module(weights, bias, variance)
        configs = tuple(self.cardinality[p] for p in self._discrete_parents(node))
        n_cont = len(self._continuous_parents(node))
        cpd = {}
        for name, value, shape in (("weights", weights, configs + (n_cont,)),
                                   ("bias", bias, configs), ("variance", variance, configs)):
            value = xp.asarray(value, dtype=xp.float64)
            if value.shape != shape:
                raise ValueError(f"the {name} of {node!r} must have shape {shape}, got {value.shape}")
            if not bool(xp.all(xp.isfinite(value))):
                raise ValueError(f"the {name} of {node!r} must be finite")
            cpd[name] = value
        if not bool(xp.all(cpd["variance"] > 0)):
            raise ValueError(f"the variance of {node!r} must be > 0, got {cpd['variance']}")
        if not hasattr(self, "cpds_"):
            self.cpds_ = {}
        self.cpds_[node] = cpd
        return self

    def _check_complete(self):
        given = set(getattr(self, "cpts_", {})) | set(getattr(self, "cpds_", {}))
        missing = [n for n in self.nodes if n not in given]
        if missing:
            raise NotFittedError(f"this BayesianNetwork has no CPT/CPD for {', '.join(map(repr, missing))}; "
                                 "call fit(data) or set_cpt/set_cpd first")

    def _parameter_arrays(self):
        return list(getattr(self, "cpts_", {}).values()) + \
            [cpd["bias"] for cpd in getattr(self, "cpds_", {}).values()]

    def _xp(self):
        return get_array_module(*self._parameter_arrays())

    # ---- data ------------------------------------------------------------------------------
    def _columns(self, data, name="data", like=None):
        """``data`` (an (N, n_nodes) array in ``nodes`` order or a dict of columns) as a dict of
        columns: int64 values in [0, card) for discrete nodes, float64 for continuous ones; on
        the device of the array ``like`` when given (the parameters)."""
        if like is not None:
            device = backend.device_of(like)
            if isinstance(data, dict):
                data = {n: backend.to_device(c, device) for n, c in data.items()}
            else:
                data = backend.to_device(numpy.asarray(data) if isinstance(data, (list, tuple)) else data,
                                         device)
        nodes = self.nodes
        if isinstance(data, dict):
            missing = [n for n in nodes if n not in data]
            unknown = [n for n in data if n not in self.parents]
            if missing or unknown:
                raise ValueError(f"{name} must have one column per node; missing "
                                 f"{missing}, unknown {unknown}")
            xp = get_array_module(*data.values())
            columns = {n: xp.asarray(data[n]) for n in nodes}
        else:
            xp = get_array_module(data)
            data = xp.asarray(data)
            if data.ndim != 2 or data.shape[1] != len(nodes):
                raise ValueError(f"{name} must have shape (n_samples, {len(nodes)}) with columns "
                                 f"in nodes order {nodes}, got shape {data.shape}")
            columns = {n: data[:, i] for i, n in enumerate(nodes)}
        lengths = {c.shape for c in columns.values()}
        if len(lengths) != 1 or len(next(iter(lengths))) != 1 or next(iter(lengths))[0] == 0:
            raise ValueError(f"the columns of {name} must be non-empty 1-D arrays of one length, "
                             f"got shapes {sorted(lengths)}")
        out = {}
        for n, column in columns.items():
            if column.dtype.kind not in "biuf":
                raise TypeError(f"{name}[{n!r}] must hold numbers, got dtype {column.dtype}")
            if not bool(xp.all(xp.isfinite(column.astype(xp.float64)))):
                raise ValueError(f"{name}[{n!r}] must hold only finite values")
            if self._is_discrete(n):
                values = column.astype(xp.int64)
                if bool(xp.any(values != column)) or bool(xp.any(values < 0)) or \
                        bool(xp.any(values >= self.cardinality[n])):
                    raise ValueError(f"{name}[{n!r}] must hold integers in [0, {self.cardinality[n]}) "
                                     f"(the values of discrete node {n!r})")
                out[n] = values
            else:
                out[n] = column.astype(xp.float64)
        return out

    def _discrete_index(self, node, columns):
        """The tuple of discrete-parent values indexing ``node``'s table or CPD arrays."""
        return tuple(columns[p] for p in self._discrete_parents(node))

    def _gaussian_mean(self, node, columns, n):
        """(N,) mean bias[u] + weights[u] . y of continuous ``node`` given parent columns."""
        cpd, u = self.cpds_[node], self._discrete_index(node, columns)
        xp = get_array_module(cpd["bias"])
        weights = cpd["weights"][u] if u else xp.broadcast_to(cpd["weights"], (n,) + cpd["weights"].shape)
        mean = cpd["bias"][u] if u else xp.full(n, float(cpd["bias"]))
        for j, p in enumerate(self._continuous_parents(node)):
            mean = mean + weights[:, j] * columns[p]
        return mean

    # ---- densities and sampling ------------------------------------------------------------
    def log_prob(self, data):
        """(N,) log P(x) = sum_t log P(x_t | parents(x_t)) (log densities for continuous nodes), nats."""
        self._check_complete()
        columns = self._columns(data, like=self._parameter_arrays()[0])
        xp = get_array_module(*columns.values())
        n = len(next(iter(columns.values())))
        log_p = xp.zeros(n)
        for node in self.nodes:
            if self._is_discrete(node):
                index = tuple(columns[p] for p in self._parents(node)) + (columns[node],)
                with numpy.errstate(divide="ignore"):
                    log_p = log_p + xp.log(self.cpts_[node][index])
            else:
                u = self._discrete_index(node, columns)
                variance = self.cpds_[node]["variance"][u] if u else float(self.cpds_[node]["variance"])
                residual = columns[node] - self._gaussian_mean(node, columns, n)
                log_p = log_p - 0.5 * (xp.log(2 * math.pi * variance) + residual ** 2 / variance)
        return log_p

    def score_samples(self, data):
        """(N,) per-example log-likelihood in nats: the same as ``log_prob``."""
        return self.log_prob(data)

    def sample(self, n_samples=1, random_state=None):
        """(n_samples, n_nodes) ancestral samples, columns in ``nodes`` order (int64 when every
        node is discrete, float64 otherwise)."""
        n_samples = check_int(n_samples, "n_samples", minimum=1)
        self._check_complete()
        xp = self._xp()
        rng = get_generator(random_state, xp)
        columns = {}
        for node in self.nodes:
            if self._is_discrete(node):
                p = self.cpts_[node][tuple(columns[q] for q in self._parents(node))] if self._parents(node) \
                    else xp.broadcast_to(self.cpts_[node], (n_samples, self.cardinality[node]))
                u = rng.random((n_samples, 1))  # inverse CDF: the first value whose CDF passes u
                x = (xp.cumsum(p, axis=1) < u).sum(axis=1)
                columns[node] = xp.minimum(x, self.cardinality[node] - 1)  # CDF rounding below 1
            else:
                u = self._discrete_index(node, columns)
                variance = self.cpds_[node]["variance"][u] if u else float(self.cpds_[node]["variance"])
                noise = rng.standard_normal(n_samples)
                columns[node] = self._gaussian_mean(node, columns, n_samples) + xp.sqrt(variance) * noise
        dtype = xp.int64 if len(self.cardinality) == len(self.parents) else xp.float64
        return xp.stack([columns[n].astype(dtype) for n in self.nodes], axis=1)

    # ---- learning --------------------------------------------------------------------------
    def fit(self, data, alpha=0.0):
        """Maximum-likelihood CPTs (add-``alpha`` smoothed) and linear-Gaussian CPDs from complete
        data. A parent configuration never seen (with alpha = 0) gets a uniform CPT row: the
        likelihood does not depend on it. Returns self."""
        alpha = check_float(alpha, "alpha", minimum=0)
        columns = self._columns(data)
        xp = get_array_module(*columns.values())
        cpts = {node: self._fit_cpt(node, columns, alpha, xp)
                for node in self.nodes if self._is_discrete(node)}
        cpds = {node: self._fit_linear_gaussian(node, columns, xp)
                for node in self.nodes if not self._is_discrete(node)}
        for name, value in (("cpts_", cpts), ("cpds_", cpds)):
            if value:
                setattr(self, name, value)
            elif hasattr(self, name):  # none of that kind: no attribute (as set_cpt/set_cpd leave it)
                delattr(self, name)
        return self

    def _fit_cpt(self, node, columns, alpha, xp):
        family = self._parents(node) + (node,)
        shape = tuple(self.cardinality[v] for v in family)
        flat = xp.zeros_like(columns[node])
        for v in family:  # row-major index of (parents..., node) in the table
            flat = flat * self.cardinality[v] + columns[v]
        counts = xp.bincount(flat, minlength=math.prod(shape)).reshape(shape) + alpha
        totals = counts.sum(axis=-1, keepdims=True)
        uniform = xp.full(shape, 1.0 / shape[-1])
        return xp.where(totals > 0, counts / xp.where(totals > 0, totals, 1), uniform)

    def _fit_linear_gaussian(self, node, columns, xp):
        configs = tuple(self.cardinality[p] for p in self._discrete_parents(node))
        continuous = self._continuous_parents(node)
        n = len(columns[node])
        design = xp.stack([columns[p] for p in continuous] + [xp.ones(n)], axis=1)  # [y, 1]
        config = xp.zeros(n, dtype=xp.int64)
        for p in self._discrete_parents(node):
            config = config * self.cardinality[p] + columns[p]
        weights = xp.zeros((math.prod(configs), len(continuous)))
        bias, variance = xp.zeros(math.prod(configs)), xp.zeros(math.prod(configs))
        for c in range(math.prod(configs)):
            rows = config == c
            A, x = design[rows], columns[node][rows]
            where = f" at discrete parent values {numpy.unravel_index(c, configs)}" if configs else ""
            if A.shape[0] <= A.shape[1]:
                raise ValueError(f"node {node!r}{where} has {A.shape[0]} samples; its linear "
                                 f"Gaussian needs more than {A.shape[1]}")
            coef = xp.linalg.lstsq(A, x, rcond=None)[0]  # least squares = ML weights and bias
            residual = x - A @ coef
            weights[c], bias[c] = coef[:-1], coef[-1]
            variance[c] = xp.mean(residual ** 2)
            if not float(variance[c]) > 0:
                raise ValueError(f"node {node!r}{where} is an exact linear function of its "
                                 "parents in the data: its ML variance is 0")
        return {"weights": weights.reshape(configs + (len(continuous),)),
                "bias": bias.reshape(configs), "variance": variance.reshape(configs)}

    # ---- exact inference -------------------------------------------------------------------
    def joint(self):
        """The full table P(x_1, ..., x_T), one axis per node in ``nodes`` order (all-discrete
        networks with at most 2^22 entries)."""
        self._check_discrete("joint()")
        nodes = self.nodes
        shape = tuple(self.cardinality[n] for n in nodes)
        if math.prod(shape) > MAX_JOINT_ENTRIES:
            raise ValueError(f"joint() would have {math.prod(shape)} entries (shape {shape}), more "
                             f"than 2^22 = {MAX_JOINT_ENTRIES}; use query() on a few variables")
        self._check_complete()
        factors = [(list(self._parents(n) + (n,)), self.cpts_[n]) for n in nodes]
        scope, table = _product(factors, self._xp())
        return table.transpose([scope.index(n) for n in nodes])

    def _check_discrete(self, what):
        continuous = [n for n in self.nodes if not self._is_discrete(n)]
        if continuous:
            raise ValueError(f"{what} needs an all-discrete network; {', '.join(map(repr, continuous))} "
                             "are continuous")

    def query(self, variables, evidence=None):
        """Exact P(variables | evidence).

        All-discrete networks: the normalised table over ``variables`` (one axis each, in the
        order given), by variable elimination. Linear-Gaussian (all-continuous) networks: the
        tuple (mean (k,), covariance (k, k)) of the Gaussian conditional. ``evidence``: dict
        node -> observed value (the lecture's shaded nodes).
        """
        if isinstance(variables, str):
            variables = [variables]
        variables, evidence = list(variables), dict(evidence or {})
        for v in variables + list(evidence):
            if v not in self.parents:
                raise ValueError(f"unknown node {v!r} in query (nodes: {', '.join(map(repr, self.nodes))})")
        if not variables or len(set(variables)) != len(variables):
            raise ValueError(f"variables must name at least one node, each once, got {variables}")
        both = set(variables) & set(evidence)
        if both:
            raise ValueError(f"{sorted(both)} are both queried and observed")
        self._check_complete()
        if len(self.cardinality) == len(self.parents):
            return self._variable_elimination(variables, evidence)
        if not self.cardinality:
            return self._gaussian_query(variables, evidence)
        raise ValueError("query() handles all-discrete networks (variable elimination) and "
                         "all-continuous linear-Gaussian ones (closed form); this network mixes "
                         f"discrete {sorted(self.cardinality)} and continuous nodes")

    def _variable_elimination(self, variables, evidence):
        xp = self._xp()
        for node, value in evidence.items():
            if not isinstance(value, (int, numpy.integer)) or not 0 <= value < self.cardinality[node]:
                raise ValueError(f"evidence[{node!r}] must be an integer in [0, {self.cardinality[node]}), "
                                 f"got {value!r}")
        factors = []  # (scope, table): a table has one axis per name in its scope
        for node in self.nodes:
            scope = list(self._parents(node) + (node,))
            index = tuple(int(evidence[v]) if v in evidence else slice(None) for v in scope)
            factors.append(([v for v in scope if v not in evidence], self.cpts_[node][index]))
        hidden = [n for n in self.nodes if n not in evidence and n not in variables]
        while hidden:  # greedy: eliminate the variable whose product factor is smallest
            def cost(v):
                return math.prod(self.cardinality[u] for u in
                                 set().union(*(scope for scope, _ in factors if v in scope)))
            v = min(hidden, key=cost)
            hidden.remove(v)
            involved = [f for f in factors if v in f[0]]
            factors = [f for f in factors if v not in f[0]]
            scope, table = _product(involved, xp)
            factors.append(([u for u in scope if u != v], table.sum(axis=scope.index(v))))
        scope, table = _product(factors, xp)
        table = xp.transpose(table, [scope.index(v) for v in variables])
        total = float(table.sum())
        if not total > 0:
            raise ValueError(f"the evidence {evidence} has probability zero; P(. | evidence) is undefined")
        return table / total

    def _gaussian_query(self, variables, evidence):
        xp = self._xp()
        nodes = self.nodes
        mu, cov = self._gaussian_joint(xp)
        q = [nodes.index(v) for v in variables]
        e = [nodes.index(v) for v in evidence]
        mean, S_qq = mu[q], cov[q][:, q]
        if not e:
            return mean, S_qq
        values = xp.asarray([float(evidence[v]) for v in evidence])
        S_qe, S_ee = cov[q][:, e], cov[e][:, e]
        gain = xp.linalg.solve(S_ee, S_qe.T).T  # S_qe S_ee^-1
        return mean + gain @ (values - mu[e]), S_qq - gain @ S_qe.T

    def _gaussian_joint(self, xp):
        """Mean (T,) and covariance (T, T) of a linear-Gaussian network, in ``nodes`` order."""
        nodes = self.nodes
        T = len(nodes)
        mu, cov = xp.zeros(T), xp.zeros((T, T))
        for t, node in enumerate(nodes):
            cpd = self.cpds_[node]
            j = [nodes.index(p) for p in self._continuous_parents(node)]
            w = cpd["weights"]
            mu[t] = float(cpd["bias"]) + (w @ mu[j] if j else 0.0)
            if j:
                cov[t, :t] = w @ cov[j, :t]           # Cov(X_t, X_s) = sum_j w_tj Cov(X_j, X_s)
                cov[:t, t] = cov[t, :t]
                cov[t, t] = float(cpd["variance"]) + float(w @ cov[j, t])
            else:
                cov[t, t] = float(cpd["variance"])
        return mu, cov


def _product(factors, xp):
    """The product of factors (scope, table) as one factor over the union of their scopes."""
    scope = []
    for s, _ in factors:
        scope += [v for v in s if v not in scope]
    result = xp.ones(())
    for s, table in factors:
        order = sorted(range(len(s)), key=lambda i: scope.index(s[i]))
        view = [1] * len(scope)
        for i in order:
            view[scope.index(s[i])] = table.shape[i]
        result = result * xp.transpose(table, order).reshape(view)
    return scope, result
