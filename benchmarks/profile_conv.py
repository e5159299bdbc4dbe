"""The pieces of minigen's two convolution paths, timed one by one in one process (float32).

For the benchmark rows of bench_layers.py (conv2d 64x32x14x14 -> 64, 3x3, pad 1; conv_transpose2d
32 -> 64, 4x4, stride 2), each copy and each GEMM of the plain im2col reference and of the fast
path (minigen.ops.conv) is run over the whole batch the way the op runs it (chunk by chunk for
the fast path), interleaved, and the median *CPU time* of this process is printed: on a shared
machine it counts what this process did, not the time it waited for a core. Then forward +
backward of both paths and of PyTorch (when installed). The numbers quoted in
minigen/ops/conv.py's docstring come from here:

    OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python benchmarks/profile_conv.py [--repeats 9]
"""
import argparse
import statistics
import time

import numpy as np

import minigen
from minigen.ops import conv as C


def median_cpu_ms(fns, repeats):
    """{name: median CPU milliseconds of this process}, the functions run in turn each round."""
    for fn in fns.values():
        fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.process_time()
            fn()
            times[name].append(time.process_time() - start)
    return {name: 1e3 * statistics.median(t) for name, t in times.items()}


def over_chunks(n, per_sample, piece):
    """A function running ``piece(s)`` for every chunk s of the fast path's chunking."""
    return lambda: [piece(s) for s in C.sample_chunks(n, per_sample)]


def conv2d_pieces(x, w, g):
    n, c = x.shape[:2]
    o = w.shape[0]
    w2 = w.reshape(o, -1)
    geom = C.WindowGeometry("conv2d", x.shape[2:], w.shape[2:], 1, 1, 1)
    cols = C.im2col(x, geom)
    g2 = C.as_columns(g)
    y2 = w2 @ cols
    corr = C.Correlation.of("conv2d", geom)
    per_x = corr.column_bytes(c, x.itemsize)
    fast_cols = {s.start: corr.columns(x[s]).copy() for s in C.sample_chunks(n, per_x)}
    y = np.empty((n, o) + geom.out_size, np.float32)
    adjoint = C.Adjoint(geom, w)
    phase = adjoint.phases[0].correlation
    per_g = adjoint.column_bytes(g.itemsize)
    g_cols = {s.start: phase.columns(g[s]).copy() for s in C.sample_chunks(n, per_g)}
    gx = np.empty(x.shape, np.float32)
    return {
        "reference: im2col (padded copy + 9 window copies)": lambda: C.im2col(x, geom),
        "reference: GEMM W2 @ cols": lambda: w2 @ cols,
        "reference: from_columns (transpose y to NCHW)": lambda: C.from_columns(y2, n, geom.out_size, None),
        "reference: as_columns (transpose g)": lambda: C.as_columns(g),
        "reference: GEMM dW = g2 @ cols^T": lambda: g2 @ cols.T,
        "reference: dx = col2im(W2^T @ g2), chunked": lambda: C.conv_adjoint(w2, g2, geom, c),
        "fast: planes + wide-row columns of x": over_chunks(n, per_x, lambda s: corr.columns(x[s])),
        "fast: GEMM + crop to NCHW": over_chunks(n, per_x, lambda s: corr.product(w2, fast_cols[s.start],
                                                                                 y[s])),
        "fast: GEMM dW (g on wide rows)": over_chunks(n, per_x, lambda s: corr.weight_product(g[s],
                                                                                            fast_cols[s.start])),
        "fast: columns of g (adjoint)": over_chunks(n, per_g, lambda s: phase.columns(g[s])),
        "fast: adjoint GEMM + crop": over_chunks(n, per_g, lambda s: phase.product(adjoint.weights[0],
                                                                                  g_cols[s.start], gx[s])),
    }


