#!/usr/bin/env python
"""Train the embedded text model (``embedded/text-goemotions``) on GoEmotions.

    .venv/bin/python scripts/train_embedded_text.py [--data ../shared/data] [--out DIR]

Needs scikit-learn (``pip install -e '.[train]'``) for training only; the app runs the
result with numpy (:mod:`emoapp.encoders.embedded.text`).

Protocol (all choices on ``train.tsv`` and ``dev.tsv``; ``test.tsv`` is never read):

- labels: each comment's GoEmotions labels mapped onto Ekman's six plus neutral with the
  authors' mapping (``emoapp.core.labelmap.GOEMOTIONS_EKMAN``, checked against
  ``ekman_mapping.json``). A comment whose labels land on k > 1 distinct canonical
  labels becomes k training rows, one per label, each weighted 1/k (so every comment
  weighs 1 in total, and the model learns that such text is ambiguous);
- features: TF-IDF of word uni- and bigrams plus character 2-5-grams within words
  (scikit-learn ``TfidfVectorizer``, sub-linear tf, L2 per block), fitted on train;
- model: multinomial logistic regression with class-balanced weights
  (``n / (K * n_k)``, as scikit-learn's "balanced", on the weighted rows);
- decision: per-label logit offsets fitted on dev by coordinate ascent on macro-F1
  (added to the intercepts), then one temperature fitted on dev by log-likelihood, so
  the probabilities are calibrated;
- selection: the regularisation C from a small grid, by dev macro-F1 (after each
  candidate's own offsets) over the dev comments whose labels map to one canonical
  label, which is how ``emoapp evaluate`` scores GoEmotions;
- the artefact's weights are stored as float32 (coefficients float16), and the dev
  figures in ``meta.json`` are measured on the stored artefact through the numpy encoder.

The result is deterministic: a second run writes the same bytes (same library versions
and machine; see ``meta.json`` ``training.reproducibility``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
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
    GoEmotionsTextEncoder,
    vocab_array,
)
from emoapp.evaluation.metrics import (  # noqa: E402
    expected_calibration_error,
    macro_f1,
    negative_log_likelihood,
)
from emoapp.registry import ModelSpec  # noqa: E402

MODEL_ID = "embedded/text-goemotions"
VERSION = "1.0.0"
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
BLOCKS = (Block("word", "word", (1, 2)), Block("char", "char_wb", (2, 5)))
MIN_DF = {"word": 2, "char": 3}
# Inverse regularisation strengths scored on dev.
C_GRID = (0.25, 0.5, 1.0)
# Class weights (n / (K n_k)) ** power: 1 is scikit-learn's "balanced".
CLASS_WEIGHT_POWER = 1.0


def log(message: str) -> None:
    print(f"[train-text] {message}", file=sys.stderr, flush=True)


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


def class_weights(y: np.ndarray, weights: np.ndarray, power: float) -> np.ndarray:
    k = len(CANONICAL_LABELS)
    mass = np.bincount(y, weights=weights, minlength=k)
    return (weights.sum() / (k * mass)) ** power


def fit_offsets(logits: np.ndarray, gold: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Per-label logit offsets (neutral fixed at 0) that maximise dev macro-F1, by
    coordinate ascent over a grid; ties keep the smaller offset."""
    grid = np.round(np.arange(-2.0, 2.0001, 0.1), 1)
    offsets = np.zeros(logits.shape[1])
    for _ in range(rounds):
        for k in range(1, logits.shape[1]):
            scores = []
            for g in grid:
                trial = offsets.copy()
                trial[k] = g
                scores.append(macro_f1(gold, np.argmax(logits + trial, axis=1)))
            best = max(scores)
            candidates = [g for g, s in zip(grid, scores, strict=True) if s == best]
            offsets[k] = min(candidates, key=abs)
    return offsets


def fit_temperature(logits: np.ndarray, gold: np.ndarray) -> float:
    """The temperature that minimises the dev negative log-likelihood (golden-section
    search over log T in [log 0.05, log 20], to 1e-4)."""

    def nll(log_t: float) -> float:
        z = logits / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        return float(-logp[np.arange(len(gold)), gold].mean())

    lo, hi = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(a), nll(b)
    while hi - lo > 1e-4:
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(b)
    return round(float(np.exp((lo + hi) / 2)), 4)


