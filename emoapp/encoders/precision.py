"""Which numeric precision a transformers encoder runs in, and why.

``--dtype`` takes ``auto``, ``float32``, ``float16``, ``bfloat16`` or ``int8``:

- ``float32``, ``float16``, ``bfloat16``: the model's weights and floating inputs are cast
  to that type (``bfloat16`` is a cast, not autocast: that is what ``emoapp bench`` has
  always measured as ``cpu-bfloat16``, and on a CPU with native bfloat16, AVX512-BF16 or
  AMX, it is the faster of the two);
- ``int8``: dynamic int8 quantisation of the ``torch.nn.Linear`` layers (weights stored
  as int8, activations quantised on the fly per call; everything else stays float32).
  CPU only: on CUDA or MPS it is refused. It applies to the text and voice models; the
  face model stays float32 under ``int8``, because its explanations (gradient x input)
  need gradients through float weights, which quantised layers do not give;
- ``auto``: float16 on CUDA, float32 on MPS; on the CPU, the precision that this
  machine's own measurement (``emoapp bench --part precision``, kept in
  :func:`record_path`) found best for this very model, by :func:`choose_precision`:

  the fastest of bfloat16 (measured only where the CPU runs it natively) and int8 that is
  at least :data:`SPEEDUP_MARGIN` (1.15) times faster than float32 by median forward
  time, **and** agrees with float32 on the benchmark's fixed inputs: largest absolute
  difference of any class probability at most :data:`MAX_PROB_DIFF` (0.02) and the same
  top label on at least :data:`MIN_TOP_AGREEMENT` (98%) of them (a near tie, float32's
  top two within :data:`TIE_MARGIN` = 0.005, counts as agreeing either way). Otherwise
  float32; and float32 when there is no measurement for this CPU, torch version and
  model.

The record is keyed by CPU model, torch version, model id, revision and architecture: a
new torch, another CPU or another model revision means measuring again. An unreadable
record is ignored (float32, with a warning), never a crash.

Imports neither torch nor transformers: the encoders pass what they know.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import math
import os
import platform
import tempfile
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emoapp.core.errors import ModelLoadError

log = logging.getLogger(__name__)

PRECISIONS: tuple[str, ...] = ("float32", "float16", "bfloat16", "int8")
"""What ``--dtype`` takes besides ``auto``."""
CPU_CANDIDATES: tuple[str, ...] = ("float32", "bfloat16", "int8")
"""What ``auto`` may pick on a CPU, in this order of preference when two tie."""
INT8_MODALITIES = frozenset({"text", "voice"})
"""The modalities whose models ``int8`` quantises (the face keeps float weights for its
gradient explanations)."""

SPEEDUP_MARGIN = 1.15
"""``auto`` takes a lower precision only when its median forward is at least this many
times faster than float32's on this machine."""
MAX_PROB_DIFF = 0.02
"""... and no class probability differs from float32's by more than this, on any input."""
MIN_TOP_AGREEMENT = 0.98
"""... and the top label is float32's on at least this share of the inputs."""
TIE_MARGIN = 0.005
"""An input whose float32 top two labels are within this of each other is a near tie: it
counts as agreeing whichever of the two a precision puts first (a rounding difference of
a few thousandths flips such a tie; on random weights, whose outputs are near uniform,
almost every input is one)."""

RECORD_ENV = "EMOAPP_PRECISION_FILE"
RECORD_SCHEMA = "emoapp-precision/1"
MEASURE_COMMAND = "emoapp bench --part precision"
REAL_MODELS_OPTION = "--real-models"
REAL_MODELS_DIR_OPTION = "--real-models-dir"


def no_record(command: str = MEASURE_COMMAND) -> str:
    """The reason ``auto`` gives when this machine has no measurement of a model."""
    return f"no precision measurement on this machine for this model; run `{command}`"


NO_RECORD = no_record()
"""The reason for a model with no better command to name (the benchmark's own models)."""


