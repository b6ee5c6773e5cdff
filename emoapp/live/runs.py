"""What a live session holds per modality: the modality's settings (:class:`Entry`) and,
while it runs, one start..stop of it (:class:`Run`) with its own threads, input buffer
and stop signal, so that a stopped run can never feed a new one.

Shared by the pieces of :mod:`emoapp.live.session`: the source supervisor
(:mod:`~emoapp.live.supervisor`), the worker loops (:mod:`~emoapp.live.workers`)
and the fusion loop (:mod:`~emoapp.live.fusion_loop`).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import Any

from emoapp.capture.base import Source
from emoapp.core import clock
from emoapp.core.messages import Modality
from emoapp.encoders.base import Encoder
from emoapp.live.metrics import ModalityMetrics
from emoapp.live.slots import LatestSlot, RingBuffer

STATES = ("off", "starting", "running", "degraded", "failed", "stopped")
"""What :attr:`ModalityStatus.state` can be."""


@dataclass(frozen=True)
class ModalityStatus:
    """What one modality is doing, in words a person can read.

    ``state``: ``off`` (not started, or nothing to run), ``starting`` (opening its source
    or waiting for the first result), ``running``, ``degraded`` (running with a problem,
    or retrying its source; ``message`` says what), ``failed`` (cannot run: no model,
    the model failed to load, the source cannot be opened; a device is still retried),
    ``stopped`` (stopped by the person, or its replayed file ended).
    """

    modality: Modality
    state: str
    source: str = ""
    model_id: str = ""
    device: str = ""
    baseline: bool = False
    message: str = ""
    source_open: bool = False
    """True while the modality's source (a camera, a microphone, a replayed file) is
    open and delivering: what a capture indicator shows."""
    device_detail: str = ""
    """Why the model runs in the precision ``device`` names (``auto``'s choice and its
    measurement, ``--dtype``, or which command would measure it): the device's tooltip."""


@dataclass(eq=False)
class Run:
    """One start..stop of a modality: its own threads, input buffer and stop signal, so
    a stopped run can never feed a new one."""

    modality: Modality
    source: Source | None
    encoder: Encoder
    metrics: ModalityMetrics
    buffer: LatestSlot[Any] | RingBuffer[Any]
    stop: threading.Event = field(default_factory=threading.Event)
    source_events: queue.Queue[tuple[int, str, Any]] = field(default_factory=queue.Queue)
    source_lock: threading.Lock = field(default_factory=threading.Lock)
    source_open: bool = False
    source_state: str = "off"  # off | starting | running | retrying | failed | ended
    source_message: str = ""
    encoder_error: str = ""
    outputs: int = 0
    last_activity: float = field(default_factory=clock.now)
    threads: list[threading.Thread] = field(default_factory=list)
    face_detect_every: int = 0
    """Face runs: detect faces on one frame in this many and track them in between
    (0 or 1: detect on every frame)."""
    face_reclassify_after: float = 0.0
    """Face runs: a tracked face that neither moved nor changed keeps its classification
    for up to this many seconds (0: classify every frame)."""


@dataclass(eq=False)
class Entry:
    """Everything the session holds for one modality."""

    modality: Modality
    source: Source | None = None
    encoder: Encoder | None = None
    unavailable: str = ""
    enabled: bool = False
    run: Run | None = None
    stopped_note: str | None = None
    metrics: ModalityMetrics | None = None
    last_status: ModalityStatus | None = None
    speech: bool | None = None


def input_buffer(
    modality: Modality, audio_buffer_s: float, text_queue_size: int
) -> LatestSlot[Any] | RingBuffer[Any]:
    """Where a run's input waits for its worker: the newest frame only (latest wins), a
    ring of audio bounded in seconds, a bounded queue of text entries."""
    if modality is Modality.FACE:
        return LatestSlot()
    if modality is Modality.VOICE:
        return RingBuffer(audio_buffer_s, size=lambda chunk: chunk.duration)
    return RingBuffer(text_queue_size)
