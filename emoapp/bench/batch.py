"""The batch part of ``emoapp bench``: ``emoapp batch`` throughput on this machine.

A folder of copies of the sample recording (``face_speech.mp4``, 7.3 s with face, voice
and its transcript) is analysed with the benchmark models by the local engine and, when
Ray is installed, by a local Ray, with 1 and 2 workers, each run into a fresh output
folder. Per run: the wall time from the call to the end (worker start-up and model loading
included), the time until every worker had its models (``ready_s``), and from those items
per minute and media-hours per hour, overall and after start-up (``steady``: what a long
batch approaches, since start-up is paid once per worker).
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from emoapp.bench.common import BenchConfig, BenchError, load_average, sample_media, say

ENGINES = ("local", "ray")
WORKERS = (1, 2)


def _items_per_run(config: BenchConfig) -> int:
    if config.size == "tiny" or config.quick:
        return 4
    return 8


def run_batch_bench(
    config: BenchConfig,
    paths: dict[str, Path],
    engines: tuple[str, ...] = ENGINES,
    workers: tuple[int, ...] = WORKERS,
    items: int | None = None,
) -> dict[str, Any]:
    """Time batch runs (see the module docstring); a Ray that is not installed is
    recorded as ``{"status": "not run", "reason": ...}``. ``items``: per run (default 4
    for tiny models or ``--quick``, else 8)."""
    from emoapp.core.errors import EmoappError

    try:
        return _run(config, paths, engines, workers, items)
    except EmoappError as error:
        raise BenchError(f"batch: {error}") from error


def _run(
    config: BenchConfig,
    paths: dict[str, Path],
    engines: tuple[str, ...],
    workers: tuple[int, ...],
    items: int | None,
) -> dict[str, Any]:
    from emoapp.batch.engines import run_batch
    from emoapp.batch.jobs import BatchItem, BatchJob, ModelRef
    from emoapp.config import ModelOptions, load_batch_encoders
    from emoapp.core.fusion import FusionConfig
    from emoapp.core.messages import Modality
    from emoapp.recorded.analyze import AnalysisConfig

    count = items or _items_per_run(config)
    clip, transcript = sample_media("face_speech.mp4"), sample_media("speech.srt")
    options = ModelOptions(
        models={m: str(paths[m.value]) for m in Modality}, device="cpu", dtype="float32"
    )
    result: dict[str, Any] = {
        "items": count,
        "item": f"{clip.name} with {transcript.name}",
        "load_average_start": load_average(),
        "runs": {},
    }
    with tempfile.TemporaryDirectory(prefix="emoapp-bench-batch-") as tmp:
        root = Path(tmp)
        folder = root / "in"
        folder.mkdir()
        for i in range(count):
            shutil.copy(clip, folder / f"clip{i:02d}.mp4")
        batch = [
            BatchItem(f"clip{i:02d}", folder / f"clip{i:02d}.mp4", transcript) for i in range(count)
        ]
        for engine in engines:
            if engine == "ray":
                try:
                    import ray  # noqa: F401
                except ModuleNotFoundError:
                    result["runs"]["ray"] = {
                        "status": "not run",
                        "reason": "ray is not installed (pip install 'emoapp[ray]')",
                    }
                    continue
            runs = result["runs"].setdefault(engine, {})
            for n in workers:
                say(f"batch: {count} items, engine {engine}, {n} worker(s)")
                job = BatchJob(
                    load=functools.partial(load_batch_encoders, options, {}),
                    out_dir=root / f"out-{engine}-{n}",
                    analysis=AnalysisConfig(),
                    fusion=FusionConfig(),
                    models={m: ModelRef(str(paths[m.value])) for m in Modality},
                    threads=config.threads or 1,  # as a Ray actor with one CPU has
                )
                started = time.perf_counter()
                report = run_batch(batch, job, engine=engine, workers=n)
                wall = time.perf_counter() - started
                runs[str(n)] = _figures(report, wall)
    result["load_average_end"] = load_average()
    return result


def _figures(report: Any, wall: float) -> dict[str, Any]:
    done = sum(1 for r in report.this_run if r.get("status") in ("done", "truncated"))
    media_h = report.media_s / 3600
    ready = report.engine.ready_s
    steady = wall - ready if ready is not None else None
    return {
        "workers": report.engine.workers,
        "done": done,
        "failed": report.count("failed"),
        "wall_s": round(wall, 2),
        "ready_s": round(ready, 2) if ready is not None else None,
        "media_s": round(report.media_s, 2),
        "items_per_min": round(done / wall * 60, 2),
        "media_hours_per_hour": round(media_h / (wall / 3600), 3),
        "steady_items_per_min": round(done / steady * 60, 2) if steady else None,
        "steady_media_hours_per_hour": round(media_h / (steady / 3600), 3) if steady else None,
    }
