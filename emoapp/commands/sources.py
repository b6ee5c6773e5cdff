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

from emoapp import config
from emoapp.capture.base import ConsentCheck, Source
from emoapp.config import SourceOptions
from emoapp.core.errors import ConsentRequiredError, EmoappError
from emoapp.core.messages import Modality


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


def source_options(args: argparse.Namespace) -> SourceOptions:
    """The source options (:func:`add_source_options`) of parsed arguments."""
    return SourceOptions(
        camera=getattr(args, "camera", None),
        mic=getattr(args, "mic", None),
        text_file=getattr(args, "text_file", None),
        text_interval=getattr(args, "text_interval", 3.0),
        camera_size=getattr(args, "camera_size", None),
        camera_fps=getattr(args, "camera_fps", None),
        replay_speed=getattr(args, "replay_speed", None),
        loop=bool(getattr(args, "loop", False)),
    )


def build_sources(
    args: argparse.Namespace, consent: ConsentCheck | None = None
) -> dict[Modality, Source]:
    """The sources the options ask for (unopened), by :func:`emoapp.config.build_sources`.
    Raises EmoappError for bad options and for files that do not exist; a device that is
    absent fails when opened. Each camera and microphone gets ``consent`` (the run's
    consent gate), which it asks when it opens: without it, it refuses to open."""
    return config.build_sources(source_options(args), consent)


def describe_devices(consent: ConsentCheck | None) -> str:
    """The cameras and audio inputs found, as lines of text for --list-devices.

    Finding cameras opens each one briefly, so it asks ``consent`` (the run's consent
    gate) first; refused, it probes none and says why. Listing microphones opens none."""
    from emoapp.capture.camera import CameraInfo, list_cameras
    from emoapp.capture.microphone import list_input_devices

    lines = ["cameras:"]
    cameras: list[CameraInfo] = []
    try:
        cameras = list_cameras(consent=consent)
    except ConsentRequiredError as refusal:
        lines.append(f"  (not listed: finding cameras opens each one briefly; {refusal})")
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
