"""Run one ``emoapp`` command in this process under the privacy checks, for whole-run
tests in a fresh process (so nothing the test process imported or cached hides a
connection or a write):

    python -m emoapp.testing.guardedrun [--writes FILE] -- analyze clip.mp4 --out rows.jsonl

The command runs under a :class:`~emoapp.testing.netguard.NetworkGuard` and a
:class:`~emoapp.testing.filewatch.WriteRecorder`. The exit status is emoapp's own, or
:data:`GUARD_EXIT_STATUS` (86) when anything tried the network (each attempt is listed
on stderr). ``--writes FILE`` saves the paths the command wrote, created, renamed or
removed, as JSON (one object per event: action, path, thread, where), for the test
to judge; FILE itself is written after the recorder has stopped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from emoapp.testing.filewatch import WriteRecorder
from emoapp.testing.netguard import NetworkAccessError, NetworkGuard

GUARD_EXIT_STATUS = 86


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    writes_file: Path | None = None
    if args[:1] == ["--writes"]:
        if len(args) < 2:
            print("guardedrun: --writes needs a FILE", file=sys.stderr)
            return 2
        writes_file, args = Path(args[1]), args[2:]
    if args[:1] == ["--"]:
        args = args[1:]

    guard = NetworkGuard()
    with WriteRecorder() as recorder:
        guard.start()
        try:
            from emoapp.cli import main as emoapp_main

            status = emoapp_main(args)
        except NetworkAccessError:
            status = GUARD_EXIT_STATUS  # recorded in guard.attempts, reported below
        finally:
            guard.stop()
    if writes_file is not None:
        events = [
            {"action": e.action, "path": str(e.path), "thread": e.thread, "where": e.where}
            for e in recorder.events
        ]
        writes_file.write_text(json.dumps(events, indent=1) + "\n", encoding="utf-8")
    if guard.attempts:
        print(
            f"emoapp-guardedrun: {len(guard.attempts)} network attempt(s):",
            *(f"  {a.describe()}" for a in guard.attempts),
            sep="\n",
            file=sys.stderr,
        )
        return GUARD_EXIT_STATUS
    return status


if __name__ == "__main__":
    sys.exit(main())
