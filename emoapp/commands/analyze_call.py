"""``emoapp analyze CALL --speakers auto|channels|N``: a recorded call, by speaker.

    emoapp analyze call.flac --speakers auto --speaker-names agent,customer \\
        [--transcript call.vtt | --asr auto|off|MODEL] [--include-text] [--by utterance] \\
        [--report DIR [--embed-audio]] [--out FILE]

:mod:`emoapp.commands.analyze` hands over here when any of ``--speakers``,
``--speaker-names``, ``--by utterance`` or ``--report`` is given. The call is checked and
its transcript routed (:func:`emoapp.calls.analysis.plan_call`) before a model loads;
rows go to ``--out`` like any analysis (each with ``"speaker"``); a summary per speaker
goes to stderr; ``--report DIR`` writes ``report.html`` and ``summary.json``
(:mod:`emoapp.reports.call_report`). Text comes from ``--transcript``, or, without one,
from the speech recogniser (``--asr``), per speaker (:func:`emoapp.calls.analysis
.transcribe_call`); words reach the rows and the report only with ``--include-text``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emoapp.commands.common import fusion_options, model_options, refuse_overwriting_inputs
from emoapp.config import fusion_config, load_encoders
from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality


def run_call(args: argparse.Namespace) -> int:
    from emoapp.calls.analysis import (
        analyze_call,
        parse_names,
        parse_speakers,
        plan_call,
        transcribe_call,
    )
    from emoapp.commands.asr_options import build_asr
    from emoapp.recorded.analyze import AnalysisConfig
    from emoapp.recorded.timeline import TimelineWriter

    if args.media is None:
        raise EmoappError("a call analysis needs the recording: emoapp analyze CALL --speakers ...")
    if args.text is not None:
        raise EmoappError("--text is not tied to a speaker; give a --transcript with speaker tags")
    if args.resume:
        raise EmoappError("--resume does not work with a call analysed by speaker")

    def note(message: str) -> None:
        if not args.quiet:
            print(f"emoapp: {message}", file=sys.stderr)

    refuse_overwriting_inputs(args.out, [args.media, args.transcript])
    if args.report is not None and args.report.exists() and not args.report.is_dir():
        raise EmoappError(f"--report {args.report}: is a file; give a folder")
    if args.embed_audio and args.report is None:
        raise EmoappError("--embed-audio puts the recording into the report: add --report DIR")
    names = parse_names(args.speaker_names)
    speakers = parse_speakers(args.speakers)
    models = model_options(args)
    plan = plan_call(
        args.media, args.transcript, names, by_channels=speakers == "channels", speakers=speakers
    )
    for warning in plan.warnings:
        note(warning)
    if args.transcript is None:
        recognizer = build_asr(args.asr, models, note)
        if recognizer is not None:
            from emoapp.encoders.vad import make_gate

            gate = make_gate(args.vad if args.vad and args.vad != "off" else "silero")
            heard = transcribe_call(plan, recognizer, gate)
            if heard:
                note(heard)
    config = AnalysisConfig(
        step_s=args.step,
        face_fps=args.face_fps,
        window_s=args.window,
        hop_s=args.hop,
        include_text=args.include_text,
        voice_stats=args.voice_stats,
    )
    modalities = {Modality.VOICE}
    if any(s.entries for s in plan.active):
        modalities.add(Modality.TEXT)
    modality_configs: dict[Modality, object] = {}
    if args.window or args.hop or args.vad:
        from emoapp.encoders.voice import VoiceConfig

        defaults = VoiceConfig()
        modality_configs[Modality.VOICE] = VoiceConfig(
            window_s=args.window or defaults.window_s,
            hop_s=args.hop or defaults.hop_s,
            vad=args.vad or defaults.vad,
        )
    loaded = load_encoders(models.only(modalities), modalities, modality_configs, strict=True)
    fusion = fusion_config(models, fusion_options(args))

    writer = TimelineWriter(args.out)
    try:
        result = analyze_call(
            plan, loaded.encoders, fusion, config, on_row=writer.write, by=args.by, on_note=note
        )
    finally:
        writer.close()
    if not args.quiet:
        for name, summary in result.summaries.items():
            speaker = next(s for s in plan.speakers if s.name == name)
            print(f"[{speaker.label()}] {summary.format_table()}", file=sys.stderr)
        if not writer.is_stdout:
            print(f"emoapp: wrote {writer.rows_written} rows to {writer.target}", file=sys.stderr)
    if args.report is not None:
        from emoapp.reports.call_report import write_call_report

        used = {m.value: e.model_id for m, e in loaded.encoders.items()}
        if plan.heard_by:
            used["speech recognition"] = plan.heard_by
        html = write_call_report(result, Path(args.report), used, embed_audio=args.embed_audio)
        note(f"call report: {html} (and summary.json beside it)")
    truncated = next((s.truncated for s in result.summaries.values() if s.truncated), None)
    if truncated is not None:
        raise truncated
    return 0
