"""Run every CPU benchmark and print one combined markdown table: minigen beside PyTorch (where
the benchmark has it) and beside its FLOP / GEMM-only bound, ratios first.

    python benchmarks/run_all.py --quick            # a few minutes on 2 quiet cores
    python benchmarks/run_all.py                    # the benchmarks' own default sizes
    python benchmarks/run_all.py --quick --threads 1 --out out/perf_table.md
    python benchmarks/run_all.py --quick --runs 3    # median times of three runs, every run's ratio

Each benchmark runs in its own process (importing torch changes NumPy's threading, and BLAS
threads must be set before NumPy loads), its full output is echoed, and the figures the table
needs are read from it; a figure that cannot be read shows as "-" and the echoed output stays the
record. --quick shrinks repeats and sizes (see QUICK), so its absolute times are noisier and the
RBM and GMM rows run on synthetic data of fewer samples than the README's MNIST runs; the ratios
within each row are measured in one process and are what the table is for. The README's
performance table is this script's output.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

QUICK = {
    "bench_layers.py": ["--repeats", "7"],
    "bench_mlp_vae_step.py": ["--steps", "20", "--warmup", "5"],
    "bench_rbm.py": ["--n-samples", "10000", "--repeats", "3"],
    "bench_gmm.py": ["--n-samples", "5000", "--n-features", "256", "--repeats", "1"],
    "bench_pixelcnn.py": ["--skip-training", "--repeats", "1", "--n-samples", "2", "--memory-batch", "16"],
    "bench_pixelcnn_step.py": ["--repeats", "3", "--warmup", "1"],
}
FULL = {"bench_pixelcnn.py": ["--skip-training"]}
# The samplers' many small GEMMs ran several times slower on two BLAS threads than on one here
# (see bench_pixelcnn.py's docstring): the sampling benchmark always gets one.
ONE_THREAD = {"bench_pixelcnn.py"}
TORCH_THREADS = {"bench_mlp_vae_step.py", "bench_pixelcnn_step.py"}  # take --threads for torch too


def run(script, args, threads):
    """Run one benchmark script, echo its output, return the output (stdout and stderr)."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               MKL_NUM_THREADS=str(threads))
    cmd = [sys.executable, os.path.join(HERE, script)] + args
    print(f"$ {' '.join(cmd[1:])}  (BLAS threads {threads}, load average {os.getloadavg()[0]:.1f})",
          flush=True)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    print(done.stdout + done.stderr, flush=True)
    return done.stdout + done.stderr


def number(pattern, text):
    """The float that the regex group 1 of ``pattern`` captures in ``text``, or None."""
    match = re.search(pattern, text, re.MULTILINE)
    return float(match.group(1)) if match else None


def seconds_from_ms_cell(cell):
    cell = cell.strip()
    return None if cell == "-" else float(cell.split()[0]) / 1e3


def layers_rows(out):
    """bench_layers.py's markdown table -> rows, with the plain reference path's time and
    PyTorch's unfused LSTM (oneDNN off) as extras."""
    rows = []
    for line in out.splitlines():
        cells = line.split("|")[1:-1]
        if len(cells) == 9 and cells[5].strip().endswith("ms"):
            work, ours, reference, theirs, bound = (cells[0].strip(), *map(seconds_from_ms_cell, cells[5:9]))
            unfused = number(rf"^{re.escape(work)}: PyTorch with oneDNN off ([\d.]+) ms", out)
            extras = [("plain reference path", reference, "time"),
                      ("PyTorch with oneDNN off", None if unfused is None else unfused / 1e3, "time")]
            rows.append((work + " (fwd+bwd)", ours, theirs, bound, "FLOPs at peak GEMM rate", extras))
    return rows


def mlp_rows(out):
    ours = number(r"^\s+minigen\s+step\s+([\d.]+) ms", out)
    theirs = number(r"^\s+pytorch \S+\s+step\s+([\d.]+) ms", out)
    numpy_ms = number(r"^\s+numpy\s+step\s+([\d.]+) ms", out)
    ms = lambda v: None if v is None else v / 1e3  # noqa: E731
    return [("MLP-VAE step 784-512-20, batch 128, Adam", ms(ours), ms(theirs), None, "",
             [("hand-written NumPy", ms(numpy_ms), "time")])]


def rbm_rows(out):
    return [("RBM CD-1 epoch", number(r"^minigen RBM.fit \(1 epoch\)\s+([\d.]+)", out),
             number(r"^PyTorch CD-1 epoch \(its monitors\)\s+([\d.]+)", out),
             number(r"^GEMMs alone \(lower bound\)\s+([\d.]+)", out), "its GEMMs alone", [])]


def gmm_rows(out):
    match = re.search(r"^EM iteration\s+([\d.]+)s\s+([\d.]+)s", out, re.MULTILINE)
    ours, bound = (float(match.group(1)), float(match.group(2))) if match else (None, None)
    return [("GMM EM iteration, full covariances", ours, None, bound, "its GEMMs alone", [])]


def pixelcnn_rows(out):
    """Sampling: seconds per sample of each sampler, the naive one as the reference."""
    rows = []
    for model in ("PixelCNN", "GatedPixelCNN"):
        line = next((l for l in out.splitlines() if l.strip().startswith(model + " ")), "")
        rates = dict((k, float(v)) for k, v in re.findall(r"(cached|windowed|naive) ([\d.]+) samples/s", line))
        if not rates:
            continue
        best = "cached" if "cached" in rates else "windowed"
        rows.append((f"{model} sampling 28x28 binary, per sample ({best})", 1 / rates[best], None,
                     1 / rates["naive"] if "naive" in rates else None, "naive full recompute",
                     [(k, 1 / v, "rate") for k, v in rates.items()]))
    return rows


