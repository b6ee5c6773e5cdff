"""Confidence that depends on how familiar the speaker is: a temperature that moves from
``t_familiar`` (a speaker like those the model was trained on) to ``t_novel`` (a voice or
a recording unlike any it heard) with the speaker's *novelty*.

A voice model trained on a few acted corpora is nearly calibrated on new speakers of
those corpora and overconfident on anything else (another corpus, another microphone,
natural speech). One temperature cannot serve both; the speaker statistics the
adaptation already keeps (:class:`emoapp.encoders.adaptation.SpeakerStats`) say which
case a speaker is closer to.

- **Novelty** of a speaker: the mean distance (root mean square over features, in units
  of the population's spread) from the speaker's mean feature vector to its
  ``neighbours`` nearest training speakers' means, divided by the same figure for a
  typical training speaker (the median over the training speakers, each against the
  others). About 1 for a speaker like the training speakers; larger the less alike.
  A mean from a few windows is noisy, which makes it look far from everyone: few windows
  read as novel, as they should.
- **Familiarity** in [0, 1] (below 1 while ``min_windows`` > 0)::

      f = w / (w + min_windows) * 1 / (1 + (novelty / midpoint) ** slope)

  (``w``: the statistics' weight in windows). No statistics, or no speech: ``f = 0``.
- **Temperature**: ``T = t_novel + (t_familiar - t_novel) * f``: between the two, smooth,
  monotone in novelty, and ``t_novel`` (the conservative one) for a speaker with no
  statistics (no adaptation, the first window of a session).

- **A neutral reading** ("calibrate to me": the person reading a neutral passage) is
  judged against the training speakers' *neutral* speech: their means over all their
  emotions are not where a neutral reading sits, so against them a reading alone made a
  speaker look less familiar than the same speaker's speech in all emotions. Where the
  artefact has the training speakers' neutral means (``novelty_neutral_speakers``), a
  speaker whose statistics are a share ``s`` (in weight) of a reading and ``1 - s`` of
  other speech gets::

      novelty = (1 - s) * novelty_all + s * novelty_neutral

  both of the same mean vector, ``novelty_neutral`` against the neutral means divided by
  a typical training speaker's neutral distance (the same median, over their neutral
  means): the two on one scale (about 1 for a typical training speaker). ``s`` is
  :attr:`SpeakerStats.reading` over :attr:`SpeakerStats.weight`. Without a reading
  (``s = 0``: ``emoapp evaluate``, ``encode_speaker``, a running estimate alone), or an
  artefact without the neutral means, the novelty is ``novelty_all``, computed exactly as
  before.

Fitted by ``scripts/train_embedded_voice.py`` on out-of-fold predictions of speakers
from corpora the model never heard (leave-one-corpus-out, novelty measured against the
other corpora's speakers) and of unheard speakers of its corpora (leave-speakers-out,
measured against the other speakers), by clip negative log-likelihood. Stored in the
artefact: the settings in ``meta.json`` (``confidence``), the training speakers' means in
``weights.npz`` (``novelty_*``; ``novelty_neutral_speakers`` optional). numpy only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from emoapp.encoders.adaptation import AdaptationError, SpeakerStats

KIND = "speaker-novelty"
ARRAYS = ("novelty_speakers", "novelty_offset", "novelty_scale")
"""The arrays :class:`NoveltyTemperature` keeps in ``weights.npz``."""
NEUTRAL_ARRAYS = ("novelty_neutral_speakers",)
"""The optional array of the training speakers' neutral means (a reading's reference)."""


def familiarity(
    novelty: np.ndarray | float,
    weight: np.ndarray | float,
    midpoint: float,
    slope: float,
    min_windows: float,
) -> np.ndarray:
    """``w / (w + min_windows) / (1 + (novelty / midpoint) ** slope)``, elementwise; 0
    where ``weight <= 0`` or novelty is not finite."""
    nov = np.asarray(novelty, dtype=np.float64)
    w = np.asarray(weight, dtype=np.float64)
    ok = (w > 0) & np.isfinite(nov)
    nov_c = np.where(ok, np.maximum(nov, 0.0), 1.0)
    w_c = np.where(ok, w, 1.0)
    with np.errstate(over="ignore", divide="ignore"):
        log_ratio = slope * (np.log(np.maximum(nov_c, 1e-300)) - math.log(midpoint))
        shape = 1.0 / (1.0 + np.exp(np.minimum(log_ratio, 700.0)))
    shape = np.where(nov_c <= 0, 1.0, shape)
    amount = w_c / (w_c + min_windows) if min_windows > 0 else np.ones_like(w_c)
    return np.where(ok, amount * shape, 0.0)


def temperature_of(
    novelty: np.ndarray | float,
    weight: np.ndarray | float,
    t_familiar: float,
    t_novel: float,
    midpoint: float,
    slope: float,
    min_windows: float,
) -> np.ndarray:
    """The temperature for a speaker of this novelty heard for ``weight`` windows."""
    f = familiarity(novelty, weight, midpoint, slope, min_windows)
    return t_novel + (t_familiar - t_novel) * f


def knn_distance(z: np.ndarray, speakers: np.ndarray, neighbours: int) -> np.ndarray:
    """Mean RMS distance from each row of ``z`` (n, d) to its ``neighbours`` nearest rows
    of ``speakers`` (m, d)."""
    z = np.atleast_2d(z)
    d = np.sqrt(np.mean((z[:, None, :] - speakers[None, :, :]) ** 2, axis=2))
    k = min(neighbours, speakers.shape[0])
    return np.sort(d, axis=1)[:, :k].mean(axis=1)


def typical_distance(speakers: np.ndarray, neighbours: int) -> float:
    """The median over ``speakers`` of each one's :func:`knn_distance` to the others."""
    m = speakers.shape[0]
    if m < 2:
        raise AdaptationError("novelty needs at least two training speakers")
    own = []
    for i in range(m):
        others = np.delete(speakers, i, axis=0)
        own.append(float(knn_distance(speakers[i], others, neighbours)[0]))
    scale = float(np.median(own))
    if not scale > 0:
        raise AdaptationError("the training speakers' means do not differ")
    return scale


