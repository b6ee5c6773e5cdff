"""Encoder cost, pipeline overhead and scaling, measured on the real encoders.

For each device/dtype :class:`~emoapp.bench.common.Variant` the three encoders are loaded
from the benchmark models through the same code users run, and timed at batch 1:

- **cost**: the whole ``encoder.encode([item])`` call, median and p95;
- **overhead**: that call divided by the *bare forward*, ``model(**inputs)`` under
  ``torch.inference_mode()`` with the very tensors the encoder would feed it, already on
  the device in the encoder's dtype. The two are timed taking turns so that load from
  elsewhere falls on both alike. For the face, classification (``classify_rows`` on the
  face crops: collate, transfer, forward, softmax, label map) is compared with the forward,
  and detection is timed on its own;
- **stages**: where the time of one call goes (preprocess, collate, transfer, forward,
  softmax and label map, postprocess; for the voice also the voice-activity gate).

Scaling runs on the primary variant: faces per frame (1, 2, 4, 8 astronaut faces tiled on
one canvas: classified in one batched call, and with detection), audio window length, and
text length up to the model's maximum and twice it (chunked).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from emoapp.bench.common import (
    BenchConfig,
    BenchError,
    MeasureBudget,
    Variant,
    device_sync,
    measure,
    measure_pair,
    ratio,
    round_ms,
    sample_media,
    say,
)
from emoapp.core.messages import AudioChunk, ModalityPrediction, TextEntry, VideoFrame
from emoapp.encoders.base import EncoderConfig, TransformersEncoder

FACE_COUNTS = (1, 2, 4, 8)
VOICE_WINDOWS_S = (0.5, 1.0, 2.0, 4.0, 8.0)
TEXT_TOKENS = (16, 64, 128, 256, 512)
QUICK_FACE_COUNTS = (1, 2)
QUICK_VOICE_WINDOWS_S = (0.5, 2.0)
VOICE_WINDOW_S = 2.0
"""The headline voice window (the live default)."""
TEXT_ENTRY = (
    "I can't believe they cancelled the concert, I was really looking forward to it "
    "and now I feel so disappointed."
)
"""The headline text: one typed sentence."""


# --- loading ------------------------------------------------------------------------------


@dataclass
class BenchEncoders:
    """The three encoders of one variant, loaded."""

    variant: Variant
    face: Any
    voice: Any
    text: Any
    load_s: dict[str, float]

    def all(self) -> dict[str, TransformersEncoder]:
        return {"face": self.face, "voice": self.voice, "text": self.text}


def load_bench_encoders(paths: dict[str, Path], variant: Variant, size: str) -> BenchEncoders:
    from emoapp.encoders.face import FaceEncoder
    from emoapp.encoders.text import TextEncoder
    from emoapp.encoders.voice import VoiceEncoder

    def config(modality: str) -> EncoderConfig:
        return EncoderConfig(
            model=str(paths[modality]),
            device=variant.device,
            dtype=variant.dtype,
            local_files_only=True,
            batch_size=16,
            model_name=f"bench/{size}-{modality}",
        )

    encoders = {
        "face": FaceEncoder(config("face")),
        "voice": VoiceEncoder(config("voice")),
        "text": TextEncoder(config("text")),
    }
    load_s: dict[str, float] = {}
    for name, encoder in encoders.items():
        started = time.perf_counter()
        encoder.load()
        load_s[name] = round(time.perf_counter() - started, 3)
    return BenchEncoders(variant, encoders["face"], encoders["voice"], encoders["text"], load_s)


# --- inputs -------------------------------------------------------------------------------


def sample_frame() -> VideoFrame:
    """The first frame of the sample video (480 x 360, one face)."""
    from emoapp.capture.media import iter_video_frames

    for frame in iter_video_frames(sample_media("face_speech.mp4")):
        return VideoFrame(0.0, frame.image, 0, "face_speech.mp4")
    raise BenchError("the sample video has no frames")


def speech_samples() -> np.ndarray:
    """The sample speech twice over (about 14.6 s, 16 kHz mono float32)."""
    from emoapp.capture.media import read_audio

    audio = read_audio(sample_media("speech.wav"), sample_rate=16_000)
    mono = np.asarray(audio.samples, dtype=np.float32).reshape(-1)
    return np.concatenate([mono, mono])


def speech_window(samples: np.ndarray, seconds: float, start_s: float = 0.8) -> AudioChunk:
    start = round(start_s * 16_000)
    return AudioChunk(start_s, samples[start : start + round(seconds * 16_000)].copy(), 16_000)


def face_tile() -> np.ndarray:
    """The astronaut's face (scikit-image's sample photo) with some margin, 200 x 200."""
    import cv2
    from skimage import data

    image = data.astronaut()
    # Where the Haar cascade finds her face in the 512 x 512 photo, grown by half.
    x, y, w, h = 177, 67, 93, 93
    dx, dy = w // 2, h // 2
    face = image[max(0, y - dy) : y + h + dy, max(0, x - dx) : x + w + dx]
    return cv2.resize(face, (200, 200), interpolation=cv2.INTER_AREA)


def face_canvas(n_faces: int, tile: np.ndarray) -> np.ndarray:
    """An 800 x 400 grey canvas with ``n_faces`` (at most 8) face tiles on a 4 x 2 grid:
    the same frame size whatever the count, so detection costs about the same."""
    if not 1 <= n_faces <= 8:
        raise ValueError("between 1 and 8 faces")
    canvas = np.full((400, 800, 3), 128, dtype=np.uint8)
    for k in range(n_faces):
        row, col = divmod(k, 4)
        canvas[row * 200 : (row + 1) * 200, col * 200 : (col + 1) * 200] = tile
    return canvas


def text_of_tokens(tokenizer: Any, n_tokens: int) -> tuple[str, int]:
    """A text that tokenizes to about ``n_tokens`` tokens (special tokens included), and
    the count it really gives."""
    base = " ".join([TEXT_ENTRY] * 8)
    ids: list[int] = []
    while len(ids) < n_tokens:
        ids = tokenizer(base, add_special_tokens=False, verbose=False)["input_ids"]
        base = base + " " + base
    best = ("", -1)
    for cut in (n_tokens - 2, n_tokens - 3, n_tokens - 1, n_tokens - 4, n_tokens):
        text = tokenizer.decode(ids[: max(1, cut)])
        count = len(tokenizer(text, verbose=False)["input_ids"])
        if count == n_tokens:
            return text, count
        if best[1] < 0 or abs(count - n_tokens) < abs(best[1] - n_tokens):
            best = (text, count)
    return best


# --- the bare forward and the stages --------------------------------------------------------


def _move(torch: Any, inputs: dict[str, Any], device: Any, dtype: Any) -> dict[str, Any]:
    """The tensors as the encoder's forward gives them to the model."""
    moved = {}
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor):
            value = value.to(device)
            if value.is_floating_point():
                value = value.to(dtype)
        moved[key] = value
    return moved


