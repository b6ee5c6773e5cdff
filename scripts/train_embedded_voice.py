#!/usr/bin/env python3
"""Train the embedded voice model (``models/embedded/voice-multicorpus``) on five acted
speech corpora, with per-speaker adaptation, chosen by leave-one-corpus-out CV.

    scripts/train_embedded_voice.py [--data ../shared/data] [--out DIR] [--cache DIR]
                                    [--seed 0] [--holdout-actors 15-18] [--report FILE]

1. Data (:mod:`voice_corpora`): RAVDESS actors 01-18 (minus ``--holdout-actors``), TESS
   (the shared subset), EmoDB (boredom dropped), EMOVO, TurEV-DB; every gated 2 s window
   (0.5 s hop, as the app cuts) is a row, labelled with its clip's emotion and speaker.
   Labels are the seven canonical ones (RAVDESS calm and TurEV calm are neutral).
2. Adaptation (:mod:`emoapp.encoders.adaptation`): each speaker's windows are moved by
   the speaker's shrunk offset from the population reference, on the features the
   candidate adapts. Training speakers are adapted with statistics from all their windows.
3. Selection: every candidate (features x adapted features x prior x classifier) is
   scored by leave-one-corpus-out CV (train on four corpora, score the fifth; clips scored
   as ``emoapp evaluate`` scores them: the mean of the clip's window probabilities), for
   (a) the real speakers (balanced emotions; statistics from all of the speaker's clips)
   and (b) one-emotion speakers (each speaker's clips split by emotion, statistics from
   that emotion's clips only: the angry caller). The winner has the best mean LOCO
   accuracy on (a) among the candidates whose (b) is no worse than the best unadapted
   candidate's (b) by more than ``--b-tolerance`` (default, noise: the standard error of
   the per-fold differences, paired over the held-out corpora).
4. Calibration: one temperature, fitted on the winner's held-out predictions of all five
   corpora, both leave-one-corpus-out and leave-speakers-out (clip-level negative
   log-likelihood, summed); ECE per corpus reported with a temperature fitted on the
   other four corpora only (honest) and with the final one. Then the temperature the
   model uses: one that depends on the speaker's novelty (:mod:`emoapp.encoders.novelty`:
   distance of the speaker's mean features to the training speakers'), fitted on the same
   predictions with novelty measured against each fold's own training speakers (LOCO:
   the other four corpora's; leave-speakers-out: the other folds'), reported the same
   way (fitted without the corpus, and final). The single temperature stays in
   ``meta.json`` as ``temperature`` (what a reader without the novelty code uses). The
   artefact also keeps each training speaker's mean over their neutral windows: a
   "calibrate to me" reading's share of a speaker's statistics is judged against those
   (``calibration.reading`` in ``meta.json``: the rule, and a leave-one-speaker-out check
   on the training speakers that the two novelties are on one scale).
5. Leave-speakers-out: the winner with and without adaptation, (a) and (b), per sex, over
   speaker-grouped folds of all corpora pooled; and how many seconds of a speaker's
   speech the running estimate needs before it helps.
6. The winner is refitted on every window and written to ``--out`` with ``meta.json``
   (labels, features, adaptation, temperature, all tables) and ``checksums.sha256``.

Deterministic: seeded, single-threaded BLAS, weights written with fixed zip metadata.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from voice_corpora import CORPORA, Corpus, extract  # noqa: E402

from emoapp.core.taxonomy import CANONICAL_LABELS  # noqa: E402
from emoapp.encoders.adaptation import AdaptationSpec, SpeakerStats  # noqa: E402
from emoapp.encoders.embedded.artefacts import write_checksums, write_npz  # noqa: E402
from emoapp.encoders.embedded.voice import (  # noqa: E402
    DEFAULT_FEATURES,
    WEIGHTS,
    feature_names,
    softmax_classifier,
)

MODEL_ID = "embedded/voice-multicorpus"
VERSION = "1"
LABELS = list(CANONICAL_LABELS)
N_BASE = len(feature_names({**DEFAULT_FEATURES, "mel_means": False}))
N_MEL = 40
N_EMB = 256
SELECTION_PROTOCOL = (
    "leave-one-corpus-out CV (train on four corpora, score the fifth; clips scored as "
    "emoapp evaluate does). (a): speakers as recorded (balanced emotions), statistics from "
    "all of the speaker's clips; (b): each speaker split by emotion (one-emotion speakers), "
    "statistics from that emotion's clips. Winner: best mean (a) accuracy among candidates "
    "whose (b) is not worse than the best unadapted candidate's (b) by more than one "
    "standard error of the per-fold differences (paired over the five held-out corpora)."
)
CALIBRATION_PROTOCOL = (
    "one temperature fitted on the chosen candidate's held-out clip probabilities of all "
    "five corpora, leave-one-corpus-out and leave-speakers-out together (summed clip NLL); "
    "per-corpus ECE of both with a temperature fitted on the other four corpora only, and "
    "with the final one"
)
LICENSE = (
    "Non-commercial research use only: inherits RAVDESS (CC BY-NC-SA 4.0), TESS (CC "
    "BY-NC-ND 4.0), TurEV-DB (CC BY-NC-ND 4.0), EmoDB and EMOVO (free for research, no open "
    "licence); speaker embedding: resemblyzer's pretrained encoder (Apache-2.0, loaded from "
    "its wheel)"
)


@dataclass(frozen=True)
class Candidate:
    features: str  # "base", "base+emb", "mel+emb"
    adapt: str  # "none", "all", or "identity:R" (speaker/emotion variance ratio > R)
    prior: float  # shrinkage strength in windows
    kind: str  # "logreg" or "mlp"
    c: float  # logreg: C; mlp: alpha
    hidden: int = 0
    scale: bool = False  # also scale each speaker's spread to the population's (z-score)
    concat: bool = False  # classifier input: [x, adapted x] rather than adapted x
    augment: bool = False  # also train on one-emotion pseudo-speakers' adapted rows

    @property
    def name(self) -> str:
        model = (
            f"logreg C={self.c:g}" if self.kind == "logreg" else f"mlp h={self.hidden} a={self.c:g}"
        )
        adapt = (
            "no adaptation"
            if self.adapt == "none"
            else f"{'z-score' if self.scale else 'centre'} {self.adapt} k={self.prior:g}"
        )
        if self.concat:
            adapt += " +raw"
        if self.augment:
            adapt += " +one-emotion training"
        return f"{self.features} / {adapt} / {model}"


CANDIDATES: tuple[Candidate, ...] = (
    Candidate("base", "none", 0, "logreg", 0.03),
    Candidate("base+emb", "none", 0, "logreg", 0.03),
    Candidate("base+emb", "all", 0, "logreg", 0.03, scale=True),
    Candidate("base+emb", "all", 64, "logreg", 0.03),
    Candidate("base+emb", "all", 64, "logreg", 0.03, scale=True),
    Candidate("base+emb", "all", 128, "logreg", 0.03),
    Candidate("base+emb", "all", 128, "logreg", 0.03, scale=True),
    Candidate("base+emb", "all", 256, "logreg", 0.03, scale=True),
    Candidate("base+emb", "all", 128, "logreg", 0.1, scale=True),
    Candidate("base+emb", "all", 128, "mlp", 3.0, 64, scale=True),
)


@dataclass
class Pool:
    """Every window of every corpus, and its clip's facts."""

    x: np.ndarray  # (n, 88 + 40 + 256)
    y: np.ndarray  # (n,) canonical label index
    clip: np.ndarray  # (n,) global clip index
    speaker: np.ndarray  # (n,) str
    sex: np.ndarray  # (n,) str
    corpus: np.ndarray  # (n,) str
    n_clips: int

    def where(self, keep: np.ndarray) -> Pool:
        """The windows where ``keep`` is true (clip indices unchanged)."""
        return Pool(
            self.x[keep],
            self.y[keep],
            self.clip[keep],
            self.speaker[keep],
            self.sex[keep],
            self.corpus[keep],
            self.n_clips,
        )