@dataclass(frozen=True, eq=False)
class NoveltyTemperature:
    """A speaker-dependent temperature (see the module docstring)."""

    speakers: np.ndarray
    """(m, d) the training speakers' mean feature vectors, standardised."""
    offset: np.ndarray
    """(d,) subtracted from a mean before comparing (the population's mean)."""
    scale: np.ndarray
    """(d,) divides it (the population's spread)."""
    t_familiar: float
    t_novel: float
    midpoint: float
    """The novelty at which a speaker heard at length is half familiar."""
    slope: float
    """How sharply familiarity falls around ``midpoint`` (0: not at all)."""
    min_windows: float = 8.0
    """Windows of speech worth half the familiarity a long recording earns."""
    neighbours: int = 3
    distance_scale: float = 1.0
    """A typical training speaker's distance to its nearest others (novelty 1)."""
    neutral_speakers: np.ndarray | None = None
    """(m', d) the training speakers' means over their neutral windows only, standardised
    like :attr:`speakers`: what a neutral reading is judged against (None: not stored; a
    reading is judged like any other speech)."""
    neutral_distance_scale: float = 1.0
    """A typical training speaker's neutral mean's distance to the others' (novelty 1)."""

    def __post_init__(self) -> None:
        speakers = np.asarray(self.speakers, dtype=np.float64)
        offset = np.asarray(self.offset, dtype=np.float64).reshape(-1)
        scale = np.asarray(self.scale, dtype=np.float64).reshape(-1)
        if speakers.ndim != 2 or speakers.shape[1] != offset.size or scale.shape != offset.shape:
            raise AdaptationError("novelty: speakers, offset and scale do not fit together")
        if speakers.shape[0] < 1 or not np.all(np.isfinite(speakers)):
            raise AdaptationError("novelty: no usable training speakers")
        if not (np.all(np.isfinite(offset)) and np.all(scale > 0) and np.all(np.isfinite(scale))):
            raise AdaptationError("novelty: offset must be finite and scale positive")
        for name in ("t_familiar", "t_novel", "midpoint", "distance_scale"):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value > 0):
                raise AdaptationError(f"novelty: {name} must be positive")
        if not (math.isfinite(self.slope) and self.slope >= 0):
            raise AdaptationError("novelty: slope must be >= 0")
        if not (math.isfinite(self.min_windows) and self.min_windows >= 0):
            raise AdaptationError("novelty: min_windows must be >= 0")
        if int(self.neighbours) < 1:
            raise AdaptationError("novelty: neighbours must be >= 1")
        object.__setattr__(self, "speakers", speakers)
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "scale", scale)
        if self.neutral_speakers is not None:
            neutral = np.asarray(self.neutral_speakers, dtype=np.float64)
            if neutral.ndim != 2 or neutral.shape[1] != offset.size or neutral.shape[0] < 1:
                raise AdaptationError("novelty: the neutral speakers do not fit the features")
            if not np.all(np.isfinite(neutral)):
                raise AdaptationError("novelty: the neutral speakers must be finite")
            value = float(self.neutral_distance_scale)
            if not (math.isfinite(value) and value > 0):
                raise AdaptationError("novelty: neutral_distance_scale must be positive")
            object.__setattr__(self, "neutral_speakers", neutral)

    @property
    def size(self) -> int:
        return int(self.offset.size)

    @property
    def conservative(self) -> float:
        """The temperature of a speaker with no statistics."""
        return float(self.t_novel)

    @classmethod
    def build(
        cls,
        speaker_means: np.ndarray,
        offset: np.ndarray,
        scale: np.ndarray,
        params: Mapping[str, float],
        neighbours: int = 3,
        neutral_means: np.ndarray | None = None,
    ) -> NoveltyTemperature:
        """From the training speakers' raw mean vectors (m, d) and fitted parameters
        (``t_familiar``, ``t_novel``, ``midpoint``, ``slope``, ``min_windows``); with
        ``neutral_means`` (m', d), their means over their neutral windows (a reading's
        reference, on its own scale: :func:`typical_distance` of those)."""
        z = (np.asarray(speaker_means, dtype=np.float64) - offset) / scale
        neutral = None
        neutral_scale = 1.0
        if neutral_means is not None:
            neutral = (np.asarray(neutral_means, dtype=np.float64) - offset) / scale
            neutral_scale = typical_distance(neutral, neighbours)
        return cls(
            z,
            offset,
            scale,
            float(params["t_familiar"]),
            float(params["t_novel"]),
            float(params["midpoint"]),
            float(params["slope"]),
            float(params.get("min_windows", 8.0)),
            neighbours,
            typical_distance(z, neighbours),
            neutral,
            neutral_scale,
        )

    def _standardised(self, mean: np.ndarray) -> np.ndarray:
        """A mean feature vector in the space the training speakers' means are kept in."""
        mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        if mean.size != self.size:
            raise AdaptationError(
                f"speaker statistics of {mean.size} features do not fit this model ({self.size})"
            )
        return (mean - self.offset) / self.scale

    def novelty_of_mean(self, mean: np.ndarray) -> float:
        """The novelty of a speaker whose mean feature vector is ``mean``."""
        z = self._standardised(mean)
        return float(knn_distance(z, self.speakers, self.neighbours)[0] / self.distance_scale)

    def neutral_novelty_of_mean(self, mean: np.ndarray) -> float:
        """The novelty of a mean feature vector against the training speakers' neutral
        means (on their own scale); :meth:`novelty_of_mean` where they are not stored."""
        if self.neutral_speakers is None:
            return self.novelty_of_mean(mean)
        distance = knn_distance(self._standardised(mean), self.neutral_speakers, self.neighbours)
        return float(distance[0] / self.neutral_distance_scale)

    @property
    def judges_readings(self) -> bool:
        """Whether a neutral reading is judged against the training speakers' neutral
        speech (the artefact stores their neutral means)."""
        return self.neutral_speakers is not None

    def reading_share(self, stats: SpeakerStats | None) -> float:
        """The share of the statistics' weight that came from a neutral reading, in
        [0, 1]; 0 without a reading, or where the neutral means are not stored."""
        if stats is None or not stats.weight > 0 or self.neutral_speakers is None:
            return 0.0
        reading = float(stats.reading)
        if not reading > 0:
            return 0.0
        return min(reading / float(stats.weight), 1.0)

    def mixed_novelty(self, mean: np.ndarray, share: float) -> float:
        """``(1 - share) * novelty_all + share * novelty_neutral`` of one mean vector;
        exactly :meth:`novelty_of_mean` at ``share`` 0."""
        nov = self.novelty_of_mean(mean)
        share = float(share)
        if not share > 0:
            return nov
        share = min(share, 1.0)
        return (1.0 - share) * nov + share * self.neutral_novelty_of_mean(mean)

    def novelty(self, stats: SpeakerStats | None) -> float | None:
        """The speaker's novelty (None: no statistics, or no weight); a reading's share
        of the statistics is judged against the neutral means (module docstring)."""
        if stats is None or not stats.weight > 0:
            return None
        if stats.total.size != self.size:
            raise AdaptationError(
                f"speaker statistics of {stats.total.size} features do not fit this model "
                f"({self.size}); were they made by another model?"
            )
        mean = stats.mean
        if not np.all(np.isfinite(mean)):
            return None
        return self.mixed_novelty(mean, self.reading_share(stats))

    def temperature(self, stats: SpeakerStats | None) -> float:
        """The temperature for a speaker with these statistics (``t_novel`` without)."""
        nov = self.novelty(stats)
        if nov is None or stats is None:
            return self.conservative
        return float(
            temperature_of(
                nov,
                stats.weight,
                self.t_familiar,
                self.t_novel,
                self.midpoint,
                self.slope,
                self.min_windows,
            )
        )

    # --- storage ------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        neutral: dict[str, Any] = {}
        if self.neutral_speakers is not None:
            neutral = {
                "neutral_distance_scale": float(self.neutral_distance_scale),
                "neutral_speakers": int(self.neutral_speakers.shape[0]),
            }
        return {
            "kind": KIND,
            "t_familiar": round(float(self.t_familiar), 6),
            "t_novel": round(float(self.t_novel), 6),
            "midpoint": round(float(self.midpoint), 6),
            "slope": round(float(self.slope), 6),
            "min_windows": float(self.min_windows),
            "neighbours": int(self.neighbours),
            "distance_scale": float(self.distance_scale),
            "speakers": int(self.speakers.shape[0]),
            **neutral,
        }

    def arrays(self) -> dict[str, np.ndarray]:
        out = {
            "novelty_speakers": self.speakers,
            "novelty_offset": self.offset,
            "novelty_scale": self.scale,
        }
        if self.neutral_speakers is not None:
            out["novelty_neutral_speakers"] = self.neutral_speakers
        return out

    @classmethod
    def from_artefact(
        cls, raw: Mapping[str, Any], arrays: Mapping[str, np.ndarray]
    ) -> NoveltyTemperature:
        """From ``meta.json``'s ``confidence`` and the ``novelty_*`` arrays (an artefact
        without ``novelty_neutral_speakers`` judges a reading like any other speech)."""
        if not isinstance(raw, Mapping):
            raise AdaptationError("confidence must be an object")
        if raw.get("kind") != KIND:
            raise AdaptationError(f"confidence: unknown kind {raw.get('kind')!r}")
        missing = [k for k in ARRAYS if k not in arrays]
        if missing:
            raise AdaptationError(f"confidence: the weights lack {', '.join(missing)}")
        neutral = arrays.get("novelty_neutral_speakers")
        if (neutral is None) != ("neutral_distance_scale" not in raw):
            raise AdaptationError(
                "confidence: the neutral means and neutral_distance_scale come together"
            )
        try:
            out = cls(
                arrays["novelty_speakers"],
                arrays["novelty_offset"],
                arrays["novelty_scale"],
                float(raw["t_familiar"]),
                float(raw["t_novel"]),
                float(raw["midpoint"]),
                float(raw["slope"]),
                float(raw.get("min_windows", 8.0)),
                int(raw.get("neighbours", 3)),
                float(raw["distance_scale"]),
                neutral,
                float(raw.get("neutral_distance_scale", 1.0)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AdaptationError(f"confidence: bad settings ({exc})") from exc
        if "speakers" in raw and int(raw["speakers"]) != out.speakers.shape[0]:
            raise AdaptationError("confidence: the stored speakers do not match meta.json")
        if (
            out.neutral_speakers is not None
            and "neutral_speakers" in raw
            and int(raw["neutral_speakers"]) != out.neutral_speakers.shape[0]
        ):
            raise AdaptationError("confidence: the stored neutral speakers do not match meta.json")
        return out
