"""Layer speed beside its GEMM-only lower bound, all measured in this run (float32, NumPy).

For each layer, forward + backward through minigen is timed and printed beside
  * "GEMMs alone": the same matrix products (same shapes and layouts) timed on their own, and
  * "FLOP bound": the layer's matmul FLOPs at the peak GEMM rate measured at start-up,
so the overhead (copies, im2col/col2im, Python) is the ratio, and beside PyTorch's time for the
same computation when torch happens to be installed. Where minigen has a fast path (conv2d and
conv_transpose2d: chunked wide-row columns and output phases, minigen.ops.conv; the masked
convolutions, which skip the taps their mask zeroes) its plain reference path is timed beside it.
PyTorch's CPU LSTM runs oneDNN's fused RNN kernel (one compiled kernel for the whole sequence);
its own unfused path, a GEMM and elementwise kernels per step as minigen's, is timed beside it
with oneDNN switched off (``torch.backends.mkldnn.flags(enabled=False)``).
Also prints the peak memory (tracemalloc) of one forward+backward of the two convolutions, fast
path and plain reference. ``measure`` and ``table`` are reused by run_all.py.

    python benchmarks/bench_layers.py [--repeats 7]
"""
import argparse
import os
import tracemalloc
import warnings

import numpy as np

import minigen
import minigen.functional as F
import minigen.nn as nn
from minigen.ops import conv as conv_ops

from common import import_torch, median_times


def gemm_rate(repeats):
    """Peak float32 GEMM rate of this machine in GFLOP/s (a 1024^3 product)."""
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    return 2 * 1024 ** 3 / median_times({"gemm": lambda: a @ a}, repeats, warmup=1)["gemm"] / 1e9


def gemm_job(products, rng):
    """A function running the products [(m, k, n, transpose_b), ...] on random float32 arrays.

    transpose_b: the right operand is stored (n, k) and used transposed, as in A @ B.T.
    Returns (function, total FLOPs).
    """
    arrays = [(rng.standard_normal((m, k)).astype(np.float32),
               rng.standard_normal((n, k) if t else (k, n)).astype(np.float32), t)
              for m, k, n, t in products]

    def run():
        for a, b, transpose_b in arrays:
            a @ (b.T if transpose_b else b)
    flops = sum(2 * m * k * n for m, k, n, _ in products)
    return run, flops


def conv_products(geom, n, c, o):
    """The GEMMs of minigen's fast conv2d forward + backward on the window ``geom`` (C -> O
    channels, N = n), read off its own objects: W2 @ cols and g_wide @ cols^T on the wide rows
    of ``Correlation``, and one product per output phase of the adjoint (``Phase``).
    conv_transpose2d (its input has O channels, its output C) runs the very same products."""
    corr = conv_ops.Correlation.of("conv2d", geom)
    k, rows = c * geom.kernel[0] * geom.kernel[1], n * corr.out_size[0] * corr.plane[1]
    products = [(o, k, rows, False), (o, rows, k, True)]
    for rho in np.ndindex(*geom.stride):
        phase = conv_ops.Phase(geom, rho).correlation
        if phase is not None:
            taps = phase.window.kernel[0] * phase.window.kernel[1]
            products.append((c, o * taps, n * phase.out_size[0] * phase.plane[1], False))
    return products


def fwd_bwd(make_output, rng):
    """forward + backward with a fixed random upstream gradient."""
    def run():
        y = make_output()
        y.backward(grad)
    y = make_output()
    grad = rng.standard_normal(y.shape).astype(np.float32)
    return run


def torch_fwd_bwd(torch, make_output):
    """The same in PyTorch (CPU), when it is installed (it is never a dependency)."""
    if torch is None:
        return None
    grad = torch.randn(make_output().shape)
    return lambda: make_output().backward(grad)


def conv_case(rng, torch):
    """conv2d: N=64, 32 -> 64 channels, 14x14, 3x3, padding 1; the plain im2col path beside it."""
    x = minigen.tensor(rng.standard_normal((64, 32, 14, 14)), dtype="float32", requires_grad=True)
    conv = nn.Conv2d(32, 64, 3, padding=1)
    theirs = None
    if torch is not None:
        tx, tconv = torch.tensor(x.numpy(), requires_grad=True), torch.nn.Conv2d(32, 64, 3, padding=1)
        theirs = torch_fwd_bwd(torch, lambda: tconv(tx))
    geom = conv_ops.WindowGeometry("conv2d", (14, 14), 3, 1, 1, 1)
    return dict(run=fwd_bwd(lambda: conv(x), rng),
                reference=fwd_bwd(lambda: conv_ops.conv2d_reference(x, conv.weight, conv.bias, 1, 1), rng),
                products=conv_products(geom, 64, 32, 64), torch=theirs)


