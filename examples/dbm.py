"""Train a two-hidden-layer deep Boltzmann machine on the digits; compare its test log-likelihood
bound with an RBM's and a DBN's on the shared held-out split.

    python examples/dbm.py                        # bundled 8x8 digits, a few minutes on 2 cores
    python examples/dbm.py --epochs 300 --hidden 200 100

All three models are trained on the training digits binarised once (x ~ Bernoulli(intensity),
seed --seed) and scored on the shared held-out split binarised once (common.binarize_test), in
nats per image:
  RBM   log p(v) = -F(v) - log Z exactly given log Z, log Z by AIS
  DBN   the layer-wise variational lower bound (Monte Carlo), top RBM's log Z by AIS
  DBM   the mean-field lower bound, log Z by AIS on the DBM with h1 summed out
The two bounds are lower bounds given their log Z; AIS underestimates log Z on average, which makes
all three figures slightly optimistic (the tests check AIS against enumeration on tiny models).

Measured (default flags, 2 cores, fifth session): DBM trained in 14 s; test log-likelihood per
image RBM -23.00 (exact given log Z), DBN -23.79 (bound), DBM -24.52 (mean-field bound; the DBM's
step size falls linearly to 0, learning_rate_schedule='linear'). On 8x8 digits
with 1,500 training images the DBM's bound does not beat the RBM: the bound's slack (mean field
is unimodal) and the short training cost more than the second layer gains here.

Writes to --out (default out/dbm): samples.png (binarised test digits beside DBM, RBM and DBN
samples, with their p(v | h) shown as grey levels).
"""
import time

import numpy as np

from minigen.models import DBM, DBN, RBM

from common import (binarize_test, example_parser, load_images, parse_args, positive_float,
                    positive_int, usage_error)
from image_figures import save_panels


def main():
    parser = example_parser(__doc__, dataset=False)
    parser.add_argument("--epochs", type=positive_int, default=100, help="DBM learning epochs")
    parser.add_argument("--pretrain-epochs", type=positive_int, default=50)
    parser.add_argument("--hidden", type=positive_int, nargs=2, default=[100, 50], metavar=("H1", "H2"))
    parser.add_argument("--learning-rate", type=positive_float, default=0.01)
    parser.add_argument("--batch-size", type=positive_int, default=20)
    parser.add_argument("--n-gibbs", type=positive_int, default=1000, help="Gibbs sweeps per sample")
    parser.add_argument("--ais-temperatures", type=positive_int, default=10000)
    parser.add_argument("--ais-runs", type=positive_int, default=100)
    parser.set_defaults(dataset="digits", data_dir=None)
    args = parse_args(parser, "dbm")
    if args.ais_temperatures < 2:
        usage_error(f"--ais-temperatures must be >= 2, got {args.ais_temperatures}")
    train, _, test, _ = load_images(args)
    flat = lambda x: x.reshape(len(x), -1).astype(np.float64)  # noqa: E731
    rng = np.random.default_rng(args.seed)
    train_b = (rng.random(train.shape) < train).astype(np.float64).reshape(len(train), -1)
    test_b = flat(binarize_test(test))
    D, (H1, H2) = train_b.shape[1], args.hidden
    print(f"digits: {len(train_b)} binarised training images, {len(test_b)} binarised test images, "
          f"DBM {D}-{H1}-{H2}")

    start = time.perf_counter()
    dbm = DBM((D, H1, H2), learning_rate=args.learning_rate, max_iter=args.epochs,
              batch_size=args.batch_size, n_chains=100, pretrain_epochs=args.pretrain_epochs,
              n_gibbs=args.n_gibbs, random_state=args.seed, verbose=True).fit(train_b)
    dbm_seconds = time.perf_counter() - start
    rbm = RBM(H1, max_iter=args.pretrain_epochs + args.epochs, batch_size=args.batch_size,
              learning_rate=0.05, momentum=0.5, weight_decay=1e-3, n_gibbs=args.n_gibbs,
              random_state=args.seed, dtype="float64", verbose=True).fit(train_b)
    dbn = DBN((H1, H2), max_iter=args.pretrain_epochs + args.epochs, batch_size=args.batch_size,
              learning_rate=0.05, momentum=0.5, weight_decay=1e-3, n_gibbs=args.n_gibbs,
              random_state=args.seed, dtype="float64", verbose=True).fit(train_b)

    ais = dict(n_runs=args.ais_runs, random_state=args.seed)
    dbm.log_partition_ais(n_temperatures=args.ais_temperatures, **ais)
    rbm.log_partition_ais(n_betas=args.ais_temperatures, **ais)
    dbn.rbms_[-1].log_partition_ais(n_betas=args.ais_temperatures, **ais)
    scores = {"RBM (exact given log Z)": rbm.score(test_b),
              "DBN (variational bound)": dbn.score(test_b),
              "DBM (mean-field bound)": dbm.score(test_b)}
    print(f"DBM trained in {dbm_seconds:.1f} s; log Z by AIS ({args.ais_temperatures} temperatures, "
          f"{args.ais_runs} runs) = {dbm.log_partition_ais_:.2f}")
    print("test log-likelihood per image on the shared held-out split (nats, higher is better):")
    for name, value in scores.items():
        print(f"  {name:<26s} {value:8.2f}")

    n = 30
    panels = [("binarised test digits", test_b[:n].reshape(n, 1, 8, 8))]
    for name, model in (("DBM", dbm), ("RBM", rbm), ("DBN", dbn)):
        probs = model.sample(n, random_state=args.seed, return_probabilities=True)
        panels.append((f"{name} samples, p(v | h)", np.asarray(probs).reshape(n, 1, 8, 8)))
    save_panels(panels, f"{args.out}/samples.png",
                f"Samples after {args.n_gibbs} Gibbs sweeps; test log-likelihood (nats): " +
                ", ".join(f"{k.split()[0]} {v:.1f}" for k, v in scores.items()), ncol=6)


if __name__ == "__main__":
    main()
