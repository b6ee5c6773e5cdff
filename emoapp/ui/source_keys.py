"""The camera and microphone pickers' entries, as short keys that survive in settings.

A key names a source without opening it: ``camera:0``, ``mic:default``, ``mic:3``, or
``file:/path/clip.mp4`` (a file replayed in place of the device). :func:`build_source`
turns a key into an unopened source; nothing is opened here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emoapp.capture.base import ConsentCheck, Source
from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality


@dataclass(frozen=True)
class ReplayOptions:
    """How files chosen as sources are played."""

    speed: float = 1.0
    loop: bool = False


def camera_key(index: int) -> str:
    return f"camera:{index}"


def microphone_key(device: int | str | None) -> str:
    return "mic:default" if device is None else f"mic:{device}"


def file_key(path: str | Path) -> str:
    return f"file:{Path(path).expanduser().resolve()}"


def key_for_source(source: Source) -> str:
    """The key of an existing source (the one built from the command line)."""
    path = getattr(source, "path", None)
    if path is not None:
        return file_key(path)
    if source.modality is Modality.FACE:
        return camera_key(int(getattr(source, "index", 0)))
    return microphone_key(getattr(source, "device", None))


def key_title(key: str) -> str:
    """How a key reads in a picker."""
    kind, _, rest = key.partition(":")
    if kind == "file":
        return f"file: {Path(rest).name}"
    if kind == "camera":
        return f"camera {rest}"
    if kind == "mic":
        return "default microphone" if rest == "default" else f"microphone {rest}"
    return key


def build_source(
    modality: Modality, key: str, replay: ReplayOptions, consent: ConsentCheck | None = None
) -> Source:
    """An unopened source for ``key``. Raises EmoappError for a key that cannot be one.
    A camera or microphone gets ``consent`` (the window's consent gate), which it asks
    whenever it opens: without one it never opens."""
    kind, _, rest = key.partition(":")
    if kind == "file":
        path = Path(rest)
        if not path.is_file():
            raise EmoappError(f"{path}: no such file")
        if modality is Modality.FACE:
            from emoapp.capture.replay import VideoReplaySource

            return VideoReplaySource(path, speed=replay.speed, loop=replay.loop)
        if modality is Modality.VOICE:
            from emoapp.capture.replay import AudioReplaySource

            return AudioReplaySource(path, speed=replay.speed, loop=replay.loop)
    if kind == "camera" and modality is Modality.FACE and rest.isdigit():
        from emoapp.capture.camera import CameraSource

        return CameraSource(int(rest), consent=consent)
    if kind == "mic" and modality is Modality.VOICE and rest:
        from emoapp.capture.microphone import MicrophoneSource

        device: int | str | None = (
            None if rest == "default" else (int(rest) if rest.isdigit() else rest)
        )
        return MicrophoneSource(device, consent=consent)
    raise EmoappError(f"{key!r} is not a {modality.value} source")
