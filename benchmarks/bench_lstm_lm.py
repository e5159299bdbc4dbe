"""LSTM language-model training throughput (characters per second) beside PyTorch CPU.

    OPENBLAS_NUM_THREADS=1 python benchmarks/bench_lstm_lm.py
    python benchmarks/bench_lstm_lm.py --hidden 256 --layers 2 --threads 2

One training step of truncated BPTT, as examples/char_lstm.py runs it: a chunk of --bptt
characters from --batch-size streams of tiny Shakespeare, embedding -> LSTM layer(s) -> linear
-> cross-entropy, backward, gradient clipping, Adam; the state carried between steps, detached.
The same model sizes and the same step in PyTorch (CPU) when torch is importable (it is never a
dependency: pip install torch). Medians of --repeats steps, the two timed in turn (minigen's step,
then PyTorch's) so that the machine's load hits both alike; throughput = batch * bptt / time.
"""
import argparse
import os

from common import median_times, set_blas_threads


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--embedding", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--bptt", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=None, help="BLAS threads (default: as set)")
    args = parser.parse_args()
    if args.threads:
        set_blas_threads(args.threads)

    import numpy as np

    import minigen
    from minigen.data import Vocabulary, load_shakespeare, stream_batches
    from minigen.models import LSTMLanguageModel
    from minigen.nn.utils import clip_grad_norm_
    from minigen.optim import Adam

    text = load_shakespeare("train")[:200_000]
    vocab = Vocabulary.build(text)
    chunks = list(stream_batches(vocab.encode(text), args.batch_size, args.bptt))
    v = len(vocab)
    minigen.manual_seed(0)
    model = LSTMLanguageModel(v, args.embedding, args.hidden, args.layers)
    opt = Adam(model.parameters(), lr=2e-3)
    ours = {"k": 0, "state": None}

    def minigen_step():
        x, y = chunks[ours["k"] % len(chunks)]
        ours["k"] += 1
        opt.zero_grad()
        loss, ours["state"] = model.stream_loss(x, y, ours["state"])
        loss.backward()
        clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    steps = {"minigen": minigen_step}
    try:
        import torch
    except ImportError:
        torch = None
        print("PyTorch is not installed: minigen only (pip install torch to compare)")
    if torch is not None:
        torch.manual_seed(0)
        threads = os.environ.get("OPENBLAS_NUM_THREADS")
        if threads:  # the same number of threads as NumPy's BLAS
            torch.set_num_threads(int(threads))

        class TorchLM(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.embedding = torch.nn.Embedding(v, args.embedding)
                self.lstm = torch.nn.LSTM(args.embedding, args.hidden, args.layers)
                self.output = torch.nn.Linear(args.hidden, v)

            def forward(self, x, state):
                h, state = self.lstm(self.embedding(x), state)
                return self.output(h), state

        tmodel = TorchLM()
        topt = torch.optim.Adam(tmodel.parameters(), lr=2e-3)
        theirs = {"k": 0, "state": None}
        tchunks = [(torch.from_numpy(np.ascontiguousarray(x.T)), torch.from_numpy(np.ascontiguousarray(y.T)))
                   for x, y in chunks]

        def torch_step():
            x, y = tchunks[theirs["k"] % len(tchunks)]
            theirs["k"] += 1
            topt.zero_grad()
            logits, state = tmodel(x, theirs["state"])
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, v), y.reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tmodel.parameters(), 5.0)
            topt.step()
            theirs["state"] = tuple(s.detach() for s in state)

        steps["PyTorch"] = torch_step

    times = median_times(steps, args.repeats, warmup=2)
    tokens = args.batch_size * args.bptt
    print(f"LSTM LM training step: vocabulary {v}, embedding {args.embedding}, hidden "
          f"{args.hidden}, {args.layers} layer(s), batch {args.batch_size} x {args.bptt} "
          f"characters; BLAS (and torch) threads {os.environ.get('OPENBLAS_NUM_THREADS', 'default')}, "
          f"load average {os.getloadavg()[0]:.1f}")
    for name, t in times.items():
        print(f"  {name:8s} {t * 1000:8.1f} ms/step  {tokens / t:10.0f} characters/s")
    if "PyTorch" in times:
        print(f"  minigen / PyTorch time: {times['minigen'] / times['PyTorch']:.2f}x")


if __name__ == "__main__":
    main()
