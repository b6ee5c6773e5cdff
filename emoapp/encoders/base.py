"""The one shape every encoder has, and the base that runs transformers models.

An encoder turns a batch of inputs (video frames, audio windows, text entries) into one
:class:`~emoapp.core.messages.ModalityPrediction` or
:class:`~emoapp.core.messages.NoPrediction` per input. Transformers-backed encoders
subclass :class:`TransformersEncoder` and write three steps:

- ``preprocess(items)``: inputs -> model-level rows (face crops, waveforms, strings), the
  index of the item each row belongs to, and a reason for each item that yields no row;
- ``collate(rows)``: rows -> the model's input tensors (the HF processor's job);
- ``postprocess(items, prepared, probs, latency_s)``: canonical probabilities per row ->
  one output per item.

Everything else lives here once: device choice (CUDA, then MPS, then CPU, overridable),
precision (half precision on CUDA; on the CPU float32, or bfloat16 or int8 where this
machine's measurement says so: :mod:`emoapp.encoders.precision`),
``torch.inference_mode()``, splitting rows into batches, moving results back to the CPU,
softmax, the label map, and falling back to the CPU when the GPU runs out of memory.
torch and transformers are imported only when a model loads.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from emoapp.core.errors import MissingDependencyError, ModelLoadError
from emoapp.core.labelmap import LabelMap, build_label_map
from emoapp.core.messages import EncoderOutput, Modality, ModalityPrediction, NoPrediction
from emoapp.encoders.integrity import load_whole
from emoapp.encoders.precision import (
    PrecisionChoice,
    measure_command,
    model_key,
    quantize_linear_int8,
    resolve_precision,
)

if TYPE_CHECKING:
    import torch

    from emoapp.encoders.heads import HeadLayout

log = logging.getLogger(__name__)


@runtime_checkable
class Encoder(Protocol):
    """What the runtime needs of any encoder, transformers-backed or baseline."""

    @property
    def modality(self) -> Modality: ...

    @property
    def model_id(self) -> str: ...

    @property
    def baseline(self) -> bool: ...

    def load(self) -> None:
        """Load weights (idempotent). Raises ModelLoadError."""

    def encode(self, items: Sequence[Any]) -> list[EncoderOutput]:
        """One output per item, in order."""

    def info(self) -> EncoderInfo:
        """What is loaded, where it runs, and how labels map."""


@dataclass(frozen=True)
class EncoderInfo:
    """A description of a loaded encoder, for status lines, model cards and benchmarks."""

    modality: Modality
    model_id: str
    device: str
    dtype: str
    baseline: bool
    label_mapping: list[tuple[str, str]] = field(default_factory=list)
    revision: str | None = None
    source: str = ""
    precision: str = ""
    """Why it runs in ``dtype`` (``auto``'s choice and its measurement, or ``--dtype``)."""


@dataclass
class EncoderConfig:
    """How to load and run one transformers encoder."""

    model: str
    """A Hugging Face hub id (``org/name``) or a local directory."""
    revision: str | None = None
    """Git revision (commit sha) to load from the hub; ignored for a local directory."""
    device: str = "auto"
    """``auto`` (CUDA, then MPS, then CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``."""
    dtype: str = "auto"
    """``auto`` (float16 on CUDA; on the CPU what this machine's precision measurement
    chose, else float32), ``float32``, ``float16``, ``bfloat16`` or ``int8`` (CPU only:
    text and voice linear layers quantised); see :mod:`emoapp.encoders.precision`."""
    local_files_only: bool = True
    """Never touch the network unless told to (``emoapp models pull`` sets this False)."""
    cache_dir: str | None = None
    batch_size: int = 16
    label_overrides: dict[str, str] = field(default_factory=dict)
    model_name: str | None = None
    """How to name the model in outputs (defaults to ``model``)."""
    expected_sampling_rate: int | None = None
    """A voice model: the rate the registry says its feature extractor states (None: no
    expectation). The rate used always comes from the model's own config."""


@dataclass
class Prepared:
    """Result of ``preprocess``: model-level rows and which item each belongs to."""

    rows: list[Any] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def add(self, owner: int, row: Any) -> None:
        self.rows.append(row)
        self.owners.append(owner)


def _import_torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("torch", "running transformers models") from exc
    return torch


def select_device(requested: str = "auto") -> torch.device:
    """CUDA if present, then Apple MPS, then CPU; or exactly what was requested."""
    torch = _import_torch()
    if requested != "auto":
        device = torch.device(requested)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ModelLoadError(f"device {requested!r} requested but CUDA is not available")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise ModelLoadError(f"device {requested!r} requested but MPS is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


_DTYPES = ("float32", "float16", "bfloat16", "int8")


def select_dtype(requested: str, device: torch.device) -> torch.dtype:
    """The tensor dtype: float16 on CUDA and float32 elsewhere, unless a dtype is
    requested. ``int8`` (CPU only) runs float32 tensors: quantising the linear layers is
    the caller's step (:class:`TransformersEncoder` does it; the speech recogniser, which
    has no precision measurement, runs float32). The CPU precision measurement is read
    by :class:`TransformersEncoder`, not here."""
    torch = _import_torch()
    if requested == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if requested not in _DTYPES:
        raise ModelLoadError(f"unknown dtype {requested!r}; choose auto or one of {_DTYPES}")
    if requested == "int8":
        if device.type != "cpu":
            raise ModelLoadError(
                f"--dtype int8 (dynamic int8 quantisation of linear layers) runs on the CPU "
                f"only, not on {device.type}; use --dtype auto or float16 there, or --device cpu"
            )
        return torch.float32
    return getattr(torch, requested)


def is_local_model(model: str) -> bool:
    return Path(model).expanduser().is_dir()


class TransformersEncoder(ABC):
    """Base of the encoders that run a Hugging Face classification model."""

    modality: ClassVar[Modality]
    task: ClassVar[str]  # e.g. "image-classification", for messages
    auto_model: ClassVar[str]  # e.g. "AutoModelForImageClassification"
    task_mapping: ClassVar[str] = ""  # transformers' architectures for the task, e.g.
    # "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES" ("" checks none)
    baseline: ClassVar[bool] = False
    head_layouts: ClassVar[Sequence[HeadLayout]] = ()
    """Head layouts transformers does not build that may take a checkpoint whose tensors
    do not fit the config's class (:mod:`emoapp.encoders.heads`)."""

    def __init__(self, config: EncoderConfig) -> None:
        self.config = config
        self.head = ""
        """The head layout that built the model (empty: transformers' own class)."""
        self.model: Any = None
        self.processor: Any = None
        self.label_map: LabelMap | None = None
        self.device: torch.device | None = None
        self.dtype: torch.dtype | None = None
        self.precision: PrecisionChoice | None = None
        self.fell_back_to_cpu: str | None = None
        self._load_lock = threading.Lock()

    @property
    def model_id(self) -> str:
        return self.config.model_name or self.config.model

    # -- loading -----------------------------------------------------------------------

    def load(self) -> None:
        with self._load_lock:
            if self.model is None:
                self._load()

    def _load(self) -> None:
        try:
            import transformers
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise MissingDependencyError("transformers", "running models") from exc
        source = (
            str(Path(self.config.model).expanduser())
            if is_local_model(self.config.model)
            else self.config.model
        )
        kwargs = self._pretrained_kwargs()
        # Keep stderr for messages meant for people: no per-shard progress bars.
        transformers.utils.logging.disable_progress_bar()
        try:
            loaded = load_whole(
                transformers,
                self.auto_model,
                source,
                kwargs,
                self.model_id,
                heads=self.head_layouts,
            )
            model = loaded.model
            processor = self.load_processor(transformers, source, kwargs)
        except ValueError as exc:
            if "Unrecognized configuration class" in str(exc) or "Unrecognized model" in str(exc):
                raise ModelLoadError(
                    f"model {self.model_id!r} is not a {self.task} model, so it cannot be the "
                    f"{self.modality.value} model ({_first_line(exc)})"
                ) from exc
            raise ModelLoadError(f"model {self.model_id!r}: {_first_line(exc)}") from exc
        except OSError as exc:
            raise ModelLoadError(self._not_found_message(exc)) from exc
        except RuntimeError as exc:  # transformers' own refusals (weight conversion errors)
            raise ModelLoadError(f"model {self.model_id!r}: {_first_line(exc)}") from exc
        self.head = loaded.head
        if not loaded.head:
            # A known head layout read its weights from the checkpoint; otherwise the
            # config must name a classifier for the task.
            self._check_architecture(model.config)
        self.label_map = build_label_map(
            self.model_id, model.config.id2label, self.config.label_overrides
        )
        self.device = select_device(self.config.device)
        torch = _import_torch()
        key = model_key(self.model_id, self.config.revision, model.config, torch.__version__)
        self.precision = resolve_precision(
            self.config.dtype,
            self.device.type,
            self.modality.value,
            key,
            command=measure_command(self.model_id, self.config.revision, self.config.cache_dir),
        )
        quantize = self.precision.name == "int8"
        self.dtype = torch.float32 if quantize else getattr(torch, self.precision.name)
        model.eval()
        model = model.to(device=self.device, dtype=self.dtype)
        self.model = quantize_linear_int8(model) if quantize else model
        self.processor = processor
        self.after_load()

    def _check_architecture(self, config: Any) -> None:
        """Refuse a model whose own config names an architecture that is not a classifier
        for this task (a speech recogniser or a bare encoder would load into a
        classification head of random weights, and answer noise)."""
        import transformers
        from transformers.models.auto import modeling_auto

        # A class transformers does not have (written by the model's authors) says nothing
        # here: the model loaded whole into transformers' class for its model type
        # (emoapp.encoders.integrity), so its head is the checkpoint's.
        architectures = [
            name
            for name in getattr(config, "architectures", None) or []
            if getattr(transformers, name, None) is not None
        ]
        if not architectures or not self.task_mapping:
            return  # nothing stated: its model type was accepted for the task above
        allowed = set(getattr(modeling_auto, self.task_mapping).values())
        if not allowed & set(architectures):
            raise ModelLoadError(
                f"model {self.model_id!r} is a {', '.join(architectures)} by its config, not "
                f"a {self.task} model, so its classification head would be untrained; "
                f"choose a {self.task} model for the {self.modality.value}"
            )

    def _pretrained_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"local_files_only": self.config.local_files_only}
        if self.config.cache_dir:
            kwargs["cache_dir"] = self.config.cache_dir
        if self.config.revision and not is_local_model(self.config.model):
            kwargs["revision"] = self.config.revision
        return kwargs

    def _not_found_message(self, exc: OSError) -> str:
        if is_local_model(self.config.model):
            return f"model directory {self.config.model!r} cannot be loaded: {_first_line(exc)}"
        if "/" not in self.config.model and not self.config.model.startswith("."):
            return (
                f"model {self.config.model!r} is neither a local directory nor a hub id (org/name)"
            )
        if self.config.local_files_only:
            return (
                f"model {self.config.model!r} is not available locally; download it once with "
                f"`emoapp models pull {self.config.model}` (or pass a local directory)"
            )
        return f"model {self.config.model!r} could not be downloaded: {_first_line(exc)}"

    @abstractmethod
    def load_processor(self, transformers: Any, source: str, kwargs: dict[str, Any]) -> Any:
        """Load the model's preprocessor (image processor, feature extractor, tokenizer)."""

    def after_load(self) -> None:  # noqa: B027 - optional hook
        """Hook for subclasses that need more than the model and processor."""

    # -- the three steps -----------------------------------------------------------------

    @abstractmethod
    def preprocess(self, items: Sequence[Any]) -> Prepared: ...

    @abstractmethod
    def collate(self, rows: list[Any]) -> dict[str, Any]: ...

    @abstractmethod
    def postprocess(
        self, items: Sequence[Any], prepared: Prepared, probs: np.ndarray, latency_s: float
    ) -> list[EncoderOutput]: ...

    # -- running -------------------------------------------------------------------------

    def encode(self, items: Sequence[Any]) -> list[EncoderOutput]:
        """Run the whole encoder over a batch of items: one output per item."""
        self.load()
        started = time.perf_counter()
        prepared = self.preprocess(items)
        classify_started = time.perf_counter()
        probs = self.classify_rows(prepared.rows)
        finished = time.perf_counter()
        # Separate timings for postprocess (benchmarks report them apart).
        prepared.extra["preprocess_s"] = classify_started - started
        prepared.extra["classify_s"] = finished - classify_started
        outputs = self.postprocess(items, prepared, probs, finished - started)
        return [_refuse_non_finite(output) for output in outputs]

    def classify_rows(self, rows: list[Any]) -> np.ndarray:
        """Canonical probabilities (n_rows x 7) for model-level rows, in batches."""
        assert self.label_map is not None
        if not rows:
            return np.zeros((0, len(self.label_map.mask)))
        size = max(1, self.config.batch_size)
        raw = [
            self.forward_probs(self.collate(rows[i : i + size])) for i in range(0, len(rows), size)
        ]
        return self.label_map.apply(np.concatenate(raw, axis=0))

    def forward_probs(self, inputs: dict[str, Any]) -> np.ndarray:
        """Raw-label probabilities for one collated batch; on GPU out-of-memory, moves the
        model to the CPU for good, says so on stderr, and retries."""
        torch = _import_torch()
        try:
            return self._forward(inputs)
        except torch.cuda.OutOfMemoryError:  # also torch.OutOfMemoryError from torch 2.5
            if self.device is None or self.device.type == "cpu":
                raise
            reason = f"{self.device.type} ran out of memory; {self.modality.value} runs on the CPU"
            print(f"emoapp: {reason}", file=sys.stderr)
            self.fell_back_to_cpu = reason
            self.device = torch.device("cpu")
            self.dtype = torch.float32
            self.precision = PrecisionChoice("float32", reason)
            self.model = self.model.to(device=self.device, dtype=self.dtype)
            if hasattr(torch, "cuda"):
                torch.cuda.empty_cache()
            return self._forward(inputs)

    def _forward(self, inputs: dict[str, Any]) -> np.ndarray:
        torch = _import_torch()
        moved = {}
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device)
                if value.is_floating_point():
                    value = value.to(self.dtype)
            moved[key] = value
        with torch.inference_mode():
            logits = self.model(**moved).logits
            probs = torch.softmax(logits.float(), dim=-1)
        return probs.cpu().numpy().astype(np.float64)

    def info(self) -> EncoderInfo:
        return EncoderInfo(
            modality=self.modality,
            model_id=self.model_id,
            device=str(self.device) if self.device is not None else "not loaded",
            dtype=self.precision.name if self.precision is not None else "",
            baseline=self.baseline,
            label_mapping=self.label_map.describe() if self.label_map else [],
            revision=self.config.revision,
            source=self.config.model,
            precision=self.precision.reason if self.precision is not None else "",
        )

    def describe_precision(self) -> str:
        """Where and in what precision it runs, and why (``cpu int8 (auto: ...)``)."""
        if self.device is None or self.precision is None:
            return "not loaded"
        return f"{self.device} {self.precision.describe()}"


NON_FINITE = "the model's output is not a number (NaN or inf): the model or its input is broken"


def _refuse_non_finite(output: EncoderOutput) -> EncoderOutput:
    """A prediction with NaN or inf probabilities becomes a NoPrediction that says so."""
    if isinstance(output, ModalityPrediction) and not (
        np.all(np.isfinite(output.probs)) and np.isfinite(output.confidence)
    ):
        return NoPrediction(
            output.modality, output.t, NON_FINITE, output.model_id, output.latency_s
        )
    return output


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
