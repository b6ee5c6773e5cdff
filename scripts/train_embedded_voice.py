#!/usr/bin/env python3
"""Train the embedded voice model (``models/embedded/voice-ravdess``) on RAVDESS speech.

    scripts/train_embedded_voice.py [--data ../shared/data] [--out DIR]
                                    [--holdout-actors 15,16,17,18] [--cache DIR] [--seed 0]

What it does, speaker-independently throughout:

1. Every RAVDESS speech file of the training actors (``DATA/ravdess/Actor_NN/*.flac``,
   the label from the file name, ``calm`` kept as its own raw label that the registry
   maps onto neutral) is cut into the windows the app sees (2 s every 0.5 s,
   :func:`emoapp.encoders.voice.sliding_windows`) and gated as the app gates them
   (:func:`emoapp.encoders.voice.gate_windows`, Silero by default); every window with
   speech is one training row, labelled with its clip's emotion, described by
   :func:`emoapp.encoders.embedded.voice.window_features`. Features are cached under
   ``--cache`` (keyed by the feature settings and the gate).
2. Model selection: every candidate (feature set x classifier x regularisation) is
   scored by leave-two-actors-out cross-validation over the training actors (folds of
   one male and one female actor: 01+02, 03+04, ...), clip by clip the way ``emoapp
   evaluate`` scores it (the mean of the clip's window probabilities, over the seven
   canonical labels). The best mean clip accuracy wins.
3. The winner is refitted on every window of the training actors and written to
   ``--out`` with ``meta.json`` (labels, feature settings, the selection table, the
   per-fold figures of the winner) and ``checksums.sha256``.

Without ``--holdout-actors`` it trains on all 18 actors: the shipped model. With
``--holdout-actors 15,16,17,18 --out DIR`` those actors are never read (not for
selection, not for training), so ``emoapp evaluate ../shared/data/ravdess --actors 15-18
--voice-model DIR`` scores the whole procedure on unseen speakers.

Deterministic: seeded, single-threaded BLAS, weights written with fixed zip metadata; a
second run writes the same bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
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

from emoapp.core.labelmap import build_label_map  # noqa: E402
from emoapp.encoders.embedded.artefacts import write_checksums, write_npz  # noqa: E402
from emoapp.encoders.embedded.voice import (  # noqa: E402
    DEFAULT_FEATURES,
    SAMPLE_RATE,
    WEIGHTS,
    feature_names,
    softmax_classifier,
    window_features,
)

MODEL_ID = "embedded/voice-ravdess"
VERSION = "1"
RAVDESS_NAME = re.compile(r"^03-01-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.(flac|wav)$")
EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
RAW_LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
"""The model's raw outputs; the registry maps ``calm`` onto neutral (label_overrides)."""
OVERRIDES = {"calm": "neutral"}
ALL_ACTORS = tuple(range(1, 19))


@dataclass(frozen=True)
class Candidate:
    features: str  # "base" or "mel" (base + relative log-mel band means)
    kind: str  # "logreg" or "mlp"
    c: float  # logreg: inverse L2 strength; mlp: L2 strength alpha
    hidden: int = 0

    @property
    def name(self) -> str:
        if self.kind == "logreg":
            return f"{self.features}/logreg C={self.c:g}"
        return f"{self.features}/mlp h={self.hidden} alpha={self.c:g}"


CANDIDATES: tuple[Candidate, ...] = (
    Candidate("base", "logreg", 0.01),
    Candidate("base", "logreg", 0.03),
    Candidate("mel", "logreg", 0.03),
    *(Candidate("base", "mlp", a, h) for h in (64, 128) for a in (3.0, 10.0)),
    Candidate("mel", "mlp", 10.0, 128),
)
"""The grid searched (narrowed from a wider one explored on actors 01-14 only)."""


# --- data -----------------------------------------------------------------------------


@dataclass
class Clips:
    """Every window with speech of every clip, with its clip's label and actor."""

    x: np.ndarray  # (windows, features) with mel means (base features are a prefix)
    clip: np.ndarray  # (windows,) clip index
    names: list[str]  # clip file names
    label: np.ndarray  # (clips,) index into RAW_LABELS
    actor: np.ndarray  # (clips,)


def list_clips(root: Path, actors: Sequence[int]) -> list[tuple[Path, int, int]]:
    found = []
    for actor in actors:
        folder = root / f"Actor_{actor:02d}"
        if not folder.is_dir():
            raise SystemExit(f"train_embedded_voice: {folder} is missing")
        for path in sorted(folder.iterdir()):
            m = RAVDESS_NAME.match(path.name)
            if m and int(m.group(5)) == actor:
                found.append((path, RAW_LABELS.index(EMOTIONS[m.group(1)]), actor))
    return found


