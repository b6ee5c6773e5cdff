"""The session -> Qt bridge: worker threads never wait for the UI, the event queue holds
at most one wake-up, frames are latest-wins, and estimates keep their order."""

from __future__ import annotations

import threading

import numpy as np

from emoapp.core.messages import FusedEstimate, Modality, VideoFrame
from emoapp.live.session import ModalityStatus
from emoapp.ui.bridge import SessionBridge


def _estimate(t: float) -> FusedEstimate:
    return FusedEstimate(
        t=t, probs=None, label=None, confidence=0.0, valence=None, arousal=None,
        contributions={}, weights={}, disagreement=0.0, inputs={}, abstained=True,
        reason="no modality has a prediction",
    )  # fmt: skip


def _frame(i: int) -> VideoFrame:
    return VideoFrame(float(i), np.zeros((4, 4, 3), np.uint8), index=i)


def test_messages_from_a_worker_thread_arrive_on_the_ui_thread(qtbot):
    bridge = SessionBridge()
    frames, estimates, statuses, threads = [], [], [], []
    bridge.frame_received.connect(
        lambda f: (frames.append(f.index), threads.append(threading.current_thread()))
    )
    bridge.estimate_received.connect(lambda e: estimates.append(e.t))
    bridge.status_received.connect(statuses.append)

    def produce() -> None:
        for i in range(200):
            bridge.on_frame(_frame(i))
            bridge.on_estimate(_estimate(float(i)))
        bridge.on_status(ModalityStatus(Modality.FACE, "starting"))
        bridge.on_status(ModalityStatus(Modality.FACE, "running"))

    worker = threading.Thread(target=produce, name="test-producer")
    worker.start()
    worker.join(5)
    qtbot.waitUntil(lambda: bool(estimates) and estimates[-1] == 199.0, timeout=5000)
    # Latest-wins: the newest frame is drawn, most of the 200 were never queued.
    assert frames[-1] == 199 and len(frames) < 200
    assert bridge.stats().frames_dropped == 200 - len(frames)
    # Estimates keep their order, none lost below the mailbox capacity.
    assert estimates == [float(i) for i in range(200)]
    # Only the newest status of a modality matters.
    assert [s.state for s in statuses][-1] == "running"
    assert all(t is threading.main_thread() for t in threads)
    # Far fewer wake-ups than messages: the event queue never filled up.
    assert bridge.stats().wakeups < 200


def test_mailbox_is_bounded_and_counts_what_it_drops(qtbot):
    bridge = SessionBridge(capacity=10)
    received = []
    bridge.estimate_received.connect(lambda e: received.append(e.t))
    for i in range(50):  # the UI thread is not running: nothing is drained meanwhile
        bridge.on_estimate(_estimate(float(i)))
    qtbot.waitUntil(lambda: len(received) == 10, timeout=5000)
    assert received == [float(i) for i in range(40, 50)]
    assert bridge.stats().estimates_dropped == 40


def test_closed_bridge_delivers_nothing(qtbot):
    bridge = SessionBridge()
    received = []
    bridge.estimate_received.connect(received.append)
    bridge.close()
    bridge.on_estimate(_estimate(1.0))
    qtbot.wait(50)
    assert received == []
