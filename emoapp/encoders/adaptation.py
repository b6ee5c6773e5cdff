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
    concat: bool = False
    """The classifier sees ``[x, adapted x]`` (it learned how far to trust the speaker's
    statistics) rather than the adapted features alone."""
    reference_var: np.ndarray | None = None
    """(d,) the population's variance; given, the speaker's spread is scaled to it too
    (a shrunk per-speaker z-score): ``ref + (x - mu_s) * sqrt(ref_var / var_s)``."""

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
        if self.reference_var is not None:
            var = np.asarray(self.reference_var, dtype=np.float64).reshape(-1)
            if var.shape != ref.shape or np.any(~(var > 0)):
                raise AdaptationError("reference_var must be positive, one per feature")
            object.__setattr__(self, "reference_var", var)

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

    def speaker_var(self, stats: SpeakerStats | None) -> np.ndarray:
        """The shrunk estimate of a speaker's variance (the population's with no
        statistics); only for a spec with :attr:`reference_var`."""
        assert self.reference_var is not None
        if stats is None or stats.weight <= 0 or math.isinf(self.prior_weight):
            return self.reference_var.copy()
        self.check(stats)
        if stats.total_sq is None:
            raise AdaptationError("these speaker statistics have no spread (made without it)")
        k = self.prior_weight
        mean = self.speaker_mean(stats)
        second = (stats.total_sq + k * (self.reference_var + self.reference**2)) / (
            stats.weight + k
        )
        return np.maximum(second - mean**2, 1e-6 * self.reference_var)

    def adapt(self, x: np.ndarray, stats: SpeakerStats | None) -> np.ndarray:
        """Features ``x`` ((d,) or (n, d)) moved by the speaker's shrunk offset (and,
        with :attr:`reference_var`, scaled by the speaker's shrunk spread)."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape[-1] != self.size:
            raise AdaptationError(
                f"features have {x.shape[-1]} values; the model adapts {self.size}"
            )
        mean = self.speaker_mean(stats)
        if self.reference_var is None:
            return x - self.mask * (mean - self.reference)
        gain = np.sqrt(self.reference_var / self.speaker_var(stats))
        adapted = self.reference + (x - mean) * gain
        return self.mask * adapted + (1.0 - self.mask) * x

    def inputs(self, x: np.ndarray, stats: SpeakerStats | None) -> np.ndarray:
        """The classifier's input for features ``x`` ((n, d)): the adapted features, or
        ``[x, adapted x]`` when :attr:`concat`."""
        x = np.atleast_2d(np.asarray(x, dtype=np.float64))
        adapted = self.adapt(x, stats)
        return np.hstack([x, adapted]) if self.concat else adapted

    @property
    def input_size(self) -> int:
        return 2 * self.size if self.concat else self.size

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
            "concat": self.concat,
            **(
                {"reference_var": [float(v) for v in self.reference_var]}
                if self.reference_var is not None
                else {}
            ),
        }

    @classmethod
    def from_json(cls, raw: Mapping[str, Any]) -> AdaptationSpec:
        try:
            return cls(
                np.asarray(raw["reference"], dtype=np.float64),
                np.asarray(raw["mask"], dtype=np.float64),
                float(raw["prior_weight"]),
                float(raw.get("calibration_weight", 4.0)),
                bool(raw.get("concat", False)),
                (
                    np.asarray(raw["reference_var"], dtype=np.float64)
                    if raw.get("reference_var") is not None
                    else None
                ),
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
    total_sq: np.ndarray | None = None
    """The weighted sum of squares (for the spread)."""
    reading: float = 0.0
    """How much of :attr:`weight` came from a neutral reference reading ("calibrate to
    me"): all of a stored calibration's, none of other speech's; kept through
    :meth:`merged` and :meth:`scaled` (the speaker-novelty temperature judges that share
    against the training speakers' neutral speech)."""

    def __post_init__(self) -> None:
        self.total = np.asarray(self.total, dtype=np.float64).reshape(-1)
        if self.total_sq is None:
            # Without squares the spread is unknown: only a weight-0 record may lack them.
            self.total_sq = np.zeros_like(self.total) if self.weight <= 0 else None

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
        return cls(
            x.sum(axis=0), float(len(x)), seconds_each * len(x), source, {}, (x**2).sum(axis=0)
        )

    def add(self, x: np.ndarray, weight: float = 1.0, seconds: float = 0.0) -> None:
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if x.shape != self.total.shape:
            raise AdaptationError("a feature vector of the wrong size")
        if not np.all(np.isfinite(x)) or weight <= 0:
            return
        self.total = self.total + weight * x
        if self.total_sq is not None:
            self.total_sq = self.total_sq + weight * x**2
        self.weight += weight
        self.seconds += seconds

    def merged(self, other: SpeakerStats | None) -> SpeakerStats:
        if other is None:
            return SpeakerStats(
                self.total.copy(),
                self.weight,
                self.seconds,
                self.source,
                {},
                None if self.total_sq is None else self.total_sq.copy(),
                self.reading,
            )
        if other.total.shape != self.total.shape:
            raise AdaptationError("speaker statistics of different sizes")
        sq = (
            None
            if self.total_sq is None or other.total_sq is None
            else self.total_sq + other.total_sq
        )
        return SpeakerStats(
            self.total + other.total,
            self.weight + other.weight,
            self.seconds + other.seconds,
            "+".join(s for s in (self.source, other.source) if s),
            {},
            sq,
            self.reading + other.reading,
        )

    def scaled(self, factor: float) -> SpeakerStats:
        """The same mean and spread counted ``factor`` times as much."""
        return SpeakerStats(
            self.total * factor,
            self.weight * factor,
            self.seconds,
            self.source,
            dict(self.extra),
            None if self.total_sq is None else self.total_sq * factor,
            self.reading * factor,
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
            **(
                {"total_sq": [float(v) for v in self.total_sq]} if self.total_sq is not None else {}
            ),
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
            sq = np.asarray(raw["total_sq"], dtype=np.float64) if "total_sq" in raw else None
        except (KeyError, TypeError, ValueError) as exc:
            raise AdaptationError(f"{path}: damaged voice calibration ({exc})") from exc
        if total.ndim != 1 or not np.all(np.isfinite(total)) or not weight > 0:
            raise AdaptationError(f"{path}: damaged voice calibration")
        if sq is not None and (sq.shape != total.shape or not np.all(np.isfinite(sq))):
            raise AdaptationError(f"{path}: damaged voice calibration")
        keep = {k: v for k, v in raw.items() if k in ("created", "source_seconds")}
        # a stored calibration is a neutral reading throughout
        return cls(total, weight, float(raw.get("seconds", 0.0)), "calibration", keep, sq, weight)


def adapts_to_speaker(encoder: Any) -> bool:
    """Whether a voice encoder adapts to the speaker and can take a speaker's statistics
    from many windows at once (``encode_speaker``): the embedded voice model."""
    return bool(getattr(encoder, "adaptive", False)) and hasattr(encoder, "encode_speaker")
