"""Withdrawal is one path with provenance (issue 26, items 1 and 2): each test here
reproduces a way withdrawn data used to outlive its withdrawal, and fails on the code
before the fix.

- words of a transcription already running when the microphone was withdrawn;
- the explanation worker explaining a frame it kept after the camera was withdrawn;
- heard text kept in the window's export memory after the microphone was withdrawn;
- a text prediction made from heard words counting on in fusion after the microphone
  was withdrawn.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from emoapp.core import clock
from emoapp.core.messages import Modality, TextEntry
from emoapp.encoders.heard import HEARD_PREFIX
from emoapp.encoders.vad import EnergyVAD
from emoapp.live.session import LiveSession
from emoapp.live.transcriber import LiveTranscriber
from emoapp.privacy.memory import TimelineMemory
from tests.privacy.withdrawal_fakes import (
    FACE,
    TEXT,
    VOICE,
    Log,
    PushSource,
    Recorder,
    TaggingEncoder,
    TaggingExplainer,
    TaggingRecognizer,
    frame,
    utterance,
    wait_for,
)


@pytest.fixture
def log() -> Log:
    return Log()


def test_forget_mid_transcription_never_delivers_its_words(log: Log) -> None:
    recognizer = TaggingRecognizer(log)
    recognizer.hold = threading.Event()
    heard: list[TextEntry] = []
    transcriber = LiveTranscriber(recognizer, heard.append, EnergyVAD(), idle_end_s=0.2)
    transcriber.start()
    try:
        for chunk in utterance(log):
            transcriber.feed(chunk)
        wait_for(recognizer.started.is_set, what="a transcription under way")
        transcriber.forget()  # the microphone is withdrawn while the words are computed
        recognizer.hold.set()
        wait_for(lambda: transcriber.stats.transcribed >= 1, what="the transcription to end")
        time.sleep(0.1)
    finally:
        transcriber.stop()
    assert heard == []
    assert transcriber.stats.discarded == 1


def _withdraw(session: LiveSession, m: Modality) -> None:
    """The session's withdrawal path (``stop_modality`` is what the code before it had)."""
    withdraw = getattr(session, "withdraw", None)
    if withdraw is not None:
        withdraw(m)
    else:
        session.stop_modality(m)


def _heard(prediction: Any) -> bool:
    """A text prediction made from heard words (the code before provenance could not
    tell; its text predictions of heard entries end where the words end)."""
    return prediction is not None and (
        getattr(prediction, "origin", None) is VOICE or prediction.t_end is not None
    )


def _session(log: Log, **kwargs: Any) -> tuple[LiveSession, dict[Modality, PushSource]]:
    sources = {m: PushSource(m) for m in kwargs.pop("sources", (FACE,))}
    encoders = {m: TaggingEncoder(m, log) for m in kwargs.pop("encoders", tuple(sources))}
    session = LiveSession(sources, encoders, plan_threads=False, **kwargs)
    return session, sources