def settings_for_cache() -> dict[str, Any]:
    return {**DEFAULT_FEATURES, "mel_means": True}


def extract(
    root: Path,
    actors: Sequence[int],
    cache: Path,
    vad: str,
    window_s: float = 2.0,
    hop_s: float = 0.5,
) -> Clips:
    """Features of every gated window (``window_s`` every ``hop_s``) of the actors' clips
    (cached per actor)."""
    import soundfile as sf

    from emoapp.encoders.vad import make_gate
    from emoapp.encoders.voice import VoiceConfig, gate_windows, sliding_windows

    settings = settings_for_cache()
    voice = VoiceConfig(vad=vad, window_s=window_s, hop_s=hop_s)  # type: ignore[arg-type]
    # The cache is keyed by the settings and by the code that cuts, gates and describes
    # the windows, so a change to either re-extracts.
    code = [
        hashlib.sha1((ROOT / "emoapp" / "encoders" / name).read_bytes()).hexdigest()
        for name in ("voice.py", "vad.py", "embedded/voice.py")
    ]
    key = hashlib.sha1(
        json.dumps([settings, voice.__dict__, code], sort_keys=True).encode()
    ).hexdigest()[:12]
    cache.mkdir(parents=True, exist_ok=True)
    gate = None
    xs, clip_ids, names, labels, clip_actor = [], [], [], [], []
    for actor in actors:
        part = cache / f"actor{actor:02d}-{key}.npz"
        clips = list_clips(root, [actor])
        if not part.is_file():
            if gate is None:
                gate = make_gate(voice.vad, voice.vad_threshold, voice.energy_dbfs)
            started = time.perf_counter()
            rows, owners = [], []
            for i, (path, _, _) in enumerate(clips):
                audio, sr = sf.read(path, dtype="float32", always_2d=False)
                if sr != SAMPLE_RATE:
                    raise SystemExit(f"{path}: {sr} Hz; expected {SAMPLE_RATE}")
                windows = list(sliding_windows(audio, sr, 0.0, voice.window_s, voice.hop_s))
                gated = gate_windows(windows, SAMPLE_RATE, voice, gate)
                for index in sorted(gated.speech):
                    rows.append(window_features(gated.speech[index].samples, settings))
                    owners.append(i)
            np.savez(part, x=np.asarray(rows), owner=np.asarray(owners, dtype=np.int64))
            print(
                f"  actor {actor:02d}: {len(clips)} clips, {len(rows)} windows "
                f"({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
        with np.load(part) as data:
            x, owner = data["x"], data["owner"]
        offset = len(names)
        xs.append(x)
        clip_ids.append(owner + offset)
        for path, label, a in clips:
            names.append(path.name)
            labels.append(label)
            clip_actor.append(a)
    return Clips(
        x=np.concatenate(xs),
        clip=np.concatenate(clip_ids),
        names=names,
        label=np.asarray(labels),
        actor=np.asarray(clip_actor),
    )


# --- models ---------------------------------------------------------------------------


def n_features(kind: str) -> int:
    return len(feature_names({**DEFAULT_FEATURES, "mel_means": kind == "mel"}))


def fit(candidate: Candidate, x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """Fit a candidate on window rows; the weights as :func:`softmax_classifier` reads."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.preprocessing import StandardScaler

    x = x[:, : n_features(candidate.features)]
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    z = (x - scaler.mean_) / scale
    k = len(RAW_LABELS)
    weights: dict[str, np.ndarray] = {"mean": scaler.mean_.copy(), "scale": scale.copy()}
    if candidate.kind == "logreg":
        model = LogisticRegression(C=candidate.c, max_iter=3000, tol=1e-6)
        model.fit(z, y)
        out_w = np.zeros((z.shape[1], k))
        out_b = np.full(k, -1e9)
        out_w[:, model.classes_] = model.coef_.T
        out_b[model.classes_] = model.intercept_
    else:
        model = MLPClassifier(
            hidden_layer_sizes=(candidate.hidden,),
            alpha=candidate.c,
            max_iter=400,
            early_stopping=False,
            random_state=seed,
            tol=1e-5,
        )
        with warnings.catch_warnings():
            # A fixed iteration budget, not convergence, ends training (it regularises).
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(z, y)
        weights["hidden_w"] = model.coefs_[0].copy()
        weights["hidden_b"] = model.intercepts_[0].copy()
        out_w = np.zeros((candidate.hidden, k))
        out_b = np.full(k, -1e9)
        out_w[:, model.classes_] = model.coefs_[1]
        out_b[model.classes_] = model.intercepts_[1]
    weights["out_w"], weights["out_b"] = out_w, out_b
    return weights


def canonical(raw_probs: np.ndarray) -> np.ndarray:
    """Raw-label probabilities -> the seven canonical labels (calm onto neutral)."""
    label_map = build_label_map(MODEL_ID, RAW_LABELS, OVERRIDES)
    return np.stack([label_map.apply(p) for p in raw_probs])


def gold_canonical(raw_label: np.ndarray) -> np.ndarray:
    """Raw label indices -> canonical label indices (through the same label map)."""
    return np.argmax(canonical(np.eye(len(RAW_LABELS))), axis=1)[raw_label]


def clip_scores(
    probs: np.ndarray, clip: np.ndarray, clips: np.ndarray, gold: np.ndarray
) -> dict[str, float]:
    """Clip accuracy and macro-F1 over the canonical labels, a clip's distribution being
    the mean of its windows' (as ``emoapp evaluate`` aggregates); clips with no speech
    window count as wrong."""
    from sklearn.metrics import f1_score

    canon = canonical(probs)
    pred = np.full(len(clips), -1)
    for j, c in enumerate(clips):
        rows = canon[clip == c]
        if len(rows):
            pred[j] = int(np.argmax(rows.mean(axis=0)))
    labels = sorted(set(gold.tolist()))
    return {
        "accuracy": float(np.mean(pred == gold)),
        "macro_f1": float(f1_score(gold, pred, labels=labels, average="macro", zero_division=0)),
        "window_accuracy": float(
            np.mean(np.argmax(canon, axis=1) == gold_canonical_windows(clip, clips, gold))
        ),
    }


def gold_canonical_windows(clip: np.ndarray, clips: np.ndarray, gold: np.ndarray) -> np.ndarray:
    index = {int(c): j for j, c in enumerate(clips)}
    return np.array([gold[index[int(c)]] for c in clip])


def folds_of(actors: Sequence[int]) -> list[tuple[int, ...]]:
    """Leave-two-actors-out folds: consecutive pairs (one male, one female actor)."""
    ordered = sorted(actors)
    return [tuple(ordered[i : i + 2]) for i in range(0, len(ordered), 2)]


def cross_validate(candidate: Candidate, data: Clips, seed: int) -> list[dict[str, Any]]:
    window_actor = data.actor[data.clip]
    window_label = data.label[data.clip]
    out = []
    for fold in folds_of(sorted(set(data.actor.tolist()))):
        test_w = np.isin(window_actor, fold)
        weights = fit(candidate, data.x[~test_w], window_label[~test_w], seed)
        x = data.x[test_w, : n_features(candidate.features)]
        probs = softmax_classifier(x, weights)
        clips = np.flatnonzero(np.isin(data.actor, fold))
        scores = clip_scores(probs, data.clip[test_w], clips, gold_canonical(data.label[clips]))
        out.append({"actors": [f"{a:02d}" for a in fold], **scores})
    return out


def summary(folds: list[dict[str, Any]], key: str) -> tuple[float, float]:
    values = np.array([f[key] for f in folds])
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


# --- main -----------------------------------------------------------------------------


def parse_actors(text: str) -> list[int]:
    actors: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{part!r} is not an actor number or range") from None
        if not (1 <= first <= last <= 18):
            raise argparse.ArgumentTypeError(f"{part!r}: actors are 1-18")
        actors.update(range(first, last + 1))
    if not actors:
        raise argparse.ArgumentTypeError("name at least one actor")
    return sorted(actors)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, help="artefact folder (default: the shipped one)")
    parser.add_argument(
        "--holdout-actors",
        type=parse_actors,
        default=[],
        metavar="A,B-C",
        help="actors never read (for a held-out evaluation)",
    )
    parser.add_argument("--cache", type=Path, default=Path("/tmp/emoapp-voice-features"))
    parser.add_argument("--vad", choices=("silero", "energy"), default="silero")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--window-s",
        type=float,
        default=2.0,
        help="window length in seconds (default 2, the app's; another length needs --out "
        "and is for measuring what a shorter window costs)",
    )
    parser.add_argument("--hop-s", type=float, default=0.5, help="window hop (default 0.5)")
    parser.add_argument(
        "--candidates",
        metavar="N,N",
        help="only these candidate numbers (0-based; default: all)",
    )
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    if args.out is None:
        if args.holdout_actors:
            parser.error("--holdout-actors needs --out DIR (the shipped model uses every actor)")
        args.out = ROOT / "models" / "embedded" / "voice-ravdess"
    if args.window_s <= 0 or args.hop_s <= 0:
        parser.error("--window-s and --hop-s must be positive")
    shipped = ROOT / "models" / "embedded" / "voice-ravdess"
    if (args.window_s, args.hop_s) != (2.0, 0.5) and args.out.resolve() == shipped.resolve():
        parser.error("a window other than 2 s every 0.5 s needs --out DIR (the app cuts 2 s)")
    actors = [a for a in ALL_ACTORS if a not in args.holdout_actors]
    if len(actors) < 4:
        parser.error("keep at least four actors for training")
    root = args.data / "ravdess"
    print(
        f"train_embedded_voice: features of actors {actors[0]}-{actors[-1]} "
        f"({len(actors)}) from {root}",
        file=sys.stderr,
    )
    # One thread everywhere: deterministic sums, and no spinning threads on a busy machine.
    with threadpool_limits(1):
        import torch

        torch.set_num_threads(1)
        data = extract(root, actors, args.cache, args.vad, args.window_s, args.hop_s)
    candidates = list(CANDIDATES)
    if args.candidates:
        candidates = [CANDIDATES[int(i)] for i in args.candidates.split(",")]

    with threadpool_limits(1):
        table = []
        for candidate in candidates:
            started = time.perf_counter()
            folds = cross_validate(candidate, data, args.seed)
            acc, acc_sd = summary(folds, "accuracy")
            f1, f1_sd = summary(folds, "macro_f1")
            table.append((candidate, folds, acc, acc_sd, f1, f1_sd))
            print(
                f"  {candidate.name:32s} accuracy {acc:.3f} ± {acc_sd:.3f}  "
                f"macro-F1 {f1:.3f} ± {f1_sd:.3f}  ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )
        best = max(table, key=lambda row: (round(row[2], 6), round(row[4], 6)))
        chosen, folds = best[0], best[1]
        window_label = data.label[data.clip]
        weights = fit(chosen, data.x, window_label, args.seed)

    features = {**DEFAULT_FEATURES, "mel_means": chosen.features == "mel"}
    acc, acc_sd = summary(folds, "accuracy")
    f1, f1_sd = summary(folds, "macro_f1")
    meta = {
        "model_id": MODEL_ID,
        "version": VERSION,
        "labels": RAW_LABELS,
        "label_note": "raw RAVDESS labels; the registry maps calm onto neutral",
        "features": features,
        "feature_names": feature_names(features),
        "model": {
            "kind": chosen.kind,
            "name": chosen.name,
            "hidden": chosen.hidden,
            "regularisation": chosen.c,
            "inference": "standardise, "
            + ("ReLU hidden layer, " if chosen.hidden else "")
            + "linear layer, softmax (numpy)",
        },
        "training": {
            "data": "RAVDESS speech (Livingstone & Russo 2018), 16 kHz FLAC, CC BY-NC-SA 4.0",
            "actors": [f"{a:02d}" for a in actors],
            "held_out_actors": [f"{a:02d}" for a in args.holdout_actors],
            "clips": len(data.names),
            "windows": len(data.x),
            "windowing": f"{args.window_s:g} s every {args.hop_s:g} s"
            + (" (the app's)" if (args.window_s, args.hop_s) == (2.0, 0.5) else "")
            + ", gated by the app's voice-activity "
            f"gate ({args.vad}); each window labelled with its clip's emotion",
            "seed": args.seed,
            "script": "scripts/train_embedded_voice.py",
        },
        "selection": {
            "protocol": "leave-two-actors-out cross-validation over the training actors "
            "(folds of one male and one female actor), clips scored as emoapp evaluate "
            "scores them (mean of the clip's window probabilities, 7 canonical labels); "
            "best mean clip accuracy wins",
            "candidates": [
                {
                    "name": row[0].name,
                    "accuracy_mean": round(row[2], 4),
                    "accuracy_sd": round(row[3], 4),
                    "macro_f1_mean": round(row[4], 4),
                    "macro_f1_sd": round(row[5], 4),
                }
                for row in table
            ],
        },
        "cross_validation": {
            "candidate": chosen.name,
            "accuracy_mean": round(acc, 4),
            "accuracy_sd": round(acc_sd, 4),
            "macro_f1_mean": round(f1, 4),
            "macro_f1_sd": round(f1_sd, 4),
            "folds": [
                {k: (round(v, 4) if isinstance(v, float) else v) for k, v in f.items()}
                for f in folds
            ],
            "note": "figures of the selected candidate on the folds it was selected on: "
            "slightly optimistic; the unbiased figure is emoapp evaluate on held-out actors",
        },
        "license": "CC BY-NC-SA 4.0 (inherited from RAVDESS): non-commercial use, "
        "share-alike, attribution to Livingstone & Russo (2018)",
    }
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    write_npz(out / WEIGHTS, {k: v.astype(np.float64) for k, v in weights.items()})
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    sums = write_checksums(out)
    print(
        f"train_embedded_voice: {chosen.name}: CV accuracy {acc:.3f} ± {acc_sd:.3f}, "
        f"macro-F1 {f1:.3f} ± {f1_sd:.3f} over {len(folds)} folds; wrote {out} "
        f"({', '.join(sorted(sums))})",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
