"""``emoapp live --duration S`` runs for S seconds once the session is up: a start that
takes long (a speech recogniser holding the interpreter while it loads, on a busy
machine) must not eat into a short run."""

from __future__ import annotations

import io
import threading
import time

from emoapp.live.headless import LiveRunOptions, run_live


class _SlowStartingSession:
    """The part of a LiveSession that run_live uses; start() takes ``start_s``."""

    def __init__(self, start_s: float) -> None:
        self.start_s = start_s
        self.started_at: float | None = None
        self.stopped_at: float | None = None
        self.listeners: list[object] = []

    def add_listener(self, listener: object) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: object) -> None:
        self.listeners.remove(listener)

    def start(self) -> None:
        time.sleep(self.start_s)
        self.started_at = time.monotonic()

    def stop(self) -> list[str]:
        self.stopped_at = time.monotonic()
        return []

    def status(self) -> dict:
        return {}

    def metrics(self) -> dict:
        return {}

    def encoder(self, modality: object) -> None:
        return None

    def sources_finished(self) -> bool:
        return False


def test_the_duration_counts_from_when_the_session_has_started() -> None:
    session = _SlowStartingSession(start_s=0.6)
    summary = run_live(
        session,  # type: ignore[arg-type]
        None,
        LiveRunOptions(duration_s=0.3, status_every_s=0),
        status_stream=io.StringIO(),
    )
    assert summary.reason == "duration"
    assert session.started_at is not None and session.stopped_at is not None
    # Ran for the whole duration after start() returned; before, the slow start used it
    # all up and the run stopped at its first tick.
    assert session.stopped_at - session.started_at >= 0.3
    # The summary's elapsed time still counts from the start of the run (rows' origin).
    assert summary.elapsed_s >= 0.6 + 0.3


def test_a_stop_request_during_a_slow_start_still_ends_the_run() -> None:
    session = _SlowStartingSession(start_s=0.3)
    stop = threading.Event()
    stop.set()
    summary = run_live(
        session,  # type: ignore[arg-type]
        None,
        LiveRunOptions(duration_s=60, status_every_s=0),
        status_stream=io.StringIO(),
        stop_event=stop,
    )
    assert summary.reason == "interrupted"
    assert session.stopped_at is not None


class _StoppingSession(_SlowStartingSession):
    """Reports a failed camera while running; on stop() its fusion thread makes one last
    estimate, then the camera is reported stopped, before the run writes that estimate."""

    def start(self) -> None:
        from emoapp.core.messages import Modality
        from emoapp.live.runs import ModalityStatus

        super().start()
        failed = ModalityStatus(Modality.FACE, "failed", message="no camera at index 0")
        for listener in self.listeners:
            listener.on_status(failed)  # type: ignore[attr-defined]

    def stop(self) -> list[str]:
        from emoapp.core.fusion import Fuser
        from emoapp.core.messages import Modality
        from emoapp.live.runs import ModalityStatus

        last = Fuser().estimate(0.0)  # nothing to fuse: an abstained estimate
        for listener in self.listeners:
            listener.on_estimate(last)  # type: ignore[attr-defined]
            listener.on_status(ModalityStatus(Modality.FACE, "stopped"))  # type: ignore[attr-defined]
        return super().stop()


class _Rows:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def write(self, row: dict) -> None:
        self.rows.append(row)


def test_rows_written_after_stopping_keep_the_notes_of_when_they_were_made() -> None:
    """An estimate still queued when the run stops is written after session.stop(); its
    row keeps the failed camera's note instead of the 'stopped' state stopping reports
    (seen in a CI run under load: the last row had no note for the absent camera)."""
    from emoapp.core.messages import Modality

    session = _StoppingSession(start_s=0.0)
    stop = threading.Event()
    stop.set()  # stop at the first tick
    sink = _Rows()
    run_live(
        session,  # type: ignore[arg-type]
        sink,
        LiveRunOptions(status_every_s=0),
        status_stream=io.StringIO(),
        stop_event=stop,
    )
    assert sink.rows, "the queued estimate must be written"
    notes = sink.rows[-1]["notes"]
    assert notes.get("face", notes.get(Modality.FACE, "")).startswith("no camera at index 0")