def test_the_explanation_worker_forgets_the_frame_of_a_withdrawn_camera(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    explainer = TaggingExplainer()
    monkeypatch.setattr("emoapp.encoders.explain.explainer_for", lambda encoder: explainer)
    session, sources = _session(log)
    recorder = Recorder(log)
    session.add_listener(recorder)
    session.enable_explanations(None)  # on request only
    session.start()
    try:
        wait_for(lambda: sources[FACE].started, what="the camera")
        sources[FACE].push(frame(log))
        wait_for(lambda: recorder.outputs, what="the frame's prediction")
        # The worker offers the (frame, prediction) right after delivering: wait until it
        # is held, so the withdrawal below has something to forget.
        explaining = session._explainer
        assert explaining is not None
        wait_for(lambda: FACE in explaining.held(), what="the frame offered for explaining")
        _withdraw(session, FACE)
        session.request_explanation(FACE)  # an explanation view switched on afterwards
        time.sleep(0.5)
    finally:
        session.stop()
    assert explainer.calls == 0
    assert recorder.explanations == []
    assert session._explainer is not None
    assert getattr(session._explainer, "held", dict)() == {}  # nothing of the camera held


def test_an_explanation_under_way_when_the_camera_is_withdrawn_is_dropped(
    log: Log, monkeypatch: pytest.MonkeyPatch
) -> None:
    explainer = TaggingExplainer(hold=threading.Event())
    monkeypatch.setattr("emoapp.encoders.explain.explainer_for", lambda encoder: explainer)
    session, sources = _session(log)
    recorder = Recorder(log)
    session.add_listener(recorder)
    session.enable_explanations(None)
    session.start()
    try:
        wait_for(lambda: sources[FACE].started)
        sources[FACE].push(frame(log))
        wait_for(lambda: recorder.outputs)
        session.request_explanation(FACE)
        wait_for(lambda: explainer.calls == 1, what="the explanation to start")
        _withdraw(session, FACE)
        assert explainer.hold is not None
        explainer.hold.set()
        time.sleep(0.3)
    finally:
        session.stop()
    assert recorder.explanations == []


def test_withdrawing_the_microphone_drops_the_text_prediction_made_from_heard_words(
    log: Log,
) -> None:
    session, sources = _session(log, sources=(VOICE,), encoders=(VOICE, TEXT))
    recorder = Recorder(log)
    session.add_listener(recorder)
    session.start()
    try:
        wait_for(lambda: sources[VOICE].started)
        now = clock.now()
        assert session.submit_heard(TextEntry(now - 1.0, "h1", HEARD_PREFIX + "x", end=now))
        wait_for(
            lambda: recorder.estimates and TEXT in recorder.estimates[-1].inputs,
            what="the heard words in the estimate",
        )
        assert _heard(recorder.estimates[-1].inputs[TEXT])
        _withdraw(session, VOICE)
        seen = len(recorder.estimates)
        wait_for(lambda: len(recorder.estimates) > seen + 2, what="later estimates")
        typed_ok = session.submit_text("k2")  # typed text still counts
        wait_for(lambda: recorder.estimates and TEXT in recorder.estimates[-1].inputs)
    finally:
        session.stop()
    assert typed_ok
    after = recorder.estimates[seen:]
    assert [e for e in after if _heard(e.inputs.get(TEXT))] == []
    # nor does the conversation context the next typed entry is read with hold them
    assert "h1" not in session._said


def test_heard_words_arriving_after_the_withdrawal_are_refused(log: Log) -> None:
    session, sources = _session(log, sources=(VOICE,), encoders=(VOICE, TEXT))
    recorder = Recorder(log)
    session.add_listener(recorder)
    session.start()
    try:
        wait_for(lambda: sources[VOICE].started)
        spoken = clock.now()
        _withdraw(session, VOICE)
        late = TextEntry(spoken - 0.5, "h1", HEARD_PREFIX + "x", end=spoken)
        assert not session.submit_heard(late)
        time.sleep(0.3)
    finally:
        session.stop()
    assert recorder.heard == []
    assert all(TEXT not in e.inputs for e in recorder.estimates)


def test_the_export_memory_forgets_heard_text_when_the_microphone_is_withdrawn() -> None:
    memory = TimelineMemory(origin=0.0)
    memory.add_text(1.0, 1.5, "typed words")
    memory.add_text(2.0, 2.8, "heard words", origin=VOICE)
    assert memory.texts() == [("typed words", TEXT), ("heard words", VOICE)]
    assert memory.forget_origin(VOICE, 3.0) == 1
    assert memory.texts() == [("typed words", TEXT)]
    # Heard text from before the withdrawal that reaches the memory late is refused;
    # words heard after a new grant are kept.
    assert not memory.add_text(2.9, 2.9, "late heard words", origin=VOICE)
    assert memory.add_text(4.0, 4.0, "new heard words", origin=VOICE)
    assert [text for text, _ in memory.texts()] == ["typed words", "new heard words"]


def test_the_window_forgets_heard_text_for_an_export_when_the_microphone_goes(qtbot) -> None:
    """The window's wiring: heard text reaches the export memory through the bridge,
    and the session's withdrawal (``on_withdrawn``) empties it, so "include text"
    cannot export words the microphone heard."""
    from emoapp.ui.bridge import SessionBridge

    bridge = SessionBridge()
    memory = TimelineMemory(origin=0.0)
    bridge.heard_received.connect(lambda e: memory.add_text(e.t, e.t, e.text, origin=VOICE))
    bridge.withdrawn.connect(memory.forget_origin)
    now = clock.now()
    bridge.on_heard(TextEntry(now - 1.0, "I am so tired", HEARD_PREFIX + "x", end=now))
    qtbot.waitUntil(lambda: memory.texts() != [])
    bridge.on_heard(TextEntry(now - 0.5, "still queued", HEARD_PREFIX + "x", end=now))
    bridge.on_withdrawn(VOICE, now)  # before the UI thread drained the second entry
    qtbot.wait(50)
    assert memory.texts() == []


def test_provenance_of_heard_text_is_the_microphone() -> None:
    from emoapp.core.provenance import Provenance, Withdrawals, origin_of

    heard = TextEntry(1.0, "hello", HEARD_PREFIX + "whisper", end=2.0)
    typed = TextEntry(1.0, "hello", "typed")
    assert origin_of(heard) is VOICE and origin_of(typed) is TEXT
    register = Withdrawals()
    at = register.withdraw(VOICE, 5.0)
    assert at == 5.0
    assert not register.admits_thing(heard)
    assert register.admits_thing(typed)
    assert register.admits(Provenance(VOICE, 5.5))
