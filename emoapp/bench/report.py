"""One ``emoapp bench`` run from start to end: the parts in order, the JSON record and the
printed table.

The JSON's top level carries the headline figures under fixed keys (see
docs/benchmarks.md): ``face_encode_ms``, ``voice_encode_ms``, ``text_encode_ms``,
``voice_overhead``, ``text_overhead``, ``face_overhead_classification``,
``face_overhead_total``, ``face_detection_ms`` (all from the primary variant), then
``machine``, ``models``, ``variants``, ``encoders``, ``scaling``, ``live``, ``explain``
(:mod:`emoapp.bench.explain`), ``startup``, ``peers``, ``asr`` (speech recognition:
:mod:`emoapp.bench.asr`) and ``targets``. A part that was skipped says ``{"status":
"skipped"}``; one that could not run says ``{"status": "failed", "reason": ...}``.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from emoapp.bench.common import (
    SCHEMA,
    BenchConfig,
    BenchError,
    load_average,
    machine_info,
    plan_variants,
    primary_variant,
    say,
)
from emoapp.core.messages import Modality

OVERHEAD_TARGET = 1.10
"""Most the whole voice or text encoder call may cost over its bare model forward."""

MODEL_SHAPES = {
    "full": {
        "face": "ViT-base/16, 224 px (trpakov/vit-face-expression's architecture), random weights",
        "voice": "wav2vec2-base (95M; the cpu profile's hubert-base has the same shape; the "
        "default profile's hubert-large is about 3x the compute: --models large), random weights",
        "text": "RoBERTa, 6 layers, 768 wide (distilroberta-base's shape), random weights",
    },
    "large": {
        "face": "ViT-base/16, 224 px (trpakov/vit-face-expression's architecture), random weights",
        "voice": "HuBERT-large, 24 layers, 1024 wide, weighted layer sum "
        "(superb/hubert-large-superb-er's architecture), random weights",
        "text": "RoBERTa-large, 24 layers, 1024 wide (tae898/emoberta-large's architecture), "
        "random weights",
    },
    "tiny": {
        "face": "tiny ViT (2 layers, 32 wide)",
        "voice": "tiny wav2vec2 (2 layers, 32 wide)",
        "text": "tiny RoBERTa (2 layers, 32 wide)",
    },
}


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Run the parts ``config`` asks for and return the record (not yet written)."""
    import torch

    from emoapp.bench.common import ensure_models

    started = time.perf_counter()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    variants = plan_variants(config.device, torch)
    primary = primary_variant(variants)
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "command": "emoapp bench " + " ".join(config.argv),
        "mode": config.mode,
        "machine": machine_info(torch),
    }
    paths = ensure_models(config.cache_dir(), config.size, say)
    result["models"] = {
        "size": config.size,
        "dir": str(paths["face"].parent),
        **MODEL_SHAPES[config.size],
    }
    result["variants"] = [v.name for v in variants]
    result["primary_variant"] = primary.name
    for key in HEADLINE_KEYS:
        result[key] = None

    if config.runs("precision"):
        from emoapp.bench.precision import run_precision

        result["precision"] = _guard(lambda: run_precision(config, paths))
    else:
        result["precision"] = {"status": "skipped"}

    kept = None
    if config.runs("encoders"):
        from emoapp.bench.encoders import run_variants

        part_started = time.perf_counter()
        try:
            result["encoders"], kept = run_variants(config, paths, variants)
            _headline(result, result["encoders"][primary.name])
        except BenchError as exc:
            result["encoders"] = _failed(exc)
        result["encoders_s"] = round(time.perf_counter() - part_started, 1)
    else:
        result["encoders"] = {"status": "skipped"}

    def primary_encoders() -> Any:
        nonlocal kept
        if kept is None:
            from emoapp.bench.encoders import load_bench_encoders

            kept = load_bench_encoders(paths, primary, config.size)
        return kept

    if config.runs("scaling"):
        from emoapp.bench.encoders import run_scaling

        result["scaling"] = _guard(lambda: run_scaling(config, primary_encoders()))
    else:
        result["scaling"] = {"status": "skipped"}

    if config.runs("peers"):
        from emoapp.bench.peers import run_peers

        result["peers"] = _guard(
            lambda: run_peers(
                primary_encoders().face, config.fer_python, config.budget, config.quick
            )
        )
    else:
        result["peers"] = {"status": "skipped"}

    if config.runs("live"):
        from emoapp.bench.live import run_live

        def live() -> dict[str, Any]:
            loaded = primary_encoders()
            encoders = {
                Modality.FACE: loaded.face,
                Modality.VOICE: loaded.voice,
                Modality.TEXT: loaded.text,
            }
            return run_live(config, encoders, primary.name)

        result["live"] = _guard(live)
    else:
        result["live"] = {"status": "skipped"}

    if config.runs("explain"):
        from emoapp.bench.explain import run_explain

        def explain() -> dict[str, Any]:
            loaded = primary_encoders()
            encoders = {
                Modality.FACE: loaded.face,
                Modality.VOICE: loaded.voice,
                Modality.TEXT: loaded.text,
            }
            return run_explain(config, encoders, primary.name, result.get("live"))

        result["explain"] = _guard(explain)
    else:
        result["explain"] = {"status": "skipped"}

    if config.runs("asr"):
        from emoapp.bench.asr import run_asr

        def asr() -> dict[str, Any]:
            loaded = primary_encoders() if config.runs("live") else None
            encoders = (
                {
                    Modality.FACE: loaded.face,
                    Modality.VOICE: loaded.voice,
                    Modality.TEXT: loaded.text,
                }
                if loaded is not None
                else None
            )
            return run_asr(config, encoders, primary.name)

        result["asr"] = _guard(asr)
    else:
        result["asr"] = {"status": "skipped"}
    kept = None
    gc.collect()

    if config.runs("startup"):
        from emoapp.bench.live import live_media
        from emoapp.bench.startup import run_startup

        def startup() -> dict[str, Any]:
            clip, speech, lines = live_media(config)
            return run_startup(
                paths,
                clip,
                speech,
                lines,
                help_runs=3 if config.quick else 5,
                threads=config.threads,
            )

        result["startup"] = _guard(startup)
    else:
        result["startup"] = {"status": "skipped"}

    if config.runs("batch"):
        from emoapp.bench.batch import run_batch_bench

        result["batch"] = _guard(lambda: run_batch_bench(config, paths))
    else:
        result["batch"] = {"status": "skipped"}

    result["targets"] = _targets(result)
    result["machine"]["load_average_end"] = load_average()
    result["elapsed_s"] = round(time.perf_counter() - started, 1)
    return result


