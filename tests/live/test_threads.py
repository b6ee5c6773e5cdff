"""The live session's thread and core budget (emoapp.live.threads)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emoapp.core.errors import EmoappError
from emoapp.live.threads import (
    THREADS_ENV,
    apply_plan,
    imported_library,
    parse_threads,
    plan_for_session,
    plan_threads,
)

NAMES = ("face", "voice", "text", "asr")


def test_two_cores_three_workers_get_one_thread_each():
    plan = plan_threads(2, ["face", "voice", "text"])
    assert (plan.torch_threads, plan.opencv_threads, plan.blas_threads) == (1, 1, 1)
    assert plan.interop_threads == 1 and plan.source == "auto"
    assert "2 core(s), 3 model worker(s) (face, voice, text)" in plan.describe()


def test_one_core_is_kept_for_the_rest_from_four_cores():
    assert plan_threads(8, ["face", "voice", "text"]).torch_threads == 2  # 7 // 3
    assert plan_threads(4, ["face"]).torch_threads == 3
    assert plan_threads(3, ["face"]).torch_threads == 3
    assert plan_threads(16, []).torch_threads == 15


@given(st.integers(1, 256), st.lists(st.sampled_from(NAMES), max_size=6))
def test_the_workers_never_ask_for_more_than_the_cores(cores, workers):
    plan = plan_threads(cores, workers)
    n = len(set(workers))
    assert plan.torch_threads >= 1
    assert len(plan.workers) == n
    if n and cores >= n:
        assert plan.torch_threads * n <= cores


@given(st.integers(1, 64), st.integers(1, 32))
def test_an_override_is_used_as_given(cores, override):
    plan = plan_threads(cores, ["face", "voice"], override, "--threads")
    assert plan.torch_threads == plan.opencv_threads == override
    assert plan.source == "--threads"


def test_the_environment_sets_it_unless_the_option_does(monkeypatch):
    monkeypatch.setenv(THREADS_ENV, "3")
    assert plan_for_session(["face"], cores=2).torch_threads == 3
    assert plan_for_session(["face"], cores=2).source == THREADS_ENV
    assert plan_for_session(["face"], override=2, cores=8).source == "--threads"
    monkeypatch.setenv(THREADS_ENV, "many")
    with pytest.raises(EmoappError, match="EMOAPP_THREADS"):
        plan_for_session(["face"], cores=2)
    monkeypatch.delenv(THREADS_ENV)
    assert plan_for_session(["face", "voice"], cores=2).source == "auto"


def test_bad_counts_are_refused():
    assert parse_threads(None, "--threads") is None
    assert parse_threads(" ", "--threads") is None
    with pytest.raises(EmoappError, match="--threads"):
        parse_threads("0", "--threads")
    with pytest.raises(ValueError):
        plan_threads(0, ["face"])
    with pytest.raises(ValueError):
        plan_threads(2, ["face"], 0)


def test_applying_sets_the_libraries_it_finds():
    import cv2
    import torch

    before = torch.get_num_threads(), cv2.getNumThreads()
    try:
        plan = apply_plan(plan_threads(2, ["face", "voice"]))
        assert torch.get_num_threads() == 1
        assert cv2.getNumThreads() == 1
        assert "torch intra-op 1" in plan.applied and "OpenCV 1" in plan.applied
        assert "applied: " in plan.describe()
    finally:
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def test_speech_recognition_counts_as_a_worker():
    plan = plan_threads(4, ["face", "voice", "text", "asr"])
    assert plan.workers == ("face", "voice", "text", "asr")
    assert plan.torch_threads == 1  # (4 - 1) // 4, at least one
    assert "4 model worker(s) (face, voice, text, asr)" in plan.describe()
    assert plan_threads(9, ["face", "asr"]).torch_threads == 4  # (9 - 1) // 2


def test_the_session_plans_for_its_transcriber_and_applies_the_plan_on_its_thread():
    """A live session with speech recognition counts it (``asr``) in its plan, and once
    the recogniser has loaded on its own thread (where it may first import torch and
    change its pools), the plan is applied again there."""
    import threading

    import cv2
    import torch

    from emoapp.config import ModelOptions, load_encoders
    from emoapp.core.messages import Modality
    from emoapp.encoders.heard import HeardSegment
    from emoapp.encoders.vad import EnergyVAD
    from emoapp.live.session import LiveSession
    from emoapp.live.transcriber import LiveTranscriber

    loaded_on: list[str] = []
    applied = threading.Event()

    class Recognizer:
        model_id = "fake/asr"

        def load(self) -> None:
            loaded_on.append(threading.current_thread().name)
            torch.set_num_threads(3)  # as a library loading its model might

        def transcribe(self, samples, sample_rate, t=0.0) -> HeardSegment:
            return HeardSegment(t, t + 0.1, "", self.model_id)

    before = torch.get_num_threads(), cv2.getNumThreads()
    loaded = load_encoders(ModelOptions(profile="embedded"), {Modality.TEXT})
    transcriber = LiveTranscriber(Recognizer(), lambda e: None, EnergyVAD())
    session = LiveSession({}, loaded.encoders, transcriber=transcriber, threads=2)
    hook = transcriber.on_loaded
    assert hook is not None

    def on_loaded() -> None:
        hook()
        applied.set()

    transcriber.on_loaded = on_loaded
    try:
        session.start()
        assert applied.wait(20)
        plan = session.thread_plan
        assert plan is not None and plan.workers == ("text", "asr")
        assert "2 model worker(s) (text, asr)" in plan.describe()
        assert loaded_on == ["emoapp-asr"]
        assert torch.get_num_threads() == 2 and "torch intra-op 2" in plan.applied
    finally:
        session.stop()
        torch.set_num_threads(before[0])
        cv2.setNumThreads(before[1])


def test_a_library_another_thread_is_still_importing_is_used_only_once_imported(
    tmp_path, monkeypatch
):
    """An encoder loading on another thread may be half way through importing cv2 when a
    run starts and the plan is applied: the plan waits for that import instead of
    calling a module that has no setNumThreads yet."""
    import sys
    import threading
    import types

    # The events live in a module of their own, made here before the import starts: the
    # half-imported module's attributes appear only as its body runs, so waiting on them
    # would race the importer (sys.modules has the module before its first line ran).
    sync = types.ModuleType("slowlib_for_plan_sync")
    started = sync.started = threading.Event()  # type: ignore[attr-defined]
    go_on = sync.go_on = threading.Event()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "slowlib_for_plan_sync", sync)
    (tmp_path / "slowlib_for_plan.py").write_text(
        "from slowlib_for_plan_sync import go_on, started\n"
        "started.set()\n"
        "go_on.wait(10)\n"
        "def setNumThreads(n):\n"
        "    return n\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "slowlib_for_plan", raising=False)
    assert imported_library("slowlib_for_plan") is None  # not imported: not imported here
    importer = threading.Thread(target=__import__, args=("slowlib_for_plan",))
    importer.start()
    try:
        assert started.wait(10)
        half = sys.modules["slowlib_for_plan"]
        assert not hasattr(half, "setNumThreads")  # half-initialised now
        got: list[object] = []
        user = threading.Thread(target=lambda: got.append(imported_library("slowlib_for_plan")))
        user.start()
        user.join(0.2)
        assert user.is_alive() and not got  # waiting for the import, not using it
        go_on.set()
        user.join(10)
        assert got and got[0].setNumThreads(2) == 2
    finally:
        go_on.set()
        importer.join(10)
        sys.modules.pop("slowlib_for_plan", None)
