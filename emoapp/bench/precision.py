"""``emoapp bench --part precision``: float32, bfloat16 (where the CPU runs it natively)
and int8 for each modality's model, on the CPU, and the choice ``--dtype auto`` makes of
them (:mod:`emoapp.encoders.precision`).

For each model each precision is loaded through the same encoder code users run
(``--dtype float32|bfloat16|int8``) and measured on fixed inputs:

- **time**: the median wall time of one classification at batch 1 (``classify_rows`` on
  one row: collate, forward, softmax, label map), the precisions taking turns so that load
  from elsewhere on the machine falls on all alike; CPU time beside it;
- **agreement** with float32 over all the inputs (8 face crops: the astronaut's face
  flipped, shifted, brighter and darker, grey; 8 two-second windows of the sample speech;
  7 typed sentences): the largest absolute difference of any class probability, and the
  share of inputs whose top label is float32's (near ties, float32's top two within
  0.005, excused; the strict share and the number of near ties are kept beside it).

The figures go into this machine's precision record (:func:`emoapp.encoders.precision.
record_path`), keyed by CPU, torch version and model; ``--dtype auto`` reads them. The
benchmark's models have random weights: their outputs are near uniform, so agreement on
them is a weaker test than on trained weights (the record says so); speed is the same.
"""

from __future__ import annotations

import gc
import time
from pathlib import Path
from typing import Any

import numpy as np

from emoapp.bench.common import (
    TEXT_LINES,
    BenchConfig,
    BenchError,
    cpu_bf16_supported,
    load_average,
    say,
)
from emoapp.core.errors import EmoappError
from emoapp.encoders.base import EncoderConfig, TransformersEncoder
from emoapp.encoders.precision import (
    MAX_PROB_DIFF,
    MEASURE_COMMAND,
    MIN_TOP_AGREEMENT,
    SPEEDUP_MARGIN,
    TIE_MARGIN,
    PrecisionMeasurement,
    agreement,
    candidates_for,
    choose_precision,
    model_key,
    record_path,
    write_entry,
)

MODALITIES = ("face", "voice", "text")
RANDOM_WEIGHTS_NOTE = (
    "random weights: outputs are near uniform, so agreement with float32 is a weaker test "
    "than on trained weights; speed is the same"
)


def precisions(torch: Any) -> list[str]:
    """The CPU precisions measured here."""
    return ["float32", *(["bfloat16"] if cpu_bf16_supported(torch) else []), "int8"]


def face_rows() -> list[np.ndarray]:
    """Eight RGB face crops: the astronaut's face and variations of it."""
    from emoapp.bench.encoders import face_tile

    tile = face_tile()
    f = tile.astype(np.float32)
    grey = np.repeat(f.mean(axis=2, keepdims=True), 3, axis=2)
    variants = [
        f,
        f[:, ::-1],
        f * 0.75,
        f * 1.25,
        grey,
        np.roll(f, 20, axis=0),
        np.roll(f, -20, axis=1),
        f[20:180, 20:180],
    ]
    return [np.ascontiguousarray(np.clip(v, 0, 255).astype(np.uint8)) for v in variants]


def voice_rows(encoder: Any) -> list[Any]:
    """Two-second windows of the sample speech at eight offsets, as the voice encoder
    prepares them (windows its voice-activity gate drops are left out)."""
    from emoapp.bench.encoders import speech_samples, speech_window

    samples = speech_samples()
    span = samples.size / 16_000 - 2.0
    items = [speech_window(samples, 2.0, start_s=0.2 + k * span / 8) for k in range(8)]
    return list(encoder.preprocess(items).rows)


def text_rows(encoder: Any) -> list[Any]:
    """The live run's typed sentences and the headline one, as token rows."""
    from emoapp.bench.encoders import TEXT_ENTRY

    return list(encoder.preprocess([*TEXT_LINES, TEXT_ENTRY]).rows)


def load_precision(path: Path, modality: str, precision: str, name: str) -> TransformersEncoder:
    from emoapp.encoders.face import FaceEncoder
    from emoapp.encoders.text import TextEncoder
    from emoapp.encoders.voice import VoiceEncoder

    classes: dict[str, Any] = {"face": FaceEncoder, "voice": VoiceEncoder, "text": TextEncoder}
    config = EncoderConfig(
        model=str(path), device="cpu", dtype=precision, local_files_only=True, model_name=name
    )
    encoder: TransformersEncoder = classes[modality](config)
    encoder.load()
    return encoder


def _quantise_face(encoder: TransformersEncoder) -> None:
    """int8 for the face model too, for the record only (``--dtype int8`` leaves the face
    float32: its explanations need gradients)."""
    from emoapp.encoders.precision import PrecisionChoice, quantize_linear_int8

    encoder.model = quantize_linear_int8(encoder.model)
    encoder.precision = PrecisionChoice("int8", "measured for the record only")


