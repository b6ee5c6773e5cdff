"""Measure a speech recogniser's word error rate and real-time factor.

    python scripts/measure_asr.py [--asr embedded/asr-pocketsphinx] [--data ../shared/data]
                                  [--every 10] [--espeak] [--json FILE]

- RAVDESS speech (``DATA/ravdess``): every ``--every``-th file in sorted order over
  actors 01-18 (both statements, all emotions and intensities); the reference is the
  statement the file name codes ("Kids are talking by the door" / "Dogs are sitting by
  the door"). The whole clip is passed to the recogniser as one segment.
- ``--espeak``: English sentences synthesised with espeak-ng in two voices (en-us,
  en-gb) into a temporary folder (deleted afterwards).

Prints corpus WER (substitutions + deletions + insertions over reference words), the
share of clips whose statement's content words are mostly recognised, and the
real-time factor (recogniser time / audio duration; wall and process CPU time). Nothing is written
except ``--json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emoapp.capture.media import iter_audio_chunks  # noqa: E402
from emoapp.encoders.asr import build_recognizer, resolve_recognizer  # noqa: E402
from emoapp.evaluation.wer import corpus_wer, word_errors  # noqa: E402

STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
ESPEAK_SENTENCES = [
    "I am so happy to see you again today",
    "Please put the box on the table by the window",
    "The weather was cold and the wind was strong",
    "I can not believe you did that to me",
    "We will meet at the station at nine in the morning",
    "She was very sad when her old dog died",
    "Turn left at the next corner and then go straight",
    "Thank you for calling how can I help you",
]


def load(path: Path) -> np.ndarray:
    return np.concatenate([c.samples for c in iter_audio_chunks(path, 16_000, chunk_s=1.0)])


def ravdess_items(data: Path, every: int) -> list[tuple[Path, str]]:
    files = sorted((data / "ravdess").glob("Actor_*/*.flac"))
    return [(f, STATEMENTS[f.stem.split("-")[4]]) for f in files[::every]]


def espeak_items(folder: Path) -> list[tuple[Path, str]]:
    items = []
    for voice in ("en-us", "en-gb"):
        for i, sentence in enumerate(ESPEAK_SENTENCES):
            path = folder / f"{voice}-{i}.wav"
            subprocess.run(
                ["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), sentence], check=True
            )
            items.append((path, sentence))
    return items


def measure(recognizer, items: list[tuple[Path, str]]) -> dict:
    pairs, audio_s, spent, cpu = [], 0.0, 0.0, 0.0
    mostly = 0
    for path, reference in items:
        samples = load(path)
        started, cpu_started = time.perf_counter(), time.process_time()
        heard = recognizer.transcribe(samples, 16_000, 0.0)
        spent += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
        audio_s += samples.size / 16_000
        pairs.append((reference, heard.text))
        errors = word_errors(reference, heard.text)
        mostly += errors.substitutions + errors.deletions <= errors.reference_words / 2
    total = corpus_wer(pairs)
    return {
        "items": len(items),
        "wer": round(total.wer, 4),
        "substitutions": total.substitutions,
        "deletions": total.deletions,
        "insertions": total.insertions,
        "reference_words": total.reference_words,
        "mostly_right": round(mostly / max(1, len(items)), 4),
        "realtime_factor": round(spent / audio_s, 4) if audio_s else None,
        "realtime_factor_cpu": round(cpu / audio_s, 4) if audio_s else None,
        "examples": pairs[:6],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--asr", default="embedded/asr-pocketsphinx")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--espeak", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    spec = resolve_recognizer(args.asr)
    if spec is None:
        parser.error("--asr off: nothing to measure")
    recognizer = build_recognizer(spec, device="cpu")
    recognizer.load()
    results = {"asr": recognizer.model_id}
    results["ravdess"] = measure(recognizer, ravdess_items(args.data, args.every))
    if args.espeak:
        with tempfile.TemporaryDirectory() as folder:
            results["espeak"] = measure(recognizer, espeak_items(Path(folder)))
    for name in ("ravdess", "espeak"):
        if name in results:
            r = results[name]
            print(
                f"{name}: {r['items']} clips, WER {r['wer']:.3f} "
                f"(S {r['substitutions']}, D {r['deletions']}, I {r['insertions']} over "
                f"{r['reference_words']} words), mostly right {r['mostly_right']:.2f}, "
                f"real-time factor {r['realtime_factor']} wall, "
                f"{r['realtime_factor_cpu']} CPU"
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
