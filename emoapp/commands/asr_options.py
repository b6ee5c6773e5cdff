"""``--asr auto|off|MODEL``: speech recognition for ``emoapp analyze`` and ``emoapp live``.

- ``auto`` (default): the profile's recogniser (``models/registry.toml``, ``[asr]``);
  under the default ``auto`` profile, Whisper when it is on this computer, else the
  embedded PocketSphinx (said once on stderr);
- ``off``: no transcription;
- a registry id, a hub id[@revision] or a local Whisper directory.

With ``analyze`` a given ``--transcript`` always wins: nothing is transcribed then.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from emoapp.config import ModelOptions
from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality

if TYPE_CHECKING:
    from emoapp.encoders.heard import SpeechRecognizer
    from emoapp.live.transcriber import LiveTranscriber
    from emoapp.recorded.analyze import AnalysisInputs


def add_asr_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--asr",
        default="auto",
        metavar="auto|off|MODEL",
        help="speech recognition into the text channel: auto (the profile's recogniser; "
        "the built-in PocketSphinx when Whisper is not downloaded), off, or a model "
        "(registry id, hub id[@revision], local Whisper folder). Transcripts stay in memory",
    )


def build_asr(
    asr: str, models: ModelOptions, note: Callable[[str], None], load: bool = True
) -> SpeechRecognizer | None:
    """The recogniser ``--asr`` asks for (loaded when ``load``), or None for off. With
    ``auto``, a recogniser that cannot load is a note and no transcription; a model
    asked for by name that cannot load is an error."""
    from emoapp.encoders.asr import build_recognizer
    from emoapp.recorded.transcribe import AUTO, choose_recognizer

    auto = asr.strip().lower() == AUTO
    choice = choose_recognizer(asr, models.profile, models.models_dir, models.download)
    if choice.note:
        note(choice.note)
    if choice.spec is None:
        return None
    recognizer = build_recognizer(
        choice.spec, models.device, models.dtype, models.models_dir, models.download
    )
    if not load:
        return recognizer
    try:
        recognizer.load()
    except EmoappError as exc:
        if not auto:
            raise
        note(f"speech recognition is off: {exc}")
        return None
    return recognizer


def transcribe_into(
    args: argparse.Namespace,
    inputs: AnalysisInputs,
    models: ModelOptions,
    note: Callable[[str], None],
) -> str | None:
    """``emoapp analyze``: with no ``--transcript``, the recording's speech transcribed
    into ``inputs.entries`` (in memory). Returns the recogniser's id (None: nothing was
    transcribed)."""
    if args.transcript is not None or inputs.info is None or not inputs.info.has_audio:
        return None
    recognizer = build_asr(args.asr, models, note)
    if recognizer is None:
        return None
    from emoapp.encoders.vad import make_gate
    from emoapp.recorded.transcribe import transcribe_recording

    gate = make_gate(args.vad if args.vad and args.vad != "off" else "silero")
    heard = transcribe_recording(inputs.info.path, recognizer, gate)
    inputs.entries = sorted([*inputs.entries, *heard.entries], key=lambda e: e.t)
    rtf = heard.realtime_factor
    note(
        f"heard {len(heard.entries)} of {heard.segments} speech segment(s) "
        f"({heard.speech_s:.1f} s of speech) with {recognizer.model_id}"
        + (f", {rtf:.2f}x real time" if rtf is not None else "")
    )
    if heard.truncated is not None:
        print(f"emoapp: speech recognition: {heard.truncated}", file=sys.stderr)
    return recognizer.model_id


def live_transcriber(
    asr: str, models: ModelOptions, sources: Mapping[Modality, object]
) -> LiveTranscriber | None:
    """``emoapp live``: a transcription worker for the voice source (None with no voice
    source or ``--asr off``). Its recogniser loads on the worker's thread."""
    if Modality.VOICE not in sources:
        return None

    def note(message: str) -> None:
        print(f"emoapp live: {message}", file=sys.stderr, flush=True)

    recognizer = build_asr(asr, models, note, load=False)
    if recognizer is None:
        return None
    from emoapp.encoders.vad import make_gate
    from emoapp.live.transcriber import LiveTranscriber

    return LiveTranscriber(
        recognizer,
        on_entry=lambda entry: None,  # the session connects itself
        gate=make_gate("silero"),
        on_error=note,
    )
