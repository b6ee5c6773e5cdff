"""Per-speaker adaptation of voice features: a stage with state between feature
extraction and the classifier.

Speech emotion features carry the speaker (vocal tract, pitch range, microphone) as much
as the emotion. Moving each speaker's features so that their *reference* sits where the
population's does is what carries a model over to people it has never heard. The trap:
statistics taken from a speaker who holds one emotion throughout (an angry caller) move
that emotion to the population's centre and erase it.

The estimate used here (:class:`AdaptationSpec`, stored in the model's ``meta.json``):

- **shrinkage**: the speaker's mean is a weighted mean of their windows pulled toward the
  population reference with a prior worth ``prior_weight`` windows::

      mu_s = (sum_i w_i x_i + k * ref) / (sum_i w_i + k)
      adapted x = x - mask * (mu_s - ref)

  No speech (or ``k`` infinite): ``mu_s = ref``, the features are unchanged (the
  population model). Unlimited speech: ``mu_s`` is the speaker's own mean.
- **mask**: only the features listed in ``mask`` move (1 moves fully, 0 not at all):
  those chosen by the training script (features whose spread between speakers outweighs
  their spread between emotions carry identity rather than emotion).
- **weights** ``w_i``: every window counts 1; a window recorded as a neutral reference
  ("calibrate to me", :meth:`SpeakerStats.add` with ``weight``) can count more.

:class:`SpeakerStats` is the sufficient statistic (a weighted sum and a weight): it can be
built from a recording offline, updated window by window live (the running estimate),
merged, and written to a small JSON file (the stored calibration; personal data under the
microphone consent). numpy only: no Qt, no torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emoapp.core.errors import EmoappError

CALIBRATION_FORMAT = "emoapp-voice-calibration/1"


class AdaptationError(EmoappError):
    """Adaptation statistics that do not fit the model (wrong size, unreadable file)."""


@dataclass(frozen=True, eq=False)
class AdaptationSpec:
    """How a model adapts its input features to a speaker."""

    reference: np.ndarray
    """(d,) the population reference the speaker's mean is moved to."""
    mask: np.ndarray
    """(d,) how much each feature moves with the speaker (0..1)."""
    prior_weight: float
    """Shrinkage strength, in windows: the population's mean counts as this many."""
    calibration_weight: float = 4.0
    """How many ordinary windows one window of a neutral reference recording counts as."""

    def __post_init__(self) -> None:
        ref = np.asarray(self.reference, dtype=np.float64).reshape(-1)
        mask = np.asarray(self.mask, dtype=np.float64).reshape(-1)
        if ref.shape != mask.shape:
            raise AdaptationError("reference and mask must have the same length")
        if math.isnan(self.prior_weight) or self.prior_weight < 0:
            raise AdaptationError("prior_weight must be >= 0")
        if np.any(mask < 0) or np.any(mask > 1):
            raise AdaptationError("mask values must be in [0, 1]")
        object.__setattr__(self, "reference", ref)
        object.__setattr__(self, "mask", mask)

    @property
    def size(self) -> int:
        return int(self.reference.size)

    def speaker_mean(self, stats: SpeakerStats | None) -> np.ndarray:
        """The shrunk estimate of a speaker's mean (the reference with no statistics)."""
        if stats is None or stats.weight <= 0:
            return self.reference.copy()
        self.check(stats)
        if math.isinf(self.prior_weight):
            return self.reference.copy()
        return (stats.total + self.prior_weight * self.reference) / (
            stats.weight + self.prior_weight
        )

    def adapt(self, x: np.ndarray, stats: SpeakerStats | None) -> np.ndarray:
        """Features ``x`` ((d,) or (n, d)) moved by the speaker's shrunk offset."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] != self.size:
            raise AdaptationError(
                f"features have {x.shape[-1]} values; the model adapts {self.size}"
            )
        return x - self.mask * (self.speaker_mean(stats) - self.reference)

    def check(self, stats: SpeakerStats) -> None:
        if stats.total.shape != (self.size,):
            raise AdaptationError(
                f"speaker statistics of {stats.total.size} features do not fit this model "
                f"({self.size}); were they made by another model?"
            )

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": [float(v) for v in self.reference],
            "mask": [float(v) for v in self.mask],
            "prior_weight": self.prior_weight,
            "calibration_weight": self.calibration_weight,
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> AdaptationSpec:
        try:
            return cls(
                np.asarray(raw["reference"], dtype=np.float64),
                np.asarray(raw["mask"], dtype=np.float64),
                float(raw["prior_weight"]),
                float(raw.get("calibration_weight", 4.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AdaptationError(f"bad adaptation settings: {exc}") from exc


@dataclass
class SpeakerStats:
    """A weighted sum of a speaker's feature vectors and the total weight."""

    total: np.ndarray
    weight: float = 0.0
    seconds: float = 0.0
    """Seconds of speech the statistics were made from (for display)."""
    source: str = ""
    """Where they came from: ``recording``, ``running``, ``calibration``."""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def empty(cls, size: int, source: str = "") -> SpeakerStats:
        return cls(np.zeros(size, dtype=np.float64), 0.0, 0.0, source)

    @classmethod
    def of(
        cls,
        rows: Iterable[np.ndarray] | np.ndarray,
        source: str = "recording",
        seconds_each: float = 0.0,
    ) -> SpeakerStats:
        x = np.atleast_2d(
            np.asarray(list(rows) if not isinstance(rows, np.ndarray) else rows, dtype=np.float64)
        )
        return cls(x.sum(axis=0), float(len(x)), seconds_each * len(x), source)

    def add(self, x: np.ndarray, weight: float = 1.0, seconds: float = 0.0) -> None:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.shape != self.total.shape:
            raise AdaptationError("a feature vector of the wrong size")
        if not np.all(np.isfinite(x)) or weight <= 0:
            return
        self.total = self.total + weight * x
        self.weight += weight
        self.seconds += seconds

    def merged(self, other: SpeakerStats | None) -> SpeakerStats:
        if other is None:
            return SpeakerStats(self.total.copy(), self.weight, self.seconds, self.source)
        if other.total.shape != self.total.shape:
            raise AdaptationError("speaker statistics of different sizes")
        return SpeakerStats(
            self.total + other.total,
            self.weight + other.weight,
            self.seconds + other.seconds,
            "+".join(s for s in (self.source, other.source) if s),
        )

    @property
    def mean(self) -> np.ndarray:
        return self.total / self.weight if self.weight > 0 else np.zeros_like(self.total)

    # --- the stored calibration --------------------------------------------------------

    def save(self, path: Path, model_id: str) -> Path:
        """Write the statistics (numbers only: no sound, no words) as JSON."""
        from emoapp.privacy.atomic import atomic_writer

        record = {
            "format": CALIBRATION_FORMAT,
            "model_id": model_id,
            "features": int(self.total.size),
            "weight": self.weight,
            "seconds": round(self.seconds, 2),
            "total": [float(v) for v in self.total],
            **self.extra,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_writer(path) as fh:
            fh.write(json.dumps(record) + "\n")
        return path

    @classmethod
    def load(cls, path: Path, model_id: str | None = None) -> SpeakerStats:
        """Read a stored calibration; refuse one made for another model."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise AdaptationError(f"{path}: cannot read the voice calibration: {exc}") from exc
        if not isinstance(raw, dict) or raw.get("format") != CALIBRATION_FORMAT:
            raise AdaptationError(f"{path}: not an emoapp voice calibration")
        if model_id is not None and raw.get("model_id") != model_id:
            raise AdaptationError(
                f"{path}: made for {raw.get('model_id')!r}, not for {model_id!r}; "
                "record the calibration again"
            )
        try:
            total = np.asarray(raw["total"], dtype=np.float64)
            weight = float(raw["weight"])
        except (KeyError, TypeError, ValueError) as exc:
            raise AdaptationError(f"{path}: damaged voice calibration ({exc})") from exc
        if total.ndim != 1 or not np.all(np.isfinite(total)) or not weight > 0:
            raise AdaptationError(f"{path}: damaged voice calibration")
        keep = {k: v for k, v in raw.items() if k in ("created", "passage")}
        return cls(total, weight, float(raw.get("seconds", 0.0)), "calibration", keep)
