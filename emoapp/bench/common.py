"""What every part of ``emoapp bench`` shares: the run's settings, timing, the machine
record, the benchmark models and the media they run on.

The models are random-weight copies of the default models' architectures
(:func:`emoapp.bench.tinymodels.make_all`): for ``full``, the ``cpu`` profile's shapes
(ViT-base/16 at 224 px, wav2vec2-base, which is HuBERT-base's shape, and a 6-layer RoBERTa);
for ``large``, the ``default`` profile's (the same ViT, HuBERT-large, RoBERTa-large); tiny
ones for ``tiny`` (the smoke test). Random weights cost
the same compute as trained ones. They are built once into a cache folder and reused.

Timings are wall-clock (``time.perf_counter``); on CUDA the device is synchronised before
a timer stops, so a number is what the caller waits for.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from emoapp.core.errors import EmoappError

Size = Literal["tiny", "full", "large"]
SIZES: tuple[str, ...] = ("tiny", "full", "large")
SECTIONS: tuple[str, ...] = (
    "precision",
    "encoders",
    "scaling",
    "live",
    "explain",
    "startup",
    "peers",
    "batch",
    "asr",
)
"""The parts of a run, in order; ``--skip`` and ``--part`` take any of them."""


MODELS_ENV = "EMOAPP_BENCH_DIR"
SCHEMA = "emoapp-bench/1"


class BenchError(EmoappError):
    """A benchmark that cannot run as asked (bad option, missing device or media)."""


def parts_to_skip(skip: frozenset[str], only: frozenset[str]) -> frozenset[str]:
    """The parts to leave out, from ``--skip`` and ``--part`` (``--part``: every part not
    named). BenchError for an unknown part."""
    for option, parts in (("--skip", skip), ("--part", only)):
        unknown = set(parts) - set(SECTIONS)
        if unknown:
            raise BenchError(
                f"{option}: unknown part {', '.join(sorted(unknown))}; "
                f"choose from {', '.join(SECTIONS)}"
            )
    if not only:
        return skip
    return frozenset(skip | (set(SECTIONS) - set(only)))


# --- settings -----------------------------------------------------------------------------


@dataclass(frozen=True)
class MeasureBudget:
    """How many times to time one thing: ``warmup`` untimed calls, then at least
    ``min_reps`` timed calls, and more (up to ``max_reps``) while under ``budget_s``."""

    warmup: int = 1
    min_reps: int = 5
    max_reps: int = 20
    budget_s: float = 4.0

    def scaled(self, factor: float) -> MeasureBudget:
        """The same with a time budget ``factor`` times as long."""
        return MeasureBudget(self.warmup, self.min_reps, self.max_reps, self.budget_s * factor)


@dataclass
class BenchConfig:
    """One ``emoapp bench`` run."""

    size: Size = "full"
    quick: bool = False
    live_duration_s: float | None = None
    """Length of the sustained live run (default: 60 s, or 10 s with ``quick``)."""
    skip: frozenset[str] = frozenset()
    device: str = "auto"
    """``auto`` (CPU, and CUDA when present), ``cpu``, or ``cuda[:N]`` (CUDA only)."""
    models_dir: Path | None = None
    """Where the benchmark models are built and reused (default: ``EMOAPP_BENCH_DIR`` or
    ``~/.cache/emoapp-bench``)."""
    fer_python: str | None = None
    """A Python interpreter that can import ``fer`` (default: this one, if it can)."""
    json_path: Path | None = None
    threads: int | None = None
    """torch intra-op threads for this process and the start-up child (default: torch's
    own choice, one per core)."""
    argv: list[str] = field(default_factory=list)
    profile: str | None = None
    """Only the live part, with this profile's models (:mod:`emoapp.bench.profile`)."""
    face_detect_every: int = 5
    """The live run detects faces on one frame in this many (as ``emoapp live``)."""
    face_reclassify_after: float = 1.0
    """The live run lets a tracked, unchanged face keep its classification this many
    seconds at most (as ``emoapp live``; 0: classified on every frame)."""
    real_models: str = "all"
    """The real (pulled) models the precision part measures besides its own, where they
    are present here: ``all`` (every hub model of the registry), ``none``, or profile
    names, model ids and local folders (:func:`emoapp.bench.precision.real_models`)."""
    real_models_dir: str | None = None
    """The models folder they load from (default as ``emoapp live``: ``EMOAPP_MODELS_DIR``,
    else the Hugging Face cache)."""
    window: bool = False
    """The profile's live run inside the real main window, measuring its event-loop lag."""

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise BenchError(f"--models must be one of {', '.join(SIZES)}, not {self.size!r}")
        unknown = set(self.skip) - set(SECTIONS)
        if unknown:
            raise BenchError(
                f"--skip: unknown part {', '.join(sorted(unknown))}; "
                f"choose from {', '.join(SECTIONS)}"
            )
        if self.live_duration_s is not None and not self.live_duration_s > 0:
            raise BenchError("--duration must be a positive number of seconds")
        if self.threads is not None and self.threads < 1:
            raise BenchError("--threads must be at least 1")
        if self.face_detect_every < 1:
            raise BenchError("--face-detect-every must be at least 1")
        if not (self.face_reclassify_after >= 0 and self.face_reclassify_after < float("inf")):
            raise BenchError("--face-reclassify-after must be 0 or more seconds")
        if self.window and self.profile is None:
            raise BenchError("--window goes with --profile NAME (the live run in the window)")

    @property
    def mode(self) -> str:
        if self.size == "tiny":
            return "smoke"
        return "quick" if self.quick else "full"

    @property
    def duration_s(self) -> float:
        if self.live_duration_s is not None:
            return float(self.live_duration_s)
        return 10.0 if self.quick else 60.0

    @property
    def budget(self) -> MeasureBudget:
        if self.size == "tiny":
            return MeasureBudget(warmup=1, min_reps=2, max_reps=2, budget_s=0.0)
        if self.quick:
            return MeasureBudget(warmup=1, min_reps=2, max_reps=3, budget_s=0.5)
        return MeasureBudget()

    @property
    def scaling_budget(self) -> MeasureBudget:
        """Scaling has many points, some costly (8 faces, 8 s of audio): fewer repeats."""
        if self.size == "tiny" or self.quick:
            return self.budget
        return MeasureBudget(warmup=1, min_reps=2, max_reps=10, budget_s=2.0)

    def runs(self, section: str) -> bool:
        return section not in self.skip

    def cache_dir(self) -> Path:
        if self.models_dir is not None:
            return Path(self.models_dir).expanduser()
        env = os.environ.get(MODELS_ENV)
        return Path(env).expanduser() if env else Path.home() / ".cache" / "emoapp-bench"


