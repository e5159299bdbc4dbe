"""Deep latent hierarchies on MNIST after a stated training time on this machine, beside the papers.

--model hvae: ``HierarchicalVAE(784, ((200, 200), (100, 100)), latent_dims=(100, 50))``, the IWAE
paper's two-stochastic-layer architecture (tanh), trained with Adam (lr 1e-3, batch 100) on the
ELBO (k = 1) or the IWAE bound (--k 50) for --minutes of wall time, dynamic binarisation; test NLL
by importance weighting with k = --iwae-k draws on the first --nll-images test images, binarised
once with seed 12345. Reference (Burda et al. 2016, Table 1, two stochastic layers, 3,280 passes):
VAE (k = 1) 85.33 nats, IWAE (k = 50) 82.90 nats.

--model dbm: ``DBM((784, 500, 1000))`` (Salakhutdinov & Hinton 2009), --pretrain-epochs of
doubled-weight greedy pretraining, then --epochs of mean-field / persistent-chain learning (the
wall time is reported); the test mean-field bound with log Z by AIS (--ais-temperatures, 100 runs). Reference: -84.62 nats (their
Table 1, 2-layer DBM, 500-1000 units, 300,000 weight updates and 20,000 AIS temperatures).

    python benchmarks/bench_hierarchies_mnist.py --model hvae --data-dir /path/to/mnist --minutes 20
    python benchmarks/bench_hierarchies_mnist.py --model dbm --data-dir /path/to/mnist --epochs 1 --pretrain-epochs 1
"""
import argparse
import time

from common import set_blas_threads  # common does not import NumPy


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["hvae", "dbm"], required=True)
    parser.add_argument("--data-dir", required=True, help="folder with the MNIST IDX files")
    parser.add_argument("--minutes", type=float, default=20.0, help="hvae: training wall time")
    parser.add_argument("--epochs", type=int, default=1, help="dbm: learning epochs")
    parser.add_argument("--pretrain-epochs", type=int, default=1, help="dbm: epochs per pretrained RBM")
    parser.add_argument("--k", type=int, default=1, help="hvae: importance samples in training (1: VAE)")
    parser.add_argument("--iwae-k", type=int, default=1000)
    parser.add_argument("--nll-images", type=int, default=1000)
    parser.add_argument("--ais-temperatures", type=int, default=10000)
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None:
    set_blas_threads(ARGS.threads)

import numpy as np  # noqa: E402

import minigen  # noqa: E402
from minigen.data import DataLoader, binarize_dynamic, load_mnist  # noqa: E402
from minigen.models import DBM, HierarchicalVAE  # noqa: E402
from minigen.optim import Adam  # noqa: E402


def load(args):
    (train, _), (test, _) = (load_mnist(args.data_dir, split) for split in ("train", "test"))
    train = train.reshape(len(train), -1)
    test = test[:args.nll_images].reshape(args.nll_images, -1)
    test_b = (np.random.default_rng(12345).random(test.shape) < test).astype(np.float32)
    return train, test_b


def run_hvae(args, train, test_b):
    minigen.manual_seed(args.seed)
    model = HierarchicalVAE(784, ((200, 200), (100, 100)), latent_dims=(100, 50))
    optimizer = Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(train, batch_size=100, shuffle=True, seed=args.seed, transform=binarize_dynamic)
    deadline, epochs, start = time.perf_counter() + 60 * args.minutes, 0, time.perf_counter()
    while time.perf_counter() < deadline:
        total, seen = 0.0, 0
        for x in loader:
            optimizer.zero_grad()
            loss = model.loss(x) if args.k == 1 else model.iwae_loss(x, args.k)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(x)
            seen += len(x)
            if time.perf_counter() > deadline:
                break
        epochs += 1
        print(f"epoch {epochs}: training bound {total / seen:.2f} nats on {seen} images "
              f"({time.perf_counter() - start:.0f} s)", flush=True)
    model.eval()
    with minigen.no_grad():
        elbo = float(model.elbo(test_b).mean().item())
        nll = -float(model.log_likelihood(test_b, n_samples=args.iwae_k, batch_size=250).mean().item())
    reference = 85.33 if args.k == 1 else 82.90
    print(f"HierarchicalVAE (k = {args.k}), {epochs} epochs in {args.minutes:.0f} min: test ELBO "
          f"{elbo:.2f}, test NLL (IWAE k = {args.iwae_k}, first {len(test_b)} images) {nll:.2f} nats; "
          f"paper {reference} nats: {nll - reference:+.2f} nats behind")


def run_dbm(args, train, test_b):
    train_b = (np.random.default_rng(args.seed).random(train.shape) < train).astype(np.float64)
    start = time.perf_counter()
    model = DBM((784, 500, 1000), learning_rate=0.005, max_iter=args.epochs, batch_size=100,
                n_chains=100, pretrain_epochs=args.pretrain_epochs, random_state=args.seed,
                verbose=True).fit(train_b)
    minutes = (time.perf_counter() - start) / 60
    log_z = model.log_partition_ais(n_temperatures=args.ais_temperatures, n_runs=100, random_state=args.seed)
    bound = float(model.score(test_b.astype(np.float64)))
    print(f"DBM 784-500-1000, {args.pretrain_epochs} pretraining + {args.epochs} learning epochs in "
          f"{minutes:.1f} min; log Z (AIS, {args.ais_temperatures} temperatures) {log_z:.2f}; test bound "
          f"{bound:.2f} nats (first {len(test_b)} images); paper -84.62: {-84.62 - bound:+.2f} nats behind")


if __name__ == "__main__":
    train, test_b = load(ARGS)
    (run_hvae if ARGS.model == "hvae" else run_dbm)(ARGS, train, test_b)