def conv_transpose_case(rng, torch):
    """conv_transpose2d on the same sizes, 4x4 stride 2 padding 1 (14x14 -> 28x28); the plain
    path (one GEMM and a col2im scatter) beside it."""
    x = minigen.tensor(rng.standard_normal((64, 32, 14, 14)), dtype="float32", requires_grad=True)
    deconv = nn.ConvTranspose2d(32, 64, 4, stride=2, padding=1)
    # the adjoint of a conv2d 64 -> 32 channels whose output grid is the 14x14 input
    products = conv_products(conv_ops.transposed_geometry((14, 14), 4, 2, 1, 0, 1), 64, 64, 32)
    theirs = None
    if torch is not None:
        tx = torch.tensor(x.numpy(), requires_grad=True)
        tdeconv = torch.nn.ConvTranspose2d(32, 64, 4, stride=2, padding=1)
        theirs = torch_fwd_bwd(torch, lambda: tdeconv(tx))
    reference = fwd_bwd(lambda: conv_ops.conv_transpose2d_reference(x, deconv.weight, deconv.bias, 2, 1), rng)
    return dict(run=fwd_bwd(lambda: deconv(x), rng), reference=reference, products=products, torch=theirs)


def masked_stack_case(rng, torch):
    """PixelCNN stack on 32x1x28x28: type A 7x7 (1 -> 64), four type B 3x3 (64 -> 64), relu between.

    minigen's fast path (F.masked_conv2d, the live taps only) beside its plain reference
    (F.conv2d with the masked weight, every tap); the FLOP bound counts the live taps only
    (24 of 49 for the 7x7 type A, 5 of 9 for each 3x3 type B), on the output pixels.
    """
    images = minigen.tensor(rng.random((32, 1, 28, 28)), dtype="float32")
    layers = [nn.MaskedConv2d(1, 64, 7, "A")] + [nn.MaskedConv2d(64, 64, 3, "B") for _ in range(4)]

    def stack(conv):
        h = images
        for i, m in enumerate(layers):
            h = conv(h if i == 0 else F.relu(h), m)
        return h

    def fast(h, m):
        return F.masked_conv2d(h, m.weight, m.mask, m.bias, m.padding, m.dilation)

    def reference(h, m):
        return F.conv2d(h, m.weight * m.mask, m.bias, 1, m.padding, m.dilation)
    # the fast path's GEMMs (ops/masked_conv.py), L = 32*Hp*Wp - max shift columns: forward
    # (O, T*C) @ (T*C, L); with an input gradient dx (C, T*O) @ (T*O, L) and dW (T*O, L) @ (L, C),
    # without one (the images) dW (O, L) @ (L, T*C)
    products, live_flops = [], 0
    for i, m in enumerate(layers):
        taps, c, o = len(F.live_taps(m.mask)), m.in_channels, m.out_channels
        (kh, kw), (ph, pw) = m.kernel_size, m.padding
        hp, wp = 28 + 2 * ph, 28 + 2 * pw
        length = 32 * hp * wp - ((kh - 1) * wp + kw - 1)
        products += [(o, taps * c, length, False)]
        products += ([(c, taps * o, length, False), (taps * o, length, c, True)] if i
                     else [(o, length, taps * c, True)])
        live_flops += 2 * 32 * 28 * 28 * taps * c * 64 * (3 if i else 2)
    theirs = None
    if torch is not None:
        timages = torch.tensor(images.numpy())
        tlayers = [(torch.tensor(m.weight.numpy(), requires_grad=True), torch.tensor(m.mask),
                    torch.tensor(m.bias.numpy(), requires_grad=True), m.padding) for m in layers]

        def tstack():
            h = timages
            for i, (w, mask, b, pad) in enumerate(tlayers):
                h = torch.nn.functional.conv2d(h if i == 0 else torch.relu(h), w * mask, b, padding=pad)
            return h
        theirs = torch_fwd_bwd(torch, tstack)
    return dict(run=fwd_bwd(lambda: stack(fast), rng), reference=fwd_bwd(lambda: stack(reference), rng),
                products=products, flops=live_flops, torch=theirs)


def lstm_case(rng, torch):
    """LSTM: input 64, hidden 128, 50 steps, batch 32 (one layer)."""
    t_len, batch, i_size, hidden = 50, 32, 64, 128
    lstm = nn.LSTM(i_size, hidden)
    seq = minigen.tensor(rng.standard_normal((t_len, batch, i_size)), dtype="float32", requires_grad=True)
    tn, h4 = t_len * batch, 4 * hidden
    products = [(tn, i_size, h4, True), (tn, h4, i_size, False), (h4, tn, i_size, False),
                (h4, tn, hidden, False)]  # input projection, its two gradients, dW_hh
    products += [(batch, hidden, h4, True), (batch, h4, hidden, False)] * t_len  # per step
    theirs = unfused = None
    if torch is not None:
        tseq, tlstm = torch.tensor(seq.numpy(), requires_grad=True), torch.nn.LSTM(i_size, hidden)
        theirs = torch_fwd_bwd(torch, lambda: tlstm(tseq)[0])

        def unfused():  # ATen's own LSTM: a GEMM and elementwise kernels per step, as minigen's
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="TF32")  # about Intel GPUs, irrelevant
                with torch.backends.mkldnn.flags(enabled=False):
                    theirs()
    return dict(run=fwd_bwd(lambda: lstm(seq)[0], rng), products=products, torch=theirs,
                torch_unfused=unfused)


