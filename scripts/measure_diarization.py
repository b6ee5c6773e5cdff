"""Measure the embedded diarizer (DER) and the recogniser on diarized turns (WER per
speaker) on synthetic two-speaker mono calls built from the acted speech in ../shared/data.

    python scripts/measure_diarization.py [--data ../shared/data] [--calls 20] [--dev-calls 10]
        [--seconds 60] [--seed 0] [--wer-calls 6] [--json FILE]

The calls: two different speakers (actors of RAVDESS and TESS in English, EmoDB in
German, EMOVO in Italian; a pair from one corpus or from two), alternating turns of one
to three of that speaker's utterances (each trimmed of its leading and trailing silence
with ``librosa.effects.trim``, 0.15-0.4 s apart), pauses of 0.3-1.5 s between turns, and
one turn in four starting 0.2-0.8 s before the previous one ends (overlap); each
speaker's level set 0-6 dB below the other's, a -65 dBFS noise floor. The ground truth
is every trimmed utterance's span and speaker.

Speakers are split: dev calls use RAVDESS actors 01-06, TESS OAF, EmoDB 03/08/09 and
EMOVO f1/m1; test calls use every other speaker. The clustering settings that matter
when the number of speakers is not given (``min_cluster_share``, ``merge_similarity``)
are chosen on the dev calls (as ``--speakers auto`` runs: at least two speakers); the
test calls are measured once with them, with the
number of speakers estimated (from 1, and from 2 as ``--speakers auto`` does for a
call) and with it given (2).

DER = (missed speech + false alarm + speaker confusion) / reference speech, by
``pyannote.metrics`` (``DiarizationErrorRate(collar=0.5)``: 0.25 s either side of every
reference boundary is not scored, the NIST convention; overlap is scored). WER is
``jiwer`` over each English speaker's words in the call (reference: the statements,
RAVDESS "Kids are talking by the door" / "Dogs are sitting by the door", TESS "Say the
word X"; hypothesis: what the recogniser heard in the diarized turns given to that
speaker by the optimal speaker mapping).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emoapp.encoders.diarize import DiarizerConfig, EmbeddedDiarizer  # noqa: E402

RATE = 16_000
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
DEV = {
    "ravdess": {f"{i:02d}" for i in range(1, 7)},
    "tess": {"OAF"},
    "emodb": {"03", "08", "09"},
    "emovo": {"f1", "m1"},
}
CACHE = Path(os.environ.get("EMOAPP_CACHE", "/tmp/emoapp-cache/calls"))


@dataclass
class Utterance:
    path: Path
    words: str | None  # None: not English (no WER)


def speakers(data: Path) -> dict[tuple[str, str], list[Utterance]]:
    out: dict[tuple[str, str], list[Utterance]] = {}
    for f in sorted((data / "ravdess").glob("Actor_*/*.flac")):
        parts = f.stem.split("-")
        out.setdefault(("ravdess", parts[6]), []).append(Utterance(f, STATEMENTS[parts[4]]))
    for f in sorted((data / "speech/tess").rglob("*.flac")):
        who, word = f.stem.split("_")[:2]
        out.setdefault(("tess", who), []).append(Utterance(f, f"say the word {word}"))
    for f in sorted((data / "speech/emodb/wav").glob("*.flac")):
        out.setdefault(("emodb", f.stem[:2]), []).append(Utterance(f, None))
    for f in sorted((data / "speech/emovo").rglob("*.flac")):
        out.setdefault(("emovo", f.stem.split("-")[1]), []).append(Utterance(f, None))
    return out


def load_trimmed(path: Path) -> np.ndarray:
    import librosa
    import soundfile

    samples, rate = soundfile.read(path, dtype="float32", always_2d=True)
    samples = samples.mean(axis=1)
    if rate != RATE:
        samples = librosa.resample(samples, orig_sr=rate, target_sr=RATE)
    trimmed, _ = librosa.effects.trim(samples, top_db=35)
    peak = float(np.abs(trimmed).max()) or 1.0
    return (trimmed / peak * 0.5).astype(np.float32)


def build_call(
    rng: random.Random, pair: list[tuple[str, str]], pool: dict, seconds: float
) -> tuple[np.ndarray, list[tuple[float, float, str, str | None]]]:
    """A mono call and its truth: (start, end, speaker, words) per utterance."""
    gains = [1.0, 10 ** (-rng.uniform(0, 6) / 20)]
    rng.shuffle(gains)
    pieces: list[tuple[float, np.ndarray]] = []
    truth: list[tuple[float, float, str, str | None]] = []
    t = rng.uniform(0.3, 1.0)
    turn = 0
    previous_end = 0.0
    while t < seconds:
        who = turn % 2
        name = f"{pair[who][0]}:{pair[who][1]}"
        if turn > 0 and rng.random() < 0.25:
            t = max(previous_end - rng.uniform(0.2, 0.8), truth[-1][0] + 0.5)
        for _ in range(rng.randint(1, 3)):
            utterance = rng.choice(pool[pair[who]])
            audio = load_trimmed(utterance.path) * gains[who]
            pieces.append((t, audio))
            end = t + len(audio) / RATE
            truth.append((round(t, 3), round(end, 3), name, utterance.words))
            t = end + rng.uniform(0.15, 0.4)
        previous_end = truth[-1][1]
        t = previous_end + rng.uniform(0.3, 1.5)
        turn += 1
    total = int(np.ceil((max(e for _, e, _, _ in truth) + 0.5) * RATE))
    mix = np.random.default_rng(rng.randrange(2**31)).normal(0, 10 ** (-65 / 20), total)
    mix = mix.astype(np.float32)
    for start, audio in pieces:
        a = round(start * RATE)
        mix[a : a + len(audio)] += audio
    return np.clip(mix, -1, 1), truth


def make_calls(data: Path, n: int, dev: bool, seed: int, seconds: float) -> list[dict]:
    pool = {k: v for k, v in speakers(data).items() if (k[1] in DEV[k[0]]) == dev and len(v) >= 5}
    keys = sorted(pool)
    rng = random.Random(seed + (1000 if dev else 0))
    calls = []
    for i in range(n):
        pair = rng.sample(keys, 2)
        audio, truth = build_call(rng, pair, pool, seconds)
        calls.append(
            {
                "id": f"{'dev' if dev else 'test'}-{i:02d}",
                "pair": pair,
                "audio": audio,
                "truth": truth,
            }
        )
    return calls


def annotation(turns):
    """A pyannote Annotation of (start, end, speaker) turns (a diarization's overlap
    stretches belong to no speaker, so they are not in its hypothesis)."""
    from pyannote.core import Annotation, Segment

    out = Annotation()
    for i, (start, end, who) in enumerate(turns):
        out[Segment(start, end), f"t{i}"] = who
    return out


def der_of(truth, result) -> tuple[float, dict, dict]:
    from pyannote.metrics.diarization import DiarizationErrorRate

    reference = annotation([(s, e, who) for s, e, who, _ in truth])
    hypothesis = annotation([(t.start, t.end, f"S{t.speaker}") for t in result.turns])
    metric = DiarizationErrorRate(collar=0.5, skip_overlap=False)
    components = metric(reference, hypothesis, detailed=True)
    mapping = metric.optimal_mapping(reference, hypothesis)
    return float(components["diarization error rate"]), components, mapping


def features(diarizer: EmbeddedDiarizer, call: dict):
    cache = CACHE / "diarization" / f"{call['id']}-{call['pair'][0][1]}-{call['pair'][1][1]}.npz"
    if cache.is_file():
        z = np.load(cache, allow_pickle=False)
        return [tuple(r) for r in z["regions"]], z["embeddings"], z["spans"]
    regions = diarizer.speech(call["audio"])
    embeddings, spans = diarizer.embed_windows(call["audio"], regions)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, regions=np.asarray(regions).reshape(-1, 2), embeddings=embeddings, spans=spans)
    return regions, embeddings, spans


def spread(values: list[float]) -> dict:
    return {
        "mean": round(statistics.mean(values), 4),
        "sd": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
        "median": round(statistics.median(values), 4),
        "min": round(min(values), 4),
        "max": round(max(values), 4),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--dev-calls", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--wer-calls", type=int, default=6, help="test calls transcribed for WER")
    parser.add_argument("--shares", default="0.08,0.15,0.25", help="min_cluster_share values")
    parser.add_argument("--merges", default="0.75,0.8,0.85,0.9")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    started = time.perf_counter()
    diarizer = EmbeddedDiarizer()
    dev_calls = make_calls(args.data, args.dev_calls, True, args.seed, args.seconds)
    test_calls = make_calls(args.data, args.calls, False, args.seed, args.seconds)
    dev_features = [features(diarizer, c) for c in dev_calls]
    choices = {}
    for share in [float(x) for x in args.shares.split(",")]:
        for merge in [float(x) for x in args.merges.split(",")]:
            d = EmbeddedDiarizer(DiarizerConfig(min_cluster_share=share, merge_similarity=merge))
            ders = [  # as --speakers auto diarizes a call: at least two speakers
                der_of(c["truth"], d.assign(len(c["audio"]) / RATE, *f, min_speakers=2))[0]
                for c, f in zip(dev_calls, dev_features, strict=True)
            ]
            choices[f"{share},{merge}"] = round(statistics.mean(ders), 4)
            mean = statistics.mean(ders)
            print(f"dev min_cluster_share {share} merge {merge}: DER {mean:.3f}", file=sys.stderr)
    best = min(choices, key=lambda k: (choices[k], k))
    share, merge = (float(x) for x in best.split(","))
    chosen = EmbeddedDiarizer(DiarizerConfig(min_cluster_share=share, merge_similarity=merge))
    per_call = []
    results = []
    for call in test_calls:
        f = features(diarizer, call)
        duration = len(call["audio"]) / RATE
        estimated = chosen.assign(duration, *f)
        given = chosen.assign(duration, *f, speakers=2)
        at_least_two = chosen.assign(duration, *f, min_speakers=2)
        der, components, mapping = der_of(call["truth"], estimated)
        der_given, _, _ = der_of(call["truth"], given)
        der_auto, _, _ = der_of(call["truth"], at_least_two)
        total = components["total"]
        per_call.append(
            {
                "call": call["id"],
                "speakers": [f"{a}:{b}" for a, b in call["pair"]],
                "seconds": round(duration, 1),
                "der": round(der, 4),
                "der_two_given": round(der_given, 4),
                "der_at_least_two": round(der_auto, 4),
                "speakers_found_at_least_two": at_least_two.speakers,
                "missed": round(components["missed detection"] / total, 4),
                "false_alarm": round(components["false alarm"] / total, 4),
                "confusion": round(components["confusion"] / total, 4),
                "speakers_found": estimated.speakers,
            }
        )
        results.append((call, estimated, mapping))
        print(json.dumps(per_call[-1]), file=sys.stderr)

    wer = measure_wer(results[: args.wer_calls]) if args.wer_calls else None
    figures = {
        "what": "embedded diarizer on synthetic two-speaker mono calls",
        "command": "python scripts/measure_diarization.py " + " ".join(sys.argv[1:]),
        "collar": "0.25 s either side of reference boundaries (pyannote.metrics collar=0.5)",
        "overlap": "scored",
        "chosen_on_dev": {"min_cluster_share": share, "merge_similarity": merge},
        "dev_mean_der_by_share_merge": choices,
        "test_calls": len(per_call),
        "der": spread([c["der"] for c in per_call]),
        "der_two_speakers_given": spread([c["der_two_given"] for c in per_call]),
        "der_at_least_two_estimated": spread([c["der_at_least_two"] for c in per_call]),
        "missed": spread([c["missed"] for c in per_call]),
        "false_alarm": spread([c["false_alarm"] for c in per_call]),
        "confusion": spread([c["confusion"] for c in per_call]),
        "speaker_count_right": sum(c["speakers_found"] == 2 for c in per_call),
        "per_call": per_call,
        "wer": wer,
        "seconds": round(time.perf_counter() - started, 1),
    }
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return 0


def measure_wer(results) -> dict:
    """WER per English speaker of the first calls: the recogniser on the diarized turns."""
    import jiwer

    from emoapp.encoders.asr import build_recognizer, normalise_words, profile_recognizer

    spec = profile_recognizer("embedded")
    assert spec is not None
    recognizer = build_recognizer(spec, "cpu", "float32", None, False)
    recognizer.load()
    rows = []
    audio_s = 0.0
    spent = 0.0
    for call, diarization, mapping in results:
        inverse = dict(mapping)  # hypothesis label -> reference label
        heard: dict[str, list[str]] = {}
        for turn in diarization.turns:
            who = inverse.get(f"S{turn.speaker}")
            if who is None:
                continue
            a, b = round(turn.start * RATE), round(turn.end * RATE)
            begun = time.perf_counter()
            segment = recognizer.transcribe(call["audio"][a:b], RATE, turn.start)
            spent += time.perf_counter() - begun
            audio_s += turn.end - turn.start
            heard.setdefault(who, []).append(segment.text)
        for who in sorted({w for _, _, w, _ in call["truth"]}):
            words = [x for _, _, w, x in call["truth"] if w == who]
            if any(x is None for x in words):
                continue
            reference = " ".join(normalise_words(" ".join(words)))
            hypothesis = " ".join(normalise_words(" ".join(heard.get(who, []))))
            measure = jiwer.process_words(reference, hypothesis or "")
            rows.append(
                {
                    "call": call["id"],
                    "speaker": who,
                    "wer": round(measure.wer, 4),
                    "words": len(reference.split()),
                }
            )
    return {
        "recogniser": recognizer.model_id,
        "speakers": len(rows),
        "wer": spread([r["wer"] for r in rows]) if rows else None,
        "realtime_factor": round(spent / audio_s, 3) if audio_s else None,
        "per_speaker": rows,
    }


if __name__ == "__main__":
    raise SystemExit(main())