# --- timing -------------------------------------------------------------------------------


@dataclass
class Timing:
    """Wall-clock times of repeated calls, in milliseconds, and the process CPU time each
    call used (all threads): on a machine busy with other work, wall time stretches while
    CPU time much less so, which makes it the steadier figure for comparing two calls."""

    samples_ms: list[float] = field(default_factory=list)
    cpu_samples_ms: list[float] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.samples_ms)

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples_ms)) if self.samples_ms else float("nan")

    @property
    def p95_ms(self) -> float:
        return float(np.percentile(self.samples_ms, 95)) if self.samples_ms else float("nan")

    @property
    def cpu_median_ms(self) -> float:
        return float(np.median(self.cpu_samples_ms)) if self.cpu_samples_ms else float("nan")

    def as_dict(self) -> dict[str, Any]:
        result = {
            "median_ms": round_ms(self.median_ms),
            "p95_ms": round_ms(self.p95_ms),
            "n": self.n,
        }
        if self.cpu_samples_ms:
            result["cpu_median_ms"] = round_ms(self.cpu_median_ms)
        return result


def round_ms(value: float | None, digits: int = 3) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), digits)


Sync = Callable[[], None]


def _timed(fn: Callable[[], Any], sync: Sync | None, into: Timing) -> None:
    if sync is not None:
        sync()
    cpu = time.process_time()
    started = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    into.samples_ms.append((time.perf_counter() - started) * 1000.0)
    into.cpu_samples_ms.append((time.process_time() - cpu) * 1000.0)


def measure(fn: Callable[[], Any], budget: MeasureBudget, sync: Sync | None = None) -> Timing:
    """Time ``fn`` (after ``budget.warmup`` untimed calls) as ``budget`` allows."""
    for _ in range(budget.warmup):
        fn()
    timing = Timing()
    started = time.perf_counter()
    while timing.n < budget.max_reps:
        _timed(fn, sync, timing)
        if timing.n >= budget.min_reps and time.perf_counter() - started > budget.budget_s:
            break
    return timing


