"""Sentence VAE (Bowman et al. 2016) on short lines of tiny Shakespeare, beside an LSTM language model.

    OPENBLAS_NUM_THREADS=1 python examples/sentence_vae.py            # a few minutes on 2 cores
    python examples/sentence_vae.py --epochs 30 --latent 32 --word-dropout 0.5

Data: the verse lines (minigen.data.load_shakespeare_lines) of 3 to --max-words words and
punctuation marks, lower-cased; train/valid/test lines come from the corpus' fixed split by
position; the vocabulary is the training words seen at least --min-count times (others: <unk>).

Training: the annealed negative ELBO, beta(step) * KL - E_q log p(x | z), beta rising from 0 to
1 over --warmup steps (--schedule sigmoid or linear, minigen.models.kl_annealing), with word
dropout --word-dropout (Bowman et al. Sec. 3.1-3.2). The KL per sentence is tracked, so a
posterior collapse (KL -> 0) shows in the curves. An LSTMLanguageModel of the decoder's size is
trained on the same lines for the same number of steps (unless --no-baseline).

Reported, on the test lines, nats per sentence: the VAE's ELBO and its KL, its importance-weighted
log-likelihood estimate L_k (k = --iwae-samples), and the language model's exact -log p(x).
Writes to --out: curves.png (KL per sentence and KL weight; reconstruction term), samples.txt
(greedy decodings of z ~ p(z), reconstructions, homotopies between pairs of test lines).

Measured here (2 shared cores, load average 10-18, OPENBLAS_NUM_THREADS=1), the defaults: 7084
training lines, 4393 words, 555 steps in 1430 s. The posterior nearly collapsed once beta neared 1:
the KL per sentence rose to ~18 nats while beta was ~0, then fell to 0.14 nats (test); test ELBO
-33.07 nats per sentence, IWAE (k=100) -33.01, the LSTM language model -32.45 (exact). As in
Bowman et al. (Table 2), the VAE's likelihood is a little below the language model's; with so
small a KL the decoder barely uses z, so greedy decodings of different z are alike.
With --epochs 4 --word-dropout 0.5 --warmup 444 (beta rising over all steps), 263 s: KL 0.96 nats
per sentence on the test lines, ELBO -34.02, IWAE -33.88; the greedy decodings of prior samples
and the homotopies then vary a little ("i , my lord ." / "what , my lord ." / "and <unk> ...").
"""
import os
import time

import numpy as np

import minigen
from minigen.data import Vocabulary, load_shakespeare_lines, pad_sequences, sequence_batches
from minigen.models import LSTMLanguageModel, SentenceVAE, kl_annealing
from minigen.nn.utils import clip_grad_norm_
from minigen.optim import Adam
from minigen.utils import progress

from common import (example_parser, import_pyplot, nonnegative_float, parse_args, positive_float,
                    positive_int, save_figure)


def short_lines(split, vocab, max_words):
    """The lines of ``split`` with 3..max_words tokens, as id arrays."""
    return [ids for ids in (vocab.encode(line) for line in load_shakespeare_lines(split))
            if 3 <= len(ids) <= max_words]


def mean_over(batches, fn):
    """Mean of fn(tokens, lengths) (a per-sentence array) over all batches, without gradients."""
    with minigen.no_grad():
        return np.concatenate([minigen.backend.to_numpy(fn(x, n)) for x, n in batches]).mean(axis=0)


