"""``emoapp analyze``: a fused emotion timeline of a recording, from the command line.

    emoapp analyze MEDIA [--transcript FILE] [--text TEXT] [--out FILE] [--step S]
                   [--face-fps F] [model and fusion options]
    emoapp analyze --text "I am happy"          # one text -> one row on stdout

Rows (see :mod:`emoapp.runtime.timeline`) go to ``--out`` (JSON lines, or CSV for a
``.csv`` name; default stdout). Bad input is checked before any model loads, and only
the models the input needs are loaded (no face model for a wav). Progress and a summary
go to stderr; the progress bar shows only on a terminal and not with ``--quiet``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from emoapp.commands.common import (
    add_fusion_options,
    add_model_options,
    fusion_config,
    load_encoders,
)
from emoapp.core.messages import Modality


def _positive(value: str) -> float:
    try:
        number = float(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from error
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive number")
    return number


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "analyze",
        help="analyse a video or audio file (and/or a transcript or text) into a timeline",
        description=(
            "Decode a video or audio file, classify faces, voice and transcript text, fuse "
            "them, and write one row per step (JSON lines, or CSV for a .csv --out). "
            "The estimates describe displayed expression, not what anyone feels."
        ),
    )
    parser.add_argument("media", nargs="?", type=Path, metavar="MEDIA", help="video or audio file")
    parser.add_argument(
        "--transcript", type=Path, metavar="FILE", help="SRT, WebVTT or plain-text transcript"
    )
    parser.add_argument("--text", metavar="TEXT", help="a text to analyse (alone: one row)")
    parser.add_argument(
        "--out",
        default="-",
        metavar="FILE",
        help="where rows go: FILE.jsonl, FILE.csv, or - for stdout (default)",
    )
    parser.add_argument(
        "--step", type=_positive, default=0.5, metavar="S", help="seconds between rows (0.5)"
    )
    parser.add_argument(
        "--face-fps",
        type=_positive,
        default=2.0,
        metavar="F",
        help="video frames classified per second (2)",
    )
    parser.add_argument(
        "--window",
        type=_positive,
        metavar="S",
        help="voice window length in seconds (default: the voice model's, 2)",
    )
    parser.add_argument(
        "--hop",
        type=_positive,
        metavar="S",
        help="seconds between voice windows (default: the voice model's, 0.5)",
    )
    parser.add_argument(
        "--vad",
        choices=("silero", "energy", "off"),
        help="voice-activity gate: silero (default), energy (a level threshold, faster), "
        "or off (classify every window)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar, notes or summary"
    )
    add_model_options(parser)
    add_fusion_options(parser)
    parser.set_defaults(func=run)


class _Progress:
    """A tqdm bar over media seconds on stderr, or nothing when stderr is no terminal."""

    def __init__(self, total: float | None, enabled: bool) -> None:
        self._bar: Any = None
        self._done = 0.0
        if enabled and total:
            from tqdm import tqdm

            self._bar = tqdm(
                total=round(total, 1),
                unit="s",
                desc="analysing",
                file=sys.stderr,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} s "
                "[{elapsed}<{remaining}]",
                leave=False,
            )

    def __call__(self, t: float, end: float | None) -> None:
        if self._bar is None:
            return
        if end and round(end, 1) != self._bar.total:
            self._bar.total = round(end, 1)
        step = min(t, self._bar.total) - self._done
        if step > 0:
            self._bar.update(round(step, 3))
            self._done += step

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def _refuse_overwriting_inputs(out: str, inputs: list[Path | None]) -> None:
    if out == "-":
        return
    from emoapp.core.errors import EmoappError

    target = Path(out).resolve()
    for path in inputs:
        if path is not None and path.resolve() == target:
            raise EmoappError(f"--out {out} is an input file; give another name")


def run(args: argparse.Namespace) -> int:
    from emoapp.runtime.analyze import AnalysisConfig, analyze, prepare_inputs
    from emoapp.runtime.timeline import TimelineWriter

    if args.media is None and args.text is None and args.transcript is None:
        from emoapp.core.errors import EmoappError

        raise EmoappError("analyze needs MEDIA, --transcript FILE, or --text TEXT")
    config = AnalysisConfig(
        step_s=args.step,
        face_fps=args.face_fps,
        window_s=args.window,
        hop_s=args.hop,
        transcript=args.transcript,
        text=args.text,
    )

    def note(message: str) -> None:
        if not args.quiet:
            print(f"emoapp: {message}", file=sys.stderr)

    # Everything about the input is checked before a model loads.
    inputs = prepare_inputs(args.media, config)
    _refuse_overwriting_inputs(args.out, [args.media, args.transcript])
    writer = TimelineWriter(args.out)
    modality_configs: dict[Modality, object] = {}
    if Modality.VOICE in inputs.modalities and (args.window or args.hop or args.vad):
        from emoapp.encoders.voice import VoiceConfig

        defaults = VoiceConfig()
        modality_configs[Modality.VOICE] = VoiceConfig(
            window_s=args.window or defaults.window_s,
            hop_s=args.hop or defaults.hop_s,
            vad=args.vad or defaults.vad,
        )
    # Modalities the input lacks are switched off, so that nothing about their models
    # (loading, "not downloaded" notes) reaches the person.
    wanted = argparse.Namespace(**vars(args))
    for modality in Modality:
        if modality not in inputs.modalities:
            setattr(wanted, f"{modality.value}_model", "none")
    loaded = load_encoders(wanted, inputs.modalities, modality_configs, strict=True)
    fusion = fusion_config(args)

    progress = _Progress(
        inputs.info.duration if inputs.info is not None else None,
        enabled=not args.quiet and sys.stderr.isatty(),
    )
    try:
        summary = analyze(
            args.media,
            loaded.encoders,
            fusion,
            config,
            on_row=writer.write,
            progress=progress,
            on_note=note,
            inputs=inputs,
        )
    except BrokenPipeError:
        # The reader of stdout went away (e.g. `| head`): stop quietly, as Unix tools do.
        progress.close()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    finally:
        progress.close()
        writer.close()
    if not args.quiet and inputs.info is not None:
        print(summary.format_table(), file=sys.stderr)
        if not writer.is_stdout:
            print(f"emoapp: wrote {writer.rows_written} rows to {writer.target}", file=sys.stderr)
    if summary.truncated is not None:
        raise summary.truncated
    return 0