def bare_forward(encoder: TransformersEncoder, rows: list[Any]) -> Callable[[], Any]:
    """``model(**inputs)`` on the encoder's own collated rows, on its device and dtype."""
    import torch

    moved = _move(torch, encoder.collate(rows), encoder.device, encoder.dtype)
    model = encoder.model

    def forward() -> Any:
        with torch.inference_mode():
            return model(**moved).logits

    return forward


def stage_times(
    encoder: TransformersEncoder, items: list[Any], budget: MeasureBudget
) -> dict[str, float | None]:
    """Median milliseconds of each step of one ``encode`` call, run step by step."""
    import torch

    sync = device_sync(torch, encoder.device)
    label_map = encoder.label_map
    assert label_map is not None, "the encoder is loaded"
    names = ("preprocess", "collate", "transfer", "forward", "softmax_labelmap", "postprocess")
    samples: dict[str, list[float]] = {name: [] for name in names}
    gate_ms: list[float] = []
    reps = budget.min_reps
    for rep in range(budget.warmup + reps):
        marks = [time.perf_counter()]
        prepared = encoder.preprocess(items)
        marks.append(time.perf_counter())
        inputs = encoder.collate(prepared.rows) if prepared.rows else {}
        marks.append(time.perf_counter())
        moved = _move(torch, inputs, encoder.device, encoder.dtype)
        if sync is not None:
            sync()
        marks.append(time.perf_counter())
        with torch.inference_mode():
            logits = encoder.model(**moved).logits if moved else None
        if sync is not None:
            sync()
        marks.append(time.perf_counter())
        if logits is not None:
            raw = torch.softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float64)
            probs = label_map.apply(raw)
        else:
            probs = np.zeros((0, len(label_map.mask)))
        marks.append(time.perf_counter())
        outputs = encoder.postprocess(items, prepared, probs, marks[-1] - marks[0])
        marks.append(time.perf_counter())
        if rep < budget.warmup:
            continue
        for name, start, end in zip(names, marks, marks[1:], strict=False):
            samples[name].append((end - start) * 1000.0)
        gate = [o.detail.get("vad_s") for o in outputs if isinstance(o, ModalityPrediction)]
        gate_ms.extend(1000.0 * g for g in gate if isinstance(g, float))
    result = {f"{name}_ms": round_ms(float(np.median(v))) for name, v in samples.items()}
    if gate_ms:
        result["vad_ms"] = round_ms(float(np.median(gate_ms)))
    return result