def stored_logits(matrix: Any, coef: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """Logits with the weights as the artefact stores them."""
    return np.asarray(matrix @ coef.astype(np.float64).T) + intercept.astype(np.float64)


def figures(probs: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    pred = probs.argmax(axis=1)
    return {
        "accuracy": round(float((pred == gold).mean()), 4),
        "macro_f1": round(macro_f1(gold, pred), 4),
        "ece": round(expected_calibration_error(probs.max(axis=1), pred == gold), 4),
        "nll": round(negative_log_likelihood(probs, gold), 4),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument(
        "--out", type=Path, default=REPO / "models" / "embedded" / "text-goemotions"
    )
    args = parser.parse_args(argv)
    try:
        import sklearn
        from scipy import sparse
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        print("training needs scikit-learn: pip install -e '.[train]'", file=sys.stderr)
        return 2
    started = time.perf_counter()
    folder = args.data / "goemotions"
    if not (folder / "train.tsv").is_file():
        print(f"no GoEmotions data in {folder} (give --data)", file=sys.stderr)
        return 2
    names, fine_to_label = label_tables(folder)
    train_texts, train_labels = read_split(folder / "train.tsv", names, fine_to_label)
    dev_texts, dev_labels = read_split(folder / "dev.tsv", names, fine_to_label)
    rows, y, w = expand(train_texts, train_labels)
    single = [i for i, ls in enumerate(dev_labels) if len(ls) == 1]
    dev_x = [dev_texts[i] for i in single]
    dev_y = np.array([dev_labels[i][0] for i in single])
    multi = sum(len(ls) > 1 for ls in train_labels)
    log(
        f"train: {len(train_texts)} comments ({multi} with >1 canonical label) -> "
        f"{len(rows)} rows; dev: {len(dev_x)} single-label comments of {len(dev_texts)}"
    )

    blocks = BLOCKS
    vectorisers = [
        TfidfVectorizer(
            analyzer=block.analyzer,
            ngram_range=block.ngram_range,
            lowercase=block.lowercase,
            sublinear_tf=block.sublinear_tf,
            min_df=MIN_DF[block.name],
            dtype=np.float64,
        )
        for block in blocks
    ]
    train_m = sparse.hstack([v.fit_transform(rows) for v in vectorisers]).tocsr()
    dev_m = sparse.hstack([v.transform(dev_x) for v in vectorisers]).tocsr()
    log(f"features: {train_m.shape[1]} ({time.perf_counter() - started:.0f}s)")
    cw = class_weights(y, w, CLASS_WEIGHT_POWER)

    # Candidates in order of C, each fit warm-started from the previous one (faster;
    # still deterministic). Each is scored as it would be stored: float16 coefficients
    # and its own dev offsets.
    scored: list[dict[str, float]] = []
    best: dict[str, Any] = {}
    model = LogisticRegression(max_iter=500, tol=1e-4, warm_start=True, random_state=SEED)
    for c in C_GRID:
        model.set_params(C=c)
        model.fit(train_m, y, sample_weight=w * cw[y])
        coef = model.coef_.astype(np.float16)
        raw_intercept = model.intercept_.astype(np.float32)
        logits = stored_logits(dev_m, coef, raw_intercept)
        before = macro_f1(dev_y, logits.argmax(axis=1))
        offsets = fit_offsets(logits, dev_y)
        after = macro_f1(dev_y, (logits + offsets).argmax(axis=1))
        scored.append(
            {
                "C": c,
                "dev_macro_f1": round(before, 4),
                "dev_macro_f1_with_offsets": round(after, 4),
                "iterations": int(model.n_iter_.max()),
            }
        )
        log(
            f"C={c}: dev macro-F1 {before:.4f}, with offsets {after:.4f} "
            f"({time.perf_counter() - started:.0f}s)"
        )
        if not best or after > best["f1"]:
            best = {"C": c, "f1": after, "coef": coef, "raw": raw_intercept, "offsets": offsets}
    log(f"chosen: C={best['C']}")

    coef, offsets = best["coef"], best["offsets"]
    intercept = (best["raw"].astype(np.float64) + offsets).astype(np.float32)
    temperature = fit_temperature(stored_logits(dev_m, coef, intercept), dev_y)
    log(f"offsets {offsets.tolist()}, temperature {temperature}")

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    for name in ("weights.npz", "meta.json", "checksums.sha256"):
        (out / name).unlink(missing_ok=True)
    arrays: dict[str, np.ndarray] = {"coef": coef, "intercept": intercept}
    for block, vec in zip(blocks, vectorisers, strict=True):
        terms = [t for t, _ in sorted(vec.vocabulary_.items(), key=lambda kv: kv[1])]
        arrays[f"vocab_{block.name}"] = vocab_array(terms)
        arrays[f"idf_{block.name}"] = vec.idf_.astype(np.float32)
    write_npz(out / "weights.npz", arrays)

    # Dev figures of the stored artefact through the numpy encoder.
    meta: dict[str, Any] = {
        "model_id": MODEL_ID,
        "version": VERSION,
        "labels": list(CANONICAL_LABELS),
        "blocks": [b.to_meta() | {"min_df": MIN_DF[b.name]} for b in blocks],
        "n_features": int(train_m.shape[1]),
        "temperature": temperature,
        "training": {
            "script": "scripts/train_embedded_text.py",
            "data": (
                "GoEmotions (Demszky et al., ACL 2020; CC BY 4.0) train.tsv; selection and "
                "calibration on dev.tsv; test.tsv never read"
            ),
            "labels": "the authors' Ekman mapping plus neutral",
            "multi_label": "a comment with k>1 distinct canonical labels gives k rows weighted 1/k",
            "train_comments": len(train_texts),
            "train_multi_label_comments": multi,
            "train_rows": len(rows),
            "model": "multinomial logistic regression (scikit-learn lbfgs)",
            "class_weights": f"balanced: (n / (K n_k)) ** {CLASS_WEIGHT_POWER}",
            "class_weight_values": dict(zip(CANONICAL_LABELS, cw.round(4).tolist(), strict=True)),
            "candidates": scored,
            "chosen": {"C": best["C"]},
            "logit_offsets": dict(zip(CANONICAL_LABELS, offsets.round(1).tolist(), strict=True)),
            "offsets_note": "chosen on dev for macro-F1, folded into the intercepts",
            "temperature_note": "fitted on dev by log-likelihood after the offsets",
            "seed": SEED,
            "scikit_learn": sklearn.__version__,
            "numpy": np.__version__,
            "reproducibility": (
                "byte-for-byte with the same numpy/scipy/scikit-learn versions; otherwise "
                "dev figures within 0.002"
            ),
        },
        "dev": {},
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    write_checksums(out)
    encoder = GoEmotionsTextEncoder(ModelSpec(Modality.TEXT, str(out), backend="embedded"))
    encoder.load()
    probs = np.array([encoder.probabilities(t) for t in dev_x])
    untempered = np.array([_softmax(encoder.logits(t)) for t in dev_x])
    meta["dev"] = {
        "items": len(dev_x),
        "scored_as": (
            "dev comments whose labels map to one canonical label (as emoapp evaluate "
            "scores GoEmotions)"
        ),
        "calibrated": figures(probs, dev_y),
        "before_temperature": figures(untempered, dev_y),
        "predicted_share": {
            label: round(float(share), 4)
            for label, share in zip(
                CANONICAL_LABELS,
                np.bincount(probs.argmax(1), minlength=7) / len(dev_y),
                strict=True,
            )
        },
        "gold_share": {
            CANONICAL_LABELS[k]: round(v / len(dev_y), 4)
            for k, v in sorted(Counter(dev_y.tolist()).items())
        },
        "note": "optimistic: dev chose the candidate, the offsets and the temperature",
    }
    (out / "meta.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    write_checksums(out)
    size = sum(p.stat().st_size for p in out.iterdir())
    dev = meta["dev"]
    log(f"dev: {dev['calibrated']} (before temperature {dev['before_temperature']})")
    log(f"wrote {out} ({size / 1e6:.2f} MB) in {time.perf_counter() - started:.0f}s")
    return 0


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


if __name__ == "__main__":
    raise SystemExit(main())