def measure_command(
    model_id: str, revision: str | None = None, cache_dir: str | None = None
) -> str:
    """The command that measures ``model_id`` (at ``revision``, loaded from ``cache_dir``)
    under the very key ``--dtype auto`` looks it up by: the benchmark's own random-weight
    models (``bench/...``) by the precision part itself; any other model, a registry id,
    hub id or local folder, by naming it in ``--real-models`` (with ``@revision`` unless
    the bare id resolves to that revision anyway, and ``--real-models-dir`` when it loads
    from a models folder other than ``EMOAPP_MODELS_DIR``'s)."""
    if model_id.startswith("bench/"):
        return MEASURE_COMMAND
    ref = model_id
    if revision:
        ref = f"{model_id}@{revision}"
        with contextlib.suppress(Exception):  # a registry id at its usual revision: bare
            from emoapp.registry import find_entry, resolve_model

            entry = find_entry(model_id)
            if entry is not None and entry.id == model_id:
                spec = resolve_model(entry.modality, model_id)
                if spec is not None and spec.revision == revision:
                    ref = model_id
    command = f"{MEASURE_COMMAND} {REAL_MODELS_OPTION} {_quoted(ref)}"
    if cache_dir and cache_dir != os.environ.get("EMOAPP_MODELS_DIR"):
        command += f" {REAL_MODELS_DIR_OPTION} {_quoted(str(cache_dir))}"
    return command


def _quoted(text: str) -> str:
    import shlex

    return shlex.quote(text)


# --- the rule ---------------------------------------------------------------------------


@dataclass(frozen=True)
class PrecisionMeasurement:
    """One precision of one model on this machine: median forward time, and how far its
    outputs are from float32's on the same inputs (0 and 1 for float32 itself)."""

    precision: str
    median_ms: float
    max_prob_diff: float = 0.0
    top_agreement: float = 1.0
    cpu_median_ms: float | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PrecisionMeasurement:
        cpu = data.get("cpu_median_ms")
        return cls(
            precision=str(data["precision"]),
            median_ms=float(data["median_ms"]),
            max_prob_diff=float(data["max_prob_diff"]),
            top_agreement=float(data["top_agreement"]),
            cpu_median_ms=None if cpu is None else float(cpu),
        )


@dataclass(frozen=True)
class PrecisionChoice:
    """The precision an encoder runs in and the reason, for status lines and records."""

    name: str
    reason: str
    forced: bool = False
    speedup: float | None = None
    """float32's median forward over this one's (auto choices only)."""

    def describe(self) -> str:
        return f"{self.name} ({self.reason})"


