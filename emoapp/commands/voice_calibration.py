"""``emoapp voice-calibration``: "calibrate to me" for the embedded voice model.

    emoapp voice-calibration passage            # the neutral text to read (about 15 s)
    emoapp voice-calibration record --from ME.wav [--voice-model embedded/voice-multicorpus]
    emoapp voice-calibration show
    emoapp voice-calibration delete

``record`` turns a recording of you reading the passage into the voice model's speaker
statistics (averaged features; no sound or words are kept) and stores them in the config
folder, only with microphone consent (granted in the window, or ``--allow-mic`` here,
recorded in the audit log). ``emoapp live`` and the window then adapt to you with them
until you delete them or withdraw microphone consent (which deletes them).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality

DEFAULT_MODEL = "embedded/voice-multicorpus"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "voice-calibration",
        help='"calibrate to me": store, show or delete your voice calibration',
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("action", choices=("passage", "record", "show", "delete"))
    parser.add_argument(
        "--from",
        dest="source",
        type=Path,
        metavar="FILE",
        help="record: an audio file of you reading the passage",
    )
    parser.add_argument(
        "--voice-model",
        default=DEFAULT_MODEL,
        help=f"record: the voice model to calibrate (default {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--allow-mic",
        action="store_true",
        help="record: grant microphone consent now (recorded in the audit log)",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from emoapp.privacy.voice_calibration import (
        CALIBRATION_PASSAGE,
        delete_calibration,
        describe_calibration,
    )

    if args.action == "passage":
        print(CALIBRATION_PASSAGE)
        return 0
    from emoapp.privacy.audit import AuditLog

    audit = AuditLog()
    if args.action == "show":
        info = describe_calibration()
        print(json.dumps(info, indent=1) if info else "no voice calibration stored")
        return 0
    if args.action == "delete":
        print("deleted" if delete_calibration(audit) else "no voice calibration stored")
        return 0
    return _record(args, audit)


def _record(args: argparse.Namespace, audit: object) -> int:
    from emoapp.privacy.consent import ConsentStore
    from emoapp.privacy.voice_calibration import calibrate_from_file

    if args.source is None:
        raise EmoappError("voice-calibration record needs --from FILE (you reading the passage)")
    consent = ConsentStore(audit=audit)  # type: ignore[arg-type]
    if args.allow_mic:
        consent.grant(Modality.VOICE, via="voice-calibration --allow-mic")
    stats, path = calibrate_from_file(args.source, args.voice_model, consent, audit)  # type: ignore[arg-type]
    print(
        f"stored a voice calibration from {stats.seconds:.1f} s of audio in {path}",
        file=sys.stderr,
    )
    return 0
