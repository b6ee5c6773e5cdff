"""Run the encoders over a dataset's items, one modality at a time, with a resumable cache.

For each item and modality the result is an :class:`ItemPrediction`: the canonical
probabilities of every *unit* the encoder predicted (a text entry; the frames sampled
from a clip; the voice windows cut from its sound), the model's label mask, and why there
is nothing when there is nothing. A clip's distribution is the mean over the units that
gave a prediction; a clip with no face (or no speech) in any unit has no prediction for
that modality: counted as an abstention, not as an error.

- text: ``encoder.encode([TextEntry])`` in batches;
- face: :func:`emoapp.capture.media.iter_video_frames` at ``face_fps`` (from ``start``,
  until ``end``, at most ``max_frames``), classified in batches (image files are one
  frame);
- voice: the sound track (:func:`emoapp.capture.media.iter_audio_chunks`), cut to
  ``start``/``end``, into the voice encoder's windows
  (:func:`emoapp.encoders.voice.sliding_windows`).

Every result that came from an encoder is appended to a JSONL cache as soon as it exists
(keyed by the model, the settings, and the item), so an interrupted run resumes where it
stopped and a re-run computes nothing twice. A progress bar per modality goes to stderr.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections import Counter
from collections.abc import Generator, Iterator, Sequence
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any, Literal, TextIO, cast

import numpy as np

from emoapp.core.errors import MediaError
from emoapp.core.messages import (
    AudioChunk,
    EncoderOutput,
    Modality,
    ModalityPrediction,
    NoPrediction,
    TextEntry,
    VideoFrame,
)
from emoapp.core.taxonomy import NUM_LABELS
from emoapp.encoders.adaptation import adapts_to_speaker
from emoapp.encoders.base import Encoder
from emoapp.evaluation.calibration import apply_temperature
from emoapp.evaluation.datasets import EvalItem

ItemStatus = Literal["ok", "abstained", "no_input", "error"]
"""``ok``: at least one unit predicted; ``abstained``: the encoder saw the input and said
nothing (no face, no speech); ``no_input``: the item has nothing for this modality;
``error``: the input could not be read."""

MODALITY_ORDER: tuple[Modality, ...] = (Modality.FACE, Modality.VOICE, Modality.TEXT)
_RUN_ORDER: tuple[Modality, ...] = (Modality.TEXT, Modality.VOICE, Modality.FACE)  # cheap first
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
CACHE_VERSION = 1


@dataclass(frozen=True, eq=False)
class ItemPrediction:
    """One modality's result for one item."""

    item_id: str
    modality: Modality
    model_id: str
    status: ItemStatus
    units: np.ndarray
    """(k, 7) canonical probabilities of the units that gave a prediction."""
    mask: np.ndarray | None
    """The model's mask (None when no unit gave a prediction)."""
    units_total: int = 0
    """Units looked at (frames sampled, windows cut, 1 for text)."""
    reason: str = ""
    """Why there is no prediction, or a note (e.g. a truncated file)."""

    @property
    def predicted(self) -> bool:
        return self.status == "ok" and len(self.units) > 0

    def probs(self, temperature: float = 1.0) -> np.ndarray:
        """The item's distribution: the mean of its units' (temperature-scaled)
        probabilities."""
        if not self.predicted:
            raise ValueError(f"{self.item_id}: no {self.modality.value} prediction")
        units = apply_temperature(self.units, self.mask, temperature)
        p = units.mean(axis=0)
        return p / p.sum()

    def as_modality_prediction(self, temperature: float = 1.0) -> ModalityPrediction:
        """The item's prediction as the fuser takes it (all at ``t = 0``)."""
        p = self.probs(temperature)
        assert self.mask is not None
        return ModalityPrediction(
            modality=self.modality,
            t=0.0,
            probs=p,
            mask=self.mask.copy(),
            confidence=float(p.max()),
            model_id=self.model_id,
        )

    # -- the cache line ----------------------------------------------------------------

    def to_json(self, key: str) -> str:
        return json.dumps(
            {
                "v": CACHE_VERSION,
                "key": key,
                "item": self.item_id,
                "modality": self.modality.value,
                "model": self.model_id,
                "status": self.status,
                "units": [[round(float(x), 7) for x in row] for row in self.units],
                "mask": None if self.mask is None else [int(x) for x in self.mask],
                "total": self.units_total,
                "reason": self.reason,
            },
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> ItemPrediction:
        units = np.asarray(record["units"], dtype=np.float64).reshape(-1, NUM_LABELS)
        mask = record.get("mask")
        return cls(
            item_id=str(record["item"]),
            modality=Modality(record["modality"]),
            model_id=str(record["model"]),
            status=record["status"],
            units=units,
            mask=None if mask is None else np.asarray(mask, dtype=bool),
            units_total=int(record.get("total", len(units))),
            reason=str(record.get("reason", "")),
        )


class PredictionCache:
    """Predictions by key, read from and appended to a JSONL file (None: memory only).

    A line cut short by an interruption is ignored on reading.
    """

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._entries: dict[str, ItemPrediction] = {}
        self._fh: TextIO | None = None
        self.loaded = 0
        self.broken_lines = 0
        if path is not None and path.is_file():
            self._read(path)

    def _read(self, path: Path) -> None:
        with path.open(encoding="utf-8") as fh:
            for line in fh:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if record.get("v") != CACHE_VERSION:
                        continue
                    self._entries[record["key"]] = ItemPrediction.from_json(record)
                except (json.JSONDecodeError, KeyError, ValueError, TypeError):
                    self.broken_lines += 1
        self.loaded = len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def get(self, key: str) -> ItemPrediction | None:
        return self._entries.get(key)

    def put(self, key: str, prediction: ItemPrediction) -> None:
        self._entries[key] = prediction
        if self.path is None:
            return
        if self._fh is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("a", encoding="utf-8")
        self._fh.write(prediction.to_json(key) + "\n")
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def __enter__(self) -> PredictionCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class PredictionSettings:
    """How clips are sampled for the media encoders."""

    face_fps: float = 2.0
    """Frames per second sampled from a clip for the face model."""
    max_frames: int = 120
    """At most this many frames per clip."""
    voice_window_s: float = 2.0
    voice_hop_s: float = 0.5
    batch_size: int = 16
    """Frames, windows or texts per encoder call."""

    def __post_init__(self) -> None:
        if self.face_fps <= 0 or self.max_frames < 1 or self.batch_size < 1:
            raise ValueError("face_fps, max_frames and batch_size must be positive")
        if self.voice_window_s <= 0 or self.voice_hop_s <= 0:
            raise ValueError("voice window and hop must be positive")


def _settings_of(
    modality: Modality, settings: PredictionSettings, encoder: Encoder
) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if modality is Modality.FACE:
        extra = {"fps": settings.face_fps, "max_frames": settings.max_frames}
        config = getattr(encoder, "face", None)
    elif modality is Modality.VOICE:
        extra = {"window": settings.voice_window_s, "hop": settings.voice_hop_s}
        config = getattr(encoder, "voice", None)
    else:
        config = None
    if config is not None and is_dataclass(config) and not isinstance(config, type):
        extra["config"] = asdict(config)
    return extra


def model_fingerprint(modality: Modality, encoder: Encoder, settings: PredictionSettings) -> str:
    """What makes a cached prediction reusable: the model, its revision, the settings."""
    info = encoder.info()
    payload = json.dumps(
        [modality.value, info.model_id, info.revision, _settings_of(modality, settings, encoder)],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


def item_fingerprint(item: EvalItem, modality: Modality) -> str:
    """What makes an item the same item: its id and the input this modality reads."""
    if modality is Modality.TEXT:
        source: Any = (
            [item.text, list(item.context), item.domain]
            if item.context or item.domain
            else item.text
        )
    else:
        path = item.video if modality is Modality.FACE else item.audio
        source = path.name if path is not None else None
    payload = json.dumps([item.id, source, item.start, item.end], default=str)
    return hashlib.sha1(payload.encode()).hexdigest()[:16]


_MEASUREMENT = re.compile(r"\s*\([^()]*\d[^()]*\)\s*$")


def reason_kind(reason: str) -> str:
    """A reason without its trailing measurement, for counting:
    ``"no speech (voice activity 0.12)"`` -> ``"no speech"``."""
    return _MEASUREMENT.sub("", reason) or reason


@dataclass
class Coverage:
    """How many items a modality could look at and how many it predicted."""

    items: int = 0
    with_input: int = 0
    predicted: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    cached: int = 0

    @property
    def coverage(self) -> float:
        """Share of the items with input that got a prediction."""
        return self.predicted / self.with_input if self.with_input else float("nan")


@dataclass
class PredictionRun:
    """Every modality's predictions, by item id, and how each modality covered the set."""

    predictions: dict[Modality, dict[str, ItemPrediction]]
    coverage: dict[Modality, Coverage]
    model_ids: dict[Modality, str]
    masks: dict[Modality, np.ndarray]


class _NoProgress:
    """Stands in for a disabled bar (a disabled tqdm still starts its monitor thread)."""

    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, initial: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="item",
        file=sys.stderr,
        dynamic_ncols=True,
        leave=True,
    )


class _MediaReader:
    """Probes files once per run and keeps the last decoded sound track (segments of one
    long recording come one after another in a manifest)."""

    def __init__(self) -> None:
        self._probed: dict[Path, Any] = {}
        self._audio: tuple[Path, AudioChunk, str] | None = None

    def info(self, path: Path) -> Any:
        from emoapp.capture.media import probe

        if path not in self._probed:
            self._probed[path] = probe(path)
        return self._probed[path]

    def audio(self, path: Path, sample_rate: int) -> tuple[AudioChunk, str]:
        """The whole sound track, and a note when the file was cut short (what decoded
        before the cut is kept)."""
        from emoapp.capture.media import TruncatedMediaError, iter_audio_chunks

        if self._audio is not None and self._audio[0] == path:
            return self._audio[1], self._audio[2]
        chunks: list[AudioChunk] = []
        note = ""
        try:
            for chunk in iter_audio_chunks(path, sample_rate=sample_rate, chunk_s=30.0):
                chunks.append(chunk)
        except TruncatedMediaError as exc:
            note = str(exc)
        samples = np.concatenate([c.samples for c in chunks]) if chunks else np.zeros(0, np.float32)
        audio = AudioChunk(chunks[0].t if chunks else 0.0, samples, sample_rate, str(path))
        self._audio = (path, audio, note)
        return audio, note


def _summarise(
    item: EvalItem,
    modality: Modality,
    model_id: str,
    outputs: Sequence[EncoderOutput],
    total: int,
    unit: str,
    note: str = "",
) -> ItemPrediction:
    predicted = [o for o in outputs if isinstance(o, ModalityPrediction)]
    if predicted:
        units = np.stack([p.probs for p in predicted])
        return ItemPrediction(
            item.id, modality, model_id, "ok", units, predicted[0].mask.copy(), total, note
        )
    # The commonest reason, kept short so that the report can count items per reason
    # (how many units were looked at is in units_total).
    reasons = Counter(o.reason for o in outputs if isinstance(o, NoPrediction))
    reason = reasons.most_common(1)[0][0] if reasons else f"no {unit} decoded"
    if note:
        reason = f"{reason}; {note}"
    return ItemPrediction(
        item.id, modality, model_id, "abstained", np.zeros((0, NUM_LABELS)), None, total, reason
    )


def _no_input(item: EvalItem, modality: Modality, model_id: str, reason: str) -> ItemPrediction:
    return ItemPrediction(
        item.id, modality, model_id, "no_input", np.zeros((0, NUM_LABELS)), None, 0, reason
    )


def _error(item: EvalItem, modality: Modality, model_id: str, reason: str) -> ItemPrediction:
    return ItemPrediction(
        item.id, modality, model_id, "error", np.zeros((0, NUM_LABELS)), None, 0, reason
    )


def _batched(iterable: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for x in iterable:
        batch.append(x)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _face_frames(
    item: EvalItem, path: Path, settings: PredictionSettings, notes: list[str]
) -> Generator[VideoFrame, None, None]:
    """The frames of ``item`` the face model sees. A truncated file ends the frames early
    and leaves a note in ``notes`` (the frames before the cut are used)."""
    if path.suffix.lower() in IMAGE_SUFFIXES:
        import cv2

        from emoapp.evaluation.datasets import DatasetError, read_archive_file

        try:
            packed = read_archive_file(path)
        except DatasetError as exc:
            raise MediaError(str(exc)) from exc
        if packed is not None:  # an image inside a tar (FER2013)
            image = cv2.imdecode(np.frombuffer(packed, dtype=np.uint8), cv2.IMREAD_COLOR)
        else:
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise MediaError(f"{path}: cannot read the image")
        yield VideoFrame(0.0, cv2.cvtColor(image, cv2.COLOR_BGR2RGB), 0, str(path))
        return
    from emoapp.capture.media import TruncatedMediaError, iter_video_frames

    # A generator: closing it closes the file even when we stop early.
    frames = cast(
        Generator[VideoFrame, None, None],
        iter_video_frames(path, fps=settings.face_fps, start=item.start or 0.0),
    )
    try:
        for count, frame in enumerate(frames):
            if count >= settings.max_frames or (item.end is not None and frame.t >= item.end):
                break
            yield frame
    except TruncatedMediaError as exc:
        notes.append(str(exc))
    finally:
        frames.close()


def speaker_of(item: EvalItem) -> str:
    """Whom the voice model adapts to for ``item``: its speaker when the dataset says
    (a manifest ``speaker`` column, a corpus's actor), else its audio file."""
    speaker = item.speaker
    if speaker:
        return f"speaker:{speaker}"
    return f"file:{item.audio}" if item.audio is not None else f"item:{item.id}"


class Predictor:
    """Runs loaded encoders over items, through the cache."""

    def __init__(
        self,
        encoders: dict[Modality, Encoder],
        cache: PredictionCache,
        settings: PredictionSettings | None = None,
        progress: bool = False,
    ) -> None:
        self.encoders = encoders
        self.cache = cache
        self.settings = settings or PredictionSettings()
        self.progress = progress
        self.media = _MediaReader()

    def run(self, items: Sequence[EvalItem]) -> PredictionRun:
        predictions: dict[Modality, dict[str, ItemPrediction]] = {}
        coverage: dict[Modality, Coverage] = {}
        for modality in _RUN_ORDER:
            if modality in self.encoders:
                predictions[modality], coverage[modality] = self._run_modality(modality, items)
        order = [m for m in MODALITY_ORDER if m in predictions]
        model_ids = {m: self.encoders[m].model_id for m in order}
        masks: dict[Modality, np.ndarray] = {}
        for m in order:
            for p in predictions[m].values():
                if p.mask is not None:
                    masks[m] = p.mask
                    break
        return PredictionRun(
            {m: predictions[m] for m in order}, {m: coverage[m] for m in order}, model_ids, masks
        )

    def _run_modality(
        self, modality: Modality, items: Sequence[EvalItem]
    ) -> tuple[dict[str, ItemPrediction], Coverage]:
        encoder = self.encoders[modality]
        model_id = encoder.model_id
        fingerprint = model_fingerprint(modality, encoder, self.settings)
        results: dict[str, ItemPrediction] = {}
        todo: list[tuple[EvalItem, str]] = []
        cached = 0
        by_speaker = modality is Modality.VOICE and adapts_to_speaker(encoder)
        for item in items if not by_speaker else ():
            key = f"{fingerprint}:{item_fingerprint(item, modality)}"
            hit = self.cache.get(key)
            if hit is not None:
                results[item.id] = hit
                cached += 1
            else:
                todo.append((item, key))
        bar = _progress(len(items), cached, f"{modality.value} ({model_id})", self.progress)
        try:
            if by_speaker:
                cached = self._run_voice_by_speaker(encoder, fingerprint, items, results, bar)
            elif modality is Modality.TEXT:
                self._run_text(encoder, todo, results, bar)
            else:
                for item, key in todo:
                    prediction = self._run_media(modality, encoder, item)
                    results[item.id] = prediction
                    # Only what an encoder said is kept: a missing or broken file is
                    # looked at again next time (it may have been fixed).
                    if prediction.status in ("ok", "abstained"):
                        self.cache.put(key, prediction)
                    bar.update(1)
        finally:
            bar.close()
        cover = Coverage(items=len(items), cached=cached)
        for item in items:
            p = results[item.id]
            if p.status != "no_input":
                cover.with_input += 1
            if p.predicted:
                cover.predicted += 1
            elif p.status != "no_input":
                cover.reasons[reason_kind(p.reason)] += 1
        return results, cover

    def _run_text(
        self,
        encoder: Encoder,
        todo: list[tuple[EvalItem, str]],
        results: dict[str, ItemPrediction],
        bar: Any,
    ) -> None:
        with_text = []
        for item, key in todo:
            if item.text is None or not item.text.strip():
                results[item.id] = _no_input(item, Modality.TEXT, encoder.model_id, "no text")
                bar.update(1)
            else:
                with_text.append((item, key))
        for batch in _batched(iter(with_text), self.settings.batch_size):
            entries = [
                TextEntry(0.0, item.text or "", item.id, context=item.context, domain=item.domain)
                for item, _ in batch
            ]
            outputs = encoder.encode(entries)
            for (item, key), output in zip(batch, outputs, strict=True):
                prediction = _summarise(item, Modality.TEXT, encoder.model_id, [output], 1, "text")
                results[item.id] = prediction
                self.cache.put(key, prediction)
            bar.update(len(batch))

    def _run_media(self, modality: Modality, encoder: Encoder, item: EvalItem) -> ItemPrediction:
        model_id = encoder.model_id
        path = item.video if modality is Modality.FACE else item.audio
        if path is None:
            kind = "video" if modality is Modality.FACE else "audio"
            return _no_input(item, modality, model_id, f"no {kind} file")
        try:
            if modality is Modality.FACE:
                if (
                    path.suffix.lower() not in IMAGE_SUFFIXES
                    and not self.media.info(path).has_video
                ):
                    return _no_input(item, modality, model_id, "file has no video stream")
                return self._run_face(encoder, item, path)
            if path.suffix.lower() in IMAGE_SUFFIXES or not self.media.info(path).has_audio:
                return _no_input(item, modality, model_id, "file has no audio stream")
            return self._run_voice(encoder, item, path)
        except MediaError as exc:
            # A broken file is one item's problem: carried as data, shown in the report.
            return _error(item, modality, model_id, str(exc))

    def _run_face(self, encoder: Encoder, item: EvalItem, path: Path) -> ItemPrediction:
        outputs: list[EncoderOutput] = []
        total = 0
        notes: list[str] = []
        frames = _face_frames(item, path, self.settings, notes)
        try:
            for batch in _batched(frames, self.settings.batch_size):
                total += len(batch)
                outputs.extend(encoder.encode(batch))
        finally:
            frames.close()
        note = "; ".join(notes)
        return _summarise(item, Modality.FACE, encoder.model_id, outputs, total, "frame", note)

    def _run_voice_by_speaker(
        self,
        encoder: Encoder,
        fingerprint: str,
        items: Sequence[EvalItem],
        results: dict[str, ItemPrediction],
        bar: Any,
    ) -> int:
        """A voice model that adapts to the speaker: the items of one speaker (the
        item's ``speaker``; without one, the items cut from one file, so a whole
        recording is one speaker) are encoded together, adapted with statistics from all
        of their speech (:meth:`EmbeddedVoiceEncoder.encode_speaker`). A speaker's
        results are cached under the set of that speaker's items, so adding or removing
        one of them recomputes that speaker. Returns how many items came from the cache."""
        model_id = encoder.model_id
        cached = 0
        speakers: dict[str, list[EvalItem]] = {}
        for item in items:
            speakers.setdefault(speaker_of(item), []).append(item)
        for group in speakers.values():
            members = hashlib.sha1(
                "\n".join(sorted(item_fingerprint(i, Modality.VOICE) for i in group)).encode()
            ).hexdigest()[:16]
            keys = {
                i.id: f"{fingerprint}:{item_fingerprint(i, Modality.VOICE)}:speaker={members}"
                for i in group
            }
            hits = {i.id: self.cache.get(keys[i.id]) for i in group}
            if all(h is not None for h in hits.values()):
                for i in group:
                    results[i.id] = cast(ItemPrediction, hits[i.id])
                bar.update(len(group))
                cached += len(group)
                continue
            windows: list[tuple[EvalItem, list[AudioChunk], str]] = []
            for item in group:
                cut = self._voice_windows(encoder, item)
                if isinstance(cut, ItemPrediction):
                    results[item.id] = cut
                else:
                    windows.append((item, *cut))
            outputs = cast(Any, encoder).encode_speaker([w for _, w, _ in windows])
            for (item, w, note), outs in zip(windows, outputs, strict=True):
                prediction = _summarise(
                    item, Modality.VOICE, model_id, outs, len(w), "window", note
                )
                results[item.id] = prediction
                if prediction.status in ("ok", "abstained"):
                    self.cache.put(keys[item.id], prediction)
            bar.update(len(group))
        return cached

    def _voice_windows(
        self, encoder: Encoder, item: EvalItem
    ) -> ItemPrediction | tuple[list[AudioChunk], str]:
        """The voice windows of an item and a note, or why there are none."""
        model_id = encoder.model_id
        path = item.audio
        if path is None:
            return _no_input(item, Modality.VOICE, model_id, "no audio file")
        try:
            if path.suffix.lower() in IMAGE_SUFFIXES or not self.media.info(path).has_audio:
                return _no_input(item, Modality.VOICE, model_id, "file has no audio stream")
            return self._cut_voice(item, path)
        except MediaError as exc:
            return _error(item, Modality.VOICE, model_id, str(exc))

    def _cut_voice(self, item: EvalItem, path: Path) -> tuple[list[AudioChunk], str]:
        from emoapp.encoders.voice import sliding_windows

        rate = 16_000
        audio, note = self.media.audio(path, rate)
        samples = audio.samples
        t0 = audio.t
        if item.start is not None or item.end is not None:
            first = max(0, round(((item.start or 0.0) - audio.t) * rate))
            last = (
                len(samples) if item.end is None else max(first, round((item.end - audio.t) * rate))
            )
            samples = samples[first:last]
            t0 = audio.t + first / rate
        windows = sliding_windows(
            samples, rate, t0, self.settings.voice_window_s, self.settings.voice_hop_s, str(path)
        )
        return list(windows), note

    def _run_voice(self, encoder: Encoder, item: EvalItem, path: Path) -> ItemPrediction:
        windows, note = self._cut_voice(item, path)
        outputs: list[EncoderOutput] = []
        total = 0
        for batch in _batched(iter(windows), self.settings.batch_size):
            total += len(batch)
            outputs.extend(encoder.encode(batch))
        return _summarise(item, Modality.VOICE, encoder.model_id, outputs, total, "window", note)
