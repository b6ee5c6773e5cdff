"""The audit log: append-only JSON lines of consent changes and exports, capped in size,
never content, and never in the way of what it records."""

from __future__ import annotations

import datetime as dt
import json
import stat
import threading
from pathlib import Path

import pytest

from emoapp.core.messages import Modality
from emoapp.privacy.audit import AuditLog, ExportFields


def fixed_clock():
    return dt.datetime(2025, 6, 1, 14, 30, 5, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))


def test_events_are_appended_as_json_lines(tmp_path: Path):
    log = AuditLog(tmp_path / "cfg" / "audit.jsonl", now=fixed_clock)
    assert log.entries() == [] and "is empty" in log.format()
    assert log.consent_granted(Modality.FACE, "1") is True
    log.consent_revoked(Modality.FACE, "1", via="pause key")
    log.consent_for_run(Modality.VOICE, "1", "--allow-mic")
    log.exported("timeline", tmp_path / "run.csv", "csv", ExportFields(text=True), 42)

    lines = (tmp_path / "cfg" / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 4
    first = json.loads(lines[0])
    assert first == {
        "time": "2025-06-01T12:30:05+00:00",  # UTC, to the second
        "event": "consent-granted",
        "modality": "face",
        "version": "1",
        "via": "window",
    }
    export = json.loads(lines[3])
    assert export == {
        "time": "2025-06-01T12:30:05+00:00",
        "event": "export",
        "kind": "timeline",
        "path": str((tmp_path / "run.csv").resolve()),
        "format": "csv",
        "scores": True,
        "text": True,
        "media": False,
        "rows": 42,
    }
    assert stat.S_IMODE((tmp_path / "cfg" / "audit.jsonl").stat().st_mode) == 0o600
    described = log.format().splitlines()
    assert described[0].endswith("face consent granted (text version 1, via window)")
    assert "allowed for one run" in described[2]
    assert "exported timeline (42 rows, scores+text) to" in described[3]
    assert log.format(last=1) == described[3]


def test_appending_never_rewrites_earlier_lines(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.consent_granted(Modality.FACE, "1")
    before = path.read_bytes()
    log.consent_revoked(Modality.FACE, "1")
    assert path.read_bytes().startswith(before)


def test_the_log_keeps_only_the_newest_megabyte(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=4096)
    for i in range(120):
        log.exported("timeline", tmp_path / f"export-{i:03d}.jsonl", "jsonl", ExportFields(), i)
        assert path.stat().st_size <= 4096
    entries = log.entries()
    assert entries[-1].details["rows"] == 119  # the newest survive
    rows = [e.details["rows"] for e in entries]
    assert rows == sorted(rows) and rows == list(range(rows[0], 120))  # oldest dropped, in order
    assert len(entries) < 120
    assert AuditLog(path).max_bytes == 1_000_000  # the default cap


def test_consent_records_are_never_trimmed_away(tmp_path: Path):
    """However many other records come after them, consent records stay (in order);
    the others are still capped."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, max_bytes=4096)
    log.consent_granted(Modality.FACE, "2")
    log.consent_for_run(Modality.VOICE, "2", "--allow-mic")
    for i in range(300):
        log.stream_client("refused", f"127.0.0.1:{40000 + i}", "no token")
        if i == 150:
            log.consent_revoked(Modality.FACE, "2", via="pause key")
        assert path.stat().st_size <= 4096 + 600  # the cap, plus the consent lines kept
    entries = log.entries()
    consent = [(e.event, e.details["modality"]) for e in entries if e.event.startswith("consent")]
    assert consent == [
        ("consent-granted", "face"),
        ("consent-for-run", "voice"),
        ("consent-revoked", "face"),
    ]
    peers = [e.details["peer"] for e in entries if e.event == "stream-client"]
    assert peers[-1] == "127.0.0.1:40299" and len(peers) < 300  # the newest others survive


def test_an_event_named_consent_is_kept_even_if_added_later(tmp_path: Path):
    """Retention is by kind: any ``consent-*`` event (an expiry, say) is protected."""
    path = tmp_path / "audit.jsonl"
    path.write_text('{"time":"2025-01-01T00:00:00+00:00","event":"consent-expired",'
                    '"modality":"voice"}\n')  # fmt: skip
    log = AuditLog(path, max_bytes=2048)
    for i in range(100):
        log.batch(tmp_path / "out", items=i, timelines=i)
    assert log.entries()[0].event == "consent-expired"


def test_refused_handshakes_are_one_line_of_counts(tmp_path: Path):
    log = AuditLog(tmp_path / "audit.jsonl", now=fixed_clock)
    assert log.stream_refused("127.0.0.1", 3000, {"rate limited": 2990, "no token": 10}, 10.04)
    (entry,) = log.entries()
    assert entry.details == {
        "peer": "127.0.0.1",
        "count": 3000,
        "reasons": {"no token": 10, "rate limited": 2990},
        "seconds": 10.0,
    }
    assert entry.describe().endswith(
        "stream refused 3000 handshake(s) from 127.0.0.1 in 10.0 s (no token 10, rate limited 2990)"
    )


def test_damaged_lines_are_skipped_when_reading(tmp_path: Path):
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    log.consent_granted(Modality.VOICE, "1")
    with path.open("a") as f:
        f.write("{half a line\n[1, 2]\n")
    log.consent_revoked(Modality.VOICE, "1")
    assert [e.event for e in log.entries()] == ["consent-granted", "consent-revoked"]


def test_concurrent_writers_never_mix_lines(tmp_path: Path):
    log = AuditLog(tmp_path / "audit.jsonl")

    def worker(n: int) -> None:
        for i in range(20):
            log.exported("timeline", tmp_path / f"w{n}-{i}.jsonl", "jsonl", ExportFields(), i)

    threads = [threading.Thread(target=worker, args=(n,), name=f"audit-{n}") for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    assert len(lines) == 80
    assert all(json.loads(line)["event"] == "export" for line in lines)


def test_an_unwritable_log_is_reported_not_raised(tmp_path: Path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the config folder should be")
    log = AuditLog(blocker / "audit.jsonl")
    assert log.consent_revoked(Modality.FACE, "1") is False
    assert log.last_error is not None and "audit log" in log.last_error
    assert log.entries() == []


def test_there_is_no_way_to_log_content(tmp_path: Path):
    """Only typed methods write; each takes names, numbers and flags, not rows or text."""
    log = AuditLog(tmp_path / "audit.jsonl")
    public = {name for name in dir(log) if not name.startswith("_")}
    writers = public - {"entries", "format", "path", "max_bytes", "last_error"}
    assert writers == {
        "consent_granted",
        "consent_revoked",
        "consent_for_run",
        "consent_expired",  # a modality, the text version, the flag or "window, for 10m"
        "exported",
        "stream_started",  # an address, a flag, "generated"/"given": never the token
        "stream_client",  # an action, the client's address, a reason
        "stream_stopped",  # the address and counts
        "stream_refused",  # a peer address, counts per reason, an interval
        "batch",  # the output folder and counts
        "voice_calibration",  # saved/deleted, the file, seconds, why: never the numbers
    }
    with pytest.raises(ValueError, match="unknown audit event"):
        log._record("frame", data="pixels")
    with pytest.raises(ValueError):
        log.consent_granted("I feel sad today", "1")  # type: ignore[arg-type]
    assert not (tmp_path / "audit.jsonl").exists()


def test_a_batch_is_one_line_of_counts_and_a_folder(tmp_path: Path):
    log = AuditLog(tmp_path / "audit.jsonl")
    assert log.batch(tmp_path / "out", items=12, timelines=10)
    (entry,) = log.entries()
    assert entry.event == "batch"
    assert entry.details == {"path": str((tmp_path / "out").resolve()), "items": 12,
                             "timelines": 10}  # fmt: skip
    assert "batch of 12 inputs: 10 timelines (scores)" in entry.describe()