def measure_pair(
    first: Callable[[], Any],
    second: Callable[[], Any],
    budget: MeasureBudget,
    sync: Sync | None = None,
) -> tuple[Timing, Timing]:
    """Time two calls taking turns, so that load from elsewhere on the machine falls on
    both alike (what a ratio of the two needs)."""
    for _ in range(budget.warmup):
        first()
        second()
    a, b = Timing(), Timing()
    started = time.perf_counter()
    while a.n < budget.max_reps:
        _timed(first, sync, a)
        _timed(second, sync, b)
        if a.n >= budget.min_reps and time.perf_counter() - started > budget.budget_s:
            break
    return a, b


def ratio(numerator: Timing, denominator: Timing, cpu: bool = False) -> float | None:
    """Ratio of the wall-time (or, with ``cpu``, CPU-time) medians, rounded; None when
    either is missing or zero."""
    if cpu:
        num, den = numerator.cpu_median_ms, denominator.cpu_median_ms
    else:
        num, den = numerator.median_ms, denominator.median_ms
    if not (np.isfinite(num) and np.isfinite(den)) or den <= 0:
        return None
    return round(num / den, 3)


def device_sync(torch: Any, device: Any) -> Sync | None:
    """A function that waits for the device to finish queued work (CUDA), or None (CPU,
    where calls return when done)."""
    if getattr(device, "type", str(device).split(":")[0]) != "cuda":
        return None

    def sync() -> None:
        torch.cuda.synchronize(device)

    return sync


# --- devices and dtypes -------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """A device and dtype to run the encoders with."""

    device: str
    dtype: str
    primary: bool = False
    """The one ``--device auto --dtype auto`` would use here (scaling and the live run use
    it, and the top-level overhead figures come from it)."""

    @property
    def name(self) -> str:
        return f"{self.device.replace(':', '')}-{self.dtype}"


def cpu_bf16_supported(torch: Any) -> bool:
    """Whether oneDNN runs bfloat16 natively on this CPU (AVX512-BF16 or AMX); elsewhere
    torch emulates it, slowly."""
    check = getattr(getattr(torch.ops, "mkldnn", None), "_is_mkldnn_bf16_supported", None)
    if check is None:
        return False
    try:
        return bool(check())
    except RuntimeError:
        return False


def plan_variants(requested: str, torch: Any) -> list[Variant]:
    """The device/dtype pairs a run measures.

    ``auto``: CPU float32, CPU bfloat16 where the CPU runs it natively, and CUDA float16
    when a GPU is present (then the primary one). ``cpu``: the CPU ones. ``cuda``/
    ``cuda:N``: CUDA float16 only (an error when CUDA is not available).
    """
    requested = (requested or "auto").strip().lower()
    cuda = bool(torch.cuda.is_available())
    cpu = [Variant("cpu", "float32", primary=True)]
    if cpu_bf16_supported(torch):
        cpu.append(Variant("cpu", "bfloat16"))
    if requested == "cpu":
        return cpu
    if requested == "auto":
        if not cuda:
            return cpu
        return [Variant("cpu", "float32"), *cpu[1:], Variant("cuda", "float16", primary=True)]
    if requested == "cuda" or requested.startswith("cuda:"):
        if not cuda:
            raise BenchError(f"--device {requested}: CUDA is not available on this machine")
        index = requested.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise BenchError(
                f"--device {requested}: there are {torch.cuda.device_count()} CUDA devices"
            )
        return [Variant(requested, "float16", primary=True)]
    raise BenchError(f"--device must be auto, cpu, cuda or cuda:N, not {requested!r}")


def primary_variant(variants: list[Variant]) -> Variant:
    return next(v for v in variants if v.primary)


# --- the machine --------------------------------------------------------------------------


def _cpu_model() -> str:
    from emoapp.encoders.precision import cpu_model

    return cpu_model()


def _cpu_flags() -> list[str]:
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16")
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return [f for f in wanted if f in present]
    except OSError:
        pass
    return []


def _memory_total_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (what else was running shows here)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def machine_info(torch: Any) -> dict[str, Any]:
    """The machine a run measured, for the record."""
    import transformers

    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "logical_cpus": os.cpu_count(),
        "cpu_flags": _cpu_flags(),
        "memory_gb": _memory_total_gb(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_bf16_native": cpu_bf16_supported(torch),
        "cuda_available": bool(torch.cuda.is_available()),
        "gpus": [],
        "load_average_start": load_average(),
        "nice": _niceness(),
    }
    if info["cuda_available"]:
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["cuda"] = torch.version.cuda
    return info