def _finite(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def why_not(
    m: PrecisionMeasurement,
    baseline_ms: float,
    margin: float = SPEEDUP_MARGIN,
    max_prob_diff: float = MAX_PROB_DIFF,
    min_top_agreement: float = MIN_TOP_AGREEMENT,
) -> str | None:
    """Why ``m`` does not qualify against a float32 median of ``baseline_ms`` (None: it
    qualifies)."""
    if not (_finite(m.median_ms) and m.median_ms > 0):
        return f"{m.precision}: no valid time"
    speedup = baseline_ms / m.median_ms
    if not speedup >= margin:
        return f"{m.precision}: {speedup:.2f}x float32's speed, under {margin:g}x"
    if not (_finite(m.max_prob_diff) and m.max_prob_diff <= max_prob_diff):
        return (
            f"{m.precision}: probabilities differ from float32 by up to "
            f"{m.max_prob_diff:.3g} (> {max_prob_diff:g})"
        )
    if not (_finite(m.top_agreement) and m.top_agreement >= min_top_agreement):
        return (
            f"{m.precision}: top label agrees with float32 on {m.top_agreement:.0%} of "
            f"inputs (< {min_top_agreement:.0%})"
        )
    return None


def choose_precision(
    measurements: Iterable[PrecisionMeasurement],
    candidates: Sequence[str] = CPU_CANDIDATES,
    margin: float = SPEEDUP_MARGIN,
    max_prob_diff: float = MAX_PROB_DIFF,
    min_top_agreement: float = MIN_TOP_AGREEMENT,
) -> PrecisionChoice:
    """The fastest measured precision among ``candidates`` that is ``margin`` times faster
    than float32 and agrees with it (:func:`why_not`); float32 when none does or when
    there is no valid float32 time to compare with. The order of ``measurements`` does not
    matter: ties go to the lower median, then to the earlier name in ``CPU_CANDIDATES``."""
    items = list(measurements)
    base = [m.median_ms for m in items if m.precision == "float32"]
    base = [t for t in base if _finite(t) and t > 0]
    if not base:
        return PrecisionChoice("float32", "auto: the measurement has no valid float32 time")
    baseline = min(base)
    qualifying: list[PrecisionMeasurement] = []
    refused: list[str] = []
    for m in items:
        if m.precision == "float32" or m.precision not in candidates:
            continue
        reason = why_not(m, baseline, margin, max_prob_diff, min_top_agreement)
        if reason is None:
            qualifying.append(m)
        else:
            refused.append(reason)
    if not qualifying:
        detail = "; ".join(sorted(set(refused))) or "nothing but float32 was measured"
        return PrecisionChoice("float32", f"auto: float32 ({detail})")
    order = {name: i for i, name in enumerate(CPU_CANDIDATES)}
    best = min(
        qualifying,
        key=lambda m: (m.median_ms, order.get(m.precision, len(order)), m.precision),
    )
    speedup = baseline / best.median_ms
    return PrecisionChoice(
        best.precision,
        f"auto: {speedup:.2f}x float32's speed on this machine, probabilities within "
        f"{best.max_prob_diff:.3g}, top label agrees on {best.top_agreement:.0%}",
        speedup=round(speedup, 3),
    )


def agreement(reference: Any, other: Any, tie_margin: float = TIE_MARGIN) -> dict[str, float]:
    """How far ``other``'s class probabilities (rows: inputs) are from ``reference``'s
    (float32's): ``max_prob_diff`` (largest absolute difference), ``top_agreement`` (share
    of inputs with the same top label, near ties excused: :data:`TIE_MARGIN`),
    ``top_agreement_strict`` (no excuse) and ``near_ties`` (how many inputs were)."""
    import numpy as np

    ref = np.asarray(reference, dtype=np.float64)
    oth = np.asarray(other, dtype=np.float64)
    if ref.shape != oth.shape or ref.ndim != 2 or ref.shape[0] == 0:
        raise ValueError("two non-empty tables of probabilities of the same shape")
    same = ref.argmax(axis=1) == oth.argmax(axis=1)
    if ref.shape[1] > 1:
        top2 = np.sort(ref, axis=1)[:, -2:]
        tie = (top2[:, 1] - top2[:, 0]) <= tie_margin
        picked = oth.argmax(axis=1)
        # a tie is excused only when the other picks one of float32's near-top labels
        near_top = ref[np.arange(ref.shape[0]), picked] >= top2[:, 1] - tie_margin
        excused = tie & near_top
    else:
        excused = np.zeros(ref.shape[0], dtype=bool)
    diff = float(np.abs(ref - oth).max()) if ref.size else 0.0
    return {
        "max_prob_diff": diff if np.isfinite(diff) else math.inf,
        "top_agreement": float(np.mean(same | excused)),
        "top_agreement_strict": float(np.mean(same)),
        "near_ties": int(np.sum(tie)) if ref.shape[1] > 1 else 0,
    }


def candidates_for(modality: str) -> tuple[str, ...]:
    """What ``auto`` may pick on a CPU for a model of ``modality``."""
    if modality in INT8_MODALITIES:
        return CPU_CANDIDATES
    return tuple(c for c in CPU_CANDIDATES if c != "int8")


# --- the record ---------------------------------------------------------------------------


def record_path() -> Path:
    """Where this machine's precision measurements are kept: ``EMOAPP_PRECISION_FILE``,
    else ``$XDG_CACHE_HOME/emoapp/precision.json`` (``~/.cache/emoapp/precision.json``)."""
    if env := os.environ.get(RECORD_ENV):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "emoapp" / "precision.json"


def cpu_model() -> str:
    """This machine's CPU model name (``/proc/cpuinfo``, else what platform says)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True)
class ModelKey:
    """What a measurement is valid for."""

    cpu: str
    torch: str
    model: str
    revision: str | None
    architecture: str

    def text(self) -> str:
        return (
            f"{self.cpu} | torch {self.torch} | {self.model}@{self.revision or '-'} | "
            f"{self.architecture}"
        )


def model_key(model_id: str, revision: str | None, config: Any, torch_version: str) -> ModelKey:
    """The key of a loaded model: its transformers ``config`` gives the architecture."""
    architectures = list(getattr(config, "architectures", None) or [])
    architecture = architectures[0] if architectures else str(getattr(config, "model_type", "?"))
    return ModelKey(cpu_model(), torch_version, model_id, revision, architecture)


def read_record(path: Path | None = None) -> dict[str, Any] | None:
    """The record's entries by key text; None (and a warning) when the file cannot be read
    or is not a precision record; an empty dict when there is no file."""
    path = record_path() if path is None else path
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("precision record %s cannot be read (%s); ignoring it", path, exc)
        return None
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("schema") != RECORD_SCHEMA:
            raise ValueError(f"not an {RECORD_SCHEMA} record")
        entries = data.get("entries")
        if not isinstance(entries, dict):
            raise ValueError("no entries")
    except ValueError as exc:
        log.warning("precision record %s is not valid (%s); ignoring it", path, exc)
        return None
    return entries


def lookup(
    key: ModelKey, path: Path | None = None, command: str = MEASURE_COMMAND
) -> tuple[list[PrecisionMeasurement], str]:
    """This key's measurements (empty when there are none) and, when empty, why (naming
    ``command``, the one that measures this model)."""
    path = record_path() if path is None else path
    entries = read_record(path)
    if entries is None:
        return [], f"the precision record {path} is unreadable; run `{command}`"
    entry = entries.get(key.text())
    if not isinstance(entry, dict):
        return [], no_record(command)
    try:
        found = [PrecisionMeasurement.from_dict(m) for m in entry["measurements"]]
    except (KeyError, TypeError, ValueError) as exc:
        log.warning("precision record %s: the entry for %s is malformed (%s)", path, key, exc)
        return [], f"the precision record's entry is malformed; run `{command}`"
    return found, ""


def write_entry(
    key: ModelKey,
    measurements: Sequence[PrecisionMeasurement],
    extra: Mapping[str, Any] | None = None,
    path: Path | None = None,
) -> Path:
    """Add or replace ``key``'s measurements in the record (written atomically; an
    unreadable record is replaced)."""
    path = record_path() if path is None else path
    entries = read_record(path) or {}
    entries[key.text()] = {
        **asdict(key),
        "measured": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "measurements": [asdict(m) for m in measurements],
        **dict(extra or {}),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "schema": RECORD_SCHEMA,
        "rule": {
            "speedup_margin": SPEEDUP_MARGIN,
            "max_prob_diff": MAX_PROB_DIFF,
            "min_top_agreement": MIN_TOP_AGREEMENT,
            "tie_margin": TIE_MARGIN,
        },
        "entries": entries,
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


# --- what an encoder runs in --------------------------------------------------------------


def resolve_precision(
    requested: str,
    device_type: str,
    modality: str,
    key: ModelKey | None,
    path: Path | None = None,
    command: str = MEASURE_COMMAND,
) -> PrecisionChoice:
    """The precision for a model of ``modality`` on a device of ``device_type`` when
    ``--dtype`` is ``requested`` (see the module docstring). ``command`` is what measures
    this model (:func:`measure_command`), named when there is no measurement.
    ModelLoadError for an unknown name or ``int8`` off the CPU."""
    requested = (requested or "auto").strip().lower()
    if requested != "auto" and requested not in PRECISIONS:
        raise ModelLoadError(
            f"unknown dtype {requested!r}; choose auto or one of {', '.join(PRECISIONS)}"
        )
    if requested == "int8":
        if device_type != "cpu":
            raise ModelLoadError(
                f"--dtype int8 (dynamic int8 quantisation of linear layers) runs on the CPU "
                f"only, not on {device_type}; use --dtype auto or float16 there, or --device cpu"
            )
        if modality not in INT8_MODALITIES:
            return PrecisionChoice(
                "float32",
                f"--dtype int8 quantises the text and voice models; the {modality} model "
                "stays float32 (its explanations need gradients through float weights)",
                forced=True,
            )
    if requested != "auto":
        return PrecisionChoice(requested, "--dtype", forced=True)
    if device_type == "cuda":
        return PrecisionChoice("float16", "auto: half precision on CUDA")
    if device_type != "cpu":
        return PrecisionChoice("float32", f"auto: float32 on {device_type}")
    if key is None:
        return PrecisionChoice("float32", f"auto: {no_record(command)}")
    measurements, missing = lookup(key, path, command)
    if not measurements:
        return PrecisionChoice("float32", f"auto: {missing}")
    return choose_precision(measurements, candidates_for(modality))


def quantize_linear_int8(model: Any) -> Any:
    """``model`` with its ``torch.nn.Linear`` layers dynamically quantised to int8
    (``torch.ao.quantization.quantize_dynamic``). torch 2.13 marks ``torch.ao.
    quantization`` deprecated in favour of the separate torchao package; it is still the
    in-torch path, so its deprecation warnings are silenced here."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*")
        warnings.filterwarnings("ignore", message=".*deprecated.*", category=UserWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
