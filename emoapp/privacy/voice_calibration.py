""" "Calibrate to me": a short neutral recording of the person, kept as the voice model's
speaker statistics, under the microphone consent.

The person reads :data:`CALIBRATION_PASSAGE` aloud (about 15 s). Only the statistics the
voice model adapts with are kept (:class:`emoapp.encoders.adaptation.SpeakerStats`: a sum
of feature vectors and a count, no sound and no words), in ``voice-calibration.json`` in
the config folder (:func:`calibration_path`). Rules:

- saved only while microphone consent is granted (:func:`save_calibration` refuses
  otherwise), and read only while it is granted (:func:`load_calibration` returns None
  and deletes the file when it is not);
- shown (:func:`describe_calibration`), deletable (:func:`delete_calibration`), and
  deleted with the consent: :func:`delete_on_revoke` connects a consent store so that
  revoking the microphone removes it;
- every save and delete is one line in the audit log (``voice-calibration``, with
  ``action`` ``saved``/``deleted`` and why; never the statistics).

No Qt here: the window's dialog (``emoapp/ui``) and the command line call these.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality
from emoapp.privacy import paths

if TYPE_CHECKING:
    from emoapp.encoders.adaptation import SpeakerStats
    from emoapp.privacy.audit import AuditLog
    from emoapp.privacy.consent import ConsentChange, ConsentStore

CALIBRATION_FILE = "voice-calibration.json"
CALIBRATION_SECONDS = 15.0
CALIBRATION_PASSAGE = (
    "When the sunlight strikes raindrops in the air, they act as a prism and form a "
    "rainbow. The rainbow is a division of white light into many beautiful colours. "
    "These take the shape of a long round arch, with its path high above, and its two "
    "ends apparently beyond the horizon. There is, according to legend, a boiling pot "
    "of gold at one end."
)
"""The opening of "The Rainbow Passage" (Fairbanks 1960), a neutral text used in speech
science; read it in your everyday voice."""


class CalibrationError(EmoappError):
    """A calibration that may not be stored or used (no consent, no speech)."""


def calibration_path() -> Path:
    """Where the stored calibration lives (the config folder)."""
    return paths.config_dir() / CALIBRATION_FILE


def save_calibration(
    stats: SpeakerStats,
    model_id: str,
    consent: ConsentStore,
    audit: AuditLog | None = None,
    path: Path | None = None,
) -> Path:
    """Store ``stats`` for ``model_id``; refused without microphone consent."""
    if not consent.is_granted(Modality.VOICE):
        raise CalibrationError(
            "a voice calibration is kept only with microphone consent; grant it first"
        )
    target = path or calibration_path()
    stats.extra.setdefault("created", dt.datetime.now(dt.UTC).isoformat(timespec="seconds"))
    stats.save(target, model_id)
    if audit is not None:
        audit.voice_calibration("saved", target, seconds=stats.seconds)
    return target


def read_recording(source: Path) -> Any:
    """The samples (16 kHz mono float32) of an audio file of the person reading the
    passage; CalibrationError when there is no such file."""
    import numpy as np

    from emoapp.capture.media import iter_audio_chunks

    if not Path(source).is_file():
        raise CalibrationError(f"{source}: no such file")
    chunks = [c.samples for c in iter_audio_chunks(source, sample_rate=16_000, chunk_s=30.0)]
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def record_from(source: Any, seconds: float, cancel: Any = None) -> Any:
    """Record ``seconds`` of sound from an unopened microphone ``source`` (a
    :class:`~emoapp.capture.base.Source`; it asks its consent gate when it opens) and
    return it as 16 kHz mono float32. Blocks until done, until ``cancel`` (a
    ``threading.Event``) is set, or the source fails (CalibrationError with the reason);
    the source is closed in every case. The sound stays in memory only."""
    import threading

    import numpy as np

    from emoapp.core.errors import SourceError
    from emoapp.encoders.voice import resample

    chunks: list[Any] = []
    got = [0.0]
    done = threading.Event()
    failure: list[str] = []

    def on_item(item: Any) -> None:
        if done.is_set():
            return
        chunks.append(resample(np.asarray(item.samples, np.float32), item.sample_rate, 16_000))
        got[0] += len(item.samples) / item.sample_rate
        if got[0] >= seconds:
            done.set()

    def on_error(error: SourceError) -> None:
        failure.append(str(error))
        done.set()

    try:
        source.open()
    except SourceError as exc:
        raise CalibrationError(f"the microphone did not open: {exc}") from exc
    try:
        source.start(on_item, on_error, lambda _note: done.set())
        while not done.wait(0.05):
            if cancel is not None and cancel.is_set():
                raise CalibrationError("recording cancelled")
    finally:
        source.close()
    if failure:
        raise CalibrationError(f"the microphone failed while recording: {failure[0]}")
    return np.concatenate(chunks)[: int(seconds * 16_000)] if chunks else np.zeros(0, np.float32)


def calibrate_with(
    encoder: Any,
    samples: Any,
    consent: ConsentStore,
    audit: AuditLog | None = None,
    path: Path | None = None,
) -> tuple[SpeakerStats, Path]:
    """Make ``encoder``'s statistics of ``samples`` (16 kHz mono: the person reading the
    passage) and store them (microphone consent needed). ``encoder`` is an adaptive voice
    encoder (``calibration_stats``, ``model_id``); the window passes its own copy of the
    model it runs."""
    if not consent.is_granted(Modality.VOICE):
        raise CalibrationError(
            "a voice calibration is kept only with microphone consent; grant it first"
        )
    if not getattr(encoder, "adaptive", False):
        raise CalibrationError(
            f"{encoder.model_id}: this voice model does not adapt to speakers; "
            "a calibration needs an embedded voice model (e.g. embedded/voice-multicorpus)"
        )
    stats = encoder.calibration_stats(samples)
    stats.extra["source_seconds"] = round(len(samples) / 16_000, 1)
    return stats, save_calibration(stats, encoder.model_id, consent, audit, path)


def calibrate_from_file(
    source: Path,
    model_id: str,
    consent: ConsentStore,
    audit: AuditLog | None = None,
    path: Path | None = None,
) -> tuple[SpeakerStats, Path]:
    """Make the voice model's statistics of a recording of the person reading the passage
    and store them (microphone consent needed). What the CLI calls."""
    from emoapp.encoders.factory import build_encoder
    from emoapp.registry import resolve_model

    if not consent.is_granted(Modality.VOICE):
        raise CalibrationError(
            "a voice calibration is kept only with microphone consent; grant it first"
        )
    samples = read_recording(source)
    spec = resolve_model(Modality.VOICE, model_id)
    if spec is None or spec.backend != "embedded":
        raise CalibrationError(f"{model_id}: only embedded voice models adapt to a speaker")
    encoder: Any = build_encoder(spec)
    return calibrate_with(encoder, samples, consent, audit, path)


def load_calibration(
    model_id: str,
    consent: ConsentStore,
    audit: AuditLog | None = None,
    path: Path | None = None,
) -> SpeakerStats | None:
    """The stored calibration for ``model_id``, or None when there is none. Without
    microphone consent a stored one is deleted (consent was withdrawn meanwhile) and None
    is returned. A calibration made for another model raises :class:`AdaptationError`."""
    from emoapp.encoders.adaptation import SpeakerStats

    target = path or calibration_path()
    if not target.is_file():
        return None
    if not consent.is_granted(Modality.VOICE):
        delete_calibration(audit, target, why="microphone consent not granted")
        return None
    return SpeakerStats.load(target, model_id)


def delete_calibration(
    audit: AuditLog | None = None, path: Path | None = None, why: str = "asked"
) -> bool:
    """Delete the stored calibration; True when there was one."""
    target = path or calibration_path()
    try:
        target.unlink()
    except FileNotFoundError:
        return False
    if audit is not None:
        audit.voice_calibration("deleted", target, why=why)
    return True


def describe_calibration(path: Path | None = None) -> dict[str, Any] | None:
    """What is stored, for showing (no feature values): model, seconds, when; None when
    there is nothing."""
    import json

    target = path or calibration_path()
    if not target.is_file():
        return None
    try:
        raw = json.loads(target.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return {"path": str(target), "error": f"unreadable ({exc})"}
    return {
        "path": str(target),
        "model_id": raw.get("model_id"),
        "seconds": raw.get("seconds"),
        "created": raw.get("created"),
        "holds": f"{raw.get('features')} averaged voice features (no sound, no words)",
    }


def delete_on_revoke(
    consent: ConsentStore, audit: AuditLog | None = None, path: Path | None = None
) -> Callable[[], None]:
    """Delete the stored calibration whenever microphone consent is revoked. Returns the
    function that disconnects the listener."""

    def on_change(change: ConsentChange) -> None:
        if change.modality is Modality.VOICE and not change.granted:
            delete_calibration(audit, path, why="microphone consent revoked")

    return consent.add_listener(on_change)