def measure_model(
    path: Path,
    modality: str,
    name: str,
    reps: int,
    random_weights: bool,
    write: bool = True,
) -> dict[str, Any]:
    """Measure one model in every precision; write its record entry; the result."""
    import torch

    names = precisions(torch)
    encoders: dict[str, TransformersEncoder] = {}
    for precision in names:
        if precision == "int8" and modality == "face":
            encoder = load_precision(path, modality, "float32", name)
            _quantise_face(encoder)
        else:
            encoder = load_precision(path, modality, precision, name)
        encoders[precision] = encoder
    reference = encoders["float32"]
    if modality == "face":
        rows: list[Any] = face_rows()
    elif modality == "voice":
        rows = voice_rows(reference)
    else:
        rows = text_rows(reference)
    if not rows:
        raise BenchError(f"no {modality} inputs survived preprocessing")
    probs = {p: e.classify_rows(rows) for p, e in encoders.items()}
    one = rows[:1]
    for e in encoders.values():  # warm-up
        e.classify_rows(one)
    wall: dict[str, list[float]] = {p: [] for p in names}
    cpu: dict[str, list[float]] = {p: [] for p in names}
    for _ in range(reps):
        for p, e in encoders.items():
            c0, t0 = time.process_time(), time.perf_counter()
            e.classify_rows(one)
            wall[p].append((time.perf_counter() - t0) * 1000.0)
            cpu[p].append((time.process_time() - c0) * 1000.0)
    agree = {p: agreement(probs["float32"], probs[p]) for p in names}
    measurements = [
        PrecisionMeasurement(
            precision=p,
            median_ms=round(float(np.median(wall[p])), 3),
            max_prob_diff=round(agree[p]["max_prob_diff"], 6),
            top_agreement=round(agree[p]["top_agreement"], 4),
            cpu_median_ms=round(float(np.median(cpu[p])), 3),
        )
        for p in names
    ]
    choice = choose_precision(measurements, candidates_for(modality))
    key = model_key(name, None, reference.model.config, torch.__version__)
    result: dict[str, Any] = {
        "model": name,
        "architecture": key.architecture,
        "inputs": len(rows),
        "reps": reps,
        "measurements": {
            m.precision: {
                **_row(m, measurements[0].median_ms),
                "top_agreement_strict": round(agree[m.precision]["top_agreement_strict"], 4),
                "near_ties": agree[m.precision]["near_ties"],
            }
            for m in measurements
        },
        "auto": choice.name,
        "reason": choice.reason,
        "candidates": list(candidates_for(modality)),
    }
    if random_weights:
        result["note"] = RANDOM_WEIGHTS_NOTE
    if write:
        extra: dict[str, Any] = {"inputs": len(rows), "reps": reps}
        if random_weights:
            extra["note"] = RANDOM_WEIGHTS_NOTE
        write_entry(key, measurements, extra)
    encoders.clear()
    gc.collect()
    return result


def _row(m: PrecisionMeasurement, baseline_ms: float) -> dict[str, Any]:
    return {
        "median_ms": m.median_ms,
        "cpu_median_ms": m.cpu_median_ms,
        "speedup": round(baseline_ms / m.median_ms, 3) if m.median_ms > 0 else None,
        "max_prob_diff": m.max_prob_diff,
        "top_agreement": m.top_agreement,
    }


def run_precision(
    config: BenchConfig, paths: dict[str, Path], reps: int | None = None
) -> dict[str, Any]:
    """Every modality's benchmark model in every CPU precision; the record written."""
    import torch

    if reps is None:
        reps = 2 if config.size == "tiny" else (3 if config.quick else 7)
    result: dict[str, Any] = {
        "rule": {
            "speedup_margin": SPEEDUP_MARGIN,
            "max_prob_diff": MAX_PROB_DIFF,
            "min_top_agreement": MIN_TOP_AGREEMENT,
            "tie_margin": TIE_MARGIN,
        },
        "precisions": precisions(torch),
        "record": str(record_path()),
        "command": MEASURE_COMMAND,
        "torch_threads": torch.get_num_threads(),
        "load_average_start": load_average(),
        "modalities": {},
    }
    for modality in MODALITIES:
        say(f"precision: {modality}")
        try:
            result["modalities"][modality] = measure_model(
                paths[modality],
                modality,
                f"bench/{config.size}-{modality}",
                reps,
                random_weights=True,
            )
        except EmoappError as exc:
            raise BenchError(f"precision: {modality}: {exc}") from exc
    result["load_average_end"] = load_average()
    return result


def render_precision(part: dict[str, Any]) -> list[str]:
    """The part as table lines."""
    if "modalities" not in part:
        return []
    out = [
        f"CPU precision (auto takes >= {part['rule']['speedup_margin']}x float32's speed with "
        f"probabilities within {part['rule']['max_prob_diff']} and top label agreement "
        f">= {part['rule']['min_top_agreement']:.0%}; record {part['record']})"
    ]
    for modality, m in part["modalities"].items():
        cells = ", ".join(
            f"{p} {r['median_ms']:.1f} ms ({r['speedup']}x, max dp {r['max_prob_diff']:.4f}, "
            f"top {r['top_agreement']:.0%})"
            for p, r in m["measurements"].items()
        )
        out.append(f"  {modality:5s} {cells} -> auto: {m['auto']}")
    return out
