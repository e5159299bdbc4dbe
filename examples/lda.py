"""Topics of tiny Shakespeare with latent Dirichlet allocation fitted by batch mean-field VI
(lecture deck 000, "Latent Dirichlet allocation"; Blei, Ng & Jordan 2003).

    python examples/lda.py                                   # 10 topics, 1000 words, at most 30 sweeps
    python examples/lda.py --topics 20 --vocabulary 2000 --epochs 100

Documents are the speeches of the bundled corpus (``minigen.data.load_shakespeare``): blocks
separated by blank lines, whose first line is the speaker's name (dropped). Words are lower-case
letter runs; the --vocabulary most frequent words of the training split that are not stop words
(a fixed English list plus Early Modern "thou, thee, hath, doth ...") form the vocabulary, and
speeches with fewer than --min-words of them are dropped. The script prints the top words of
each topic (by E_q[beta_kw]), the ELBO per word, and the perplexity bound exp(-ELBO / words) on
the training speeches and on the held-out test split, and writes elbo.png (the ELBO per word
after each sweep: it never decreases). Speeches are short (about 14 vocabulary words), so the
bound is loose: its perplexity stays above that of a unigram model fitted to the same words,
although the topics are distinct (one per history play, Romeo and Juliet, ...).
"""
import collections
import os
import re
import time

import numpy as np
import scipy.sparse

from minigen import backend
from minigen.data import load_shakespeare
from minigen.models import LatentDirichletAllocation

from common import example_parser, import_pyplot, parse_args, positive_float, positive_int, save_figure

STOP_WORDS = set("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has
have having he her here hers herself him himself his how i if in into is it its itself just let
me more most my myself no nor not now of off on once only or other our ours ourselves out over
own same she should so some such than that the their theirs them themselves then there these
they this those through to too under until up upon very was we were what when where which while
who whom why will with would you your yours yourself yourselves
thou thee thy thine ye hath doth dost art hast shalt wilt shall may might must o oh ay yea nay
tis twas ere hither thither whither thus yet than unto say said come go well good make made
know see tell like give take one two us sir lord man men
""".split())


def speeches(text):
    """The speeches of ``text`` as lists of lower-case words, without the speaker's line."""
    blocks = [block.split("\n", 1) for block in text.split("\n\n")]
    return [re.findall(r"[a-z]+", block[1].lower()) for block in blocks if len(block) == 2]


def count_matrix(documents, vocabulary, min_words):
    """(n_documents, V) sparse counts of the vocabulary's words, keeping documents with at least
    ``min_words`` of them."""
    index = {word: i for i, word in enumerate(vocabulary)}
    rows, cols, values, n_documents = [], [], [], 0
    for document in documents:
        counts = collections.Counter(index[w] for w in document if w in index)
        if sum(counts.values()) >= min_words:
            rows.extend([n_documents] * len(counts))
            cols.extend(counts.keys())
            values.extend(counts.values())
            n_documents += 1
    return scipy.sparse.csr_matrix((values, (rows, cols)), shape=(n_documents, len(vocabulary)), dtype=float)


def plot_elbo(history, path):
    plt = import_pyplot(path)
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    ax.plot(range(1, len(history)), history[1:], marker=".")  # history[0], the random start, is far below
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_xlabel("sweep (E step over all speeches, then the topic update)")
    ax.set_ylabel("ELBO per word (nats)")
    ax.set_title(f"LDA on tiny Shakespeare, batch mean-field VI\n(ELBO per word at the random start: {history[0]:.2f})")
    save_figure(fig, path)


def main():
    parser = example_parser(__doc__, dataset=False)
    parser.add_argument("--topics", type=positive_int, default=10)
    parser.add_argument("--vocabulary", type=positive_int, default=1000, help="most frequent non-stop words kept")
    parser.add_argument("--min-words", type=positive_int, default=5, help="shortest speech kept (vocabulary words)")
    parser.add_argument("--epochs", "--max-iter", dest="max_iter", type=positive_int, default=30,
                        help="maximum sweeps of batch VI")
    parser.add_argument("--tol", type=positive_float, default=1e-4, help="change of the ELBO per word that stops the fit")
    parser.add_argument("--top", type=positive_int, default=10, help="words printed per topic")
    args = parse_args(parser, "lda")

    train, test = speeches(load_shakespeare("train")), speeches(load_shakespeare("test"))
    frequency = collections.Counter(w for document in train for w in document if w not in STOP_WORDS and len(w) > 2)
    vocabulary = [w for w, _ in frequency.most_common(args.vocabulary)]
    X_train, X_test = (count_matrix(d, vocabulary, args.min_words) for d in (train, test))
    print(f"{X_train.shape[0]} training speeches, {X_test.shape[0]} test speeches, vocabulary of "
          f"{len(vocabulary)} words, {int(X_train.sum())} training words")
    if args.device == "cuda":  # the model works on the non-zero counts of a dense device array
        X_train, X_test = (backend.to_device(X.toarray(), "cuda") for X in (X_train, X_test))

    start = time.time()
    print(f"fitting {args.topics} topics (at most {args.max_iter} sweeps) ...", flush=True)
    model = LatentDirichletAllocation(args.topics, max_iter=args.max_iter, tol=args.tol,
                                      random_state=args.seed).fit(X_train)
    print(f"{model.n_iter_} sweeps in {time.time() - start:.1f} s (converged: {model.converged_}); "
          f"ELBO per word {model.elbo_history_[0]:.4f} -> {model.elbo_history_[-1]:.4f} nats")

    topics = backend.to_numpy(model.components_)
    topics = topics / topics.sum(axis=1, keepdims=True)
    share = backend.to_numpy(model.transform(X_train)).mean(axis=0)
    for k in np.argsort(-share):
        words = " ".join(vocabulary[w] for w in np.argsort(-topics[k])[:args.top])
        print(f"topic {k:2d} ({100 * share[k]:4.1f}% of the words): {words}")
    unigram = (np.asarray(backend.to_numpy(X_train).sum(axis=0)).ravel() + 1) / (X_train.sum() + len(vocabulary))
    unigram_perplexity = [np.exp(-float((backend.to_numpy(X) @ np.log(unigram)).sum()) / X.sum())
                          for X in (X_train, X_test)]
    print(f"perplexity bound exp(-sum of document bounds / words): train {model.perplexity(X_train):.1f}, "
          f"test {model.perplexity(X_test):.1f}; add-one unigram model: train {unigram_perplexity[0]:.1f}, "
          f"test {unigram_perplexity[1]:.1f}; uniform: {len(vocabulary)}")
    plot_elbo(model.elbo_history_, os.path.join(args.out, "elbo.png"))


if __name__ == "__main__":
    main()
