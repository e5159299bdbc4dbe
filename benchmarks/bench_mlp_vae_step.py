"""One training step (forward, backward, Adam) of an MLP VAE, minigen beside its references.

Model: 784-512-(20 mu, 20 logvar)-512-784, ReLU, batch 128, float32; Bernoulli likelihood
(BCE with logits summed over pixels), z = mu + exp(0.5 logvar) * eps with fixed noise eps,
analytic KL; loss = (BCE + KL) / batch. Three implementations run in the same process on the
same weights, batch and noise:

    minigen   nn.Linear + F ops + optim.Adam (flat parameter buffer)
    numpy     the same step by hand: manual backprop and a plain per-array Adam loop
    pytorch   torch 2.x CPU with torch.optim.Adam defaults (only if ``import torch`` works)

Prints the median step time and the forward+backward-only time of each, and the ratios.
Each is timed apart, one after the other: another's threads would spin on a core this one
needs (PyTorch's OpenMP threads, and OpenBLAS's after NumPy's multi-threaded GEMMs, while
minigen runs its own threads with the BLAS at one thread each; see ``minigen.threads``).

    python benchmarks/bench_mlp_vae_step.py [--steps 50] [--warmup 10] [--threads 2]
"""
import argparse

from common import median_times, set_blas_threads


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=50, help="timed steps (median reported)")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=2, help="BLAS / torch threads")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    return parser.parse_args(argv)


if __name__ == "__main__":  # run as a script: parse now, to set the threads before NumPy starts its BLAS
    ARGS = parse_args()
    set_blas_threads(ARGS.threads)

import numpy as np  # noqa: E402

import minigen  # noqa: E402
import minigen.functional as F  # noqa: E402
from minigen import nn  # noqa: E402

SIZES = dict(d=784, h=512, k=20)
LR, BETAS, EPS = 1e-3, (0.9, 0.999), 1e-8


# ----------------------------------------------------------------------------- minigen

class VAE(nn.Module):
    def __init__(self, d, h, k):
        super().__init__()
        self.enc, self.enc_mu, self.enc_logvar = nn.Linear(d, h), nn.Linear(h, k), nn.Linear(h, k)
        self.dec, self.dec_out = nn.Linear(k, h), nn.Linear(h, d)

    def forward(self, x, eps):
        h = F.relu(self.enc(x))
        mu, logvar = self.enc_mu(h), self.enc_logvar(h)
        z = mu + F.exp(0.5 * logvar) * eps
        logits = self.dec_out(F.relu(self.dec(z)))
        rec = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
        kl = -0.5 * F.sum(1 + logvar - mu * mu - F.exp(logvar))
        return (rec + kl) / x.shape[0]


def minigen_step(model, optimizer, x, eps, update=True):
    optimizer.zero_grad()
    loss = model(x, eps)
    loss.backward()
    if update:
        optimizer.step()
    return loss.item()


# ----------------------------------------------------------------------------- NumPy by hand

def numpy_loss_and_grads(p, x, eps):
    """Forward and manual backward; p: dict of arrays named like the minigen state_dict."""
    n = x.shape[0]
    a1 = x @ p["enc.weight"].T + p["enc.bias"]
    h1 = np.maximum(a1, 0)
    mu = h1 @ p["enc_mu.weight"].T + p["enc_mu.bias"]
    logvar = h1 @ p["enc_logvar.weight"].T + p["enc_logvar.bias"]
    std = np.exp(0.5 * logvar)
    z = mu + std * eps
    a2 = z @ p["dec.weight"].T + p["dec.bias"]
    h2 = np.maximum(a2, 0)
    logits = h2 @ p["dec_out.weight"].T + p["dec_out.bias"]
    e = np.exp(-np.abs(logits))
    rec = np.sum(np.maximum(logits, 0) - logits * x + np.log1p(e))
    var = std * std
    kl = -0.5 * np.sum(1 + logvar - mu * mu - var)
    loss = (rec + kl) / n

    g = {}
    sigmoid = np.where(logits >= 0, 1, e) / (1 + e)
    d_logits = (sigmoid - x) / n
    g["dec_out.weight"], g["dec_out.bias"] = d_logits.T @ h2, d_logits.sum(0)
    d_a2 = (d_logits @ p["dec_out.weight"]) * (a2 > 0)
    g["dec.weight"], g["dec.bias"] = d_a2.T @ z, d_a2.sum(0)
    d_z = d_a2 @ p["dec.weight"]
    d_mu = d_z + mu / n
    d_logvar = d_z * eps * 0.5 * std + 0.5 * (var - 1) / n
    g["enc_mu.weight"], g["enc_mu.bias"] = d_mu.T @ h1, d_mu.sum(0)
    g["enc_logvar.weight"], g["enc_logvar.bias"] = d_logvar.T @ h1, d_logvar.sum(0)
    d_a1 = (d_mu @ p["enc_mu.weight"] + d_logvar @ p["enc_logvar.weight"]) * (a1 > 0)
    g["enc.weight"], g["enc.bias"] = d_a1.T @ x, d_a1.sum(0)
    return float(loss), g


class NumpyAdam:
    """A plain Adam loop over the parameter arrays."""

    def __init__(self, params):
        self.params, self.t = params, 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}

    def step(self, grads):
        self.t += 1
        (b1, b2), t = BETAS, self.t
        for k, p in self.params.items():
            g, m, v = grads[k], self.m[k], self.v[k]
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= LR / (1 - b1 ** t) * m / (np.sqrt(v / (1 - b2 ** t)) + EPS)


# ----------------------------------------------------------------------------- PyTorch

