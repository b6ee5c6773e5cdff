"""``emoapp analyze``: a fused emotion timeline of a recording, from the command line.

    emoapp analyze MEDIA [--transcript FILE] [--text TEXT] [--out FILE] [--step S]
                   [--face-fps F] [model and fusion options]
    emoapp analyze --text "I am happy"          # one text -> one row on stdout
    emoapp analyze MEDIA --out FILE --resume    # continue an interrupted run

Rows (see :mod:`emoapp.recorded.timeline`) go to ``--out`` (JSON lines, or CSV for a
``.csv`` name; ``-`` for stdout). Without ``--out``, the rows of a recording go to stdout
when stdout is a pipe or a file, and on a terminal to a new private temporary folder
(:func:`emoapp.privacy.paths.terminal_timeline_path`), whose path is printed after the
summary table: a terminal shows the table, not hundreds of JSON lines. Bad input is
checked before any model loads, and only the models the input needs are loaded (no face
model for a wav). Progress and a summary
go to stderr; the progress bar shows only on a terminal and not with ``--quiet``.

Interrupted runs: every row is flushed as it is written, so Ctrl-C (exit 130) or SIGTERM
(exit 143; a handler turns it into a clean stop, where Python's default would kill the
process without running ``finally``) leaves ``--out`` holding every row up to the
interruption, each whole. Running again replaces the file; with ``--resume`` the rows
already there are kept and the analysis continues after the last one (see
:mod:`emoapp.recorded.analyze`), appending. A file written here starts with a header
record (:mod:`emoapp.recorded.runheader`: the media's fingerprint, the models, their
revisions and checksums, the device and precision asked for and those each model resolved
to, the emoapp version, the options); ``--resume`` refuses, naming the difference, to
continue a file whose header does not match this run (another clip, other models, other
options, another precision), and it checks before anything in the file is touched: a file
it refuses is left byte for byte as it was.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoapp.commands.asr_options import add_asr_option, transcribe_into
from emoapp.commands.common import (
    add_fusion_options,
    add_model_options,
    fusion_options,
    model_options,
    positive_number,
    refuse_overwriting_inputs,
)
from emoapp.config import ModelChoice, choose_models, fusion_config, load_encoders
from emoapp.core.messages import Modality

if TYPE_CHECKING:
    from emoapp.recorded.analyze import AnalysisConfig


def _seconds_between(low: float, high: float | None = None) -> Callable[[str], float]:
    """A positive number of seconds within [low, high]: a step or hop of a nanosecond
    would mean billions of rows or windows (a run that never ends), and a window of a
    billion seconds a buffer no memory holds."""

    def parse(value: str) -> float:
        number = positive_number(value)
        if number < low or (high is not None and number > high):
            limit = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
            raise argparse.ArgumentTypeError(f"{value!r} must be {limit} seconds")
        return number

    return parse


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
        default=None,
        metavar="FILE",
        help="where rows go: FILE.jsonl, FILE.csv, or - for stdout. Default: stdout when it "
        "is a pipe or a file; on a terminal, a recording's rows go to a new private "
        "temporary folder, named after the summary",
    )
    add_analysis_options(parser)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run: keep the rows already in --out FILE and append "
        "the rest (without it, an existing --out file is replaced)",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="explain each prediction in the rows: a 7x7 saliency grid per face (where the "
        "face model looked, numbers only), which stretches of each voice window drove its "
        "label, each word's weight for the text label. They show what the model used, not "
        "why anyone feels anything",
    )
    parser.add_argument(
        "--include-text",
        action="store_true",
        help="write words: with --explain, the attributed words themselves (without this, "
        "each word is only its position and weight); for a call, each utterance's words "
        "in --by utterance rows and in the report (text is content: off by default)",
    )
    calls = add_call_options(parser)
    calls.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="also write a call report to DIR: report.html (per speaker: utterances, "
        "moments to listen to, plots) and summary.json",
    )
    calls.add_argument(
        "--embed-audio",
        action="store_true",
        help="with --report, put the recording itself into report.html so that each "
        "moment's time plays the call from there (the page then holds the audio)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar, notes or summary"
    )
    add_asr_option(parser)
    add_model_options(parser)
    add_fusion_options(parser)
    parser.set_defaults(func=run)


def add_analysis_options(parser: argparse.ArgumentParser) -> None:
    """The options that shape how one recording is analysed (shared with ``emoapp batch``,
    which builds the same :class:`AnalysisConfig` from them)."""
    parser.add_argument(
        "--step",
        type=_seconds_between(0.01),
        default=0.5,
        metavar="S",
        help="seconds between rows (0.5; at least 0.01)",
    )
    parser.add_argument(
        "--face-fps",
        type=positive_number,
        default=2.0,
        metavar="F",
        help="video frames classified per second (2)",
    )
    parser.add_argument(
        "--window",
        type=_seconds_between(0.1, 60.0),
        metavar="S",
        help="voice window length in seconds, 0.1 to 60 (default: the voice model's, 2)",
    )
    parser.add_argument(
        "--hop",
        type=_seconds_between(0.01),
        metavar="S",
        help="seconds between voice windows, at least 0.01 (default: the voice model's, 0.5)",
    )
    parser.add_argument(
        "--vad",
        choices=("silero", "energy", "off"),
        help="voice-activity gate: silero (default), energy (a level threshold, faster), "
        "or off (classify every window)",
    )
    parser.add_argument(
        "--voice-stats",
        choices=("auto", "running", "recording"),
        default="auto",
        help="a voice model that adapts to the speaker takes their statistics from: "
        "running (the speech so far, as live), recording (all of the recording's speech, "
        "per speaker of a call; features are computed once), or auto (default: "
        "recording for a call's speakers, running for one recording)",
    )


def add_call_options(parser: argparse.ArgumentParser) -> Any:
    """The options for a recorded call, by speaker (shared with ``emoapp batch``); returns
    their argument group."""
    calls = parser.add_argument_group(
        "calls",
        "a recorded call, by speaker: one speaker per channel, or who spoke when found by "
        "diarization; with no transcript, each speaker is heard by the speech recogniser "
        "(--asr)",
    )
    calls.add_argument(
        "--speakers",
        metavar="auto|channels|N",
        help="auto: one speaker per channel when the channels differ, else diarization "
        "(who spoke when; number of speakers estimated, at least 2: a call has two sides); "
        "channels: each audio channel is "
        'one speaker; N: diarize into N speakers. Every row carries "speaker"',
    )
    calls.add_argument(
        "--speaker-names",
        metavar="A,B",
        help="names of the speakers, in channel order (diarized: in order of first speech; "
        "default: speaker 1, speaker 2, ...); transcript cues go to the speaker their "
        "<v Name> or 'Name:' names. A speaker named customer (or caller, client) is the "
        "side the report watches for anger and distress",
    )
    calls.add_argument(
        "--by",
        choices=("step", "utterance"),
        default="step",
        help="step: a row every --step seconds (default); utterance: one row per speech "
        "segment of each speaker (start, end, the estimate over it)",
    )
    return calls


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


class TerminatedError(KeyboardInterrupt):
    """SIGTERM arrived: stop as on Ctrl-C (rows written so far stay whole), exit 143."""


EXIT_TERMINATED = 128 + signal.SIGTERM
"""The exit status of a run stopped by SIGTERM (143), as a shell reports a process it
killed; Ctrl-C gives 130 (``emoapp.cli``)."""


@contextmanager
def sigterm_stops_cleanly() -> Iterator[None]:
    """While the analysis runs, SIGTERM raises :class:`TerminatedError` in the main thread
    instead of killing the process outright, so that ``finally`` blocks close the timeline
    (Python's default for SIGTERM is to die on the spot). Outside the main thread, where
    handlers cannot be set, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def terminate(signum: int, frame: object) -> None:
        raise TerminatedError

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run(args: argparse.Namespace) -> int:
    with sigterm_stops_cleanly():
        try:
            return _run(args)
        except TerminatedError:
            print("emoapp: terminated", file=sys.stderr)
            return EXIT_TERMINATED


def default_out(out: str | None, media: Path | None, stdout_is_terminal: bool | None = None) -> str:
    """Where rows go when ``--out`` is not given: stdout (``-``) when it is a pipe or a
    file, or when there is no recording (one row for ``--text``); on a terminal, a file in
    a new private temporary folder, so that the person reads the summary table rather
    than a wall of JSON."""
    if out is not None:
        return out
    if stdout_is_terminal is None:
        stdout_is_terminal = sys.stdout.isatty()
    if media is None or not stdout_is_terminal:
        return "-"
    from emoapp.privacy.paths import terminal_timeline_path

    return str(terminal_timeline_path(media))


def _resume_from(args: argparse.Namespace, note: Callable[[str], None]) -> float | None:
    """The media time after which to continue ``--out`` (``--resume``), or None."""
    from emoapp.core.errors import EmoappError
    from emoapp.recorded.timeline import resume_point

    if not args.resume:
        return None
    if args.out in (None, "-"):
        raise EmoappError("--resume needs --out FILE (rows on stdout cannot be continued)")
    last_t = resume_point(args.out)
    if last_t is None:
        note(f"{args.out} holds no rows yet; starting from the beginning")
    else:
        note(f"resuming {args.out} after t={last_t:g} s")
    return last_t


def _holds_anything(target: str) -> bool:
    """Whether ``target`` is a file with something in it (a CSV's sidecar counts)."""
    from emoapp.recorded.runheader import sidecar_path

    path = Path(target)
    try:
        return path.stat().st_size > 0 or sidecar_path(path).is_file()
    except OSError:
        return False


def analysis_config(
    args: argparse.Namespace,
    transcript: Path | None = None,
    text: str | None = None,
    resume_after: float | None = None,
) -> AnalysisConfig:
    """The :class:`AnalysisConfig` the analysis options ask for (``analyze`` and ``batch``)."""
    from emoapp.recorded.analyze import AnalysisConfig

    return AnalysisConfig(
        step_s=args.step,
        face_fps=args.face_fps,
        window_s=args.window,
        hop_s=args.hop,
        transcript=transcript,
        text=text,
        resume_after=resume_after,
        explain=bool(getattr(args, "explain", False)),
        include_text=bool(getattr(args, "include_text", False)),
        voice_stats=getattr(args, "voice_stats", "auto") or "auto",
    )


def encoder_configs(args: argparse.Namespace) -> dict[Modality, object]:
    """Per-modality encoder settings the analysis options ask for (the voice window, hop
    and gate), for :func:`~emoapp.commands.common.load_encoders`."""
    if not (args.window or args.hop or args.vad):
        return {}
    from emoapp.encoders.voice import VoiceConfig

    defaults = VoiceConfig()
    return {
        Modality.VOICE: VoiceConfig(
            window_s=args.window or defaults.window_s,
            hop_s=args.hop or defaults.hop_s,
            vad=args.vad or defaults.vad,
        )
    }


def _header(
    args: argparse.Namespace,
    choice: ModelChoice,
    modalities: set[Modality],
    fusion: object,
    heard_by: str | None = None,
    encoders: Mapping[Modality, Any] | None = None,
    models_options: Any = None,
) -> dict[str, Any]:
    """The header record of this run (see :mod:`emoapp.recorded.runheader`); ``heard_by``:
    the speech recogniser that transcribed the recording, if one did; ``encoders``: the
    loaded encoders (where each runs and in what precision); ``models_options``: the
    device, precision and models folder asked for."""
    from emoapp.recorded.runheader import build_header, model_checksum

    models_dir = getattr(models_options, "models_dir", None)
    models: dict[str, dict[str, Any] | None] = {}
    for modality in Modality:
        spec = choice.specs.get(modality) if modality in modalities else None
        if spec is None:
            models[modality.value] = None
            continue
        entry: dict[str, Any] = {
            "model": spec.model,
            "revision": spec.revision,
            "backend": spec.backend,
            "checksum": model_checksum(spec.model, spec.backend, spec.revision, models_dir),
        }
        encoder = (encoders or {}).get(modality)
        if encoder is not None:
            info = encoder.info()
            entry.update(device=info.device, dtype=info.dtype or None)
        models[modality.value] = entry
    return build_header(
        media=args.media,
        transcript=args.transcript,
        text=args.text,
        models=models,
        options={
            "step_s": args.step,
            "face_fps": args.face_fps,
            "window_s": args.window,
            "hop_s": args.hop,
            "vad": args.vad,
            **({"voice_stats": args.voice_stats} if args.voice_stats != "auto" else {}),
            "fusion": fusion,
            "asr": heard_by,
            # rows with and without explanations do not mix in one file (--resume)
            **({"explain": True, "include_text": args.include_text} if args.explain else {}),
        },
        runtime={
            "device": getattr(models_options, "device", None),
            "dtype": getattr(models_options, "dtype", None),
        },
    )


def _run(args: argparse.Namespace) -> int:
    from emoapp.recorded.analyze import analyze, prepare_inputs
    from emoapp.recorded.timeline import TimelineWriter

    if args.media is None and args.text is None and args.transcript is None:
        from emoapp.core.errors import EmoappError

        raise EmoappError("analyze needs MEDIA, --transcript FILE, or --text TEXT")
    if args.resume and args.out is None:
        _resume_from(args, lambda _: None)  # raises: --resume needs --out FILE
    args.out = default_out(args.out, args.media)
    if args.speakers or args.speaker_names or args.by != "step" or args.report:
        from emoapp.commands.analyze_call import run_call

        if args.explain:
            from emoapp.core.errors import EmoappError

            raise EmoappError(
                "--explain writes one timeline: not with --speakers, --by or --report"
            )

        return run_call(args)
    if args.include_text and not args.explain:
        from emoapp.core.errors import EmoappError

        raise EmoappError(
            "--include-text says whether --explain (or a call's --by utterance rows and "
            "--report) write words: add --explain, or analyse a call with --speakers"
        )
    if args.embed_audio:
        from emoapp.core.errors import EmoappError

        raise EmoappError("--embed-audio puts the recording into a call --report: add --report DIR")

    def note(message: str) -> None:
        if not args.quiet:
            print(f"emoapp: {message}", file=sys.stderr)

    refuse_overwriting_inputs(args.out, [args.media, args.transcript])
    resume_after = _resume_from(args, note)
    config = analysis_config(
        args, transcript=args.transcript, text=args.text, resume_after=resume_after
    )

    # Everything about the input is checked before a model loads.
    inputs = prepare_inputs(args.media, config)
    # No transcript: the recording's speech is transcribed (in memory) for the text model.
    heard_by = transcribe_into(args, inputs, model_options(args), note)
    # Modalities the input lacks are switched off, so that nothing about their models
    # (loading, "not downloaded" notes) reaches the person.
    models = model_options(args)
    wanted = models.only(inputs.modalities)
    fusion = fusion_config(models, fusion_options(args))
    TimelineWriter(args.out, append=args.resume)  # an unwritable --out fails before loading
    modality_configs = encoder_configs(args) if Modality.VOICE in inputs.modalities else {}
    loaded = load_encoders(wanted, inputs.modalities, modality_configs, strict=True)
    # The header names the precision each model resolved to, so it is built once they
    # have loaded; nothing in --out has been touched yet.
    header = _header(
        args, choose_models(wanted), inputs.modalities, fusion, heard_by, loaded.encoders, models
    )
    if args.resume and args.out != "-" and _holds_anything(args.out):
        from emoapp.recorded.runheader import check_resume
        from emoapp.recorded.timeline import cut_partial_row

        check_resume(args.out, header)  # refuses, naming the difference, before any change
        cut_partial_row(args.out)  # the one change: a row a killed run left half-written
    writer = TimelineWriter(args.out, append=resume_after is not None, header=header)

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
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (TerminatedError)
        if not writer.is_stdout:
            print(
                f"emoapp: stopped; {writer.target} holds the {writer.rows_written} rows "
                "written before the interruption (add --resume to continue it)",
                file=sys.stderr,
            )
        raise
    finally:
        progress.close()
        writer.close()
    if not args.quiet and inputs.info is not None:
        print(summary.format_table(), file=sys.stderr)
        if not writer.is_stdout:
            done = "appended" if writer.append else "wrote"
            print(f"emoapp: {done} {writer.rows_written} rows to {writer.target}", file=sys.stderr)
    if summary.truncated is not None:
        raise summary.truncated
    return 0
