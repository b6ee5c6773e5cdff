"""The local audit log: what emoapp was allowed to do and what it wrote, never content.

``audit.jsonl`` in the config folder (:func:`emoapp.privacy.paths.audit_path`) gets one
JSON line per event::

    {"time": "2025-06-01T12:00:00+00:00", "event": "consent-granted",
     "modality": "face", "version": "1", "via": "window"}
    {"time": "...", "event": "consent-revoked", "modality": "voice", "version": "1",
     "via": "window"}
    {"time": "...", "event": "consent-for-run", "modality": "face", "version": "1",
     "via": "--allow-camera"}
    {"time": "...", "event": "consent-expired", "modality": "voice", "version": "1",
     "via": "--allow-mic-for 4s"}
    {"time": "...", "event": "export", "kind": "timeline", "path": "/home/me/run.csv",
     "format": "csv", "scores": true, "text": false, "media": false, "rows": 120}
    {"time": "...", "event": "stream-started", "address": "ws://127.0.0.1:8765",
     "loopback": true, "token": "generated"}
    {"time": "...", "event": "stream-client", "action": "connected", "peer": "127.0.0.1:51234"}
    {"time": "...", "event": "stream-refused", "peer": "127.0.0.1", "count": 3000,
     "reasons": {"no token": 20, "rate limited": 2980}, "seconds": 10.0}
    {"time": "...", "event": "stream-stopped", "address": "ws://127.0.0.1:8765",
     "clients": 1, "refused": 1, "messages": 310, "dropped": 0}
    {"time": "...", "event": "batch", "path": "/data/out", "items": 1200, "timelines": 1187}
    {"time": "...", "event": "voice-calibration", "action": "saved",
     "path": "/home/me/.config/emoapp/voice-calibration.json", "seconds": 15.2}

Only the typed methods below write, and none of them takes content: there is no way to
put a frame, a sound or a text into the log. The log is append-only; when it grows past
``max_bytes`` (1 MB) the oldest lines are dropped so that about three quarters of that
remain (the file is rewritten atomically), **except consent records**: every line whose
event starts with ``consent-`` (granted, revoked, allowed for one run, expired) is kept
whatever else is written, and does not count against the cap, so no flood of other
records (a program hammering the stream with refused handshakes, say) can push a consent
record out. Refused stream handshakes
are not one line each: the stream counts them per peer address and writes one
``stream-refused`` line per address and interval (:meth:`AuditLog.stream_refused`).
A log that cannot be written (read-only folder, full disk) never stops the action it
records: the failure is logged as a warning and kept in :attr:`AuditLog.last_error`,
for the window to show.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality
from emoapp.privacy import paths
from emoapp.privacy.atomic import atomic_writer

log = logging.getLogger(__name__)

MAX_BYTES = 1_000_000
KEEP_FRACTION = 0.75
FILE_MODE = 0o600

CONSENT_GRANTED = "consent-granted"
CONSENT_REVOKED = "consent-revoked"
CONSENT_FOR_RUN = "consent-for-run"
CONSENT_EXPIRED = "consent-expired"
EXPORT = "export"
STREAM_STARTED = "stream-started"
STREAM_CLIENT = "stream-client"
STREAM_STOPPED = "stream-stopped"
STREAM_REFUSED = "stream-refused"
BATCH = "batch"
VOICE_CALIBRATION = "voice-calibration"
EVENTS = (
    CONSENT_GRANTED,
    CONSENT_REVOKED,
    CONSENT_FOR_RUN,
    CONSENT_EXPIRED,
    EXPORT,
    STREAM_STARTED,
    STREAM_CLIENT,
    STREAM_STOPPED,
    STREAM_REFUSED,
    BATCH,
    VOICE_CALIBRATION,
)
PROTECTED_PREFIX = "consent-"
"""Records of these events are never dropped when the log is trimmed."""


class AuditError(EmoappError):
    """The audit log cannot be read."""


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso_utc(moment: dt.datetime) -> str:
    """``moment`` as ISO 8601 in UTC, to the second."""
    return moment.astimezone(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ExportFields:
    """Which kinds of field an export holds."""

    scores: bool = True
    text: bool = False
    media: bool = False


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log."""

    time: str
    event: str
    details: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for a person."""
        d = self.details
        if self.event == EXPORT:
            kinds = [k for k in ("scores", "text", "media") if d.get(k)]
            return (
                f"{self.time}  exported {d.get('kind', '?')} ({d.get('rows', '?')} rows, "
                f"{'+'.join(kinds) or 'nothing'}) to {d.get('path', '?')}"
            )
        if self.event == STREAM_STARTED:
            return f"{self.time}  stream of estimates started at {d.get('address', '?')}"
        if self.event == STREAM_CLIENT:
            why = f" ({d['why']})" if d.get("why") else ""
            return f"{self.time}  stream client {d.get('action', '?')}: {d.get('peer', '?')}{why}"
        if self.event == STREAM_STOPPED:
            return (
                f"{self.time}  stream of estimates stopped at {d.get('address', '?')} "
                f"({d.get('clients', '?')} clients, {d.get('messages', '?')} messages sent, "
                f"{d.get('dropped', '?')} dropped)"
            )
        if self.event == STREAM_REFUSED:
            reasons = d.get("reasons") or {}
            why = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) if reasons else "?"
            return (
                f"{self.time}  stream refused {d.get('count', '?')} handshake(s) from "
                f"{d.get('peer', '?')} in {d.get('seconds', '?')} s ({why})"
            )
        if self.event == BATCH:
            return (
                f"{self.time}  batch of {d.get('items', '?')} inputs: "
                f"{d.get('timelines', '?')} timelines (scores) in {d.get('path', '?')}"
            )
        if self.event == VOICE_CALIBRATION:
            why = f" ({d['why']})" if d.get("why") else ""
            return (
                f"{self.time}  voice calibration {d.get('action', '?')}: {d.get('path', '?')}{why}"
            )
        what = {
            CONSENT_GRANTED: "granted",
            CONSENT_REVOKED: "revoked",
            CONSENT_FOR_RUN: "allowed for one run",
            CONSENT_EXPIRED: "expired",
        }.get(self.event, self.event)
        return (
            f"{self.time}  {d.get('modality', '?')} consent {what} "
            f"(text version {d.get('version', '?')}, via {d.get('via', '?')})"
        )


class AuditLog:
    """Append-only JSON lines of consent changes and exports (see the module docstring)."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        max_bytes: int = MAX_BYTES,
        now: Callable[[], dt.datetime] = utc_now,
    ) -> None:
        if max_bytes < 1024:
            raise ValueError("max_bytes must be at least 1024")
        self.path = Path(path) if path is not None else paths.audit_path()
        self.max_bytes = int(max_bytes)
        self._now = now
        self._lock = threading.Lock()
        self._protected_bytes = 0
        """Bytes of consent records at the last trim: they do not count against the cap."""
        self.last_error: str | None = None
        """Why the latest write failed (None after a successful one)."""

    # -- what is recorded ---------------------------------------------------------------

    def consent_granted(self, modality: Modality, version: str, via: str = "window") -> bool:
        return self._record(
            CONSENT_GRANTED, modality=Modality(modality).value, version=str(version), via=via
        )

    def consent_revoked(self, modality: Modality, version: str, via: str = "window") -> bool:
        return self._record(
            CONSENT_REVOKED, modality=Modality(modality).value, version=str(version), via=via
        )

    def consent_for_run(self, modality: Modality, version: str, flag: str) -> bool:
        """A command-line flag (``--allow-camera``) let a device open for one run."""
        return self._record(
            CONSENT_FOR_RUN, modality=Modality(modality).value, version=str(version), via=flag
        )

    def consent_expired(self, modality: Modality, version: str, via: str) -> bool:
        """Consent given for a time (``--allow-mic-for``, "Allow for 10 minutes") ran
        out, and the modality was withdrawn."""
        return self._record(
            CONSENT_EXPIRED, modality=Modality(modality).value, version=str(version), via=via
        )

    def exported(
        self,
        kind: str,
        path: str | os.PathLike[str],
        fmt: str,
        fields: ExportFields,
        rows: int,
    ) -> bool:
        """An export was written: what kind, where, which fields, how many rows."""
        return self._record(
            EXPORT,
            kind=str(kind),
            path=str(Path(path).resolve()),
            format=str(fmt),
            scores=bool(fields.scores),
            text=bool(fields.text),
            media=bool(fields.media),
            rows=int(rows),
        )

    def stream_started(self, address: str, loopback: bool, token: str) -> bool:
        """A stream of estimates began listening (``token``: "generated" or "given",
        never the token itself)."""
        return self._record(
            STREAM_STARTED, address=str(address), loopback=bool(loopback), token=str(token)
        )

    def stream_client(self, action: str, peer: str, why: str = "") -> bool:
        """A client of the stream connected, was refused, or left: where from, never
        what it was sent."""
        details: dict[str, str | int | bool] = {"action": str(action), "peer": str(peer)}
        if why:
            details["why"] = str(why)
        return self._record(STREAM_CLIENT, **details)

    def stream_refused(
        self, peer: str, count: int, reasons: dict[str, int], seconds: float
    ) -> bool:
        """Handshakes from one peer address refused over ``seconds``: how many, and how
        many for each reason (no token, wrong token, origin not allowed, rate limited,
        too many clients). One line for any number of them."""
        return self._record(
            STREAM_REFUSED,
            peer=str(peer),
            count=int(count),
            reasons={str(k): int(v) for k, v in sorted(reasons.items())},
            seconds=round(float(seconds), 1),
        )

    def stream_stopped(
        self, address: str, clients: int, refused: int, messages: int, dropped: int
    ) -> bool:
        """A stream of estimates stopped: how many clients, messages and drops."""
        return self._record(
            STREAM_STOPPED,
            address=str(address),
            clients=int(clients),
            refused=int(refused),
            messages=int(messages),
            dropped=int(dropped),
        )

    def voice_calibration(
        self, action: str, path: str | os.PathLike[str], seconds: float = 0.0, why: str = ""
    ) -> bool:
        """A "calibrate to me" voice calibration was saved or deleted (where, how many
        seconds it was made from, why it was deleted; never the statistics)."""
        details: dict[str, str | int | bool] = {"action": str(action), "path": str(path)}
        if seconds:
            details["seconds"] = f"{float(seconds):.1f}"
        if why:
            details["why"] = str(why)
        return self._record(VOICE_CALIBRATION, **details)

    def batch(self, path: str | os.PathLike[str], items: int, timelines: int) -> bool:
        """``emoapp batch`` ran: its output folder, how many inputs, how many timelines
        (scores only) it holds for them."""
        return self._record(
            BATCH, path=str(Path(path).resolve()), items=int(items), timelines=int(timelines)
        )

    # -- reading ------------------------------------------------------------------------

    def entries(self) -> list[AuditEntry]:
        """Every readable entry, oldest first (a damaged line is skipped)."""
        try:
            text = self.path.read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError):
            return []
        except OSError as error:
            raise AuditError(
                f"audit log {self.path} cannot be read: {error.strerror or error}"
            ) from error
        found = []
        for line in text.splitlines():
            try:
                raw = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(raw, dict) or "event" not in raw or "time" not in raw:
                continue
            details = {k: v for k, v in raw.items() if k not in ("time", "event")}
            found.append(
                AuditEntry(time=str(raw["time"]), event=str(raw["event"]), details=details)
            )
        return found

    def format(self, last: int | None = None) -> str:
        """The log as lines for a person (the newest ``last`` entries)."""
        entries = self.entries()
        if last is not None:
            entries = entries[-last:] if last > 0 else []
        if not entries:
            return f"the audit log ({self.path}) is empty"
        return "\n".join(entry.describe() for entry in entries)

    # -- writing ------------------------------------------------------------------------

    def _record(self, event: str, **details: str | int | float | bool | dict[str, int]) -> bool:
        if event not in EVENTS:
            raise ValueError(f"unknown audit event {event!r}")
        entry = {"time": iso_utc(self._now()), "event": event, **details}
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        with self._lock:
            try:
                self._append(line)
            except OSError as error:
                self.last_error = f"audit log {self.path} not written: {error.strerror or error}"
                log.warning("%s", self.last_error)
                return False
        self.last_error = None
        return True

    def _append(self, line: bytes) -> None:
        created = not self.path.parent.exists()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if created:
            log.debug("created %s", self.path.parent)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
        try:
            os.write(fd, line)  # one write per line: lines of concurrent writers never mix
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if size > self.max_bytes + self._protected_bytes:
            self._trim()

    def _trim(self) -> None:
        """Keep every consent record, and the newest other lines that fit in
        KEEP_FRACTION of max_bytes (consent records do not count against the cap)."""
        data = self.path.read_bytes()
        lines = data.splitlines(keepends=True)
        protected = [_is_protected(line) for line in lines]
        protected_bytes = sum(len(line) for line, p in zip(lines, protected, strict=True) if p)
        budget = int(self.max_bytes * KEEP_FRACTION)
        keep = list(protected)
        total = 0
        for i in range(len(lines) - 1, -1, -1):
            if protected[i]:
                continue
            if total + len(lines[i]) > budget:
                break
            keep[i] = True
            total += len(lines[i])
        kept = b"".join(line for line, k in zip(lines, keep, strict=True) if k)
        with atomic_writer(self.path, mode=FILE_MODE) as stream:
            stream.write(kept.decode("utf-8", errors="replace"))
        self._protected_bytes = protected_bytes


def _is_protected(line: bytes) -> bool:
    """Whether a raw log line is a consent record (kept when trimming)."""
    try:
        raw = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return isinstance(raw, dict) and str(raw.get("event", "")).startswith(PROTECTED_PREFIX)