def pool(corpora: Sequence[Corpus]) -> Pool:
    xs, ys, clips, spk, sex, names = [], [], [], [], [], []
    offset = 0
    for c in corpora:
        xs.append(np.hstack([c.x, c.emb]))
        ys.append(c.label[c.clip])
        clips.append(c.clip + offset)
        spk.append(c.speaker[c.clip])
        sex.append(c.sex[c.clip])
        names.append(np.full(len(c.x), c.name, dtype=object))
        offset += len(c.ids)
    return Pool(
        np.concatenate(xs),
        np.concatenate(ys),
        np.concatenate(clips),
        np.concatenate(spk),
        np.concatenate(sex),
        np.concatenate(names),
        offset,
    )


def columns(features: str) -> np.ndarray:
    base = np.arange(N_BASE)
    mel = np.arange(N_BASE, N_BASE + N_MEL)
    emb = np.arange(N_BASE + N_MEL, N_BASE + N_MEL + N_EMB)
    return {
        "base": base,
        "base+emb": np.concatenate([base, emb]),
        "mel+emb": np.concatenate([base, mel, emb]),
    }[features]


def adaptation_mask(
    candidate: Candidate, x: np.ndarray, y: np.ndarray, spk: np.ndarray
) -> np.ndarray:
    """Which features move with the speaker: all, or those whose spread between the
    training speakers' means exceeds R times the spread between the emotions' means."""
    if candidate.adapt == "all":
        return np.ones(x.shape[1])
    ratio = float(candidate.adapt.split(":")[1])
    speakers = np.array([x[spk == s].mean(0) for s in np.unique(spk)])
    emotions = np.array([x[y == e].mean(0) for e in np.unique(y)])
    return (speakers.var(0) > ratio * emotions.var(0)).astype(np.float64)


def speaker_stats(x: np.ndarray, groups: np.ndarray) -> dict[Any, SpeakerStats]:
    return {g: SpeakerStats.of(x[groups == g]) for g in np.unique(groups)}


def adapt_rows(
    spec: AdaptationSpec | None,
    x: np.ndarray,
    groups: np.ndarray,
    stats: dict[Any, SpeakerStats] | None = None,
) -> np.ndarray:
    """The adapted features (not the classifier input: see :func:`inputs`)."""
    if spec is None:
        return x
    stats = stats if stats is not None else speaker_stats(x, groups)
    out = np.empty_like(x)
    for g, s in stats.items():
        m = groups == g
        out[m] = spec.adapt(x[m], s)
    return out


def inputs(
    spec: AdaptationSpec | None,
    x: np.ndarray,
    groups: np.ndarray,
    stats: dict[Any, SpeakerStats] | None = None,
) -> np.ndarray:
    """The classifier input: adapted features, or [raw, adapted] for ``concat``."""
    adapted = adapt_rows(spec, x, groups, stats)
    return np.hstack([x, adapted]) if spec is not None and spec.concat else adapted


@dataclass
class Fitted:
    cols: np.ndarray
    spec: AdaptationSpec | None
    weights: dict[str, np.ndarray]