HEADLINE_KEYS = (
    "face_encode_ms",
    "voice_encode_ms",
    "text_encode_ms",
    "voice_overhead",
    "text_overhead",
    "face_overhead_classification",
    "face_overhead_total",
    "face_detection_ms",
    "voice_overhead_cpu",
    "text_overhead_cpu",
    "face_overhead_classification_cpu",
)


def _headline(result: dict[str, Any], measured: dict[str, Any]) -> None:
    result["face_encode_ms"] = measured["face"]["encode"]["median_ms"]
    result["voice_encode_ms"] = measured["voice"]["encode"]["median_ms"]
    result["text_encode_ms"] = measured["text"]["encode"]["median_ms"]
    result["voice_overhead"] = measured["voice"]["overhead"]
    result["text_overhead"] = measured["text"]["overhead"]
    result["face_overhead_classification"] = measured["face"]["overhead_classification"]
    result["face_overhead_total"] = measured["face"]["overhead_total"]
    result["face_detection_ms"] = measured["face"]["detection"]["median_ms"]
    result["voice_overhead_cpu"] = measured["voice"]["overhead_cpu"]
    result["text_overhead_cpu"] = measured["text"]["overhead_cpu"]
    result["face_overhead_classification_cpu"] = measured["face"]["overhead_classification_cpu"]


def _failed(exc: BaseException) -> dict[str, Any]:
    say(f"failed: {exc}")
    return {"status": "failed", "reason": str(exc)}


def _guard(part: Any) -> dict[str, Any]:
    """A part's result, or its failure as data (a BenchError is a reason, not a crash),
    with the seconds it took."""
    started = time.perf_counter()
    try:
        result = part()
    except BenchError as exc:
        result = _failed(exc)
    result["part_s"] = round(time.perf_counter() - started, 1)
    return result


