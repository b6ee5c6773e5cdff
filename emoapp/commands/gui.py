"""``emoapp`` with no subcommand: the desktop window.

It takes the same source and model options as ``emoapp live`` (so ``emoapp --camera
clip.mp4 --mic speech.wav`` runs the window on replayed files). Qt is imported only in
:func:`run`, so ``emoapp --help`` never loads it. With no display to show a window on,
it says so in one line and points to the headless commands (exit status 2): Qt aborts
the whole process (it does not raise) when its platform plugin cannot reach a display,
so the check happens here, before Qt is imported.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
from collections.abc import Mapping
from pathlib import Path

from emoapp.commands.common import (
    add_fusion_options,
    add_live_options,
    add_model_options,
    fusion_options,
    live_options,
    model_options,
)
from emoapp.commands.sources import add_source_options, describe_devices, source_options
from emoapp.config import ConsentOptions, WindowConfig
from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality
from emoapp.privacy.consent import add_consent_options, consent_from_args, durations_from_args

# Platform plugins that draw without a display server (or are their own display).
_SELF_CONTAINED_PLATFORMS = frozenset(
    {"offscreen", "minimal", "minimalegl", "vnc", "eglfs", "linuxfb", "vkkhrdisplay"}
)
_HEADLESS_HINT = (
    "use `emoapp live --no-gui` for the live pipeline without a window, or "
    "`emoapp analyze FILE` for recorded media"
)


def _x11_display_reachable(display: str) -> bool:
    """True when a local X display (``:N`` or ``unix:N``) has a listening socket; remote
    displays (``host:N``) are trusted as given."""
    host, _, rest = display.rpartition(":")
    number = rest.split(".", 1)[0]
    if host not in ("", "unix") or not number.isdigit():
        return True
    path = Path(f"/tmp/.X11-unix/X{number}")
    if not path.exists():
        # Linux also offers abstract sockets; without the file we cannot be sure either
        # way, so try the abstract name before giving up.
        path_str = f"\0/tmp/.X11-unix/X{number}"
    else:
        path_str = str(path)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.connect(path_str)
        except OSError:
            return False
    return True


def _wayland_reachable(env: Mapping[str, str]) -> bool:
    name = env.get("WAYLAND_DISPLAY", "")
    path = Path(name) if name.startswith("/") else Path(env.get("XDG_RUNTIME_DIR", "")) / name
    return bool(name) and path.exists()


def display_problem(
    env: Mapping[str, str] | None = None, platform: str | None = None
) -> str | None:
    """None when a window can be shown; otherwise why not, in a few words."""
    env = os.environ if env is None else env
    platform = sys.platform if platform is None else platform
    requested = env.get("QT_QPA_PLATFORM", "").split(":", 1)[0].strip().lower()
    if requested in _SELF_CONTAINED_PLATFORMS:
        return None
    if platform.startswith(("win", "darwin")) and requested in ("", "windows", "cocoa"):
        return None
    display = env.get("DISPLAY", "")
    if requested in ("", "xcb") and display:
        if _x11_display_reachable(display):
            return None
        return f"the X display {display!r} cannot be reached"
    if requested in ("", "wayland", "wayland-egl") and env.get("WAYLAND_DISPLAY"):
        if _wayland_reachable(env):
            return None
        return f"the Wayland display {env['WAYLAND_DISPLAY']!r} cannot be reached"
    if requested:
        return f"no display for the Qt platform {requested!r} (DISPLAY/WAYLAND_DISPLAY not set)"
    return "no display available (DISPLAY and WAYLAND_DISPLAY are not set)"


def no_display_message(problem: str) -> str:
    """The one line ``emoapp`` prints when it cannot open its window."""
    return f"emoapp: cannot open the window: {problem}; {_HEADLESS_HINT}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The window's options, on the top-level ``emoapp`` parser."""
    add_source_options(parser)
    add_consent_options(parser)
    add_model_options(parser)
    add_fusion_options(parser)
    add_live_options(parser)
    window = parser.add_argument_group("window")
    window.add_argument(
        "--settings-file",
        type=Path,
        metavar="FILE",
        help="keep the window's settings in this INI file instead of the user's settings",
    )
    window.add_argument(
        "--quit-after",
        type=float,
        metavar="S",
        help="close the window S seconds after its models have loaded (for demonstrations "
        "and smoke tests)",
    )
    # None means "not given": the window then uses the choice remembered from last time.
    parser.set_defaults(profile=None, fusion_rule=None)


def window_config(args: argparse.Namespace) -> WindowConfig:
    """The window's typed configuration from its command-line options."""
    limits = durations_from_args(args)
    return WindowConfig(
        models=model_options(args),
        fusion=fusion_options(args),
        sources=source_options(args),
        consent=ConsentOptions(
            allow_camera=bool(getattr(args, "allow_camera", False)),
            allow_mic=bool(getattr(args, "allow_mic", False)),
            allow_camera_for=limits.get(Modality.FACE),
            allow_mic_for=limits.get(Modality.VOICE),
        ),
        live=live_options(args),
        settings_file=getattr(args, "settings_file", None),
        quit_after=getattr(args, "quit_after", None),
    )


def run(args: argparse.Namespace) -> int:
    if getattr(args, "list_devices", False):
        print(describe_devices(consent_from_args(args)))
        return 0
    config = window_config(args)
    if config.quit_after is not None and config.quit_after < 0:
        raise EmoappError("--quit-after must not be negative")
    problem = display_problem()
    if problem is not None:
        print(no_display_message(problem), file=sys.stderr)
        return 2
    from emoapp.ui.app import run_app

    return run_app(config)
