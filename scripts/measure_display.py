#!/usr/bin/env python3
"""Choose the live display's smoothing and hysteresis by measurement (issue 12, item 7).

Steady streams: for each held-out RAVDESS actor and emotion, that actor's clips of that
emotion are played back to back (about 30 s of one expression). Change streams: one
actor's clips of emotion A, then of emotion B (a splice). Each stream goes through the
voice encoder exactly as the app runs it (2 s windows every 0.5 s, the VAD gate), the
predictions feed the app's :class:`~emoapp.core.fusion.Fuser` at the live fusion rate
(10 Hz, a prediction counted from the end of its window), and for each setting of
(smoothing time constant, hysteresis margin) we count:

- **label changes per minute** of the shown label on steady streams (lower is steadier;
  every change there is noise, since the expression does not change);
- **delay** after a splice until the shown label first equals the label the raw estimate
  shows most often over the 10 s after the splice (how long the display lags a real
  change).

The default for the window and ``emoapp live`` is the setting with the fewest changes per
minute whose delay stays close to the raw display's: a median at most ``--extra-median``
(1 s) and a 90th percentile at most ``--extra-p90`` (3 s) above the unsmoothed ones.
Results are printed as a Markdown table and written to ``--out`` (JSON). Run with the
held-out voice model, so the encoder has never heard these actors, e.g.::

    python scripts/train_embedded_voice.py --holdout-actors 15,16,17,18 --out /tmp/voice-ho
    python scripts/measure_display.py --voice-model /tmp/voice-ho --actors 15-18
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from emoapp.core.fusion import Fuser, FusionConfig  # noqa: E402
from emoapp.core.messages import Modality, ModalityPrediction  # noqa: E402
from emoapp.encoders.factory import RuntimeOptions, build_encoder  # noqa: E402
from emoapp.encoders.voice import VoiceConfig, sliding_windows  # noqa: E402
from emoapp.evaluation.datasets import RAVDESS_EMOTIONS, RAVDESS_NAME  # noqa: E402
from emoapp.registry import resolve_model  # noqa: E402

RATE_HZ = 10.0
SMOOTHING = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0)
HYSTERESIS = (0.0, 0.05, 0.1, 0.15, 0.2)


def _actors(text: str) -> list[int]:
    lo, _, hi = text.partition("-")
    return list(range(int(lo), int(hi or lo) + 1))


def _clips(root: Path, actors: list[int]) -> dict[tuple[int, str], list[Path]]:
    out: dict[tuple[int, str], list[Path]] = {}
    for actor in actors:
        for path in sorted((root / f"Actor_{actor:02d}").glob("*")):
            match = RAVDESS_NAME.match(path.name)
            if match is None:
                continue
            label = RAVDESS_EMOTIONS[match.group(3)]
            out.setdefault((actor, label), []).append(path)
    return out


def _load(path: Path) -> tuple[np.ndarray, int]:
    import soundfile

    samples, sr = soundfile.read(str(path), dtype="float32", always_2d=False)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    return samples, sr


def _stream(paths: list[Path]) -> tuple[np.ndarray, int, list[float]]:
    """The clips back to back; and where each clip starts (seconds)."""
    parts, starts, t, sr = [], [], 0.0, 16000
    for path in paths:
        samples, sr = _load(path)
        starts.append(t)
        parts.append(samples)
        t += len(samples) / sr
    return np.concatenate(parts), sr, starts


def _predictions(encoder, samples: np.ndarray, sr: int) -> list[ModalityPrediction]:
    windows = list(sliding_windows(samples, sr, 0.0, 2.0, 0.5))
    outputs = encoder.encode(windows)
    return [o for o in outputs if isinstance(o, ModalityPrediction)]


def _shown(preds: list[ModalityPrediction], duration: float, smoothing: float, hysteresis: float):
    """(times, shown labels, raw labels) at the live fusion rate."""
    fuser = Fuser(FusionConfig(smoothing_s=smoothing, hysteresis=hysteresis))
    ordered = sorted(preds, key=lambda p: p.evidence_t)
    times, shown, raw = [], [], []
    k = 0
    for step in range(int(duration * RATE_HZ) + 1):
        now = step / RATE_HZ
        while k < len(ordered) and ordered[k].evidence_t <= now:
            fuser.update(ordered[k])
            k += 1
        est = fuser.estimate(now)
        if est.abstained:
            continue
        times.append(now)
        shown.append(est.label)
        raw.append(est.raw_label)
    return times, shown, raw


def _changes(labels: list[str]) -> int:
    return sum(1 for a, b in itertools.pairwise(labels) if a != b)


def choose(results: list[dict], extra_median: float, extra_p90: float) -> dict:
    """The steadiest setting whose delay stays close to the raw (unsmoothed) display's."""
    raw = next(r for r in results if r["smoothing_s"] == 0 and r["hysteresis"] == 0)
    ok = [
        r
        for r in results
        if r["delay_median_s"] <= raw["delay_median_s"] + extra_median
        and r["delay_p90_s"] <= raw["delay_p90_s"] + extra_p90
    ]
    return min(ok or [raw], key=lambda r: (r["changes_per_min"], r["delay_median_s"]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared/data/ravdess")
    parser.add_argument("--voice-model", default="embedded/voice-multicorpus")
    parser.add_argument("--actors", default="15-18", help="held-out actors, e.g. 15-18")
    parser.add_argument("--splices", type=int, default=40, help="change streams to draw")
    parser.add_argument(
        "--extra-median", type=float, default=1.0, help="median delay allowed over raw (s)"
    )
    parser.add_argument(
        "--extra-p90", type=float, default=3.0, help="p90 delay allowed over raw (s)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the results here (JSON)")
    args = parser.parse_args()

    spec = resolve_model(Modality.VOICE, args.voice_model)
    assert spec is not None
    encoder = build_encoder(spec, RuntimeOptions(), VoiceConfig(vad="energy"))
    encoder.load()
    clips = _clips(args.data, _actors(args.actors))
    if not clips:
        parser.error(f"no RAVDESS clips for actors {args.actors} under {args.data}")

    steady = []
    for (actor, label), paths in sorted(clips.items()):
        samples, sr, _ = _stream(paths)
        steady.append((actor, label, len(samples) / sr, _predictions(encoder, samples, sr)))
    rng = random.Random(args.seed)
    keys = sorted(clips)
    splices = []
    for _ in range(args.splices):
        actor = rng.choice(sorted({a for a, _ in keys}))
        a, b = rng.sample(sorted({lab for act, lab in keys if act == actor}), 2)
        first, second = clips[(actor, a)][:4], clips[(actor, b)][:4]
        samples, sr, starts = _stream(first + second)
        splices.append((starts[len(first)], len(samples) / sr, _predictions(encoder, samples, sr)))

    results = []
    for smoothing, hysteresis in itertools.product(SMOOTHING, HYSTERESIS):
        minutes, changes = 0.0, 0
        for _, _, duration, preds in steady:
            _, shown, _ = _shown(preds, duration, smoothing, hysteresis)
            changes += _changes(shown)
            minutes += duration / 60.0
        delays = []
        for cut, duration, preds in splices:
            times, shown, raw = _shown(preds, duration, smoothing, hysteresis)
            after = [r for t, r in zip(times, raw, strict=True) if cut <= t <= cut + 10.0]
            if not after:
                continue
            target = Counter(after).most_common(1)[0][0]
            reached = [t for t, s in zip(times, shown, strict=True) if t >= cut and s == target]
            delays.append((reached[0] - cut) if reached else duration - cut)
        results.append(
            {
                "smoothing_s": smoothing,
                "hysteresis": hysteresis,
                "changes_per_min": changes / minutes if minutes else float("nan"),
                "delay_median_s": float(np.median(delays)) if delays else float("nan"),
                "delay_p90_s": float(np.percentile(delays, 90)) if delays else float("nan"),
            }
        )
    chosen = choose(results, args.extra_median, args.extra_p90)
    steady_minutes = sum(d for _, _, d, _ in steady) / 60.0
    print(
        f"voice model {encoder.model_id}; actors {args.actors}; {len(steady)} steady streams "
        f"({steady_minutes:.1f} min), {len(splices)} splices; fusion at {RATE_HZ:g} Hz\n"
    )
    print(
        "| smoothing (s) | hysteresis | label changes / min (steady) "
        "| delay median (s) | delay p90 (s) |"
    )
    print("|---|---|---|---|---|")
    for r in results:
        mark = " **chosen**" if r is chosen else ""
        print(
            f"| {r['smoothing_s']:g} | {r['hysteresis']:g} | {r['changes_per_min']:.1f}{mark} | "
            f"{r['delay_median_s']:.2f} | {r['delay_p90_s']:.2f} |"
        )
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "voice_model": encoder.model_id,
                    "actors": args.actors,
                    "steady_streams": len(steady),
                    "steady_minutes": steady_minutes,
                    "splices": len(splices),
                    "extra_median_s": args.extra_median,
                    "extra_p90_s": args.extra_p90,
                    "chosen": chosen,
                    "results": results,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