def _targets(result: dict[str, Any]) -> dict[str, Any]:
    def met(value: Any) -> bool | None:
        return None if value is None else bool(value <= OVERHEAD_TARGET)

    targets: dict[str, Any] = {
        "overhead_max": OVERHEAD_TARGET,
        "voice_overhead_met": met(result.get("voice_overhead")),
        "text_overhead_met": met(result.get("text_overhead")),
    }
    live = result.get("live") or {}
    if "rss_delta_mb" in live:
        targets["live_rss_trend_mb_per_min"] = live.get("rss_trend_mb_per_min")
    help_part = (result.get("startup") or {}).get("help") or {}
    if "torch_imported" in help_part:
        targets["help_imports_no_torch"] = not help_part["torch_imported"]
    return targets


def failed_parts(result: dict[str, Any]) -> list[str]:
    return [
        name
        for name in (
            "precision",
            "encoders",
            "scaling",
            "peers",
            "live",
            "explain",
            "startup",
            "asr",
        )
        if isinstance(result.get(name), dict) and result[name].get("status") == "failed"
    ]


# --- JSON ---------------------------------------------------------------------------------


def _clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to None, tuples and keys to plain."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(result: dict[str, Any], path: Path) -> Path:
    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(_clean(result), indent=2) + "\n", encoding="utf-8")
    except OSError as exc:
        raise BenchError(f"cannot write {path}: {exc.strerror or exc}") from exc
    return path