def fit(candidate: Candidate, x: np.ndarray, y: np.ndarray, spk: np.ndarray, seed: int) -> Fitted:
    from sklearn.linear_model import LogisticRegression

    cols = columns(candidate.features)
    x = x[:, cols]
    spec = None
    if candidate.adapt != "none":
        spec = AdaptationSpec(
            x.mean(0),
            adaptation_mask(candidate, x, y, spk),
            candidate.prior,
            concat=candidate.concat,
            reference_var=np.maximum(x.var(0), 1e-12) if candidate.scale else None,
        )
        adapted = adapt_rows(spec, x, spk)
        if candidate.augment:
            groups = np.array([f"{a}|{b}" for a, b in zip(spk, y, strict=True)], dtype=object)
            adapted = np.vstack([adapted, adapt_rows(spec, x, groups)])
            x = np.vstack([x, x])
            y = np.concatenate([y, y])
        x = np.hstack([x, adapted]) if candidate.concat else adapted
    mean = x.mean(0)
    scale = x.std(0)
    scale = np.where(scale > 1e-12, scale, 1.0)
    z = (x - mean) / scale
    k = len(LABELS)
    weights: dict[str, np.ndarray] = {"mean": mean, "scale": scale}
    if candidate.kind == "logreg":
        model = LogisticRegression(C=candidate.c, max_iter=1000, tol=1e-4)
        model.fit(z, y)
        out_w = np.zeros((z.shape[1], k))
        out_b = np.full(k, -1e9)
        out_w[:, model.classes_] = model.coef_.T
        out_b[model.classes_] = model.intercept_
        weights["out_w"], weights["out_b"] = out_w, out_b
    else:
        weights.update(fit_mlp(candidate, z, y, seed))
    return Fitted(cols, spec, weights)


