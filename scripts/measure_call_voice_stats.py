#!/usr/bin/env python3
"""Per-speaker voice accuracy on calls built from RAVDESS, with the voice model's speaker
statistics from the running estimate against the whole recording (``emoapp analyze
--voice-stats running|recording``), for docs/guide/calls.md.

    python scripts/measure_call_voice_stats.py --voice-model /tmp/voice-1-14 --work /tmp/callstats

Each call has two speakers taking turns (0.3 s apart): speaker A reads the two RAVDESS
statements in all eight emotions (calm counted as neutral; 16 clips, normal intensity),
speaker B is angry throughout (all 8 of their angry clips). Calls 1-4 pair actors 15
(male) and 16 (female), 18 (female) and 17 (male), 16 and 15, 17 and 18 (A and B): each
actor is speaker A once and speaker B once. Each call is
written as a stereo file (A left, B right; analysed ``--speakers channels``) and mixed
to mono (analysed ``--speakers 2``: diarized). Every voice window in the rows is given to
the clip its middle falls in; a clip's prediction is the mean of its windows'
probabilities (as ``emoapp evaluate`` scores clips), and a clip counts for its true
speaker, whichever speaker the diarizer gave its windows to.

Use a voice model that never heard actors 15-18: the shipped one was trained on all
RAVDESS actors; ``scripts/train_embedded_voice.py --holdout-actors 15-18 --candidates 1,9
--no-tables --out /tmp/voice-1-14`` retrains its recipe without them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
RATE = 16_000
GAP_S = 0.3
CANONICAL = {1: "neutral", 2: "neutral", 3: "happy", 4: "sad", 5: "angry", 6: "fearful",
             7: "disgusted", 8: "surprised"}  # fmt: skip
CALLS = {"call1": (15, 16), "call2": (18, 17), "call3": (16, 15), "call4": (17, 18)}


@dataclass
class Clip:
    speaker: str  # "A" or "B"
    label: str
    start: float
    end: float


def ravdess_clip(folder: Path, actor: int, emotion: int, intensity: int, statement: int,
                 repetition: int) -> Path:  # fmt: skip
    return (
        folder
        / f"Actor_{actor:02d}"
        / (f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{repetition:02d}-{actor:02d}.flac")
    )


def build_call(ravdess: Path, a: int, b: int) -> tuple[np.ndarray, list[Clip]]:
    """Two channels (A, B) taking turns; the clips with their speaker, label and span."""
    turns_a = [(a, e, 1, s, 1) for s in (1, 2) for e in range(1, 9)]
    turns_b = [(b, 5, i, s, r) for i in (1, 2) for s in (1, 2) for r in (1, 2)]
    order: list[tuple[str, tuple[int, ...]]] = []
    for k, turn in enumerate(turns_a):  # A A B A A B ...: 16 A turns, 8 B turns
        order.append(("A", turn))
        if k % 2 == 1:
            order.append(("B", turns_b[k // 2]))
    pieces: list[tuple[str, np.ndarray]] = []
    clips: list[Clip] = []
    t = 0.0
    for who, (actor, emotion, intensity, statement, repetition) in order:
        path = ravdess_clip(ravdess, actor, emotion, intensity, statement, repetition)
        audio, rate = sf.read(path, dtype="float32")
        if rate != RATE or audio.ndim != 1:
            raise SystemExit(f"{path}: expected 16 kHz mono")
        clips.append(Clip(who, CANONICAL[emotion], t, t + len(audio) / RATE))
        pieces.append((who, audio))
        t += len(audio) / RATE + GAP_S
    total = round(t * RATE) + RATE
    stereo = np.zeros((total, 2), np.float32)
    for (who, audio), clip in zip(pieces, clips, strict=True):
        i = round(clip.start * RATE)
        stereo[i : i + len(audio), 0 if who == "A" else 1] = audio
    return stereo, clips


def analyse(media: Path, speakers: str, stats: str, model: str, out: Path) -> None:
    command = [
        sys.executable, "-m", "emoapp", "analyze", str(media), "--speakers", speakers,
        "--voice-model", model, "--profile", "baseline", "--asr", "off",
        "--voice-stats", stats, "--out", str(out), "-q",
    ]  # fmt: skip
    print("$", " ".join(command[1:]), file=sys.stderr, flush=True)
    subprocess.run(command, check=True, cwd=ROOT)


def clip_accuracy(rows_file: Path, clips: list[Clip]) -> dict[str, list[bool]]:
    """Per true speaker: whether each clip's mean window distribution names its label."""
    windows: dict[tuple[str, float], dict[str, float]] = {}
    for line in rows_file.read_text().splitlines():
        row = json.loads(line)
        voice = (row.get("modalities") or {}).get("voice")
        if voice and voice.get("probs"):
            windows[(row["speaker"], float(voice["t"]))] = voice["probs"]
    by_clip: dict[int, list[dict[str, float]]] = defaultdict(list)
    for (_speaker, start), probs in windows.items():
        middle = start + 1.0  # 2 s windows
        for index, clip in enumerate(clips):
            if clip.start <= middle < clip.end:
                by_clip[index].append(probs)
    hits: dict[str, list[bool]] = defaultdict(list)
    for index, clip in enumerate(clips):
        got = by_clip.get(index)
        if not got:
            hits[clip.speaker].append(False)  # no window: counted wrong
            continue
        labels = list(got[0])
        mean = np.mean([[p[label] for label in labels] for p in got], axis=0)
        hits[clip.speaker].append(labels[int(np.argmax(mean))] == clip.label)
    return hits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ravdess", type=Path, default=ROOT.parent / "shared/data/ravdess")
    parser.add_argument("--voice-model", required=True)
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, dict[str, list[bool]]]] = defaultdict(dict)
    for name, (a, b) in CALLS.items():
        stereo, clips = build_call(args.ravdess, a, b)
        sf.write(args.work / f"{name}-stereo.wav", stereo, RATE, subtype="PCM_16")
        sf.write(args.work / f"{name}-mono.wav", stereo.sum(axis=1) / 2, RATE, subtype="PCM_16")
        for layout, speakers in (("stereo", "channels"), ("mono", "2")):
            for stats in ("running", "recording"):
                out = args.work / f"{name}-{layout}-{stats}.jsonl"
                analyse(args.work / f"{name}-{layout}.wav", speakers, stats, args.voice_model, out)
                results[f"{layout}/{stats}"][name] = clip_accuracy(out, clips)
    table: dict[str, dict[str, object]] = {}
    print("| call layout | statistics | speaker A (8 emotions), accuracy | speaker B (angry "
          "throughout), accuracy |")  # fmt: skip
    print("|---|---|---|---|")
    for key, per_call in results.items():
        layout, stats = key.split("/")
        cells = []
        for who in ("A", "B"):
            hits = [h for call in per_call.values() for h in call.get(who, [])]
            cells.append(f"{np.mean(hits):.3f} ({sum(hits)}/{len(hits)})")
            table.setdefault(key, {})[who] = {
                "correct": int(sum(hits)),
                "clips": len(hits),
                "per_call": {c: int(sum(v.get(who, []))) for c, v in per_call.items()},
            }
        print(f"| {layout} | {stats} | {cells[0]} | {cells[1]} |")
    if args.json:
        args.json.write_text(json.dumps(table, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
