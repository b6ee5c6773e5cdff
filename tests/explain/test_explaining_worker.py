"""The live explanation worker: latest-wins, on request or at most every N seconds, on
its own thread; and a session that hands its listeners explanations."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from emoapp.capture.replay import VideoReplaySource
from emoapp.core.explanation import FaceExplanation, TextExplanation
from emoapp.core.messages import Modality, ModalityPrediction, NoPrediction
from emoapp.encoders.factory import build_encoder
from emoapp.live.explaining import SETTLE_S, ExplanationWorker
from emoapp.live.session import LiveSession
from emoapp.registry import resolve_model


def wait_for(condition: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what or condition}")


def prediction(t: float) -> ModalityPrediction:
    return ModalityPrediction(Modality.TEXT, t, np.eye(7)[1], np.ones(7, bool), 1.0, "fake")


class SlowExplainer:
    """Records what it explains; each call waits until released."""

    method = "fake"

    def __init__(self) -> None:
        self.seen: list[Any] = []
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()

    def explain(self, item, prediction, label=None):
        self.entered.set()
        self.release.wait(5)
        self.seen.append(item)
        if item == "boom":
            raise RuntimeError("no gradients here")
        return TextExplanation(prediction.t, "fake", self.method, prediction.label, ())


@pytest.fixture
def made():
    workers: list[ExplanationWorker] = []
    yield workers
    for worker in workers:
        assert worker.stop(timeout=10.0)


def make(made, explainer, **kwargs) -> tuple[ExplanationWorker, list, list]:
    delivered: list = []
    failures: list = []
    worker = ExplanationWorker(
        delivered.append,
        lambda m, message: failures.append((m, message)),
        explainer_for=lambda encoder: explainer,
        **kwargs,
    )
    made.append(worker)
    worker.start()
    return worker, delivered, failures


def test_on_request_only_the_newest_offer_is_explained(made) -> None:
    explainer = SlowExplainer()
    worker, delivered, _ = make(made, explainer)
    for i in range(5):
        worker.offer(Modality.TEXT, object(), f"text {i}", prediction(float(i)))
    worker.offer(Modality.TEXT, object(), "no", NoPrediction(Modality.TEXT, 9.0, "empty"))
    time.sleep(0.2)
    assert delivered == []  # nothing is explained unasked without every_s
    worker.request(Modality.TEXT)
    wait_for(lambda: delivered, what="an explanation")
    assert explainer.seen == ["text 4"] and delivered[0].t == 4.0
    assert worker.costs()[Modality.TEXT].count == 1


def test_at_most_every_n_seconds_and_never_queued(made) -> None:
    explainer = SlowExplainer()
    worker, delivered, _ = make(made, explainer, every_s=0.3)
    explainer.release.clear()  # the first explanation takes a while
    worker.offer(Modality.TEXT, object(), "first", prediction(0.0))
    assert explainer.entered.wait(5)
    for i in range(20):  # offered while the thread is busy: only the last one is kept
        worker.offer(Modality.TEXT, object(), f"later {i}", prediction(1.0 + i))
    explainer.release.set()
    wait_for(lambda: len(delivered) == 2, what="two explanations")
    assert explainer.seen == ["first", "later 19"]
    worker.offer(Modality.TEXT, object(), "third", prediction(50.0))
    wait_for(lambda: len(delivered) == 3, what="the third")
    assert explainer.seen[-1] == "third"
    time.sleep(0.4)
    assert len(delivered) == 3  # nothing new offered: nothing explained again


@pytest.mark.parametrize("requested", [False, True])
def test_offers_faster_than_the_settling_time_are_still_explained(made, requested) -> None:
    """A camera at 30 fps offers a new prediction every 33 ms, faster than an offer
    settles (SETTLE_S): each newer offer must not postpone the explanation for ever."""
    explainer = SlowExplainer()
    worker, delivered, _ = make(made, explainer, every_s=None if requested else 0.2)
    if requested:
        worker.request(Modality.TEXT)
    stop = time.monotonic() + 20.0  # ~0.2 s on a quiet machine; "for ever" means never
    i = 0
    while not delivered and time.monotonic() < stop:
        worker.offer(Modality.TEXT, object(), f"frame {i}", prediction(float(i)))
        i += 1
        time.sleep(SETTLE_S / 4)
    assert delivered, f"nothing explained after {i} offers {SETTLE_S / 4:.3f} s apart"


def test_a_failing_explanation_is_reported_and_the_worker_goes_on(made) -> None:
    explainer = SlowExplainer()
    worker, delivered, failures = make(made, explainer)
    worker.offer(Modality.TEXT, object(), "boom", prediction(0.0))
    worker.request()
    wait_for(lambda: failures, what="the failure")
    assert failures[0][0] is Modality.TEXT and "no gradients here" in failures[0][1]
    worker.offer(Modality.TEXT, object(), "fine", prediction(1.0))
    worker.request(Modality.TEXT)
    wait_for(lambda: delivered, what="the next explanation")
    costs = worker.costs()[Modality.TEXT]
    assert costs.failures == 1 and costs.count == 1


def test_bad_interval_is_refused() -> None:
    with pytest.raises(ValueError, match="every_s must be positive"):
        ExplanationWorker(lambda e: None, every_s=0)


class Probe:
    def __init__(self) -> None:
        self.explanations: list = []
        self.threads: set[str] = set()

    def on_explanation(self, explanation) -> None:
        self.explanations.append(explanation)
        self.threads.add(threading.current_thread().name)


def test_a_live_session_explains_on_request_and_tells_its_listeners(samples) -> None:
    encoders = {
        Modality.TEXT: build_encoder(resolve_model(Modality.TEXT, "embedded/text-conversation")),
        Modality.FACE: build_encoder(resolve_model(Modality.FACE, "embedded/face-minixception")),
    }
    video = VideoReplaySource(samples / "face_only.mp4", speed=1.0)
    session = LiveSession({Modality.FACE: video}, encoders)
    probe = Probe()
    session.add_listener(probe)
    assert not session.request_explanation()  # not enabled yet
    session.enable_explanations(every_s=0.5)
    try:
        session.start()
        assert session.submit_text("I am so glad to see you")
        wait_for(
            lambda: {type(e) for e in probe.explanations} >= {TextExplanation, FaceExplanation},
            60,  # under 1 s when quiet; 10 s seen under load (a low-priority thread)
            "a text and a face explanation",
        )
        text = next(e for e in probe.explanations if isinstance(e, TextExplanation))
        assert max(text.words, key=lambda w: w.weight).word == "glad"
        face = next(e for e in probe.explanations if isinstance(e, FaceExplanation))
        assert face.faces and face.faces[0].grid.shape == (7, 7)
        assert probe.threads == {"emoapp-fusion"}  # listeners hear only the fusion thread
        costs = session.explanation_costs()
        assert costs[Modality.FACE].count >= 1 and costs[Modality.TEXT].count >= 1
    finally:
        assert session.stop(timeout=5.0) == []
    assert not [t for t in threading.enumerate() if t.name == "emoapp-explain"]
