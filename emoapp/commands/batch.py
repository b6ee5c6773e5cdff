"""``emoapp batch``: analyse a folder or a manifest of recordings, on this machine or a Ray
cluster.

    emoapp batch INPUT --out DIR [--engine local|ray] [--workers N] [--ray-address ADDR]
                 [--gpus-per-worker F] [--transcripts DIR] [--speakers auto|channels|N]
                 [--speaker-names A,B] [--by step|utterance] [--report [--embed-audio]]
                 [--include-text] [--asr auto|off|MODEL] [analysis, model, fusion options]

``INPUT`` is a folder (walked for media files) or a CSV manifest (``path``, optional
``transcript`` and ``id``). Every item goes through the pipeline ``emoapp analyze`` runs,
with the same options (with ``--speakers``/``--by``/``--report``, the call analysis of
``emoapp analyze CALL --speakers ...``, words heard by ``--asr`` when a call has no
transcript), into ``DIR/timelines/<id>.jsonl``; ``--report`` adds
``DIR/reports/<id>/report.html`` per call and ``DIR/index.html`` over them;
``DIR/index.parquet`` (or ``index.csv`` without pyarrow) gets one row per input. Running
the same command again resumes: items already done with the same input and options are
skipped. A broken file is one failed row, never the end of the batch. See
:mod:`emoapp.batch.jobs` and :mod:`emoapp.batch.engines`.

Exit status: 0 when every item finished (done or truncated), 1 when some failed, 2 for a
usage error (bad input folder, unknown model, Ray missing), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import sys
from pathlib import Path
from typing import Any

from emoapp.commands.common import (
    add_fusion_options,
    add_model_options,
    fusion_options,
    model_options,
    whole_number,
)
from emoapp.config import choose_models, fusion_config, load_batch_encoders
from emoapp.core.errors import EmoappError


def _fraction(value: str) -> float:
    try:
        number = float(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from error
    if not 0 <= number <= 64:
        raise argparse.ArgumentTypeError(f"{value!r} must be between 0 and 64")
    return number


def register(subparsers: Any) -> None:
    from emoapp.commands.analyze import add_analysis_options, add_call_options
    from emoapp.commands.asr_options import add_asr_option

    parser = subparsers.add_parser(
        "batch",
        help="analyse a folder or manifest of recordings into timelines and an index",
        description=(
            "Run the analyze pipeline over every media file of a folder (or every row of a "
            "CSV manifest with a path column, optional transcript and id columns), in a pool "
            "of local worker processes or on a Ray cluster, loading the models once per "
            "worker. Writes DIR/timelines/<id>.jsonl and DIR/index.parquet (index.csv "
            "without pyarrow); running again skips items done with the same input and "
            "options. The estimates describe displayed expression, not what anyone feels."
        ),
    )
    parser.add_argument("input", type=Path, metavar="INPUT", help="a folder or a .csv manifest")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the output folder")
    parser.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: a pool of worker processes on this machine (default); ray: Ray actors "
        "(pip install 'emoapp[ray]')",
    )
    parser.add_argument(
        "--workers",
        type=whole_number(1),
        metavar="N",
        help="worker processes/actors, each holding its own models (default: local, one "
        "per two CPU cores; ray, one per CPU of the cluster)",
    )
    parser.add_argument(
        "--ray-address",
        metavar="ADDR",
        help="a running Ray cluster (ray://host:10001, host:6379 or auto; default: start a "
        "local Ray with this machine's CPUs)",
    )
    parser.add_argument(
        "--gpus-per-worker",
        type=_fraction,
        default=0.0,
        metavar="F",
        help="GPUs each Ray worker holds, e.g. 0.25 for four workers per GPU (default 0)",
    )
    parser.add_argument(
        "--transcripts",
        type=Path,
        metavar="DIR",
        help="transcripts matched by file stem: DIR/<stem>.srt, .vtt or .txt",
    )
    add_analysis_options(parser)
    calls = add_call_options(parser)
    calls.add_argument(
        "--report",
        action="store_true",
        help="a call report per call (DIR/reports/<id>/report.html, summary.json) and "
        "DIR/index.html over all calls: duration, share per label per speaker, moments; "
        "sortable, linking to each report",
    )
    calls.add_argument(
        "--include-text",
        action="store_true",
        help="the words of each utterance in --by utterance rows and the reports (text is "
        "content: off by default)",
    )
    calls.add_argument(
        "--embed-audio",
        action="store_true",
        help="with --report, each call's recording goes into its report (its times play it)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="no progress bar, notes or summary"
    )
    add_asr_option(parser)
    add_model_options(parser)
    add_fusion_options(parser)
    parser.set_defaults(func=run)


def build_job(args: argparse.Namespace) -> Any:
    """The :class:`~emoapp.batch.jobs.BatchJob` the options ask for; checks the models
    and options (one-line errors) before any worker starts."""
    from emoapp.batch.jobs import BatchJob, ModelRef
    from emoapp.commands.analyze import analysis_config, encoder_configs

    options = model_options(args)
    choice = choose_models(options)
    models = {
        m: ModelRef(spec.model, spec.revision, spec.backend)
        for m, spec in choice.specs.items()
        if spec is not None
    }
    if not models:
        raise EmoappError("every modality is off (--face-model/--voice-model/--text-model none)")
    configs = encoder_configs(args)
    call = None
    notes = list(choice.notes)
    if args.embed_audio and not args.report:
        raise EmoappError("--embed-audio puts each recording into its report: add --report")
    is_call = args.speakers or args.speaker_names or args.by != "step" or args.report
    if args.include_text and not is_call:
        raise EmoappError("--include-text writes a call's words: add --speakers auto (or --report)")
    if is_call:
        from emoapp.batch.jobs import CallOptions
        from emoapp.calls.analysis import parse_names, parse_speakers
        from emoapp.recorded.transcribe import choose_recognizer

        speakers = parse_speakers(args.speakers)
        asr = choose_recognizer(args.asr, options.profile, options.models_dir, options.download)
        if asr.note:
            notes.append(asr.note)
        call = CallOptions(
            by_channels=speakers == "channels",
            names=tuple(parse_names(args.speaker_names)),
            by=args.by,
            speakers=speakers,
            asr=asr.spec,
            asr_device=options.device,
            models_dir=options.models_dir,
            report=args.report,
            embed_audio=args.embed_audio,
        )
    analysis = analysis_config(args)
    if call is not None and args.include_text:
        analysis = dataclasses.replace(analysis, include_text=True)
    return (
        BatchJob(
            load=functools.partial(load_batch_encoders, options, configs),
            out_dir=args.out.resolve(),
            analysis=analysis,
            fusion=fusion_config(options, fusion_options(args)),
            models=models,
            options={
                "device": args.device,
                "dtype": args.dtype,
                "voice": {m.value: repr(c) for m, c in configs.items()},
            },
            call=call,
        ),
        notes,
    )


def _check_out(out: Path, source: Path) -> None:
    if out.exists() and not out.is_dir():
        raise EmoappError(f"--out {out}: is a file; give a folder")
    parent = out.resolve().parent
    if not out.exists() and not parent.is_dir():
        raise EmoappError(f"--out {out}: folder {parent} does not exist")
    target = out if out.exists() else parent
    if not os.access(target, os.W_OK):
        raise EmoappError(f"--out {out}: folder {target} is not writable")


def run(args: argparse.Namespace) -> int:
    from emoapp.commands.analyze import EXIT_TERMINATED, TerminatedError, sigterm_stops_cleanly

    with sigterm_stops_cleanly():
        try:
            return _run(args)
        except TerminatedError:
            print("emoapp: terminated", file=sys.stderr)
            return EXIT_TERMINATED


def _run(args: argparse.Namespace) -> int:
    from emoapp.batch.engines import import_ray, run_batch
    from emoapp.batch.jobs import discover

    def note(message: str) -> None:
        if not args.quiet:
            print(f"emoapp: {message}", file=sys.stderr)

    if args.engine == "ray":
        import_ray()
    elif args.ray_address or args.gpus_per_worker:
        raise EmoappError("--ray-address and --gpus-per-worker need --engine ray")
    if args.transcripts is not None and not args.transcripts.is_dir():
        raise EmoappError(f"--transcripts {args.transcripts}: no such folder")
    _check_out(args.out, args.input)
    items = discover(args.input, args.transcripts, exclude=[args.out])
    job, notes = build_job(args)
    for message in notes:
        note(message)
    args.out.mkdir(parents=True, exist_ok=True)
    note(f"{len(items)} input(s); timelines go to {job.out_dir / 'timelines'}")
    report = None
    try:
        report = run_batch(
            items,
            job,
            engine=args.engine,
            workers=args.workers,
            ray_address=args.ray_address,
            gpus_per_worker=args.gpus_per_worker,
            progress=not args.quiet and sys.stderr.isatty(),
        )
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (TerminatedError)
        print(
            f"emoapp: stopped; finished items stay in {job.out_dir} (the index says which); "
            "run the same command again to do the rest",
            file=sys.stderr,
        )
        raise
    finally:
        _audit(job.out_dir, items)
    if job.call is not None and job.call.report:
        page = _index_page(job.out_dir, items)
        note(f"call reports in {job.out_dir / 'reports'}; the index over them: {page}")
    if not args.quiet:
        print(report.format(), file=sys.stderr)
    return 1 if report.count("failed") else 0


def _index_page(out_dir: Path, items: list[Any]) -> Path:
    """``DIR/index.html`` over the reports of this batch's items that have one."""
    from emoapp.batch.jobs import FINISHED, REPORTS, read_journal
    from emoapp.reports.call_report import write_batch_index

    records = read_journal(out_dir)
    reports = [
        (item.id, out_dir / REPORTS / item.id / "summary.json")
        for item in items
        if records.get(item.id, {}).get("status") in FINISHED
    ]
    return write_batch_index(out_dir, [(i, p) for i, p in reports if p.is_file()])


def _audit(out_dir: Path, items: list[Any]) -> None:
    """The audit log records the batch: where, how many inputs, how many of them have a
    timeline there now (this run's and earlier runs')."""
    from emoapp.batch.jobs import FINISHED, read_journal
    from emoapp.privacy.audit import AuditLog

    ids = {item.id for item in items}
    records = read_journal(out_dir)
    timelines = sum(1 for i, r in records.items() if i in ids and r.get("status") in FINISHED)
    AuditLog().batch(out_dir, items=len(items), timelines=timelines)