def pixelcnn_step_rows(out):
    """One training step of each model beside the same architecture in PyTorch."""
    rows = []
    sizes = re.search(r"batch (\d+), hidden (\d+), (\d+) layers, first kernel (\d+)", out)
    batch, extras = ("?", []) if sizes is None else (
        sizes.group(1), [("hidden {}, {} layers, first kernel {}".format(*sizes.groups()[1:]), None, "text")])
    for model in ("PixelCNN", "GatedPixelCNN"):
        match = re.search(rf"^{model} training step: minigen ([\d.]+) ms(?:, PyTorch ([\d.]+) ms)?", out,
                          re.MULTILINE)
        if match:
            ours, theirs = (None if v is None else float(v) / 1e3 for v in match.groups())
            rows.append((f"{model} training step (fwd+bwd+Adam), 28x28 binary, batch {batch}", ours,
                         theirs, None, "", extras))
    return rows


PARSERS = {"bench_layers.py": layers_rows, "bench_mlp_vae_step.py": mlp_rows,
           "bench_rbm.py": rbm_rows, "bench_gmm.py": gmm_rows, "bench_pixelcnn.py": pixelcnn_rows,
           "bench_pixelcnn_step.py": pixelcnn_step_rows}


def seconds_text(t):
    if t is None:
        return "-"
    return f"{t * 1e3:.2f} ms" if t < 1 else f"{t:.2f} s"


def ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}x"


def note_text(ours, extras):
    """A row's extras [(label, seconds, kind)] as text: kind 'time' prints the time and minigen's
    ratio to it, 'rate' the rate per second, 'text' the label alone; unmeasured ones are left out."""
    parts = []
    for label, t, kind in extras:
        if kind == "text":
            parts.append(label)
        elif t is not None and kind == "rate":
            parts.append(f"{label} {1 / t:.2f} samples/s")
        elif t is not None:
            parts.append(f"{label} {seconds_text(t)} ({ratio(ours, t)})")
    return ", ".join(parts)


def table(rows):
    lines = ["| work | minigen / PyTorch | minigen / bound | minigen | PyTorch | bound | bound is | notes |",
             "|---|---|---|---|---|---|---|---|"]
    for work, ours, theirs, bound, bound_name, extras, *medians in rows:
        to_theirs, to_bound, per_run = medians[0] if medians else (ratio(ours, theirs), ratio(ours, bound), "")
        note = "; ".join(part for part in (note_text(ours, extras), per_run) if part)
        lines.append(f"| {work} | {to_theirs} | {to_bound} | {seconds_text(ours)} "
                     f"| {seconds_text(theirs)} | {seconds_text(bound)} | {bound_name} | {note} |")
    return "\n".join(lines)


def median_ratio(pairs):
    """The median of a / b over the (a, b) pairs where both were measured, as text."""
    ratios = [a / b for a, b in pairs if a is not None and b is not None]
    return f"{statistics.median(ratios):.2f}x" if ratios else "-"


def combine(runs):
    """The rows of several runs -> one row per work: the median of each time (the extras' too)
    and of each ratio (a ratio is measured within one run); the notes list every run's ratio
    (minigen / PyTorch, else minigen / bound)."""
    if len(runs) == 1:
        return runs[0]
    by_work = {}
    for rows in runs:
        for row in rows:
            by_work.setdefault(row[0], []).append(row)
    combined = []
    for work, same in by_work.items():
        times = [[row[k] for row in same if row[k] is not None] for k in (1, 2, 3)]
        ours, theirs, bound = (statistics.median(t) if t else None for t in times)
        per_run = ", ".join(ratio(row[1], row[2] if row[2] is not None else row[3]) for row in same)
        extras = []
        for label, _, kind in same[0][5]:
            measured = [t for row in same for name, t, _ in row[5] if name == label and t is not None]
            extras.append((label, statistics.median(measured) if measured else None, kind))
        medians = tuple(median_ratio([(row[1], row[k]) for row in same]) for k in (2, 3))
        combined.append((work, ours, theirs, bound, same[0][4], extras,
                         (*medians, f"ratio per run: {per_run}")))
    return combined


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes and few repeats")
    parser.add_argument("--threads", type=int, default=2, help="BLAS / torch threads per benchmark")
    parser.add_argument("--runs", type=int, default=1,
                        help="run the whole set this many times; the table shows median times")
    parser.add_argument("--out", default=None, help="also write the markdown table to this file")
    args = parser.parse_args()
    settings = QUICK if args.quick else FULL
    load_start = os.getloadavg()[0]
    runs = []
    for _ in range(args.runs):
        rows = []
        for script, parse in PARSERS.items():
            threads = ["--threads", str(args.threads)] if script in TORCH_THREADS else []
            rows += parse(run(script, settings.get(script, []) + threads,
                              1 if script in ONE_THREAD else args.threads))
        runs.append(rows)
    medians = f", medians of {args.runs} runs of the whole set" if args.runs > 1 else ""
    text = (f"{'Quick' if args.quick else 'Full'} run, {args.threads} BLAS/torch threads "
            f"(sampling: 1){medians}, "
            f"{os.cpu_count()} CPUs, load average {load_start:.1f} at the start and "
            f"{os.getloadavg()[0]:.1f} at the end (`python benchmarks/run_all.py"
            f"{' --quick' if args.quick else ''} --threads {args.threads}"
            f"{f' --runs {args.runs}' if args.runs > 1 else ''}`):\n\n" + table(combine(runs)))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