CASES = [("conv2d 64x32x14x14 -> 64, 3x3, pad 1", conv_case),
         ("conv_transpose2d 32 -> 64, 4x4, stride 2", conv_transpose_case),
         ("masked-conv stack, 5 x 64 ch, 32x1x28x28", masked_stack_case),
         ("LSTM 64 -> 128, 50 steps, batch 32", lstm_case)]


def ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def milliseconds(t):
    return "-" if t is None else f"{t:.2f} ms"


def measure(repeats, torch, report_memory=True):
    """(GEMM rate in GFLOP/s, rows): one row per case, times in ms, None where not measured.

    Row keys: work, minigen, reference (the plain path, where a faster one replaces it), gemms
    (the same GEMMs timed alone), bound (the FLOPs at the peak GEMM rate), torch.
    """
    rng = np.random.default_rng(0)
    minigen.manual_seed(0)
    rate = gemm_rate(repeats)
    rows = []
    for name, make_case in CASES:
        case = make_case(rng, torch)
        gemms, flops = gemm_job(case["products"], rng)
        fns = {"gemms": gemms}
        if case.get("reference") is not None:
            fns["reference"] = case["reference"]
        # OpenBLAS's worker threads spin for about 0.1 s after each multi-threaded GEMM (the
        # reference's and the bare GEMMs'), taking a core from minigen's own threads, which run
        # the fast path with the BLAS at one thread each: timed apart, not interleaved
        ms = {k: 1e3 * t for k, t in median_times(fns, repeats, warmup=1).items()}
        ms.update({k: 1e3 * t for k, t in median_times({"minigen": case["run"]}, repeats, warmup=1).items()})
        # PyTorch's worker threads keep spinning after each call: timed apart, not interleaved
        torch_fns = {k: case[k] for k in ("torch", "torch_unfused") if case.get(k)}
        torch_ms = {k: 1e3 * t for k, t in median_times(torch_fns, repeats, warmup=1).items()} \
            if torch_fns else {}
        rows.append(dict(work=name, minigen=ms["minigen"], reference=ms.get("reference"),
                         gemms=ms["gemms"], bound=case.get("flops", flops) / rate / 1e6,
                         torch=torch_ms.get("torch"), torch_unfused=torch_ms.get("torch_unfused")))
        if report_memory and make_case in (conv_case, conv_transpose_case):
            peaks = [peak_mib(case[path]) for path in ("run", "reference")]
            print(f"peak memory of one {name.split()[0]} forward+backward (tracemalloc): {peaks[0]:.1f} MiB"
                  f" fast path, {peaks[1]:.1f} MiB plain reference"
                  + (f" (whose saved im2col buffer is {32 * 9 * 64 * 14 * 14 * 4 / 2 ** 20:.1f} MiB)"
                     if make_case is conv_case else ""))
    return rate, rows


def peak_mib(run):
    """Peak traced memory (MiB) of one call of ``run``."""
    tracemalloc.start()
    run()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2 ** 20


def table(rows):
    """The rows as a markdown table, ratios first."""
    lines = ["| work | minigen / PyTorch | minigen / FLOP bound | minigen / its GEMMs | minigen / "
             "plain reference | minigen | plain reference | PyTorch | FLOP bound |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['work']} | {ratio(r['minigen'], r['torch'])} | {ratio(r['minigen'], r['bound'])} "
                     f"| {ratio(r['minigen'], r['gemms'])} | {ratio(r['minigen'], r['reference'])} "
                     f"| {milliseconds(r['minigen'])} | {milliseconds(r['reference'])} "
                     f"| {milliseconds(r['torch'])} | {milliseconds(r['bound'])} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch = import_torch()
    rate, rows = measure(args.repeats, torch)
    print(f"peak float32 GEMM rate (1024^3): {rate:.1f} GFLOP/s; forward + backward, medians of "
          f"{args.repeats} runs" + ("" if torch is None else
                                    f"; PyTorch {torch.__version__} with {torch.get_num_threads()} threads")
          + f"; load average {os.getloadavg()[0]:.1f}\n")
    print(table(rows))
    for r in rows:
        if r["torch_unfused"] is not None:
            print(f"\n{r['work']}: PyTorch with oneDNN off {r['torch_unfused']:.2f} ms "
                  f"(minigen / that: {ratio(r['minigen'], r['torch_unfused'])}); PyTorch's default "
                  f"{milliseconds(r['torch'])} is oneDNN's fused RNN kernel (aten::mkldnn_rnn_layer)")


if __name__ == "__main__":
    main()
