"""Supervision of a live session's modalities: opening and reopening sources, and the
status a person reads.

A :class:`SourceSupervisor` runs one thread per source: it opens the source, starts it,
and on failure closes it, marks the modality degraded with the reason and retries with
backoff (0.5 s, doubling, at most 5 s), so a camera that comes back brings its modality
back without a restart. A file that cannot be played
(:class:`~emoapp.capture.base.PermanentSourceError`) or a missing dependency is not
retried. :func:`modality_status` turns what the session knows about a modality into a
:class:`ModalityStatus`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from emoapp.capture.base import PermanentSourceError, Source, SourceItem, one_line
from emoapp.core import clock
from emoapp.core.errors import EmoappError, MissingDependencyError
from emoapp.core.messages import Modality
from emoapp.encoders.base import Encoder
from emoapp.live.runs import Entry, ModalityStatus, Run

log = logging.getLogger(__name__)

# --- sources ----------------------------------------------------------------------------


def close_source(source: Source) -> None:
    try:
        source.close()
    except Exception:  # a driver failing to close must not stop the session (logged)
        log.exception("closing %s failed", source.name)


class SourceSupervisor:
    """Opens a run's source, starts it, and reopens it with backoff when it fails.

    A source is opened with ``source.open()``: a camera or microphone asks its own
    consent check there (:mod:`emoapp.capture.base`), and a refusal (an EmoappError) is
    shown and asked again at each retry. ``on_item`` is handed every item the source
    delivers, on the source's thread; ``set_state`` records the source's state and
    message for the status."""

    def __init__(
        self,
        on_item: Callable[[Run, SourceItem], None],
        set_state: Callable[[Run, str, str], None],
        retry_initial_s: float = 0.5,
        retry_max_s: float = 5.0,
    ) -> None:
        self.on_item = on_item
        self.set_state = set_state
        self.retry_initial_s = float(retry_initial_s)
        self.retry_max_s = float(retry_max_s)

    def supervise(self, run: Run) -> None:
        """The supervisor thread of ``run``: returns when the run stops, its file ends,
        or its source fails for good."""
        source = run.source
        assert source is not None
        backoff = self.retry_initial_s
        attempt = 0
        ever_ran = False
        while not run.stop.is_set():
            attempt += 1
            if not ever_ran or attempt == 1:
                self.set_state(run, "starting", f"opening {source.name}")
            problem = self._open_and_start(run, source, attempt)
            if problem is None:
                if run.stop.is_set():
                    return
                ever_ran = True
                opened_at = clock.now()
                self.set_state(run, "running", "")
                while True:
                    tag, kind, payload = run.source_events.get()
                    if kind == "stop":
                        return
                    if tag == attempt:
                        break
                with run.source_lock:
                    if run.source_open:
                        run.source_open = False
                        close_source(source)
                if kind == "end":
                    note = payload or f"end of {source.name}"
                    self.set_state(run, "ended", note)
                    return
                if isinstance(payload, (PermanentSourceError, MissingDependencyError)):
                    # A failure retrying cannot fix (a file gone mid-way): no retry.
                    self.set_state(run, "failed", one_line(payload))
                    return
                problem = one_line(payload)
                if clock.now() - opened_at > 10 * self.retry_max_s:
                    backoff = self.retry_initial_s  # it worked for a good while: start over
            elif problem.startswith("!"):
                self.set_state(run, "failed", problem[1:])
                return
            state = "retrying" if ever_ran else "failed"
            self.set_state(run, state, f"{problem}; retrying in {backoff:.1f} s")
            if run.stop.wait(backoff):
                return
            backoff = min(backoff * 2.0, self.retry_max_s)

    def _open_and_start(self, run: Run, source: Source, attempt: int) -> str | None:
        """None when the source runs; otherwise why not (prefixed "!" when permanent)."""
        try:
            source.open()
        except (PermanentSourceError, MissingDependencyError) as exc:
            return f"!{exc}"
        except EmoappError as exc:
            return str(exc)
        except Exception as exc:  # drivers raise anything; logged, and the source is retried
            log.exception("opening %s failed", source.name)
            return f"{source.name}: {type(exc).__name__}: {one_line(exc)}"

        def on_error(error: BaseException) -> None:
            run.source_events.put((attempt, "error", error))

        def on_end(note: str = "") -> None:
            run.source_events.put((attempt, "end", note))

        with run.source_lock:
            if run.stop.is_set():
                close_source(source)
                return None
            try:
                source.start(lambda item: self.on_item(run, item), on_error, on_end)
            except EmoappError as exc:
                close_source(source)
                return str(exc)
            except Exception as exc:  # drivers raise anything; logged, source retried
                log.exception("starting %s failed", source.name)
                close_source(source)
                return f"{source.name}: {type(exc).__name__}: {one_line(exc)}"
            run.source_open = True
        return None


# --- status -----------------------------------------------------------------------------


def _encoder_device(encoder: Encoder) -> str:
    """Where the encoder runs, with its precision when it has one (``cpu int8``)."""
    device = getattr(encoder, "device", None)
    if device is not None:
        precision = getattr(encoder, "precision", None)
        name = getattr(precision, "name", None)
        return f"{device} {name}" if isinstance(name, str) and name else str(device)
    try:
        return encoder.info().device
    except EmoappError:
        return ""


def _encoder_device_detail(encoder: Encoder) -> str:
    """Why the encoder runs in its precision (``cpu int8: auto: 3.52x float32's speed
    ...``), or "" when it has no precision choice (baselines, embedded models)."""
    precision = getattr(encoder, "precision", None)
    name = getattr(precision, "name", None)
    reason = getattr(precision, "reason", None)
    if not (isinstance(name, str) and name and isinstance(reason, str) and reason):
        return ""
    return f"{_encoder_device(encoder)}: {reason}"


def modality_status(entry: Entry, stall_after_s: float) -> ModalityStatus:
    """What ``entry``'s modality is doing (call with the session's lock held). An
    encoder call or a source silent for longer than ``stall_after_s`` shows as
    degraded."""
    m = entry.modality
    run = entry.run
    encoder = entry.encoder
    source = entry.source
    source_name = (
        source.name if source is not None else ("typed text" if m is Modality.TEXT else "")
    )
    model_id = encoder.model_id if encoder is not None else ""
    device = _encoder_device(encoder) if encoder is not None else ""
    device_detail = _encoder_device_detail(encoder) if encoder is not None else ""
    baseline = bool(encoder.baseline) if encoder is not None else False

    source_open = run is not None and run.source_open

    def status(state: str, message: str = "") -> ModalityStatus:
        return ModalityStatus(
            m, state, source_name, model_id, device, baseline, message, source_open, device_detail
        )

    if run is None:
        if entry.unavailable:
            return status("failed", entry.unavailable)
        if entry.stopped_note:
            return status("stopped", entry.stopped_note)
        if encoder is None:
            return status("off", f"no {m.value} model")
        if source is None and m is not Modality.TEXT:
            return status("off", f"no {'camera' if m is Modality.FACE else 'microphone'}")
        return status("off")
    busy = run.metrics.busy_for()
    fell_back = getattr(encoder, "fell_back_to_cpu", None)
    if run.source_state == "failed":
        state, message = "failed", run.source_message
    elif run.source_state == "retrying":
        state, message = "degraded", run.source_message
    elif run.source_state == "ended":
        state, message = "stopped", run.source_message
    elif run.encoder_error:
        state, message = "degraded", run.encoder_error
    elif busy is not None and busy > stall_after_s:
        state = "degraded"
        message = f"the {m.value} encoder has not returned for {int(busy)} s"
    elif (
        m is not Modality.TEXT
        and run.source_state == "running"
        and (idle := run.metrics.idle_for()) is not None
        and idle > stall_after_s
    ):
        # A source that stops delivering without an error (a frozen driver, a stalled
        # file read) must not look healthy.
        state = "degraded"
        message = f"no input from {source_name or 'the source'} for {idle:.0f} s"
    elif run.source_state == "starting":
        state, message = "starting", run.source_message
    elif run.outputs == 0 and m is not Modality.TEXT:
        state, message = "starting", "waiting for the first result"
    else:
        state, message = "running", ""
    if fell_back:
        message = f"{message}; {fell_back}" if message else str(fell_back)
        if state == "running":
            state = "degraded"
    return status(state, message)
