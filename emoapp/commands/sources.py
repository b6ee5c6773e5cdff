"""Source options shared by ``emoapp live`` and the window: which camera, microphone and
text feed to use, as devices or as files replayed in their place.

``--camera 0`` opens camera 0; ``--camera clip.mp4`` replays a video file as the camera.
``--mic 2`` / ``--mic "USB Audio"`` / ``--mic default`` opens an input device;
``--mic speech.wav`` (or a video with sound) replays its audio as the microphone.
``--text-file lines.txt`` types one line every ``--text-interval`` seconds.
Nothing heavy is imported here: sources open their devices only when a session starts.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from emoapp.capture.base import Source
from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality

_MEDIA_SUFFIXES = {
    ".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".mp4", ".mkv",
    ".mov", ".avi", ".ts", ".wma",
}  # fmt: skip


def add_source_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sources (devices, or files replayed in their place)")
    group.add_argument(
        "--camera",
        metavar="INDEX|FILE",
        help="camera index (0 is the first camera; see --list-devices) or a video file "
        "replayed as the camera",
    )
    group.add_argument(
        "--mic",
        metavar="DEVICE|FILE",
        help="microphone: input device index or name, 'default', or an audio (or video) "
        "file replayed as the microphone",
    )
    group.add_argument(
        "--text-file",
        metavar="FILE",
        help="a text file whose lines are typed in, one every --text-interval seconds",
    )
    group.add_argument(
        "--text-interval",
        type=float,
        default=3.0,
        metavar="S",
        help="seconds between the lines of --text-file (default: 3)",
    )
    group.add_argument(
        "--camera-size",
        metavar="WxH",
        help="resolution to ask the camera for, e.g. 1280x720 (it gives the nearest it can)",
    )
    group.add_argument("--camera-fps", type=float, metavar="FPS", help="frame rate to ask for")
    group.add_argument(
        "--replay-speed",
        type=float,
        default=1.0,
        metavar="X",
        help="play replayed files X times faster than real time (default: 1)",
    )
    group.add_argument(
        "--loop", action="store_true", help="replay files over and over instead of once"
    )
    group.add_argument(
        "--list-devices", action="store_true", help="list cameras and microphones, then exit"
    )


def _camera_size(value: str | None) -> tuple[int | None, int | None]:
    if not value:
        return None, None
    width, sep, height = value.lower().partition("x")
    try:
        w, h = int(width), int(height)
    except ValueError:
        w = h = 0
    if not sep or w <= 0 or h <= 0:
        raise EmoappError(f"--camera-size {value!r}: give WIDTHxHEIGHT, e.g. 1280x720")
    return w, h


def _device_index(value: str) -> int | None:
    """An int when ``value`` is a device index (digits only)."""
    text = value.strip()
    return int(text) if text.isdigit() else None


def _existing_file(option: str, value: str) -> Path:
    path = Path(value).expanduser()
    if not path.exists():
        raise EmoappError(f"{option} {value}: no such file (nor a device index)")
    if path.is_dir():
        raise EmoappError(f"{option} {value}: is a folder, not a file")
    return path


def _looks_like_file(value: str) -> bool:
    path = Path(value).expanduser()
    return path.exists() or path.suffix.lower() in _MEDIA_SUFFIXES or "/" in value


def build_sources(args: argparse.Namespace) -> dict[Modality, Source]:
    """The sources the options ask for (unopened). Raises EmoappError for bad options
    and for files that do not exist; a device that is absent fails when opened."""
    from emoapp.capture.camera import CameraSource
    from emoapp.capture.microphone import MicrophoneSource
    from emoapp.capture.replay import AudioReplaySource, TextReplaySource, VideoReplaySource

    speed = getattr(args, "replay_speed", None)
    speed = 1.0 if speed is None else speed
    if speed <= 0:
        raise EmoappError(f"--replay-speed {speed:g}: must be positive")
    loop = bool(getattr(args, "loop", False))
    sources: dict[Modality, Source] = {}

    camera = getattr(args, "camera", None)
    if camera is not None and camera != "":
        index = _device_index(camera)
        if index is not None:
            width, height = _camera_size(getattr(args, "camera_size", None))
            fps = getattr(args, "camera_fps", None)
            if fps is not None and fps <= 0:
                raise EmoappError(f"--camera-fps {fps:g}: must be positive")
            sources[Modality.FACE] = CameraSource(index, width, height, fps)
        else:
            path = _existing_file("--camera", camera)
            sources[Modality.FACE] = VideoReplaySource(path, speed=speed, loop=loop)

    mic = getattr(args, "mic", None)
    if mic is not None and mic != "":
        index = _device_index(mic)
        if index is not None:
            sources[Modality.VOICE] = MicrophoneSource(index)
        elif mic.strip().lower() == "default":
            sources[Modality.VOICE] = MicrophoneSource(None)
        elif _looks_like_file(mic):
            path = _existing_file("--mic", mic)
            sources[Modality.VOICE] = AudioReplaySource(path, speed=speed, loop=loop)
        else:
            sources[Modality.VOICE] = MicrophoneSource(mic)

    text_file = getattr(args, "text_file", None)
    if text_file:
        interval = getattr(args, "text_interval", 3.0)
        if interval is None or interval <= 0:
            raise EmoappError("--text-interval must be positive")
        path = _existing_file("--text-file", text_file)
        sources[Modality.TEXT] = TextReplaySource(
            path, interval_s=interval, first_s=min(1.0, interval), speed=speed, loop=loop
        )
    return sources


def describe_devices(camera_refusal: str | None = None) -> str:
    """The cameras and audio inputs found, as lines of text for --list-devices.

    Finding cameras opens each one briefly; ``camera_refusal`` (why the camera may not
    be opened) skips that and says why. Listing microphones opens none."""
    from emoapp.capture.camera import CameraInfo, list_cameras
    from emoapp.capture.microphone import list_input_devices

    lines = ["cameras:"]
    cameras: list[CameraInfo] = []
    if camera_refusal:
        lines.append(f"  (not listed: finding cameras opens each one briefly; {camera_refusal})")
    else:
        try:
            cameras = list_cameras()
        except EmoappError as exc:
            lines.append(f"  (cannot list cameras: {exc})")
        else:
            if not cameras:
                lines.append("  none found")
    for cam in cameras:
        s = cam.settings
        fps = f" @ {s.fps:g} fps" if s.fps else ""
        backend = f" [{cam.backend}]" if cam.backend else ""
        lines.append(f"  {cam.index}: {s.width}x{s.height}{fps}{backend}")
    lines.append("microphones:")
    try:
        devices = list_input_devices()
    except EmoappError as exc:
        lines.append(f"  (cannot list microphones: {exc})")
    else:
        if not devices:
            lines.append("  none found")
        for dev in devices:
            default = " (default)" if dev.is_default else ""
            api = f" [{dev.host_api}]" if dev.host_api else ""
            lines.append(
                f"  {dev.index}: {dev.name}{default}, {dev.channels} ch, "
                f"{dev.default_sample_rate:g} Hz{api}"
            )
    return "\n".join(lines)
