"""``emoapp bench --profile NAME``: only the sustained live run, with one profile's models,
judged against the live-on-a-laptop-CPU targets.

The ``embedded`` and ``baseline`` profiles ship with emoapp and run as they are. For ``cpu``
(and ``default``), whose models are downloaded, the benchmark runs random-weight copies of
that profile's architectures (:mod:`emoapp.bench.common`: for ``cpu`` ViT-base/16,
wav2vec2-base, a 6-layer RoBERTa; for ``default`` the same ViT, HuBERT-large and RoBERTa-
large; random weights cost the same compute as trained ones), on the CPU. Their CPU
precision is measured first (a few forwards of float32, bfloat16 where native, and int8:
:mod:`emoapp.bench.precision`, also written to this machine's precision record) and the live
run uses what ``--dtype auto`` chooses from it, recorded per modality in ``live.precision``
(the measurement in ``precision``). Random weights make the agreement part of that choice a
weak test.

The record keeps the keys of a whole ``emoapp bench`` run (``live.modalities.face.
age_p95_ms``, ``encoder_rate_hz``, ...), the other parts marked skipped, and adds
``live.profile``, ``live.rss_slope_mib_per_min`` and ``targets`` (the figures this profile
should reach on a 2-core machine, and whether it did). For the ``embedded`` and ``cpu``
profiles, ``faces`` holds the face detectors' and embedded face classifiers' time per frame
on the sample video, before (Haar) and after (YuNet): :mod:`emoapp.bench.faces`.
"""

from __future__ import annotations

import datetime as _dt
import time
from typing import Any

from emoapp.bench.common import (
    SCHEMA,
    SECTIONS,
    BenchConfig,
    BenchError,
    Size,
    load_average,
    machine_info,
    say,
)
from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality

RANDOM_WEIGHT_PROFILES = frozenset({"cpu", "default"})
"""Profiles whose models are downloaded: benchmarked with random-weight copies."""

PROFILE_SIZES: dict[str, Size] = {"cpu": "full", "default": "large"}
"""Which benchmark architectures stand in for each downloaded profile's models."""

TARGETS: dict[str, dict[str, float]] = {
    "embedded": {
        "face_encoder_rate_hz_min": 10.0,
        "face_age_p95_ms_max": 250.0,
        "voice_age_p95_ms_max": 1000.0,
        "ui_lag_p99_ms_max": 50.0,
    },
    "cpu": {
        "face_encoder_rate_hz_min": 3.0,
        "face_age_p95_ms_max": 700.0,
        "voice_age_p95_ms_max": 2500.0,
        "ui_lag_p99_ms_max": 50.0,
    },
}
"""The issue's targets on a 2-core machine (the window's lag: measured with ``--window``)."""


PROFILE_PRECISION_REPS = 3
"""Timed forwards per precision when a profile run measures precision first."""


def profile_encoders(
    config: BenchConfig, precision: dict[str, Any] | None = None
) -> tuple[dict[Modality, Any], str]:
    """The encoders of ``config.profile`` (loaded) and how they were made. For the
    random-weight profiles, CPU precision is measured first (a few forwards each; the
    result goes into ``precision`` when given, and into this machine's record) and the
    encoders load with ``--dtype auto``, so they run in what ``auto`` chooses from it.
    The measurement runs with the torch threads each live worker will get; with
    ``--skip precision`` the encoders read the record as it is."""
    name = str(config.profile)
    if name in RANDOM_WEIGHT_PROFILES:
        from emoapp.bench.common import Variant, ensure_models
        from emoapp.bench.encoders import load_bench_encoders
        from emoapp.bench.precision import run_precision

        size = PROFILE_SIZES[name]
        paths = ensure_models(config.cache_dir(), size, say)
        if precision is not None and config.runs("precision"):
            import torch

            from emoapp.live.threads import plan_for_session

            # Measure with the torch threads each live worker will have.
            plan = plan_for_session(("face", "voice", "text"), config.threads)
            before = torch.get_num_threads()
            torch.set_num_threads(plan.torch_threads)
            try:
                precision.update(
                    run_precision(config, paths, reps=PROFILE_PRECISION_REPS, real=False)
                )
            except BenchError as exc:
                precision.update({"status": "failed", "reason": str(exc)})
            finally:
                torch.set_num_threads(before)
        loaded = load_bench_encoders(paths, Variant("cpu", "auto", primary=True), size)
        encoders: dict[Modality, Any] = {
            Modality.FACE: loaded.face,
            Modality.VOICE: loaded.voice,
            Modality.TEXT: loaded.text,
        }
        chosen = ", ".join(
            f"{m.value} {getattr(e.precision, 'name', '?')}" for m, e in encoders.items()
        )
        return encoders, f"full-size architectures (random weights), CPU --dtype auto: {chosen}"
    from emoapp.config import ModelOptions, load_encoders

    try:
        loaded_profile = load_encoders(ModelOptions(profile=name, device="cpu"), strict=True)
    except EmoappError as exc:
        raise BenchError(f"--profile {name}: {exc}") from exc
    return dict(loaded_profile.encoders), f"the {name} profile's own models"