def fit_mlp(
    candidate: Candidate,
    z: np.ndarray,
    y: np.ndarray,
    seed: int,
    sample_weight: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """The MLP's arrays (hidden and output layers) fitted on standardised ``z``; a label
    absent from ``y`` gets an output bias of -1e9 (never predicted)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    model = MLPClassifier(
        hidden_layer_sizes=(candidate.hidden,),
        alpha=candidate.c,
        max_iter=300,
        random_state=seed,
        tol=1e-5,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(z, y, sample_weight=sample_weight)
    k = len(LABELS)
    out_w = np.zeros((candidate.hidden, k))
    out_b = np.full(k, -1e9)
    out_w[:, model.classes_] = model.coefs_[1]
    out_b[model.classes_] = model.intercepts_[1]
    return {
        "hidden_w": model.coefs_[0].copy(),
        "hidden_b": model.intercepts_[0].copy(),
        "out_w": out_w,
        "out_b": out_b,
    }


def predict(
    f: Fitted,
    x: np.ndarray,
    groups: np.ndarray,
    temperature: float = 1.0,
    stats: dict[Any, SpeakerStats] | None = None,
) -> np.ndarray:
    x = inputs(f.spec, x[:, f.cols], groups, stats)
    return softmax_classifier(x, f.weights, temperature)


def clip_probs(p: np.ndarray, clip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(clips, mean window probabilities) as ``emoapp evaluate`` aggregates."""
    ids, inverse = np.unique(clip, return_inverse=True)
    sums = np.zeros((len(ids), p.shape[1]))
    np.add.at(sums, inverse, p)
    counts = np.bincount(inverse, minlength=len(ids))[:, None]
    return ids, sums / counts


def scores(p: np.ndarray, data: Pool, rows: np.ndarray) -> dict[str, Any]:
    """Clip accuracy, macro-F1, ECE, and accuracy per sex."""
    from sklearn.metrics import f1_score

    from emoapp.evaluation.metrics import expected_calibration_error

    ids, cp = clip_probs(p, data.clip[rows])
    first = {c: i for i, c in zip(np.flatnonzero(rows), data.clip[rows], strict=True)}
    gold = np.array([data.y[first[c]] for c in ids])
    sex = np.array([data.sex[first[c]] for c in ids])
    pred = cp.argmax(1)
    out: dict[str, Any] = {
        "clips": len(ids),
        "accuracy": float(np.mean(pred == gold)),
        "macro_f1": float(
            f1_score(
                gold, pred, labels=sorted(set(gold.tolist())), average="macro", zero_division=0
            )
        ),
        "ece": expected_calibration_error(cp.max(1), pred == gold),
    }
    for s in ("female", "male"):
        if np.any(sex == s):
            out[f"accuracy_{s}"] = float(np.mean(pred[sex == s] == gold[sex == s]))
    return out


def one_emotion_groups(data: Pool, rows: np.ndarray) -> np.ndarray:
    """Speaker groups for (b): each speaker split by emotion."""
    return np.array(
        [f"{s}|{e}" for s, e in zip(data.speaker[rows], data.y[rows], strict=True)], dtype=object
    )


def loco(candidate: Candidate, data: Pool, seed: int, corpora: Sequence[str]) -> dict[str, Any]:
    folds = {}
    fits = {}
    oof_a = np.zeros((len(data.y), len(LABELS)))
    oof_b = np.zeros_like(oof_a)
    for held in corpora:
        test = data.corpus == held
        f = fit(candidate, data.x[~test], data.y[~test], data.speaker[~test], seed)
        pa = predict(f, data.x[test], data.speaker[test])
        pb = predict(f, data.x[test], one_emotion_groups(data, test))
        oof_a[test], oof_b[test] = pa, pb
        folds[held] = {"a": scores(pa, data, test), "b": scores(pb, data, test)}
        fits[held] = (f, test)
    return {"folds": folds, "oof_a": oof_a, "oof_b": oof_b, "fits": fits}


def mean_of(folds: dict[str, Any], part: str, key: str = "accuracy") -> tuple[float, float]:
    v = np.array([f[part][key] for f in folds.values() if key in f[part]])
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0


def fit_clip_temperature_sets(sets: Sequence[tuple[np.ndarray, np.ndarray]], data: Pool) -> float:
    """The temperature minimising the summed clip-level NLL (mean window probabilities)
    of several sets of held-out log-probabilities (each with its rows)."""
    prepared = []
    for logp_rows, rows in sets:
        ids, _ = clip_probs(logp_rows[rows], data.clip[rows])
        first = {c: i for i, c in zip(np.flatnonzero(rows), data.clip[rows], strict=True)}
        gold = np.array([data.y[first[c]] for c in ids])
        prepared.append((logp_rows[rows], data.clip[rows], gold))

    def nll(t: float) -> float:
        total = 0.0
        for lp, clip, gold in prepared:
            z = lp / t
            z = z - z.max(1, keepdims=True)
            p = np.exp(z)
            p /= p.sum(1, keepdims=True)
            _, cp = clip_probs(p, clip)
            total += float(-np.sum(np.log(cp[np.arange(len(gold)), gold] + 1e-12)))
        return total

    grid = np.exp(np.linspace(math.log(0.2), math.log(5.0), 61))
    return float(grid[int(np.argmin([nll(t) for t in grid]))])


def with_temperature(p: np.ndarray, t: float) -> np.ndarray:
    z = np.log(p + 1e-300) / t
    z -= z.max(1, keepdims=True)
    q = np.exp(z)
    return q / q.sum(1, keepdims=True)


def leave_speakers_out(
    candidate: Candidate, data: Pool, seed: int, n_folds: int = 5, unadapted_too: bool = True
) -> dict[str, Any]:
    """Speaker-grouped folds over all corpora pooled: out-of-fold probabilities (at
    temperature 1) of the winner with and without its adaptation, (a) and (b)."""
    speakers = np.unique(data.speaker)
    rng = np.random.default_rng(seed)
    order = rng.permutation(speakers)
    fold_of = {s: i % n_folds for i, s in enumerate(order)}
    fold = np.array([fold_of[s] for s in data.speaker])
    unadapted = Candidate(
        candidate.features, "none", 0, candidate.kind, candidate.c, candidate.hidden
    )
    out: dict[str, Any] = {}
    runs = [("adapted", candidate)] + ([("unadapted", unadapted)] if unadapted_too else [])
    for name, cand in runs:
        pa = np.zeros((len(data.y), len(LABELS)))
        pb = np.zeros_like(pa)
        fits = {}
        for k in range(n_folds):
            test = fold == k
            f = fit(cand, data.x[~test], data.y[~test], data.speaker[~test], seed)
            pa[test] = predict(f, data.x[test], data.speaker[test])
            pb[test] = predict(f, data.x[test], one_emotion_groups(data, test))
            fits[k] = (f, test)
        out[name] = {"oof_a": pa, "oof_b": pb, "fits": fits}
    return out


def with_row_temperature(p: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """``with_temperature`` with a temperature per row."""
    t = np.broadcast_to(np.asarray(t, dtype=np.float64), (len(p),))
    z = np.log(p + 1e-300) / t[:, None]
    z -= z.max(1, keepdims=True)
    q = np.exp(z)
    return q / q.sum(1, keepdims=True)


def lso_table(
    oof: dict[str, Any], data: Pool, temperature: float, row_t: dict[str, np.ndarray] | None = None
) -> dict[str, Any]:
    """Scores of the leave-speakers-out predictions at ``temperature`` (or, for the runs
    ``row_t`` names, at a temperature per row)."""
    every = np.ones(len(data.y), dtype=bool)
    out: dict[str, Any] = {}
    for name, r in oof.items():
        t = (row_t or {}).get(name, temperature)
        pa = with_row_temperature(r["oof_a"], t)
        pb = with_row_temperature(r["oof_b"], t)
        out[name] = {"a": scores(pa, data, every), "b": scores(pb, data, every)}
        out[name]["per_corpus"] = {}
        for c in CORPORA:
            rows = data.corpus == c
            if not np.any(rows):
                continue
            sa = scores(pa[rows], data, rows)
            out[name]["per_corpus"][c] = {
                "a": sa["accuracy"],
                "b": scores(pb[rows], data, rows)["accuracy"],
                "ece_a": round(sa["ece"], 4),
                **{k: round(v, 4) for k, v in sa.items() if k.startswith("accuracy_")},
            }
        if np.any(data.corpus == "ravdess"):
            out[name]["ravdess_actors"] = actor_spread(pa, data, seed=0)
    return out


def actor_spread(p: np.ndarray, data: Pool, seed: int) -> dict[str, Any]:
    """RAVDESS under leave-speakers-out: accuracy per actor (odd actors are male), the
    sex gap of the actors' means with a bootstrap over actors, and how the gap of four
    actors (two of each sex, as a held-out set of four is) spreads over every such
    choice."""
    import itertools

    per: dict[str, float] = {}
    for spk in sorted(set(data.speaker[data.corpus == "ravdess"])):
        rows = data.speaker == spk
        per[spk] = scores(p[rows], data, rows)["accuracy"]
    female = np.array([v for k, v in per.items() if data.sex[data.speaker == k][0] == "female"])
    male = np.array([v for k, v in per.items() if data.sex[data.speaker == k][0] == "male"])
    if len(female) < 2 or len(male) < 2:
        return {"per_actor": per}
    rng = np.random.default_rng(seed)
    boot = [
        rng.choice(female, len(female)).mean() - rng.choice(male, len(male)).mean()
        for _ in range(5000)
    ]
    fours = np.array(
        [
            np.mean(f) - np.mean(m)
            for f in itertools.combinations(female, 2)
            for m in itertools.combinations(male, 2)
        ]
    )
    return {
        "per_actor": {k: round(v, 4) for k, v in per.items()},
        "gap_of_actor_means": round(float(female.mean() - male.mean()), 4),
        "gap_bootstrap_95": [round(float(np.percentile(boot, q)), 4) for q in (2.5, 97.5)],
        "actor_sd": {
            "female": round(float(female.std(ddof=1)), 4),
            "male": round(float(male.std(ddof=1)), 4),
        },
        "four_actor_gap": {
            "sets": len(fours),
            "mean": round(float(fours.mean()), 4),
            "sd": round(float(fours.std()), 4),
            "p5_p95": [round(float(np.percentile(fours, q)), 4) for q in (5, 95)],
            "share_at_least_0.165": round(float(np.mean(fours >= 0.165)), 4),
        },
    }


NOVELTY_NEIGHBOURS = 3
NOVELTY_MIN_WINDOWS = 8.0
NOVELTY_MAX_SLOPE = 8.0
NOVELTY_MIN_T_FAMILIAR = 0.7
NOVELTY_PROTOCOL = (
    "temperature T = t_novel + (t_familiar - t_novel) * f, f = w / (w + 8) / (1 + "
    "(novelty / midpoint) ** slope) (w: the speaker's windows; slope at most 8; t_familiar "
    "at least 0.7); novelty: "
    "mean RMS distance, in population standard deviations, of the speaker's mean feature "
    "vector to its 3 nearest training speakers' means, over the same for a typical "
    "training speaker. Fitted (t_familiar <= t_novel) on the chosen candidate's held-out "
    "clip probabilities of all five corpora: leave-one-corpus-out (novelty against the "
    "other four corpora's speakers) and leave-speakers-out (against the other folds' "
    "speakers) together, summed clip NLL; per-corpus ECE also with the function fitted "
    "without that corpus's clips"
)


def speaker_means(x: np.ndarray, speaker: np.ndarray) -> tuple[np.ndarray, dict[Any, np.ndarray]]:
    names = np.unique(speaker)
    return names, {s: x[speaker == s].mean(0) for s in names}


READING_PROTOCOL = (
    "a 'calibrate to me' reading (neutral speech) is judged against the training speakers' "
    "means over their neutral windows (RAVDESS and TurEV calm included, as trained): "
    "novelty = (1 - s) * novelty against all-emotion means + s * novelty against neutral "
    "means, s = the reading's share of the statistics' weight; each novelty over its own "
    "typical training speaker's distance (the median over training speakers of their mean "
    "against the others', all-emotion or neutral). Leave-one-speaker-out on the training "
    "speakers below: each one's neutral mean against the others' neutral means, its "
    "all-emotion mean against the others' all-emotion means, and (the old treatment of a "
    "reading) its neutral mean against the others' all-emotion means"
)


def reading_reference(
    x: np.ndarray, y: np.ndarray, speaker: np.ndarray, offset: np.ndarray, scale: np.ndarray
) -> tuple[np.ndarray, dict[str, Any]]:
    """The training speakers' neutral means (raw, one row per speaker with neutral
    windows) and the leave-one-speaker-out check that the neutral novelty, on its own
    scale, is comparable to the all-emotion one (quartiles of each over the speakers)."""
    from emoapp.encoders.novelty import knn_distance, typical_distance

    neutral = y == LABELS.index("neutral")
    names, all_means = speaker_means(x, speaker)
    n_names, n_means = speaker_means(x[neutral], speaker[neutral])
    z_all = (np.array([all_means[s] for s in names]) - offset) / scale
    z_neu = (np.array([n_means[s] for s in n_names]) - offset) / scale
    typical_all = typical_distance(z_all, NOVELTY_NEIGHBOURS)
    typical_neu = typical_distance(z_neu, NOVELTY_NEIGHBOURS)
    loso: dict[str, list[float]] = {
        "all_vs_all": [],
        "neutral_vs_neutral": [],
        "neutral_vs_all": [],
    }
    index = {s: i for i, s in enumerate(names)}
    for j, s in enumerate(n_names):
        i = index[s]
        others_all = np.delete(z_all, i, axis=0)
        others_neu = np.delete(z_neu, j, axis=0)
        loso["all_vs_all"].append(
            float(knn_distance(z_all[i], others_all, NOVELTY_NEIGHBOURS)[0] / typical_all)
        )
        loso["neutral_vs_neutral"].append(
            float(knn_distance(z_neu[j], others_neu, NOVELTY_NEIGHBOURS)[0] / typical_neu)
        )
        loso["neutral_vs_all"].append(
            float(knn_distance(z_neu[j], others_all, NOVELTY_NEIGHBOURS)[0] / typical_all)
        )
    report = {
        "protocol": READING_PROTOCOL,
        "speakers_with_neutral_windows": len(n_names),
        "neutral_windows": int(neutral.sum()),
        "typical_distance_all": round(typical_all, 4),
        "typical_distance_neutral": round(typical_neu, 4),
        "leave_one_speaker_out_quartiles": {
            k: [round(float(np.percentile(v, q)), 3) for q in (25, 50, 75)] for k, v in loso.items()
        },
        "leave_one_speaker_out_mean": {k: round(float(np.mean(v)), 3) for k, v in loso.items()},
    }
    return np.array([n_means[s] for s in n_names]), report


def novelty_rows(data: Pool, fits: dict[Any, tuple[Fitted, np.ndarray]]) -> np.ndarray:
    """Each held-out row's speaker novelty, measured against that fold's training
    speakers (as :class:`NoveltyTemperature` measures it), and the speaker's windows."""
    from emoapp.encoders.novelty import knn_distance, typical_distance

    nov = np.full(len(data.y), np.nan)
    for f, test in fits.values():
        assert f.spec is not None and f.spec.reference_var is not None
        x = data.x[:, f.cols]
        offset, scale = f.spec.reference, np.sqrt(f.spec.reference_var)
        _, train = speaker_means(x[~test], data.speaker[~test])
        z_train = (np.array(list(train.values())) - offset) / scale
        typical = typical_distance(z_train, NOVELTY_NEIGHBOURS)
        for s in np.unique(data.speaker[test]):
            rows = test & (data.speaker == s)
            z = (x[rows].mean(0) - offset) / scale
            nov[rows] = knn_distance(z, z_train, NOVELTY_NEIGHBOURS)[0] / typical
    return nov


def novelty_params(v: np.ndarray) -> dict[str, float]:
    v = np.clip(np.asarray(v, dtype=np.float64), -20.0, 20.0)  # the optimiser may wander
    # The familiar end is an asymptote (novelty 0) no held-out speaker reaches: bounded, so
    # that no speaker's logits are sharpened more than 1 / 0.7 times.
    t_fam = max(math.exp(v[0]), NOVELTY_MIN_T_FAMILIAR)
    return {
        "t_familiar": t_fam,
        "t_novel": t_fam * math.exp(float(np.logaddexp(0.0, v[1]))),
        "midpoint": math.exp(v[2]),
        "slope": min(math.exp(v[3]), NOVELTY_MAX_SLOPE),
        "min_windows": NOVELTY_MIN_WINDOWS,
    }


def row_temperatures(params: dict[str, float], nov: np.ndarray, windows: np.ndarray) -> np.ndarray:
    from emoapp.encoders.novelty import temperature_of

    return temperature_of(
        nov,
        windows,
        params["t_familiar"],
        params["t_novel"],
        params["midpoint"],
        params["slope"],
        params["min_windows"],
    )


def fit_novelty_temperature(
    sets: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], data: Pool
) -> dict[str, float]:
    """The novelty temperature minimising the summed clip NLL of several sets of held-out
    probabilities (each with its rows' novelty and the rows to use)."""
    from scipy.optimize import minimize

    windows = np.array([0.0] * len(data.y))
    names, counts = np.unique(data.speaker, return_counts=True)
    per = dict(zip(names, counts, strict=True))
    windows = np.array([per[s] for s in data.speaker], dtype=np.float64)
    prepared = []
    for p, nov, rows in sets:
        ids, inverse = np.unique(data.clip[rows], return_inverse=True)
        first = {c: i for i, c in zip(np.flatnonzero(rows), data.clip[rows], strict=True)}
        gold = np.array([data.y[first[c]] for c in ids])
        prepared.append((np.log(p[rows] + 1e-300), nov[rows], windows[rows], inverse, gold))

    def nll(v: np.ndarray) -> float:
        params = novelty_params(v)
        total = 0.0
        for lp, nov, w, inverse, gold in prepared:
            t = row_temperatures(params, nov, w)
            z = lp / t[:, None]
            z -= z.max(1, keepdims=True)
            q = np.exp(z)
            q /= q.sum(1, keepdims=True)
            sums = np.zeros((len(gold), q.shape[1]))
            np.add.at(sums, inverse, q)
            cp = sums / np.bincount(inverse)[:, None]
            total -= float(np.sum(np.log(cp[np.arange(len(gold)), gold] + 1e-12)))
        return total

    best = None
    for start in ([0.0, 0.5, 0.1, 1.0], [-0.2, 1.0, 0.2, 2.0], [0.2, 0.0, 0.0, 3.0]):
        r = minimize(
            nll,
            np.array(start),
            method="Nelder-Mead",
            options={"maxiter": 800, "xatol": 1e-3, "fatol": 0.05},
        )
        if best is None or r.fun < best.fun:
            best = r
    assert best is not None
    return novelty_params(best.x)


def seconds_needed(
    candidate: Candidate,
    data: Pool,
    seed: int,
    temperature: float,
    corpora: Sequence[str],
    hop_s: float = 0.5,
) -> list[dict[str, float]]:
    """LOCO accuracy of each held-out clip when the speaker statistics come from N other
    windows of that speaker (drawn at random, the clip's own excluded), as the live
    running estimate would have after N * hop seconds of speech. (a) speakers only."""
    rng = np.random.default_rng(seed)
    budgets = (0, 2, 4, 8, 16, 32, 64, 128)
    hits: dict[int, list[bool]] = {b: [] for b in budgets}
    for held in corpora:
        test = data.corpus == held
        f = fit(candidate, data.x[~test], data.y[~test], data.speaker[~test], seed)
        if f.spec is None:
            return []
        rows = np.flatnonzero(test)
        xs = data.x[:, f.cols]
        for spk in np.unique(data.speaker[rows]):
            mine = rows[data.speaker[rows] == spk]
            clips = np.unique(data.clip[mine])
            for c in rng.choice(clips, size=min(30, len(clips)), replace=False):
                own = mine[data.clip[mine] == c]
                others = rng.permutation(mine[data.clip[mine] != c])
                for b in budgets:
                    stats = SpeakerStats.of(xs[others[:b]]) if b else None
                    z = f.spec.inputs(xs[own], stats)
                    p = softmax_classifier(z, f.weights, temperature).mean(0)
                    hits[b].append(bool(p.argmax() == data.y[own[0]]))
    return [
        {"windows": b, "seconds": b * hop_s, "accuracy": float(np.mean(hits[b]))} for b in budgets
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, help="artefact folder (default: the shipped one)")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/emoapp-cache/voice"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--holdout-actors",
        default="",
        metavar="A-B",
        help="RAVDESS actors never read (e.g. 15-18), for a held-out figure",
    )
    parser.add_argument("--candidates", metavar="N,N", help="only these candidates (0-based)")
    parser.add_argument(
        "--b-tolerance",
        type=float,
        default=None,
        help="how much worse than unadapted (b) may be (default: its standard error)",
    )
    parser.add_argument("--report", type=Path, help="also write the tables as JSON here")
    parser.add_argument(
        "--no-tables",
        action="store_true",
        help="skip the unadapted leave-speakers-out and the running-estimate tables (a "
        "quicker held-out run)",
    )
    parser.add_argument(
        "--corpora",
        default=",".join(CORPORA),
        help="a subset of the corpora (for a quick trial; the shipped model uses all)",
    )
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    held_actors: set[int] = set()
    if args.holdout_actors:
        lo, _, hi = args.holdout_actors.partition("-")
        held_actors = set(range(int(lo), int(hi or lo) + 1))
        if args.out is None:
            parser.error("--holdout-actors needs --out DIR")
    out: Path = args.out or ROOT / "models" / "embedded" / "voice-multicorpus"
    with threadpool_limits(1):
        import torch

        torch.set_num_threads(1)
        names = [c for c in args.corpora.split(",") if c]
        corpora = [extract(args.data, c, args.cache) for c in names]
    data = pool(corpora)
    if held_actors:
        data = data.where(~np.isin(data.speaker, [f"ravdess-{a:02d}" for a in held_actors]))
    print(
        f"train_embedded_voice: {len(data.y)} windows, {len(np.unique(data.clip))} clips, "
        f"{len(np.unique(data.speaker))} speakers",
        file=sys.stderr,
    )
    candidates = list(CANDIDATES)
    if args.candidates:
        candidates = [CANDIDATES[int(i)] for i in args.candidates.split(",")]
    table = []
    with threadpool_limits(1):
        for cand in candidates:
            started = time.perf_counter()
            r = loco(cand, data, args.seed, names)
            a, a_se = mean_of(r["folds"], "a")
            b, b_se = mean_of(r["folds"], "b")
            table.append((cand, r, a, a_se, b, b_se))
            print(
                f"  {cand.name:55s} LOCO (a) {a:.3f} ± {a_se:.3f}  (b) {b:.3f} ± {b_se:.3f}  "
                + " ".join(
                    f"{k}={v['a']['accuracy']:.2f}/{v['b']['accuracy']:.2f}"
                    for k, v in r["folds"].items()
                )
                + f"  ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
        unadapted = [row for row in table if row[0].adapt == "none"]
        base_b = max(unadapted, key=lambda row: row[2]) if unadapted else None
        b_change: dict[str, tuple[float, float]] = {}
        eligible = []
        for row in table:
            if base_b is None or row[0].adapt == "none":
                eligible.append(row)
                continue
            # (b) against the best unadapted candidate, fold by fold (paired): eligible
            # unless it is worse by more than one standard error of the differences.
            diffs = np.array(
                [
                    row[1]["folds"][c]["b"]["accuracy"] - base_b[1]["folds"][c]["b"]["accuracy"]
                    for c in names
                ]
            )
            se = float(diffs.std(ddof=1) / math.sqrt(len(diffs))) if len(diffs) > 1 else 0.0
            tol = args.b_tolerance if args.b_tolerance is not None else se
            b_change[row[0].name] = (float(diffs.mean()), se)
            if diffs.mean() >= -tol:
                eligible.append(row)
        best = max(eligible, key=lambda row: (round(row[2], 6), round(row[4], 6)))
        chosen, result = best[0], best[1]
        # temperature: fitted on held-out predictions of every corpus, both from corpora
        # the model never heard (LOCO) and from speakers it never heard (leave-speakers-out)
        oof = leave_speakers_out(chosen, data, args.seed, unadapted_too=not args.no_tables)
        sets = [
            (np.log(result["oof_a"] + 1e-300), "loco"),
            (np.log(oof["adapted"]["oof_a"] + 1e-300), "lso"),
        ]
        every = np.ones(len(data.y), dtype=bool)
        temperature = fit_clip_temperature_sets([(lp, every) for lp, _ in sets], data)
        ece = {}
        for c in names:
            rows = data.corpus == c
            t_other = fit_clip_temperature_sets([(lp, ~rows) for lp, _ in sets], data)
            ece[c] = {"temperature_from_other_corpora": round(t_other, 3)}
            for (_lp, kind), raw in zip(
                sets, (result["oof_a"], oof["adapted"]["oof_a"]), strict=True
            ):
                ece[c][f"{kind}_ece_uncalibrated"] = round(scores(raw[rows], data, rows)["ece"], 4)
                ece[c][f"{kind}_ece_other_corpora_temperature"] = round(
                    scores(with_temperature(raw[rows], t_other), data, rows)["ece"], 4
                )
                ece[c][f"{kind}_ece_final_temperature"] = round(
                    scores(with_temperature(raw[rows], temperature), data, rows)["ece"], 4
                )
        print(f"  chosen: {chosen.name}; temperature {temperature:.3f}; ECE {ece}", file=sys.stderr)
        novelty: dict[str, Any] | None = None
        row_t: dict[str, np.ndarray] = {}
        if chosen.adapt != "none" and chosen.scale:
            # a temperature that depends on how familiar the speaker is
            nov = {
                "loco": novelty_rows(data, result["fits"]),
                "lso": novelty_rows(data, oof["adapted"]["fits"]),
            }
            raws = {"loco": result["oof_a"], "lso": oof["adapted"]["oof_a"]}
            params = fit_novelty_temperature(
                [(raws[k], nov[k], every) for k in ("loco", "lso")], data
            )
            counts = dict(zip(*np.unique(data.speaker, return_counts=True), strict=True))
            windows = np.array([counts[s] for s in data.speaker], dtype=np.float64)
            row_t = {k: row_temperatures(params, nov[k], windows) for k in nov}
            for c in names:
                rows = data.corpus == c
                other = fit_novelty_temperature(
                    [(raws[k], nov[k], ~rows) for k in ("loco", "lso")], data
                )
                for kind in ("loco", "lso"):
                    raw = raws[kind]
                    t_rows = row_temperatures(other, nov[kind], windows)
                    ece[c][f"{kind}_novelty"] = round(float(np.median(nov[kind][rows])), 3)
                    ece[c][f"{kind}_ece_novelty_other_corpora"] = round(
                        scores(with_row_temperature(raw[rows], t_rows[rows]), data, rows)["ece"], 4
                    )
                    ece[c][f"{kind}_ece_novelty_final"] = round(
                        scores(with_row_temperature(raw[rows], row_t[kind][rows]), data, rows)[
                            "ece"
                        ],
                        4,
                    )
                    ece[c][f"{kind}_mean_temperature_novelty_final"] = round(
                        float(np.mean(row_t[kind][rows])), 3
                    )
            pooled = {}
            for kind in ("loco", "lso"):
                raw = raws[kind]
                pooled[kind] = {
                    "ece_uncalibrated": round(scores(raw, data, every)["ece"], 4),
                    "ece_single_temperature": round(
                        scores(with_temperature(raw, temperature), data, every)["ece"], 4
                    ),
                    "ece_novelty": round(
                        scores(with_row_temperature(raw, row_t[kind]), data, every)["ece"], 4
                    ),
                }
            novelty = {"params": params, "pooled": pooled}
            print(f"  novelty temperature {params}; pooled ECE {pooled}", file=sys.stderr)
        lso = lso_table(oof, data, temperature, {"adapted": row_t["lso"]} if row_t else None)
        brief = {k: {p: v[p] for p in ("a", "b")} for k, v in lso.items()}
        print(f"  leave-speakers-out: {json.dumps(brief)}", file=sys.stderr)
        running = (
            [] if args.no_tables else seconds_needed(chosen, data, args.seed, temperature, names)
        )
        print(f"  running estimate: {running}", file=sys.stderr)
        final = fit(chosen, data.x, data.y, data.speaker, args.seed)
        speaker_temperature = None
        if novelty is not None:
            from emoapp.encoders.novelty import NoveltyTemperature

            assert final.spec is not None and final.spec.reference_var is not None
            _, means = speaker_means(data.x[:, final.cols], data.speaker)
            neutral_means, reading = reading_reference(
                data.x[:, final.cols],
                data.y,
                data.speaker,
                final.spec.reference,
                np.sqrt(final.spec.reference_var),
            )
            novelty["reading"] = reading
            print(f"  reading reference: {json.dumps(reading)}", file=sys.stderr)
            speaker_temperature = NoveltyTemperature.build(
                np.array(list(means.values())),
                final.spec.reference,
                np.sqrt(final.spec.reference_var),
                novelty["params"],
                NOVELTY_NEIGHBOURS,
                neutral_means,
            )

    def rnd(d: dict[str, Any]) -> dict[str, Any]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}

    feat_names = feature_names({**DEFAULT_FEATURES, "mel_means": chosen.features == "mel+emb"})
    meta: dict[str, Any] = {
        "model_id": MODEL_ID,
        "version": VERSION,
        "labels": LABELS,
        "label_note": "the seven canonical labels (RAVDESS and TurEV calm trained as "
        "neutral; EmoDB boredom left out)",
        "features": {**DEFAULT_FEATURES, "mel_means": chosen.features == "mel+emb"},
        "speaker_embedding": "emb" in chosen.features,
        "feature_names": feat_names
        + ([f"speaker_emb{i}" for i in range(N_EMB)] if "emb" in chosen.features else []),
        "temperature": round(temperature, 4),
        "model": {
            "kind": chosen.kind,
            "name": chosen.name,
            "hidden": chosen.hidden,
            "regularisation": chosen.c,
        },
        "training": {
            "data": {
                c.name: {"clips": len(c.ids), "windows": int(np.sum(data.corpus == c.name))}
                for c in corpora
            },
            "held_out_ravdess_actors": sorted(held_actors),
            "speakers": len(np.unique(data.speaker)),
            "windowing": "2 s every 0.5 s (the app's), gated by the app's Silero gate; "
            "each window labelled with its clip's emotion",
            "seed": args.seed,
            "script": "scripts/train_embedded_voice.py",
        },
        "selection": {
            "protocol": SELECTION_PROTOCOL,
            "candidates": [
                {
                    "name": row[0].name,
                    "loco_a": round(row[2], 4),
                    "loco_a_se": round(row[3], 4),
                    "loco_b": round(row[4], 4),
                    "loco_b_se": round(row[5], 4),
                    "b_change_vs_unadapted": [round(v, 4) for v in b_change.get(row[0].name, ())],
                    "eligible": any(row is e for e in eligible),
                    "folds": {
                        k: {"a": rnd(v["a"]), "b": rnd(v["b"])} for k, v in row[1]["folds"].items()
                    },
                }
                for row in table
            ],
            "chosen": chosen.name,
        },
        "calibration": {
            "temperature": round(temperature, 4),
            "protocol": CALIBRATION_PROTOCOL,
            "per_corpus": ece,
            **(
                {
                    "novelty_protocol": NOVELTY_PROTOCOL,
                    "pooled": novelty["pooled"],
                    "reading": novelty["reading"],
                }
                if novelty is not None
                else {}
            ),
        },
        "leave_speakers_out": {
            k: {p: rnd(v[p]) for p in ("a", "b")}
            | {"per_corpus": v["per_corpus"]}
            | ({"ravdess_actors": v["ravdess_actors"]} if "ravdess_actors" in v else {})
            for k, v in lso.items()
        },
        "running_estimate": running,
        "license": LICENSE,
    }
    if final.spec is not None:
        meta["adaptation"] = final.spec.to_json()
        meta["adaptation"]["adapted_features"] = int(final.spec.mask.sum())
    arrays = dict(final.weights)
    if speaker_temperature is not None:
        meta["confidence"] = speaker_temperature.to_json()
        arrays.update(speaker_temperature.arrays())
    out.mkdir(parents=True, exist_ok=True)
    write_npz(out / WEIGHTS, {k: v.astype(np.float64) for k, v in arrays.items()})
    (out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
    sums = write_checksums(out)
    if args.report:
        args.report.write_text(json.dumps(meta, indent=1) + "\n")
    print(f"train_embedded_voice: wrote {out} ({', '.join(sorted(sums))})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
