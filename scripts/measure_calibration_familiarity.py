"""How familiar a "calibrate to me" reading makes a speaker look to the voice model's
speaker-novelty temperature, against all of that speaker's speech; and what the reading's
temperature does to the speaker's other clips.

For each RAVDESS actor named, the actor's 4 neutral clips (about 16 s: what the 15 s
reading gives) and then all 60 of their clips are turned into speaker statistics the way
``emoapp voice-calibration record`` does (``EmbeddedVoiceEncoder.calibration_stats``).
The first table gives each one's novelty and the temperature the model would use (the
reading counted with its calibration weight, as live), the reading judged two ways:

- **old**: against the training speakers' means over all their emotions (the model
  without ``novelty_neutral_speakers``; what every release before this one did),
- **new**: against their neutral means (where the artefact stores them:
  :mod:`emoapp.encoders.novelty`).

The second table classifies each actor's other 56 clips (every clip but the reading's)
with the reading's statistics only (a session that has just been calibrated: no running
estimate yet), each clip the mean of its gated windows' probabilities as ``emoapp
evaluate`` scores; accuracy, ECE (15 bins, top label) and mean negative log-likelihood,
at the old and the new temperature. The adaptation is the same in both: only the
temperature differs. Use a model that never heard the actors:

    python scripts/train_embedded_voice.py --holdout-actors 15-18 --candidates 1,9 \\
        --no-tables --out /tmp/voice-1-14
    python scripts/measure_calibration_familiarity.py /tmp/voice-1-14 --actors 15-18
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SR = 16_000


def read(paths: list[Path]) -> np.ndarray:
    """The clips at 16 kHz mono, 0.5 s of silence after each."""
    out = []
    for path in paths:
        out.append(read_one(path))
        out.append(np.zeros(8_000, np.float32))  # 0.5 s between clips
    return np.concatenate(out)


def read_one(path: Path) -> np.ndarray:
    import librosa
    import soundfile as sf

    x, sr = sf.read(path, dtype="float32")
    if x.ndim > 1:
        x = x.mean(axis=1)
    return np.asarray(librosa.resample(x, orig_sr=sr, target_sr=SR), dtype=np.float32)


def clip_vectors(encoder: Any, samples: np.ndarray) -> np.ndarray:
    """A clip's gated windows' input vectors, cut as ``emoapp evaluate`` cuts them."""
    from emoapp.encoders.voice import sliding_windows

    voice = encoder.voice
    windows = list(sliding_windows(samples, SR, 0.0, voice.window_s, voice.hop_s))
    rows = [d.vector for d in encoder._describe(windows) if d.vector is not None]
    return np.array(rows) if rows else np.zeros((0, encoder.adaptation.size))


def clip_scores(probs: list[np.ndarray], gold: list[int]) -> dict[str, float]:
    from emoapp.evaluation.metrics import expected_calibration_error

    p = np.array(probs)
    g = np.array(gold)
    pred = p.argmax(1)
    return {
        "clips": len(g),
        "accuracy": float(np.mean(pred == g)),
        "ece": float(expected_calibration_error(p.max(1), pred == g)),
        "nll": float(np.mean(-np.log(np.maximum(p[np.arange(len(g)), g], 1e-300)))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="an embedded voice model folder (with a novelty block)")
    parser.add_argument("--ravdess", type=Path, default=ROOT.parent / "shared/data/ravdess")
    parser.add_argument("--actors", default="15-18", metavar="A-B")
    parser.add_argument("--no-clips", action="store_true", help="only the novelty table (quicker)")
    parser.add_argument("--report", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    from emoapp.core.messages import Modality
    from emoapp.encoders.factory import RuntimeOptions, build_encoder
    from emoapp.evaluation.datasets import read_ravdess
    from emoapp.registry import ModelSpec

    encoder = build_encoder(
        ModelSpec(Modality.VOICE, args.model, backend="embedded"), RuntimeOptions(device="cpu")
    )
    encoder.load()
    new = getattr(encoder, "novelty_temperature", None)
    if new is None:
        parser.error(f"{args.model} has no speaker-novelty temperature")
    old = dataclasses.replace(new, neutral_speakers=None)
    labels = list(encoder.meta["labels"])  # type: ignore[attr-defined]
    weight = encoder.adaptation.calibration_weight  # type: ignore[attr-defined]
    first, last = (int(a) for a in args.actors.split("-"))
    items = read_ravdess(args.ravdess).items
    print(
        f"t_familiar {new.t_familiar:.2f}, t_novel {new.t_novel:.2f}; "
        f"a calibration window counts {weight:g}x; neutral reference: "
        + (
            f"{new.neutral_speakers.shape[0]} training speakers' neutral means"
            if new.judges_readings
            else "none stored (new = old)"
        )
    )
    rows: list[dict[str, Any]] = []
    pooled: dict[str, tuple[list[np.ndarray], list[int]]] = {"old": ([], []), "new": ([], [])}
    for actor in range(first, last + 1):
        mine = [i for i in items if int(i.meta["actor"]) == actor and i.audio]
        mine.sort(key=lambda i: str(i.audio))
        neutral = [i for i in mine if i.meta["emotion"] == "neutral"]
        reading_audio = read([Path(str(i.audio)) for i in neutral])
        reading = encoder.calibration_stats(reading_audio)  # type: ignore[attr-defined]
        live = reading.scaled(weight)  # a session just calibrated: the reading alone
        every = encoder.calibration_stats(  # type: ignore[attr-defined]
            read([Path(str(i.audio)) for i in mine])
        )
        every.reading = 0.0  # their speech in all emotions, not a reading
        row: dict[str, Any] = {
            "actor": actor,
            "reading_s": reading_audio.size / SR,
            "novelty_old": old.novelty(live),
            "temperature_old": old.temperature(live),
            "novelty_new": new.novelty(live),
            "temperature_new": new.temperature(live),
            "all_novelty": new.novelty(every),
            "all_temperature": new.temperature(every),
        }
        if not args.no_clips:
            probs: dict[str, list[np.ndarray]] = {"old": [], "new": []}
            gold: list[int] = []
            for item in mine:
                if any(item is n for n in neutral):
                    continue
                x = clip_vectors(encoder, read_one(Path(str(item.audio))))
                if not len(x):
                    continue
                for name, novelty in (("old", old), ("new", new)):
                    encoder.novelty_temperature = novelty  # type: ignore[attr-defined]
                    p = encoder.classify(x, live)  # type: ignore[attr-defined]
                    probs[name].append(p.mean(axis=0))
                encoder.novelty_temperature = new  # type: ignore[attr-defined]
                gold.append(labels.index(str(item.label)))
            for name in ("old", "new"):
                row[f"clips_{name}"] = clip_scores(probs[name], gold)
                pooled[name][0].extend(probs[name])
                pooled[name][1].extend(gold)
        rows.append(row)
    print()
    print(
        "| actor | reading (s) | its novelty: old / new | its temperature: old / new "
        "| all 60 clips: novelty | temperature |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['actor']:02d} | {r['reading_s']:.1f} | {r['novelty_old']:.2f} / "
            f"{r['novelty_new']:.2f} | {r['temperature_old']:.2f} / {r['temperature_new']:.2f} "
            f"| {r['all_novelty']:.2f} | {r['all_temperature']:.2f} |"
        )
    summary: dict[str, Any] = {}
    if not args.no_clips:
        summary = {name: clip_scores(*pooled[name]) for name in ("old", "new")}
        print()
        print(
            "Their other clips, classified with the reading's statistics only "
            "(old temperature / new):"
        )
        print()
        print("| actor | clips | accuracy | ECE | NLL |")
        print("|---|---|---|---|---|")
        total = {"actor": None, "clips_old": summary["old"], "clips_new": summary["new"]}
        for r in [*rows, total]:
            o, n = r["clips_old"], r["clips_new"]
            name = "all" if r["actor"] is None else f"{r['actor']:02d}"
            print(
                f"| {name} | {o['clips']} | {o['accuracy']:.3f} / {n['accuracy']:.3f} | "
                f"{o['ece']:.3f} / {n['ece']:.3f} | {o['nll']:.3f} / {n['nll']:.3f} |"
            )
    if args.report:
        args.report.write_text(json.dumps({"actors": rows, "pooled": summary}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
