"""Shared fixtures: tiny models built once per session, sample media, emoapp's config
folder kept out of the user's, and a guard that fails any test leaving threads running."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from pathlib import Path

import pytest
from hypothesis import settings

# No per-example deadline for property tests: the 200 ms default measures wall time, so
# on a loaded CI machine one example descheduled for a moment fails the test ("Unreliable
# test timings"). Tests bound their work by max_examples instead. (A test's own
# @settings inherits this unless it sets a deadline itself.)
settings.register_profile("emoapp", deadline=None)
settings.load_profile("emoapp")

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# No test may reach the Hugging Face hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# --dtype auto reads this machine's CPU precision record: never the user's in tests.
os.environ["EMOAPP_PRECISION_FILE"] = str(
    Path(tempfile.mkdtemp(prefix="emoapp-precision-")) / "precision.json"
)

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "resources" / "samples"
# Threads owned by libraries, not by emoapp.
_IGNORED_THREADS = ("ThreadPoolExecutor", "pydevd", "QDBus", "Dummy-")


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny ViT / Wav2Vec2 / RoBERTa classifiers saved with save_pretrained."""
    from emoapp.bench.tinymodels import make_all

    return make_all(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def samples() -> Path:
    """The committed sample media (resources/samples)."""
    return SAMPLES


@pytest.fixture(scope="session")
def face_only_frames(samples: Path) -> list:
    """Four frames of the face-only sample video (one in eight) as VideoFrames; shared,
    so a test must not change them."""
    import av

    from emoapp.core.messages import VideoFrame

    frames = []
    with av.open(str(samples / "face_only.mp4")) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i % 8 == 0:
                frames.append(
                    VideoFrame(float(frame.time or 0.0), frame.to_ndarray(format="rgb24"), i)
                )
            if len(frames) == 4:
                break
    return frames


@pytest.fixture(autouse=True)
def private_config_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """emoapp's config folder (consent.json, audit.jsonl) in a temporary folder, so no
    test reads the user's consent or writes to their audit log (a test may point it
    elsewhere itself)."""
    monkeypatch.setenv("EMOAPP_CONFIG_DIR", str(tmp_path_factory.mktemp("emoapp-config")))


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Fail a test that leaves a thread of its own running."""
    before = set(threading.enumerate())
    yield
    end = time.monotonic() + 15.0  # threads told to stop may end late on a loaded machine
    while True:
        leaked = [
            t
            for t in threading.enumerate()
            if t not in before and t.is_alive() and not t.name.startswith(_IGNORED_THREADS)
        ]
        if not leaked or time.monotonic() > end:
            break
        time.sleep(0.05)
    assert not leaked, f"test left threads running: {[t.name for t in leaked]}"