def _predicted(outputs: list[Any]) -> tuple[bool, str]:
    for output in outputs:
        if not isinstance(output, ModalityPrediction):
            return False, str(getattr(output, "reason", "no prediction"))
    return True, ""


# --- per variant --------------------------------------------------------------------------


def measure_variant(
    encoders: BenchEncoders, budget: MeasureBudget, reference: dict[str, np.ndarray] | None
) -> dict[str, Any]:
    """Cost, overhead and stages of the three encoders of one variant at batch 1.

    ``reference``: the float32 CPU probabilities of each headline input, to check that a
    lower-precision variant still computes the same thing (max absolute difference).
    """
    import torch

    result: dict[str, Any] = {
        "device": str(encoders.face.device),
        "dtype": encoders.variant.dtype,
        "load_s": encoders.load_s,
    }
    sync = device_sync(torch, encoders.face.device)

    # Face: detection, classification of the crops, and the whole call.
    face = encoders.face
    frame = sample_frame()
    prepared = face.preprocess([frame])
    if not prepared.rows:
        raise BenchError("the face detector finds no face in the sample video's first frame")
    crops = prepared.rows
    classify, forward = measure_pair(
        lambda: face.classify_rows(crops), bare_forward(face, crops), budget, sync
    )
    detect = measure(lambda: face.detector.detect(frame.image), budget)
    encode = measure(lambda: face.encode([frame]), budget, sync)
    outputs = face.encode([frame])
    result["face"] = {
        "input": f"sample video frame {frame.image.shape[1]}x{frame.image.shape[0]}, "
        f"{len(crops)} face",
        "faces": len(crops),
        "encode": encode.as_dict(),
        "detection": detect.as_dict(),
        "classification": classify.as_dict(),
        "forward": forward.as_dict(),
        "overhead_classification": ratio(classify, forward),
        "overhead_classification_cpu": ratio(classify, forward, cpu=True),
        "overhead_total": _ratio_ms(encode.median_ms, detect.median_ms + forward.median_ms),
        "stages": stage_times(face, [frame], budget),
        "predicted": _predicted(outputs)[0],
    }

    # Voice: one 2 s window of speech.
    voice = encoders.voice
    window = speech_window(speech_samples(), VOICE_WINDOW_S)
    outputs = voice.encode([window])
    ok, reason = _predicted(outputs)
    if not ok:
        raise BenchError(f"the voice encoder gives no prediction on the benchmark window: {reason}")
    vprep = voice.preprocess([window])
    encode, forward = measure_pair(
        lambda: voice.encode([window]), bare_forward(voice, vprep.rows), budget, sync
    )
    result["voice"] = {
        "input": f"{VOICE_WINDOW_S:g} s speech window, 16 kHz",
        "encode": encode.as_dict(),
        "forward": forward.as_dict(),
        "overhead": ratio(encode, forward),
        "overhead_cpu": ratio(encode, forward, cpu=True),
        "stages": stage_times(voice, [window], budget),
    }

    # Text: one typed sentence.
    text = encoders.text
    entry = TextEntry(0.0, TEXT_ENTRY, "bench")
    tprep = text.preprocess([entry])
    encode, forward = measure_pair(
        lambda: text.encode([entry]), bare_forward(text, tprep.rows), budget, sync
    )
    result["text"] = {
        "input": "one typed sentence",
        "tokens": len(tprep.rows[0]),
        "encode": encode.as_dict(),
        "forward": forward.as_dict(),
        "overhead": ratio(encode, forward),
        "overhead_cpu": ratio(encode, forward, cpu=True),
        "stages": stage_times(text, [entry], budget),
    }

    probs = {
        "face": _probs(face.encode([frame])),
        "voice": _probs(voice.encode([window])),
        "text": _probs(text.encode([entry])),
    }
    if reference is None:
        result["_probs"] = probs
    else:
        diffs = [float(np.max(np.abs(probs[m] - reference[m]))) for m in probs]
        result["max_prob_diff_vs_cpu_float32"] = round(max(diffs), 5)
    return result