def _niceness() -> int | None:
    """This process's scheduling niceness (negative: favoured over other work)."""
    try:
        return os.nice(0)
    except OSError:
        return None


def rss_mb() -> float | None:
    """This process's resident memory in MiB (``VmRSS`` from ``/proc/self/status``)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def process_cpu_s() -> float:
    """CPU seconds this process has used, all threads, user and system."""
    t = os.times()
    return t.user + t.system


# --- models and media ---------------------------------------------------------------------

_MARKER = "bench-models.json"
_LAYOUT = 2
"""Bumped when a size's architectures change, so a cache built before is rebuilt."""


def _cached_layout(marker: Path) -> int | None:
    try:
        value = json.loads(marker.read_text()).get("layout")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def ensure_models(
    root: Path, size: Size, log: Callable[[str], None] | None = None
) -> dict[str, Path]:
    """The three benchmark models of ``size`` under ``root``, built on first use.

    A build goes to a temporary folder that is renamed into place when complete, so an
    interrupted build is never reused.
    """
    from emoapp.bench.tinymodels import make_all

    root = Path(root)
    target = root / f"models-{size}"
    marker = target / _MARKER
    paths = {m: target / f"{size}-{m}" for m in ("face", "voice", "text")}
    if _cached_layout(marker) == _LAYOUT and all(
        (p / "config.json").is_file() for p in paths.values()
    ):
        return paths
    if log is not None:
        log(f"building the {size} benchmark models in {target} (once)")
    root.mkdir(parents=True, exist_ok=True)
    building = root / f".building-{size}-{os.getpid()}"
    shutil.rmtree(building, ignore_errors=True)
    started = time.perf_counter()
    try:
        make_all(building, size=size)
        (building / _MARKER).write_text(
            json.dumps(
                {
                    "size": size,
                    "layout": _LAYOUT,
                    "build_s": round(time.perf_counter() - started, 1),
                }
            )
        )
        shutil.rmtree(target, ignore_errors=True)
        building.rename(target)
    except OSError as exc:
        raise BenchError(f"cannot build the benchmark models in {root}: {exc}") from exc
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return paths


def sample_media(name: str) -> Path:
    """A file of emoapp's sample media (``resources/samples``)."""
    from emoapp.registry import data_dir

    path = data_dir("resources") / "samples" / name
    if not path.is_file():
        raise BenchError(f"sample media {path} is missing (run resources/make_samples.py)")
    return path


def make_30fps_clip(source: Path, target: Path) -> Path:
    """``source`` re-encoded at 30 frames per second (H.264, no audio): between each two
    frames of the 15 fps sample comes their average, so every frame differs as a camera's
    would. Made once; reused when present."""
    if target.is_file():
        return target
    import av

    from emoapp.capture.media import iter_video_frames

    frames = [f.image for f in iter_video_frames(source)]
    if not frames:
        raise BenchError(f"{source} has no video frames")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial.mp4")
    height, width = frames[0].shape[:2]
    with av.open(str(partial), "w") as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = (
            width - width % 2,
            height - height % 2,
            "yuv420p",
        )
        for i, image in enumerate(frames):
            following = frames[min(i + 1, len(frames) - 1)]
            middle = ((image.astype(np.uint16) + following) // 2).astype(np.uint8)
            for picture in (image, middle):
                picture = np.ascontiguousarray(picture[: stream.height, : stream.width])
                frame = av.VideoFrame.from_ndarray(picture, format="rgb24")
                for packet in stream.encode(frame):
                    container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    partial.replace(target)
    return target


TEXT_LINES = (
    "I can't believe they cancelled the concert, I was really looking forward to it.",
    "Oh wow, that is the best news I have heard all week!",
    "Please stop doing that, it really makes me angry.",
    "The meeting moved to three o'clock in room four.",
    "I'm a bit worried about the results tomorrow.",
    "That smell is disgusting, what is it?",
)
"""Typed entries for the live run: one every few seconds, mixed emotions."""


def write_text_lines(target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("\n".join(TEXT_LINES) + "\n", encoding="utf-8")
    return target


def say(message: str) -> None:
    """Progress on stderr (stdout carries the table)."""
    print(f"emoapp bench: {message}", file=sys.stderr, flush=True)
