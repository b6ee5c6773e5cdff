"""The withdrawal invariant, under random schedules (issue 26, item 1).

A hypothesis state machine drives the real :class:`~emoapp.live.session.LiveSession`
(with its real transcriber, explanation worker, workers and fusion thread) through random
schedules of grants, inputs (camera frames, utterances into the microphone, typed text),
slow encoders and recogniser, explanation requests, pauses and withdrawals. The fake
encoders, recogniser and explainer tag every output with the ids of the inputs behind it
(:mod:`tests.privacy.withdrawal_fakes`), and one log orders pushes, withdrawals and
listener calls. The invariant, checked after every step and once stragglers had time to
arrive: no listener call after a capture's withdrawal carries an input of that capture
pushed before the withdrawal (an output, an estimate, heard text, an explanation or a
preview frame). And right after each withdrawal, nothing of that capture is held: not by
the explanation worker, the transcriber, or the session's input buffers.
"""

from __future__ import annotations

import time

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from emoapp.core.messages import Modality
from emoapp.core.provenance import origin_of
from emoapp.encoders.vad import EnergyVAD
from emoapp.live.session import LiveSession
from emoapp.live.transcriber import LiveTranscriber
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

MODALITIES = st.sampled_from([FACE, VOICE, TEXT])
DELAYS = st.sampled_from([0.0, 0.0, 0.03, 0.15])


class WithdrawalMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.log = Log()
        self.recognizer = TaggingRecognizer(self.log)
        self.transcriber = LiveTranscriber(
            self.recognizer, lambda entry: None, EnergyVAD(), idle_end_s=0.2
        )
        self.sources = {FACE: PushSource(FACE), VOICE: PushSource(VOICE)}
        self.encoders = {m: TaggingEncoder(m, self.log) for m in Modality}
        self.session = LiveSession(
            self.sources,
            self.encoders,
            rate_hz=20.0,
            voice_window_s=0.1,
            voice_hop_s=0.1,
            plan_threads=False,
            transcriber=self.transcriber,
        )
        self.recorder = Recorder(self.log)
        self.session.add_listener(self.recorder)
        self.session.enable_explanations(0.05)
        explainer = TaggingExplainer()
        self.session._explainer._explainer_for = lambda encoder: explainer  # type: ignore[union-attr]
        self.session.start()
        self.granted = set(Modality)
        self.used = 0

    def _source_ready(self, m: Modality) -> bool:
        try:
            wait_for(lambda: self.sources[m].started, timeout=2.0)
        except AssertionError:
            return False
        return True

    # -- inputs ------------------------------------------------------------------------

    @precondition(lambda self: FACE in self.granted)
    @rule()
    def show_a_face(self) -> None:
        if self._source_ready(FACE):
            self.sources[FACE].push(frame(self.log))

    @precondition(lambda self: VOICE in self.granted)
    @rule()
    def say_something(self) -> None:
        if self._source_ready(VOICE):
            for chunk in utterance(self.log, speech_s=0.3, silence_s=0.6):
                self.sources[VOICE].push(chunk)

    @rule()
    def type_something(self) -> None:
        n = self.log.new_input(TEXT)
        self.session.submit_text(f"k{n}")

    # -- timing ------------------------------------------------------------------------

    @rule(m=MODALITIES, delay=DELAYS)
    def slow_down(self, m: Modality, delay: float) -> None:
        self.encoders[m].delay = delay

    @rule(delay=DELAYS)
    def slow_recogniser(self, delay: float) -> None:
        self.recognizer.delay = delay

    @rule(m=MODALITIES)
    def explain(self, m: Modality) -> None:
        self.session.request_explanation(m)

    @rule(seconds=st.sampled_from([0.0, 0.02, 0.1, 0.25]))
    def let_time_pass(self, seconds: float) -> None:
        time.sleep(seconds)

    # -- consent -----------------------------------------------------------------------

    @rule(m=MODALITIES)
    def withdraw(self, m: Modality) -> None:
        if m in self.granted:
            self.session.withdraw(m, note="consent revoked")
            self.log.withdrawn(m)  # after it returned: nothing of before may follow
            self.granted.discard(m)
            # Nothing of it is held any more (nothing new can come: it is not granted).
            explainer = self.session._explainer
            assert explainer is not None
            assert [i for i in explainer.held().values() if origin_of(i) is m] == []
            if m is VOICE:
                assert self.transcriber.buffered == 0
            assert self.session.buffered()[m] == 0

    @rule(m=MODALITIES)
    def grant(self, m: Modality) -> None:
        if m not in self.granted:
            self.session.start_modality(m)
            self.granted.add(m)

    # -- the invariant -----------------------------------------------------------------

    @invariant()
    def nothing_withdrawn_is_handed_on(self) -> None:
        assert self.log.violations() == []

    def teardown(self) -> None:
        try:
            time.sleep(0.3)  # late deliveries: slow encoders, recogniser, explainer
            assert self.log.violations() == []
        finally:
            self.session.stop(timeout=2.0)
        assert self.log.violations() == []


WithdrawalMachine.TestCase.settings = settings(
    max_examples=12,
    stateful_step_count=16,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestWithdrawalInvariant = WithdrawalMachine.TestCase


def test_the_machine_sees_what_it_checks() -> None:
    """The schedule the state machine runs really carries every kind of input to the
    listeners, so the invariant is not checked on nothing."""
    machine = WithdrawalMachine()
    try:
        machine.show_a_face()
        machine.say_something()
        machine.type_something()
        wait_for(lambda: any(k == "heard" for _, k, _ in machine.log.events), what="heard text")
        machine.explain(FACE)
        wait_for(lambda: machine.recorder.explanations, what="an explanation")
        kinds = {(kind, origin) for _, kind, derived in machine.log.events for origin, _ in derived}
        assert {("output", FACE), ("output", VOICE), ("output", TEXT), ("heard", VOICE)} <= kinds
        assert any(kind == "estimate" for kind, _ in kinds)
        machine.withdraw(VOICE)
        machine.withdraw(FACE)
        machine.nothing_withdrawn_is_handed_on()
    finally:
        machine.teardown()