def _probs(outputs: list[Any]) -> np.ndarray:
    output = outputs[0]
    if isinstance(output, ModalityPrediction):
        return np.asarray(output.probs, dtype=np.float64)
    return np.full(7, np.nan)


def _ratio_ms(num: float, den: float) -> float | None:
    if not (np.isfinite(num) and np.isfinite(den)) or den <= 0:
        return None
    return round(num / den, 3)


def run_variants(
    config: BenchConfig, paths: dict[str, Path], variants: list[Variant]
) -> tuple[dict[str, Any], BenchEncoders | None]:
    """Measure every variant; returns the results and the primary variant's encoders
    (kept loaded for scaling), the others freed as soon as they are measured."""
    results: dict[str, Any] = {}
    reference: dict[str, np.ndarray] | None = None
    keep: BenchEncoders | None = None
    ordered = sorted(variants, key=lambda v: (v.device != "cpu", v.dtype != "float32"))
    for variant in ordered:
        say(f"encoders: {variant.name}")
        encoders = load_bench_encoders(paths, variant, config.size)
        measured = measure_variant(encoders, config.budget, reference)
        if reference is None and variant.device == "cpu" and variant.dtype == "float32":
            reference = measured.pop("_probs")
        measured.pop("_probs", None)
        results[variant.name] = measured
        if variant.primary:
            keep = encoders
        else:
            del encoders
            gc.collect()
    base = results.get("cpu-float32")
    for measured in results.values():
        if base is not None and measured is not base:
            measured["encode_vs_cpu_float32"] = {
                m: _ratio_ms(measured[m]["encode"]["median_ms"], base[m]["encode"]["median_ms"])
                for m in ("face", "voice", "text")
            }
    return results, keep


# --- scaling ------------------------------------------------------------------------------


def run_scaling(config: BenchConfig, encoders: BenchEncoders) -> dict[str, Any]:
    """Face count, voice window length and text length, on one variant."""
    budget = config.scaling_budget
    return {
        "variant": encoders.variant.name,
        "face": scale_faces(
            encoders.face, QUICK_FACE_COUNTS if config.quick else FACE_COUNTS, budget
        ),
        "voice": scale_voice(
            encoders.voice, QUICK_VOICE_WINDOWS_S if config.quick else VOICE_WINDOWS_S, budget
        ),
        "text": scale_text(encoders.text, budget, config.quick),
    }


