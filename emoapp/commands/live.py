"""``emoapp live --no-gui``: the live pipeline without a window.

Webcam, microphone and typed text (or files replayed in their place) are encoded
concurrently and fused in real time; each fused estimate becomes a timeline row (the
``emoapp analyze`` format) written to ``--out``, and a status line per modality goes to
stderr. A modality whose model fails to load, or whose device is missing, is reported
and the others keep running.
"""

from __future__ import annotations

import argparse
import sys

from emoapp.commands.common import (
    add_fusion_options,
    add_model_options,
    fusion_config,
    load_encoders,
)
from emoapp.commands.sources import add_source_options, build_sources, describe_devices
from emoapp.core.errors import EmoappError

GUI_HINT = (
    "emoapp live: the window is `emoapp` without a subcommand (e.g. `emoapp --camera 0 "
    "--mic default`); add --no-gui to run the live pipeline headless"
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "live",
        help="run the live pipeline (camera, microphone, text) headless",
        description=(
            "Run the live pipeline without a window: camera, microphone and typed text (or "
            "files replayed in their place) are analysed as they come and fused into one "
            "estimate of displayed expression, written as timeline rows."
        ),
    )
    parser.add_argument(
        "--no-gui",
        action="store_true",
        help="run headless (required for now; the window is `emoapp` with no subcommand)",
    )
    add_source_options(parser)
    out = parser.add_argument_group("output")
    out.add_argument(
        "--out",
        metavar="FILE|-",
        help="write a timeline row per estimate: JSON lines (CSV for a .csv name); "
        "'-' for stdout. Nothing is written unless asked.",
    )
    out.add_argument(
        "--duration",
        type=float,
        metavar="S",
        help="stop after S seconds (default: run until "
        "Ctrl-C, or until every replayed file has ended)",
    )
    out.add_argument(
        "--row-rate",
        type=float,
        default=10.0,
        metavar="HZ",
        help="at most this many rows a second (default: 10)",
    )
    out.add_argument(
        "--status-every",
        type=float,
        default=5.0,
        metavar="S",
        help="print a status line on stderr every S seconds (0: only at the end; default: 5)",
    )
    add_model_options(parser)
    add_fusion_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "list_devices", False):
        print(describe_devices())
        return 0
    if not args.no_gui:
        print(GUI_HINT, file=sys.stderr)
        return 2
    if args.duration is not None and args.duration <= 0:
        raise EmoappError("--duration must be positive")
    if args.row_rate <= 0:
        raise EmoappError("--row-rate must be positive")
    if args.status_every < 0:
        raise EmoappError("--status-every must not be negative")
    sources = build_sources(args)
    if not sources:
        raise EmoappError(
            "nothing to capture: give --camera INDEX|FILE, --mic DEVICE|FILE and/or --text-file"
        )

    from emoapp.runtime.live import LiveRunOptions, run_live
    from emoapp.runtime.session import LiveSession
    from emoapp.runtime.timeline import TimelineWriter

    writer = TimelineWriter(args.out) if args.out else None
    config = fusion_config(args)
    loaded = load_encoders(args, modalities=set(sources), strict=False)
    if not loaded.encoders:
        reasons = "; ".join(f"{m.value}: {why}" for m, why in loaded.failures.items())
        raise EmoappError(f"no model could be loaded ({reasons or 'every modality is off'})")
    session = LiveSession(
        {m: s for m, s in sources.items() if m in loaded.encoders or m in loaded.failures},
        loaded.encoders,
        fusion=config,
        rate_hz=max(10.0, args.row_rate),
        unavailable=loaded.failures,
    )
    options = LiveRunOptions(
        duration_s=args.duration,
        status_every_s=args.status_every,
        row_rate_hz=args.row_rate,
    )
    try:
        summary = run_live(session, writer, options)
    finally:
        if writer is not None:
            writer.close()
    print(
        f"emoapp live: {summary.reason} after {summary.elapsed_s:.1f} s; "
        f"{summary.estimates} estimates, {summary.rows} rows written",
        file=sys.stderr,
    )
    return 0