# --- the table ----------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _pair(wall: Any, cpu: Any) -> str:
    return f"{_fmt(wall, 3)} ({_fmt(cpu, 3)})"


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    cells = [header] + [[_fmt(c) if not isinstance(c, str) else c for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _ms(t: dict[str, Any] | None) -> str:
    """``median / p95 (CPU median)`` of a timing."""
    if not t:
        return "-"
    text = f"{_fmt(t.get('median_ms'))} / {_fmt(t.get('p95_ms'))}"
    if t.get("cpu_median_ms") is not None:
        text += f" ({_fmt(t['cpu_median_ms'])})"
    return text


def render_table(result: dict[str, Any]) -> str:
    """The run as text tables (what the command prints)."""
    m = result["machine"]
    out = [
        f"emoapp bench ({result['mode']}): {m['cpu']}, {m['logical_cpus']} CPUs, "
        f"torch {m['torch']}, GPU: {', '.join(m['gpus']) or 'none'}; "
        f"load average {m.get('load_average_start')} -> {m.get('load_average_end')}",
        f"models: {result['models']['size']} (random weights); "
        f"primary: {result['primary_variant']}",
        "",
    ]
    from emoapp.bench.precision import render_precision

    precision = result.get("precision", {})
    if precision.get("status") == "failed":
        out.append(f"precision: failed {precision.get('reason', '')}".rstrip())
    lines = render_precision(precision)
    if lines:
        out += [*lines, ""]
    encoders = result.get("encoders", {})
    if "status" in encoders:
        out.append(f"encoders: {encoders['status']} {encoders.get('reason', '')}".rstrip())
    else:
        out.append(
            "Encoder cost at batch 1, ms: wall median / p95 (process CPU median); "
            "overhead = whole call / bare forward, wall (CPU)"
        )
        rows = []
        for name, v in encoders.items():
            f, vo, t = v["face"], v["voice"], v["text"]
            rows.append(
                [
                    name,
                    "face",
                    _ms(f["encode"]),
                    _ms(f["forward"]),
                    "classify "
                    + _pair(f["overhead_classification"], f.get("overhead_classification_cpu"))
                    + f"; detect {_fmt(f['detection']['median_ms'])} ms",
                ]
            )
            rows.append(
                [
                    name,
                    "voice",
                    _ms(vo["encode"]),
                    _ms(vo["forward"]),
                    _pair(vo["overhead"], vo.get("overhead_cpu")),
                ]
            )
            rows.append(
                [
                    name,
                    f"text ({t['tokens']} tok)",
                    _ms(t["encode"]),
                    _ms(t["forward"]),
                    _pair(t["overhead"], t.get("overhead_cpu")),
                ]
            )
        out += _table(["variant", "modality", "encode", "bare forward", "overhead"], rows)
        out.append("")
        out.append("Where one call's time goes, ms (primary variant)")
        p = encoders.get(result["primary_variant"], {})
        stage_rows = []
        for modality in ("face", "voice", "text"):
            s = p.get(modality, {}).get("stages", {})
            stage_rows.append(
                [modality]
                + [
                    _fmt(s.get(k), 2)
                    for k in (
                        "preprocess_ms",
                        "vad_ms",
                        "collate_ms",
                        "transfer_ms",
                        "forward_ms",
                        "softmax_labelmap_ms",
                        "postprocess_ms",
                    )
                ]
            )
        out += _table(
            [
                "modality",
                "preprocess",
                "(of it VAD)",
                "collate",
                "transfer",
                "forward",
                "softmax+map",
                "postprocess",
            ],
            stage_rows,
        )
    out.append("")
    out += _render_scaling(result.get("scaling", {}))
    out += _render_peers(result.get("peers", {}))
    out += _render_live(result.get("live", {}))
    if "explain" in result:
        from emoapp.bench.explain import render as render_explain

        out += ["", *render_explain(result["explain"])]
    out += _render_asr(result.get("asr", {}))
    out += _render_startup(result.get("startup", {}))
    out += _render_batch(result.get("batch", {"status": "skipped"}))
    t = result.get("targets", {})
    out.append(
        f"targets: voice overhead <= {t.get('overhead_max')}: {_fmt(t.get('voice_overhead_met'))}; "
        f"text: {_fmt(t.get('text_overhead_met'))}; --help imports no torch: "
        f"{_fmt(t.get('help_imports_no_torch'))}"
    )
    out.append(f"elapsed: {result.get('elapsed_s')} s")
    return "\n".join(out)


def _status_line(name: str, part: dict[str, Any]) -> list[str]:
    return [f"{name}: {part['status']}" + (f": {part['reason']}" if part.get("reason") else ""), ""]


def _render_scaling(s: dict[str, Any]) -> list[str]:
    if "status" in s:
        return _status_line("scaling", s)
    out = [f"Scaling ({s['variant']}), ms median"]
    rows = [
        [
            str(r["faces"]),
            str(r["faces_found"]),
            _fmt(r["classification"]["median_ms"]),
            _fmt(r.get("classification_vs_1"), 2),
            _fmt(r["encode_with_detection"]["median_ms"]),
            _fmt(r.get("encode_vs_1"), 2),
        ]
        for r in s["face"]
    ]
    out += _table(["faces", "found", "classify", "x vs 1", "with detection", "x vs 1"], rows)
    out.append("")
    rows = [
        [
            f"{r['window_s']:g} s",
            _fmt(r.get("encode", {}).get("median_ms")),
            _fmt(r.get("forward", {}).get("median_ms")),
            _fmt(r.get("overhead"), 3),
            _fmt(r.get("encode_ms_per_audio_s")),
            r.get("note", ""),
        ]
        for r in s["voice"]
    ]
    out += _table(["voice window", "encode", "forward", "overhead", "ms per audio s", ""], rows)
    out.append("")
    rows = [
        [
            str(r["tokens"]),
            str(r["chunks"]),
            _fmt(r["encode"]["median_ms"]),
            _fmt(r["forward"]["median_ms"]),
            _fmt(r["overhead"], 3),
        ]
        for r in s["text"]
    ]
    out += _table(["text tokens", "chunks", "encode", "forward", "overhead"], rows)
    out.append("")
    return out


def _render_peers(p: dict[str, Any]) -> list[str]:
    if "status" in p:
        return _status_line("peers", p)
    fer = p.get("fer", {})
    if fer.get("status") != "ran":
        return [f"peer fer: not run: {fer.get('reason', '')}", ""]
    ours = p["emoapp_face"]
    return [
        f"Peer on the same {p['frames']} frames, ms per frame (median / p95)",
        *_table(
            ["", "whole frame", "face finding"],
            [
                [f"fer {fer.get('fer_version')}", _ms(fer["per_frame"]), _ms(fer["face_finding"])],
                [
                    f"emoapp ({ours['device']} {ours['dtype']})",
                    _ms(ours["per_frame"]),
                    _ms(ours["face_finding"]),
                ],
                [
                    "emoapp / fer",
                    _fmt(p.get("emoapp_vs_fer_per_frame"), 2),
                    _fmt(p.get("emoapp_vs_fer_face_finding"), 2),
                ],
            ],
        ),
        "",
    ]


def _render_asr(asr: dict[str, Any]) -> list[str]:
    if not asr or "status" in asr:
        return _status_line("asr", asr) if asr else []
    out = ["", "Speech recognition (real-time factor: recogniser time / speech, wall (CPU)):"]
    for r in asr.get("recognizers", []):
        out.append(
            f"  {r['model']:28} {r['device']:5} {r['realtime_factor']} "
            f"({r['realtime_factor_cpu']}) over {r['speech_s']} s of speech"
        )
    live = asr.get("live")
    if live:
        out.append(
            f"  live, transcription on vs off: age ratios {live['age_ratios']} "
            f"(target <= {live['target']}: {'met' if live['met'] else 'NOT met'})"
        )
    return out


def _render_live(live: dict[str, Any]) -> list[str]:
    if "status" in live:
        return _status_line("live", live)
    out = [
        f"Live run ({live['variant']}, {live['measured_s']} s after {live['warmup_s']} s warm-up): "
        f"{live['estimates']} estimates ({live['estimate_rate_hz']} Hz), CPU "
        f"{live['cpu_cores_used']} cores, RSS {live['rss_start_mb']} -> {live['rss_end_mb']} MiB "
        f"(delta {live['rss_delta_mb']}, trend {live['rss_trend_mb_per_min']} MiB/min)"
    ]
    rows = []
    for name, mod in live["modalities"].items():
        age = f"{_fmt(mod['age_p50_ms'], 0)} / {_fmt(mod['age_p95_ms'], 0)}"
        if "age_from_window_end_p50_ms" in mod:
            age += (
                f" (window end: {_fmt(mod['age_from_window_end_p50_ms'], 0)} / "
                f"{_fmt(mod['age_from_window_end_p95_ms'], 0)})"
            )
        rows.append(
            [
                name,
                str(mod["inputs"]),
                str(mod["encoded"]),
                str(mod["dropped"]),
                _fmt(mod["encoder_time_p50_ms"], 0),
                age,
                f"{_fmt(mod['latency_p50_ms'], 0)} / {_fmt(mod['latency_p95_ms'], 0)}",
                mod["state"],
            ]
        )
    out += _table(
        [
            "modality",
            "inputs",
            "encoded",
            "dropped",
            "encoder ms p50",
            "age ms p50 / p95",
            "latency ms p50 / p95",
            "state",
        ],
        rows,
    )
    out.append("")
    return out


def _render_startup(s: dict[str, Any]) -> list[str]:
    if "status" in s:
        return _status_line("startup", s)
    h, f = s["help"], s["first_estimate"]
    return [
        f"Start-up: `emoapp --help` {h['wall']['median_ms']:.0f} ms median "
        f"(torch imported: {_fmt(h['torch_imported'])}); fresh process to first fused "
        f"estimate {f['spawn_to_first_estimate_s']} s (imports {f['imports_s']} s, models "
        f"{f['models_load_s']} s, session start to estimate {f['session_to_first_estimate_s']} s)",
        "",
    ]


def _render_batch(b: dict[str, Any]) -> list[str]:
    if "status" in b:
        return _status_line("batch", b)
    out = [
        f"emoapp batch: {b['items']} items ({b['item']}) per run; wall includes worker "
        "start-up and model loading, steady excludes it"
    ]
    rows = []
    for engine, runs in b["runs"].items():
        if "status" in runs:
            rows.append([engine, "-", runs["status"], "", "", "", ""])
            continue
        for n, r in runs.items():
            rows.append(
                [
                    engine,
                    n,
                    _fmt(r["wall_s"]),
                    _fmt(r["ready_s"]),
                    f"{_fmt(r['items_per_min'])} / {_fmt(r['steady_items_per_min'])}",
                    f"{_fmt(r['media_hours_per_hour'], 2)} / "
                    f"{_fmt(r['steady_media_hours_per_hour'], 2)}",
                    f"{r['done']} done, {r['failed']} failed",
                ]
            )
    out += _table(
        [
            "engine",
            "workers",
            "wall s",
            "ready s",
            "items/min (steady)",
            "media-h/h (steady)",
            "outcome",
        ],
        rows,
    )
    out.append("")
    return out