def torch_setup(state, x, eps, threads):
    import torch
    torch.set_num_threads(threads)
    params = {k: torch.tensor(v, requires_grad=True) for k, v in state.items()}
    optimizer = torch.optim.Adam(params.values(), lr=LR, betas=BETAS, eps=EPS)
    tx, teps = torch.from_numpy(x), torch.from_numpy(eps)
    tf = torch.nn.functional

    def step(update=True):
        optimizer.zero_grad()
        h = torch.relu(tf.linear(tx, params["enc.weight"], params["enc.bias"]))
        mu = tf.linear(h, params["enc_mu.weight"], params["enc_mu.bias"])
        logvar = tf.linear(h, params["enc_logvar.weight"], params["enc_logvar.bias"])
        z = mu + torch.exp(0.5 * logvar) * teps
        logits = tf.linear(torch.relu(tf.linear(z, params["dec.weight"], params["dec.bias"])),
                           params["dec_out.weight"], params["dec_out.bias"])
        rec = tf.binary_cross_entropy_with_logits(logits, tx, reduction="sum")
        kl = -0.5 * torch.sum(1 + logvar - mu * mu - torch.exp(logvar))
        loss = (rec + kl) / tx.shape[0]
        loss.backward()
        if update:
            optimizer.step()
        return loss.item()
    return step, torch.__version__


# ----------------------------------------------------------------------------- timing

def fixed_batch(batch):
    """The binary "images" x (batch, 784) and the noise eps (batch, 20) every implementation uses."""
    rng = np.random.default_rng(0)
    x = (rng.random((batch, SIZES["d"])) < 0.3).astype(np.float32)
    eps = rng.standard_normal((batch, SIZES["k"])).astype(np.float32)
    return x, eps


def numpy_setup(state, x, eps):
    """The hand-written step on copies of ``state``: ``step(update=True)`` returns the loss."""
    params = {k: v.copy() for k, v in state.items()}
    adam = NumpyAdam(params)

    def step(update=True):
        loss, grads = numpy_loss_and_grads(params, x, eps)
        if update:
            adam.step(grads)
        return loss
    return step


def main(args):
    x, eps = fixed_batch(args.batch)
    minigen.manual_seed(0)
    model = VAE(**SIZES)
    state = {k: np.array(v) for k, v in model.state_dict().items()}  # copies: same start for all
    optimizer = minigen.optim.Adam(model.parameters(), lr=LR, betas=BETAS, eps=EPS)
    tx, teps = minigen.tensor(x), minigen.tensor(eps)
    numpy_step = numpy_setup(state, x, eps)

    runs = {"minigen": (lambda: minigen_step(model, optimizer, tx, teps),
                        lambda: minigen_step(model, optimizer, tx, teps, update=False)),
            "numpy": (numpy_step, lambda: numpy_step(update=False))}
    # PyTorch goes last at more than one thread: once
    # torch runs, its OpenMP threads slow NumPy's OpenBLAS GEMMs by an order of magnitude on this
    # 2-core machine, so no interleaving with it.
    if args.threads == 1:
        runs.update(torch_runs(args, state, x, eps))
    results = measure(runs, args.steps, args.warmup)
    if args.threads != 1:
        results.update(measure(torch_runs(args, state, x, eps), args.steps, args.warmup))

    print(f"MLP VAE 784-512-20-512-784, batch {args.batch}, float32, {args.threads} threads, "
          f"median of {args.steps} after {args.warmup} warm-up, each timed apart)")
    print("loss at step 1 / after 3 steps (must agree): " + ", ".join(
        f"{name} {r['first']:.4f} / {r['third']:.4f}" for name, r in results.items()))
    for name, r in results.items():
        print(f"  {name:<20s} step {r['step']:6.2f} ms   forward+backward {r['fwd_bwd']:6.2f} ms   "
              f"optimizer ~{r['step'] - r['fwd_bwd']:5.2f} ms")
    ours = results["minigen"]
    for name, r in results.items():
        if name != "minigen":
            print(f"  minigen / {name:<20s} step {ours['step'] / r['step']:5.2f}x   "
                  f"forward+backward {ours['fwd_bwd'] / r['fwd_bwd']:5.2f}x")


def torch_runs(args, state, x, eps):
    """{"pytorch <version>": (step, fwd_bwd)}, or {} (said why) without PyTorch or with --no-torch."""
    if args.no_torch:
        print("(--no-torch: PyTorch skipped)")
        return {}
    try:
        torch_step, torch_version = torch_setup(state, x, eps, args.threads)
    except ImportError:
        print("(PyTorch not importable: its column is skipped)")
        return {}
    return {f"pytorch {torch_version}": (torch_step, lambda: torch_step(update=False))}


def measure(runs, steps, warmup):
    """name -> {first, third: losses; step, fwd_bwd: median ms}, for name -> (step, fwd_bwd) functions."""
    first = {name: step() for name, (step, _) in runs.items()}
    for _ in range(2):
        for step, _ in runs.values():
            step()
    third = {name: fwd_bwd() for name, (_, fwd_bwd) in runs.items()}
    # each timed apart: OpenBLAS's worker threads spin for about 0.1 s after a multi-threaded
    # GEMM (numpy's), taking a core from the next run's own threads (minigen's)
    step_s = {name: median_times({name: step}, steps, warmup)[name] for name, (step, _) in runs.items()}
    fb_s = {name: median_times({name: fwd_bwd}, steps, warmup)[name] for name, (_, fwd_bwd) in runs.items()}
    return {name: dict(first=first[name], third=third[name], step=1e3 * step_s[name],
                       fwd_bwd=1e3 * fb_s[name]) for name in runs}


if __name__ == "__main__":
    main(ARGS)
