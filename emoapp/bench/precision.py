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
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoapp.bench.common import (
    TEXT_LINES,
    BenchConfig,
    BenchError,
    cpu_bf16_supported,
    load_average,
    sample_media,
    say,
)
from emoapp.core.errors import EmoappError
from emoapp.encoders.base import EncoderConfig, TransformersEncoder
from emoapp.encoders.precision import (
    MAX_PROB_DIFF,
    MEASURE_COMMAND,
    MIN_TOP_AGREEMENT,
    REAL_MODELS_OPTION,
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
from emoapp.registry import ModelSpec

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


def video_face_rows(encoder: Any, every: int = 10) -> list[np.ndarray]:
    """Face crops of the sample video (``face_speech.mp4``, one frame in ``every``), as
    the face encoder finds and crops them."""
    from emoapp.capture.media import iter_video_frames

    frames = [
        frame
        for i, frame in enumerate(iter_video_frames(sample_media("face_speech.mp4")))
        if i % every == 0
    ]
    return list(encoder.preprocess(frames).rows)


def call_voice_rows(encoder: Any, seconds: float = 2.0) -> list[Any]:
    """Two-second windows of the sample call (``call.flac``, both voices mixed to mono,
    resampled to 16 kHz) every three seconds, as the voice encoder prepares them."""
    from emoapp.bench.encoders import speech_window
    from emoapp.capture.media import read_audio

    audio = read_audio(sample_media("call.flac"), sample_rate=16_000)
    samples = np.asarray(audio.samples, dtype=np.float32).reshape(-1)
    starts = np.arange(0.5, samples.size / 16_000 - seconds, 3.0)
    items = [speech_window(samples, seconds, start_s=float(t)) for t in starts]
    return list(encoder.preprocess(items).rows)


_CUE_TIME = re.compile(r"^\d\d:\d\d:\d\d[.,]\d+ --> ")
_VOICE_TAG = re.compile(r"<[^>]*>")


def sample_sentences() -> list[str]:
    """The sample media's own sentences: the speech's subtitles, the call's turns and the
    typed transcript."""
    lines: list[str] = []
    for name in ("speech.srt", "call.vtt"):
        cue = False
        for raw in sample_media(name).read_text(encoding="utf-8").splitlines():
            line = raw.strip()
            if _CUE_TIME.match(line):
                cue = True
            elif not line:
                cue = False
            elif cue:
                lines.append(_VOICE_TAG.sub("", line).strip())
    lines.append(sample_media("transcript.txt").read_text(encoding="utf-8").strip())
    return [line for line in lines if line]


def sample_text_rows(encoder: Any) -> list[Any]:
    """:func:`sample_sentences` as token rows."""
    return list(encoder.preprocess(sample_sentences()).rows)


def load_precision(path: Path, modality: str, precision: str, name: str) -> TransformersEncoder:
    """One of the benchmark's own models (a local folder, named ``name``) in ``precision``."""
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


def load_real(spec: ModelSpec, precision: str, models_dir: str | None) -> TransformersEncoder:
    """A real model of the registry, a profile or a local folder in ``precision``, built
    exactly as ``emoapp live`` builds it (same id, revision and models folder, so the
    record's key is the one ``--dtype auto`` looks up)."""
    from emoapp.encoders.factory import RuntimeOptions, build_encoder

    encoder = build_encoder(
        spec, RuntimeOptions(device="cpu", dtype=precision, models_dir=models_dir)
    )
    if not isinstance(encoder, TransformersEncoder):  # pragma: no cover - bundled are skipped
        raise BenchError(f"{spec.model} is not a transformers model")
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
    """Measure one of the benchmark's models in every precision; write its record entry;
    the result."""
    return measure_encoders(
        lambda precision: load_precision(path, modality, precision, name),
        modality,
        reps,
        random_weights=random_weights,
        write=write,
    )


def measure_encoders(
    load: Callable[[str], TransformersEncoder],
    modality: str,
    reps: int,
    random_weights: bool,
    write: bool = True,
    real_inputs: bool = False,
) -> dict[str, Any]:
    """Measure the model ``load(precision)`` loads, in every precision; write its record
    entry under the key its float32 copy reports (its id and revision as loaded); the
    result. ``real_inputs``: the sample media's further face crops, speech windows and
    sentences beside the fixed ones (for trained weights, whose agreement they test)."""
    import torch

    names = precisions(torch)
    encoders: dict[str, TransformersEncoder] = {}
    for precision in names:
        if precision == "int8" and modality == "face":
            encoder = load("float32")
            _quantise_face(encoder)
        else:
            encoder = load(precision)
        encoders[precision] = encoder
    reference = encoders["float32"]
    if modality == "face":
        rows: list[Any] = face_rows() + (video_face_rows(reference) if real_inputs else [])
    elif modality == "voice":
        rows = voice_rows(reference) + (call_voice_rows(reference) if real_inputs else [])
    else:
        rows = text_rows(reference) + (sample_text_rows(reference) if real_inputs else [])
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
    key = model_key(
        reference.model_id, reference.config.revision, reference.model.config, torch.__version__
    )
    result: dict[str, Any] = {
        "model": reference.model_id,
        "revision": reference.config.revision,
        "architecture": key.architecture,
        "key": key.text(),
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


# --- real models ---------------------------------------------------------------------------

REAL_ALL = "all"
REAL_NONE = "none"


@dataclass
class RealModels:
    """What ``--real-models`` names: the models present here (to measure) and the rest,
    each with why it is not measured."""

    present: list[ModelSpec] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)


def _ref(spec: ModelSpec) -> str:
    """How to name ``spec`` to ``emoapp models pull``."""
    if spec.entry is not None or not spec.revision:
        return spec.model
    return f"{spec.model}@{spec.revision}"


def _modality_of(ref: str, models_dir: str | None) -> Any:
    """The modality a model outside the registry serves, from its local ``config.json``
    (None when there is none here)."""
    from emoapp.core.messages import Modality
    from emoapp.modelstore import CONFIG_FILE, local_state, tasks_of_config
    from emoapp.registry import TASK_OF_MODALITY

    model, _, revision = ref.partition("@")
    path = Path(model).expanduser()
    if path.is_dir():
        config_file = path / CONFIG_FILE
    else:
        state = local_state(model, revision or None, models_dir)
        if state.snapshot is None:
            return None
        config_file = state.snapshot / CONFIG_FILE
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BenchError(
            f"{REAL_MODELS_OPTION} {ref}: {config_file} is unreadable ({exc})"
        ) from exc
    tasks = tasks_of_config(config)
    found = [m for m in Modality if TASK_OF_MODALITY[m] in tasks]
    if len(found) != 1:
        raise BenchError(
            f"{REAL_MODELS_OPTION} {ref}: its config.json does not say it is a face, voice or "
            "text classifier"
        )
    return found[0]


def real_models(what: str, models_dir: str | None = None) -> RealModels:
    """The real models ``what`` names, split into present and not: ``all`` (every hub model
    of the registry), ``none``, or a comma-separated list of profile names, registry ids,
    hub ids (``org/name[@revision]``) and local folders. Each resolves as ``emoapp live``
    resolves it (a registry id at its pin, or the commit ``emoapp models pull
    --revision`` recorded), and counts as present where ``emoapp live`` would load it with
    no download (``models_dir``: the models folder, default as there)."""
    from emoapp.encoders.factory import RuntimeOptions, is_available_locally
    from emoapp.registry import find_entry, profiles, registry, resolve_model, resolve_profile

    found = RealModels()
    specs: list[ModelSpec] = []
    named = [part.strip() for part in what.split(",") if part.strip()]
    known_profiles = profiles()
    for token in named:
        if token.lower() == REAL_NONE:
            continue
        if token.lower() == REAL_ALL:
            for entry in registry().values():
                if not entry.bundled:
                    spec = resolve_model(entry.modality, entry.id)
                    if spec is not None:
                        specs.append(spec)
        elif token in known_profiles:
            for spec_or_none in resolve_profile(token).values():
                if spec_or_none is None:
                    continue
                if spec_or_none.bundled:
                    found.skipped[spec_or_none.model] = (
                        f"built in ({spec_or_none.backend}; not a transformers model: runs float32)"
                    )
                else:
                    specs.append(spec_or_none)
        else:
            named_entry = find_entry(token)
            modality = (
                named_entry.modality if named_entry is not None else _modality_of(token, models_dir)
            )
            if modality is None:
                found.skipped[token] = f"not present locally (emoapp models pull {token})"
                continue
            spec = resolve_model(modality, token)
            if spec is None:
                continue
            if spec.bundled:
                found.skipped[spec.model] = f"built in ({spec.backend}; not a transformers model)"
                continue
            specs.append(spec)
    seen: set[tuple[str, str | None]] = set()
    options = RuntimeOptions(models_dir=models_dir)
    for spec in specs:
        if (spec.model, spec.revision) in seen:
            continue
        seen.add((spec.model, spec.revision))
        if is_available_locally(spec, options):
            found.present.append(spec)
        else:
            found.skipped[_ref(spec)] = f"not present locally (emoapp models pull {_ref(spec)})"
    return found


def run_real_models(what: str, models_dir: str | None, reps: int) -> dict[str, Any]:
    """Measure each real model ``what`` names that is present here (:func:`real_models`),
    on the sample media's inputs, and write its record entry; the rest listed with why."""
    from emoapp.encoders.factory import RuntimeOptions

    found = real_models(what, models_dir)
    part: dict[str, Any] = {
        "asked": what,
        "models_dir": RuntimeOptions(models_dir=models_dir).cache_dir(),
        "measured": {},
        "failed": {},
        "not_measured": dict(found.skipped),
    }
    for spec in found.present:
        say(f"precision: {spec.model} ({spec.modality.value}, real weights)")

        def load(precision: str, spec: ModelSpec = spec) -> TransformersEncoder:
            return load_real(spec, precision, models_dir)

        try:
            result = measure_encoders(
                load,
                spec.modality.value,
                reps,
                random_weights=False,
                real_inputs=True,
            )
        except (EmoappError, OSError) as exc:
            part["failed"][spec.model] = str(exc).splitlines()[0] if str(exc) else repr(exc)
            continue
        result["modality"] = spec.modality.value
        part["measured"][spec.model] = result
    return part


def run_precision(
    config: BenchConfig,
    paths: dict[str, Path],
    reps: int | None = None,
    real: bool = True,
) -> dict[str, Any]:
    """Every modality's benchmark model in every CPU precision, then (``real``) the real
    models ``config.real_models`` names that are present here; the record written."""
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
    if real:
        real_reps = 3 if config.quick or config.size == "tiny" else 7
        result["real_models"] = run_real_models(
            config.real_models, config.real_models_dir, real_reps
        )
    result["load_average_end"] = load_average()
    return result


def _cells(model: dict[str, Any]) -> str:
    """One model's measurements as table cells: time, speed-up and agreement a precision."""
    return ", ".join(
        f"{p} {r['median_ms']:.1f} ms ({r['speedup']}x, max dp {r['max_prob_diff']:.4f}, "
        f"top {r['top_agreement']:.0%})"
        for p, r in model["measurements"].items()
    )


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
        out.append(f"  {modality:5s} {_cells(m)} -> auto: {m['auto']}")
    real = part.get("real_models")
    if real:
        out.append(
            f"  real models ({REAL_MODELS_OPTION} {real['asked']}; models folder "
            f"{real['models_dir'] or 'the Hugging Face cache'}):"
        )
        for model_id, m in real["measured"].items():
            out.append(f"    {model_id}: {_cells(m)} -> auto: {m['auto']}")
        for model_id, why in real["failed"].items():
            out.append(f"    {model_id}: failed: {why}")
        for model_id, why in real["not_measured"].items():
            out.append(f"    {model_id}: {why}")
        if not real["measured"] and not real["failed"] and not real["not_measured"]:
            out.append("    none named")
    return out
