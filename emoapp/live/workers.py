"""The worker loop of a live session: one thread per modality, taking the newest input
from its run's buffer, running the encoder and handing the outputs on.

A slow encoder therefore only slows its own modality: its stale frames are dropped and
counted (never queued), and the others go on. An encoder that raises marks its modality
degraded and the worker goes on with the next input; an encoder that hangs blocks only
its own worker. What the worker reports goes through a :class:`WorkerHost` (callbacks
of the session, which owns the shared state).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emoapp.capture.base import one_line
from emoapp.core import clock
from emoapp.core.messages import AudioChunk, EncoderOutput, Modality, ModalityPrediction
from emoapp.core.provenance import with_origin
from emoapp.live.runs import Run
from emoapp.live.slots import LatestSlot

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorkerHost:
    """What a worker tells the session it works for (each called on the worker's
    thread)."""

    load_failed: Callable[[Run, str], None]
    """The run's encoder could not load (the message says why): the modality cannot run."""
    encoder_failed: Callable[[Run, str], None]
    """One encoder call raised (the message says how): the modality is degraded."""
    deliver: Callable[[Run, list[EncoderOutput]], None]
    """An encoder call succeeded with these outputs."""
    refresh_status: Callable[[Modality], None]
    """Something about the modality's status may have changed."""
    offer: Callable[[Run, list[Any], list[EncoderOutput]], None] | None = None
    """The inputs and their outputs, for the explanation worker (it keeps the newest)."""
    admits: Callable[[Any], bool] | None = None
    """Whether an input may still be delivered (its capture not withdrawn since):
    asked when the encoder call returns, so work whose input was withdrawn while it ran
    is dropped at delivery (:mod:`emoapp.core.provenance`)."""


def speech_flag(output: EncoderOutput) -> bool | None:
    """What a voice output says about speech: True, False (silence), or None (unknown)."""
    if isinstance(output, ModalityPrediction):
        return True
    reason = output.reason
    if reason == "silence" or reason.startswith("no speech"):
        return False
    return None


def with_span(output: EncoderOutput, item: Any) -> EncoderOutput:
    """A text prediction of an entry that spans time (heard speech) ends where the
    entry ends, so its age counts from the last word, as a typed entry's counts from
    when it was sent; and the output of a heard entry records the microphone as its
    origin (:mod:`emoapp.core.provenance`)."""
    end = getattr(item, "end", None)
    if isinstance(output, ModalityPrediction) and output.t_end is None and end is not None:
        output = dataclasses.replace(output, t_end=float(end))
    return with_origin(output, item)


def work(run: Run, host: WorkerHost, voice_window_s: float, voice_hop_s: float) -> None:
    """One modality's worker thread: newest input -> encoder -> ``host.deliver``, until
    the run stops. Voice input is cut into windows of ``voice_window_s`` every
    ``voice_hop_s``, and only the newest window is encoded."""
    m = run.modality
    try:
        run.encoder.load()
    except Exception as exc:  # noqa: BLE001 - any load failure disables this modality only
        message = f"{m.value} model failed to load: {one_line(exc)}"
        log.warning("%s", message)
        host.load_failed(run, message)
        return
    if m is Modality.FACE:
        from emoapp.encoders.face import reuse_classes, track_faces

        if run.face_detect_every > 1:
            track_faces(run.encoder, run.face_detect_every)
        # Only tracked faces keep a classification: without tracking, reuse is off.
        tracking = run.face_detect_every > 1
        reuse_classes(run.encoder, run.face_reclassify_after if tracking else 0.0)
    host.refresh_status(m)  # the device is known once loaded
    windows = None
    overflow_seen = 0.0
    if m is Modality.VOICE:
        from emoapp.encoders.voice import WindowBuffer

        windows = WindowBuffer(voice_window_s, voice_hop_s)
    while not run.stop.is_set():
        if isinstance(run.buffer, LatestSlot):
            frame = run.buffer.take(timeout=0.1)
            items: list[Any] = [] if frame is None else [frame]
        elif windows is None:
            items = run.buffer.drain(timeout=0.1)
        else:
            chunks = run.buffer.drain(timeout=0.1)
            lost = run.buffer.dropped_size - overflow_seen
            if lost > 0:
                # Audio fell out of the ring while the encoder was busy: the windows it
                # would have made count as inputs dropped, and the stream restarts.
                overflow_seen = run.buffer.dropped_size
                lost_windows = max(1, round(lost / voice_hop_s))
                run.metrics.record_input(lost_windows)
                run.metrics.record_dropped(lost_windows)
                windows.reset()
            completed: list[AudioChunk] = []
            for chunk in chunks:
                try:
                    completed.extend(windows.push(chunk))
                except ValueError as exc:
                    log.warning("%s: unusable audio chunk: %s", m.value, exc)
                    windows.reset()
            if completed:
                run.metrics.record_input(len(completed))
                run.metrics.record_dropped(len(completed) - 1)
            items = completed[-1:]  # only the newest window: stale audio is not queued
        if not items or run.stop.is_set():
            continue
        run.last_activity = clock.now()
        encode(run, items, host)
        run.last_activity = clock.now()


def encode(run: Run, items: list[Any], host: WorkerHost) -> None:
    """One encoder call, timed and recorded; its outputs (or its failure) go to
    ``host``."""
    m = run.modality
    run.metrics.encoder_started()
    started = time.perf_counter()
    try:
        outputs = run.encoder.encode(items)
        if m is Modality.TEXT:
            outputs = [
                with_span(output, item) for output, item in zip(outputs, items, strict=False)
            ]
    # An encoder may fail in any way (torch, a bad input, a bug): the worker must survive,
    # and the reason is carried to the modality's status.
    except Exception as exc:  # noqa: BLE001
        run.metrics.encoder_finished(time.perf_counter() - started, ok=False)
        message = f"{m.value} encoder failed: {type(exc).__name__}: {one_line(exc)}"
        if message != run.encoder_error:
            log.warning("%s", message)
        host.encoder_failed(run, message)
        return
    run.metrics.encoder_finished(time.perf_counter() - started)
    if run.stop.is_set():
        return
    if host.admits is not None:
        admitted = [host.admits(item) for item in items]
        if not all(admitted):  # withdrawn while the encoder ran: dropped here
            if len(outputs) != len(items):
                return
            pairs = [(i, o) for i, o, ok in zip(items, outputs, admitted, strict=True) if ok]
            items, outputs = [i for i, _ in pairs], [o for _, o in pairs]
            if not outputs:
                return
    host.deliver(run, outputs)
    if host.offer is not None:
        host.offer(run, items, outputs)