def conv_transpose2d_pieces(x, w, g):
    n = x.shape[0]
    geom = C.transposed_geometry(x.shape[2:], w.shape[2:], 2, 1, 0, 1)
    adjoint = C.Adjoint(geom, w)
    per_x = adjoint.column_bytes(x.itemsize)
    y = np.empty((n, w.shape[1]) + geom.in_size, np.float32)
    phase_cols = {(s.start, i): p.correlation.columns(x[s]).copy() for s in C.sample_chunks(n, per_x)
                  for i, p in enumerate(adjoint.phases)}
    corr = C.Correlation.of("conv_transpose2d", geom)
    per_g = corr.column_bytes(g.shape[1], g.itemsize)
    w2 = w.reshape(w.shape[0], -1)
    g_cols = {s.start: corr.columns(g[s]).copy() for s in C.sample_chunks(n, per_g)}
    gx = np.empty(x.shape, np.float32)

    def phase_products(s):
        for i, (p, pw) in enumerate(zip(adjoint.phases, adjoint.weights)):
            p.correlation.product(pw, phase_cols[s.start, i], y[s][:, :, p.rows, p.cols])
    return {
        "fast fwd: 4 phases' columns of x": over_chunks(n, per_x, lambda s: [p.correlation.columns(x[s])
                                                                            for p in adjoint.phases]),
        "fast fwd: 4 phase GEMMs + strided writes": over_chunks(n, per_x, phase_products),
        "fast bwd: polyphase planes of g": over_chunks(n, per_g, lambda s: corr.planes(g[s])),
        "fast bwd: planes + columns of g": over_chunks(n, per_g, lambda s: corr.columns(g[s])),
        "fast bwd: GEMM dx + crop": over_chunks(n, per_g, lambda s: corr.product(w2, g_cols[s.start], gx[s])),
        "fast bwd: GEMM dW": over_chunks(n, per_g, lambda s: corr.weight_product(x[s], g_cols[s.start])),
    }


def whole(x, w, g, fast, reference, torch_fn):
    tensors = [minigen.tensor(a, requires_grad=True) for a in (x, w)]
    def exact_rows():
        C.WIDE_ROWS = False
        try:
            fast(*tensors).backward(g)
        finally:
            C.WIDE_ROWS = True
    fns = {"fast path, forward + backward": lambda: fast(*tensors).backward(g),
           "fast path with exact rows (WIDE_ROWS = False), forward + backward": exact_rows,
           "plain reference, forward + backward": lambda: reference(*tensors).backward(g)}
    try:
        import torch
    except ImportError:
        return fns
    torch.set_num_threads(1)
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    tg = torch.tensor(g)
    fns["PyTorch, forward + backward"] = lambda: torch_fn(torch)(tx, tw).backward(tg)
    return fns


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 32, 14, 14)).astype(np.float32)
    w = (0.1 * rng.standard_normal((64, 32, 3, 3))).astype(np.float32)
    g = rng.standard_normal((64, 64, 14, 14)).astype(np.float32)
    wt = (0.1 * rng.standard_normal((32, 64, 4, 4))).astype(np.float32)
    gt = rng.standard_normal((64, 64, 28, 28)).astype(np.float32)
    sections = [
        ("conv2d 64x32x14x14 -> 64, 3x3, pad 1", {
            **conv2d_pieces(x, w, g),
            **whole(x, w, g, lambda a, b: C.conv2d(a, b, None, 1, 1),
                    lambda a, b: C.conv2d_reference(a, b, None, 1, 1),
                    lambda torch: lambda a, b: torch.nn.functional.conv2d(a, b, None, 1, 1))}),
        ("conv_transpose2d 32 -> 64, 4x4, stride 2", {
            **conv_transpose2d_pieces(x, wt, gt),
            **whole(x, wt, gt, lambda a, b: C.conv_transpose2d(a, b, None, 2, 1),
                    lambda a, b: C.conv_transpose2d_reference(a, b, None, 2, 1),
                    lambda torch: lambda a, b: torch.nn.functional.conv_transpose2d(a, b, None, 2, 1))}),
    ]
    for title, fns in sections:
        print(f"\n{title}: median CPU ms of {args.repeats} interleaved rounds")
        for name, ms in median_cpu_ms(fns, args.repeats).items():
            print(f"  {ms:8.2f}  {name}")


if __name__ == "__main__":
    main()