def scale_faces(face: Any, counts: tuple[int, ...], budget: MeasureBudget) -> list[dict[str, Any]]:
    """Per face count: classification of that many crops in one batched call (against the
    bare forward), and the whole call with detection on a canvas holding that many faces."""
    import torch

    say("scaling: faces per frame")
    sync = device_sync(torch, face.device)
    tile = face_tile()
    single = face.preprocess([face_canvas(1, tile)])
    if not single.rows:
        raise BenchError("the face detector finds no face on the astronaut canvas")
    crop = single.rows[0]
    rows: list[dict[str, Any]] = []
    for n in counts:
        crops = [crop] * n
        classify, forward = measure_pair(
            partial(face.classify_rows, crops), bare_forward(face, crops), budget, sync
        )
        canvas = VideoFrame(0.0, face_canvas(n, tile), 0, f"{n} faces")
        encode = measure(partial(face.encode, [canvas]), budget, sync)
        found = face.encode([canvas])[0]
        rows.append(
            {
                "faces": n,
                "faces_found": len(getattr(found, "faces", ())),
                "classification": classify.as_dict(),
                "forward": forward.as_dict(),
                "encode_with_detection": encode.as_dict(),
                "overhead_classification": ratio(classify, forward),
            }
        )
    _add_ratios(rows, "classification", "classification_vs_1")
    _add_ratios(rows, "encode_with_detection", "encode_vs_1")
    return rows


def scale_voice(
    voice: Any, windows: tuple[float, ...], budget: MeasureBudget
) -> list[dict[str, Any]]:
    import torch

    say("scaling: voice window length")
    sync = device_sync(torch, voice.device)
    samples = speech_samples()
    rows: list[dict[str, Any]] = []
    for seconds in windows:
        window = speech_window(samples, seconds)
        ok, reason = _predicted(voice.encode([window]))
        row: dict[str, Any] = {"window_s": seconds, "predicted": ok}
        prepared = voice.preprocess([window])
        if not ok or not prepared.rows:
            row["note"] = f"no prediction: {reason}"
            rows.append(row)
            continue
        encode, forward = measure_pair(
            partial(voice.encode, [window]),
            bare_forward(voice, prepared.rows),
            budget.scaled(1.5 if seconds >= 4 else 1.0),
            sync,
        )
        row.update(
            encode=encode.as_dict(),
            forward=forward.as_dict(),
            overhead=ratio(encode, forward),
            overhead_cpu=ratio(encode, forward, cpu=True),
            encode_ms_per_audio_s=round_ms(encode.median_ms / seconds),
        )
        rows.append(row)
    _add_ratios(rows, "encode", "encode_vs_first")
    return rows


def text_lengths(max_length: int, quick: bool) -> list[int]:
    """16 ... 512 tokens (those under the model's maximum), the maximum, and twice it."""
    lengths = [n for n in TEXT_TOKENS if n < max_length] + [max_length, 2 * max_length]
    if quick:
        lengths = [lengths[0], 2 * max_length]
    return lengths


def scale_text(text: Any, budget: MeasureBudget, quick: bool) -> list[dict[str, Any]]:
    import torch

    say("scaling: text length")
    sync = device_sync(torch, text.device)
    rows: list[dict[str, Any]] = []
    for n in text_lengths(int(text.max_length), quick):
        body, count = text_of_tokens(text.processor, n)
        entry = TextEntry(0.0, body, "bench")
        prepared = text.preprocess([entry])
        encode, forward = measure_pair(
            partial(text.encode, [entry]),
            bare_forward(text, prepared.rows),
            budget,
            sync,
        )
        rows.append(
            {
                "tokens": count,
                "chunks": len(prepared.rows),
                "encode": encode.as_dict(),
                "forward": forward.as_dict(),
                "overhead": ratio(encode, forward),
                "overhead_cpu": ratio(encode, forward, cpu=True),
            }
        )
    _add_ratios(rows, "encode", "encode_vs_first")
    return rows


def _add_ratios(rows: list[dict[str, Any]], key: str, name: str) -> None:
    first = next((r[key]["median_ms"] for r in rows if key in r), None)
    for row in rows:
        if key in row and first:
            row[name] = _ratio_ms(row[key]["median_ms"], first)
