"""The ``emoapp`` command: the window by default, and the headless subcommands.

Each subcommand lives in ``emoapp/commands/<name>.py`` with ``register(subparsers)``;
none of them imports torch, transformers or Qt at module level, so ``emoapp --help``
stays fast. Errors meant for a person (:class:`EmoappError`) print as one line and exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from emoapp import __version__
from emoapp.core.errors import EmoappError

SUBCOMMANDS = ("analyze", "batch", "live", "models", "evaluate", "bench", "voice_calibration")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emoapp",
        # No prefix matching at the top: the window's options (--text-file, ...) would make
        # a subcommand's own option (analyze --text) "ambiguous" before the subcommand sees it.
        allow_abbrev=False,
        description=(
            "Live multimodal emotion recognition: webcam, microphone and typed text, fused "
            "late into one estimate of displayed expression. With no subcommand, opens "
            "the window."
        ),
    )
    parser.add_argument("--version", action="version", version=f"emoapp {__version__}")
    try:
        gui = importlib.import_module("emoapp.commands.gui")
    except ModuleNotFoundError:
        gui = None
    if gui is not None:
        gui.add_arguments(parser)
        parser.set_defaults(func=gui.run)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"emoapp.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"emoapp.commands.{name}":
                raise
            continue
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0
    try:
        return int(func(args) or 0)
    except EmoappError as exc:
        print(f"emoapp: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("emoapp: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