def main():
    parser = example_parser(__doc__, dataset=False)
    parser.add_argument("--epochs", type=positive_int, default=5)
    parser.add_argument("--max-words", type=positive_int, default=8)
    parser.add_argument("--min-count", type=positive_int, default=3)
    parser.add_argument("--embedding", type=positive_int, default=64)
    parser.add_argument("--hidden", type=positive_int, default=128)
    parser.add_argument("--latent", type=positive_int, default=16)
    parser.add_argument("--word-dropout", type=nonnegative_float, default=0.3)
    parser.add_argument("--schedule", choices=["sigmoid", "linear"], default="sigmoid")
    parser.add_argument("--warmup", type=positive_int, default=None,
                        help="KL annealing steps (default: half of all steps)")
    parser.add_argument("--batch-size", type=positive_int, default=64)
    parser.add_argument("--lr", type=positive_float, default=2e-3)
    parser.add_argument("--iwae-samples", type=positive_int, default=100)
    parser.add_argument("--no-baseline", action="store_true", help="skip the LSTM language model")
    args = parse_args(parser, "sentence_vae")
    if args.word_dropout > 1:
        parser.error(f"--word-dropout must be at most 1, got {args.word_dropout}")
    minigen.manual_seed(args.seed)

    vocab = Vocabulary.build(load_shakespeare_lines("train"), level="word", min_count=args.min_count, lowercase=True)
    train, valid, test = (short_lines(s, vocab, args.max_words) for s in ("train", "valid", "test"))
    unk = np.mean(np.concatenate(test) == Vocabulary.UNK_ID)
    print(f"tiny Shakespeare lines of 3-{args.max_words} tokens: {len(train)} train / {len(valid)} "
          f"valid / {len(test)} test; {len(vocab)} words (seen >= {args.min_count} times); "
          f"{unk:.1%} of the test tokens are <unk>")
    steps_per_epoch = -(-len(train) // args.batch_size)
    total_steps = args.epochs * steps_per_epoch
    warmup = args.warmup or max(1, total_steps // 2)

    model = SentenceVAE(len(vocab), args.embedding, args.hidden, args.latent,
                        args.word_dropout).to(args.device)
    print(f"SentenceVAE({model.extra_repr()}): {sum(p.size for p in model.parameters())} parameters; "
          f"KL annealing {args.schedule} over {warmup} of {total_steps} steps")
    opt = Adam(model.parameters(), lr=args.lr)
    curve = []  # (step, kl weight, KL per sentence, -reconstruction per sentence)
    rng = np.random.default_rng(args.seed)
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        model.train()
        bar = progress(sequence_batches(train, args.batch_size, shuffle=True, generator=rng),
                       desc=f"VAE epoch {epoch}/{args.epochs}", total=steps_per_epoch)
        for tokens, lengths in bar:
            beta = kl_annealing(len(curve), args.schedule, warmup)
            opt.zero_grad()
            terms = model.elbo(tokens, lengths)
            loss = model.objective(terms, beta)
            loss.backward()
            clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            kl, rec = terms.kl.data.mean().item(), -terms.reconstruction.data.mean().item()
            curve.append((len(curve), beta, kl, rec))
            bar.set_postfix(beta=beta, kl=kl, rec=rec)
        model.eval()
        batches = list(sequence_batches(valid, 256))
        elbo, kl = mean_over(batches, lambda x, n: np.stack(
            [t.data for t in model.elbo(x, n, generator=args.seed)[::2]], axis=1))
        print(f"epoch {epoch}: KL weight {curve[-1][1]:.3f}, valid ELBO {elbo:.2f} nats/sentence, "
              f"KL {kl:.2f}")
    print(f"trained {len(curve)} steps in {time.perf_counter() - start:.0f} s")

    model.eval()
    test_batches = list(sequence_batches(test, 256))
    elbo, kl = mean_over(test_batches, lambda x, n: np.stack(
        [t.data for t in model.elbo(x, n, generator=args.seed)[::2]], axis=1))
    iwae = mean_over(test_batches, lambda x, n: model.log_likelihood(
        x, args.iwae_samples, n, generator=args.seed).data)
    n_words = np.mean([len(s) + 1 for s in test])  # tokens per sentence, the end included
    print(f"test, nats per sentence ({n_words:.2f} tokens with the end): VAE ELBO {elbo:.2f} "
          f"(KL {kl:.2f}), VAE log-likelihood (IWAE, k={args.iwae_samples}) {iwae:.2f}")

    if not args.no_baseline:
        lm = LSTMLanguageModel(len(vocab), args.embedding, args.hidden).to(args.device)
        lm_opt = Adam(lm.parameters(), lr=args.lr)
        for epoch in range(1, args.epochs + 1):
            lm.train()
            for tokens, lengths in progress(
                    sequence_batches(train, args.batch_size, shuffle=True, generator=rng),
                    desc=f"LM epoch {epoch}/{args.epochs}", total=steps_per_epoch):
                lm_opt.zero_grad()
                lm.loss(tokens, lengths).backward()
                clip_grad_norm_(lm.parameters(), 5.0)
                lm_opt.step()
        lm.eval()
        lm_log_p = mean_over(test_batches, lambda x, n: lm.log_prob(x, n).data)
        print(f"test, nats per sentence: LSTM language model (same size, same steps, exact) "
              f"{lm_log_p:.2f}  vs  VAE IWAE {iwae:.2f}  (higher is better)")

    os.makedirs(args.out, exist_ok=True)
    decode = lambda tokens, lengths: [vocab.decode(t[:k]) or "(the empty line)" for t, k in zip(  # noqa: E731
        minigen.backend.to_numpy(tokens.data), minigen.backend.to_numpy(lengths.data))]
    report = ["# samples: greedy decodings of z ~ N(0, I)"]
    report += decode(*model.sample(10, 20, generator=args.seed, greedy=True))
    report += ["", "# samples: ancestral draws x ~ p(x | z), z ~ N(0, I)"]
    report += decode(*model.sample(5, 20, generator=args.seed))
    report += ["", "# reconstructions: test line -> greedy decoding of z = mu(x)"]
    originals, lengths = pad_sequences(test[:8])
    for line, rec in zip(decode(minigen.tensor(originals), minigen.tensor(lengths)),
                         decode(*model.reconstruct(originals, lengths, max_length=20))):
        report.append(f"{line}  ->  {rec}")
    pick = np.random.default_rng(args.seed).choice(len(test), 6, replace=False)
    for a, b in zip(pick[::2], pick[1::2]):
        report += ["", f"# homotopy: {vocab.decode(test[a])}  =>  {vocab.decode(test[b])}"]
        report += decode(*model.interpolate(test[a], test[b], steps=5, max_length=20))
    path = os.path.join(args.out, "samples.txt")
    with open(path, "w") as f:
        f.write("\n".join(report) + "\n")
    print("\n".join(report))
    print(f"wrote {path}")

    path = os.path.join(args.out, "curves.png")
    plt = import_pyplot(path)
    if plt is not None:
        step, beta, kl, rec = np.array(curve).T
        window = max(1, min(20, len(step) // 10))
        smooth = lambda v: np.convolve(v, np.ones(window) / window, mode="valid")  # noqa: E731
        fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
        ax1.plot(step, kl, color="tab:red", alpha=0.25, lw=0.8)
        ax1.plot(step[window - 1:], smooth(kl), color="tab:red", label="KL(q(z|x) || p(z))")
        ax1.set_yscale("log")  # a collapse (KL -> 0) stays visible
        ax1.set_xlabel("training step")
        ax1.set_ylabel("KL, nats per sentence (log scale)")
        ax1.set_title(f"KL term under {args.schedule} annealing")
        twin = ax1.twinx()
        twin.plot(step, beta, color="black", ls="--", label="KL weight beta")
        twin.set_ylabel("KL weight beta")
        twin.set_ylim(0, 1.05)
        handles = ax1.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax1.legend(handles, [h.get_label() for h in handles], loc="center right", fontsize=8)
        ax2.plot(step, rec, color="tab:blue", alpha=0.25, lw=0.8)
        ax2.plot(step[window - 1:], smooth(rec), color="tab:blue")
        ax2.set_xlabel("training step")
        ax2.set_ylabel("-E_q log p(x|z), nats per sentence")
        ax2.set_title(f"reconstruction term (word dropout {args.word_dropout})")
        fig.suptitle(f"sentence VAE on tiny Shakespeare lines (faint: per batch; solid: "
                     f"{window}-step means)")
        save_figure(fig, path)


if __name__ == "__main__":
    main()
