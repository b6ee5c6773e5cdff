"""Fixtures for the window tests: the window's configuration, from command-line
arguments over replayed samples and tiny models, and a factory that opens the real main
window and closes it cleanly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from emoapp.config import WindowConfig
from emoapp.core.messages import Modality

pytest.importorskip("PySide6")
pytest.importorskip("pytestqt")


@pytest.fixture
def window_args(
    tiny_models: dict[str, Path], samples: Path, tmp_path: Path
) -> Callable[..., WindowConfig]:
    """The window's configuration for ``emoapp`` arguments: replayed camera and
    microphone, tiny models, settings in tmp_path. Extra command-line words can be
    appended."""
    from emoapp.cli import build_parser
    from emoapp.commands.gui import window_config

    def make(*extra: str, camera: bool = True, mic: bool = True) -> WindowConfig:
        argv = [
            "--face-model", str(tiny_models["face"]),
            "--voice-model", str(tiny_models["voice"]),
            "--text-model", str(tiny_models["text"]),
            "--settings-file", str(tmp_path / "settings.ini"),
            "--loop",
        ]  # fmt: skip
        if camera:
            argv += ["--camera", str(samples / "face_speech.mp4")]
        if mic:
            argv += ["--mic", str(samples / "speech.wav")]
        return window_config(build_parser().parse_args([*argv, *extra]))

    return make


@pytest.fixture
def open_window(qtbot) -> Iterator[Callable[..., object]]:
    """Open the real main window for some arguments and start its session; at teardown
    close it and wait until every thread it started has ended."""
    from emoapp.ui.app import build_window

    opened = []

    def make(
        config: WindowConfig,
        wanted: set[Modality] | None = None,
        start_gate=None,
        **kwargs,
    ):
        built = build_window(config, **kwargs)
        window = built.window
        window.controller.start_gate = start_gate
        window.resize(1200, 800)
        window.show()
        window.start(built.wanted if wanted is None else wanted)
        opened.append(window)
        return window

    yield make
    for window in opened:
        close_window(qtbot, window)


def close_window(qtbot, window) -> None:
    """Close a window and wait for its session and threads to stop."""
    if window.isVisible():
        with qtbot.waitSignal(window.closed, timeout=15_000):
            window.close()
    assert window.controller.threads() == []