def precision_choices(encoders: dict[Modality, Any]) -> dict[str, dict[str, str]]:
    """Per modality, the precision each torch encoder runs in and why (numpy and
    rule-based encoders have none)."""
    chosen: dict[str, dict[str, str]] = {}
    for m, encoder in encoders.items():
        choice = getattr(encoder, "precision", None)
        if choice is not None:
            chosen[m.value] = {"dtype": choice.name, "reason": choice.reason}
    return chosen


def judge(profile: str, live: dict[str, Any]) -> dict[str, Any]:
    """The profile's targets and whether the live run met each (None: not measured)."""
    wanted = TARGETS.get(profile)
    if wanted is None or "modalities" not in live:
        return {}
    face = live["modalities"].get("face", {})
    voice = live["modalities"].get("voice", {})

    def at_least(value: Any, floor: float) -> bool | None:
        return None if value is None else bool(value >= floor)

    def at_most(value: Any, ceiling: float) -> bool | None:
        return None if value is None else bool(value <= ceiling)

    return {
        **wanted,
        "face_encoder_rate_met": at_least(
            face.get("encoder_rate_hz"), wanted["face_encoder_rate_hz_min"]
        ),
        "face_age_p95_met": at_most(face.get("age_p95_ms"), wanted["face_age_p95_ms_max"]),
        "voice_age_p95_met": at_most(voice.get("age_p95_ms"), wanted["voice_age_p95_ms_max"]),
        "ui_lag_p99_met": at_most(live.get("ui_lag_p99_ms"), wanted["ui_lag_p99_ms_max"]),
    }


def run_profile_bench(config: BenchConfig) -> dict[str, Any]:
    """The live run with ``config.profile``'s models, as a bench record."""
    import torch

    from emoapp.bench.live import run_live

    started = time.perf_counter()
    name = str(config.profile)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": "emoapp bench " + " ".join(config.argv),
        "mode": config.mode,
        "machine": machine_info(torch),
    }
    precision: dict[str, Any] = {}
    encoders, made = profile_encoders(config, precision)
    chosen = precision_choices(encoders)
    result["models"] = {
        "size": name,
        "profile": name,
        "made": made,
        **{m.value: getattr(e, "model_id", type(e).__name__) for m, e in encoders.items()},
    }
    variant = "cpu-auto" if name in RANDOM_WEIGHT_PROFILES else "cpu-float32"
    result["variants"] = [variant]
    result["primary_variant"] = variant
    for section in SECTIONS:
        result[section] = {"status": "skipped"}
    if precision:
        result["precision"] = precision
    try:
        result["live"] = run_live(
            config, encoders, f"profile {name}", profile=name, window=config.window
        )
    except BenchError as exc:
        result["live"] = {"status": "failed", "reason": str(exc)}
    if chosen:
        result["live"]["precision"] = chosen
    result["targets"] = judge(name, result["live"])
    if Modality.FACE in encoders and name in ("embedded", "cpu"):
        from emoapp.bench.faces import measure_faces

        try:
            result["faces"] = measure_faces()
        except (BenchError, EmoappError) as exc:
            result["faces"] = {"status": "failed", "reason": str(exc)}
    result["machine"]["load_average_end"] = load_average()
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    return result


def render_profile(result: dict[str, Any]) -> str:
    """The profile run as text (what the command prints)."""
    from emoapp.bench.report import _render_live

    m = result["machine"]
    out = [
        f"emoapp bench --profile {result['models']['profile']}: {m['cpu']}, "
        f"{m['logical_cpus']} CPUs, torch {m['torch']}; load average "
        f"{m.get('load_average_start')} -> {m.get('load_average_end')}",
        f"models: {result['models']['made']}",
    ]
    from emoapp.bench.precision import render_precision

    out += render_precision(result.get("precision", {}))
    live = result.get("live", {})
    for modality, chosen in live.get("precision", {}).items():
        out.append(f"{modality} runs {chosen['dtype']} ({chosen['reason']})")
    if "thread_plan" in live:
        out.append(str(live["thread_plan"]))
    out += _render_live(live)
    if "ui_lag_p99_ms" in live:
        out.append(
            f"window ({live['window']}) event-loop lag over {live['ui_lag_samples']} ticks of "
            f"a 10 ms timer: p50 {live['ui_lag_p50_ms']} ms, p99 {live['ui_lag_p99_ms']} ms, "
            f"max {live['ui_lag_max_ms']} ms (target p99 <= "
            f"{(result.get('targets') or {}).get('ui_lag_p99_ms_max', '-')} ms)"
        )
    if "faces" in result:
        from emoapp.bench.faces import render_faces

        out += render_faces(result["faces"])
    if "rss_slope_mib_per_min" in live:
        out.append(f"RSS slope after warm-up: {live['rss_slope_mib_per_min']} MiB/min")
    targets = result.get("targets") or {}
    if targets:
        out.append(
            "targets: "
            + "; ".join(f"{key} {value}" for key, value in targets.items() if "_met" in key)
        )
    return "\n".join(out)
