"""The export guard: scores only unless asked, every field of a real timeline row kept
or knowingly dropped, written all at once (a full disk leaves the earlier file), audited."""

from __future__ import annotations

import csv
import errno
import json
from pathlib import Path

import numpy as np
import pytest

from emoapp.core.fusion import Fuser
from emoapp.core.messages import FaceDetection, Modality, ModalityPrediction, NoPrediction
from emoapp.core.taxonomy import CANONICAL_LABELS
from emoapp.privacy import atomic
from emoapp.privacy.audit import AuditLog
from emoapp.privacy.export import ExportError, export_row, export_timeline
from emoapp.recorded.timeline import CSV_COLUMNS, read_timeline, row_from_estimate

SECRET_TEXT = "my private words about my divorce"
SECRET_MEDIA = "/home/someone/Videos/therapy-session.mp4"


def prediction(modality: Modality, t: float, top: int, **kwargs) -> ModalityPrediction:
    probs = np.full(len(CANONICAL_LABELS), 0.05)
    probs[top] = 1 - 0.05 * (len(CANONICAL_LABELS) - 1)
    mask = np.ones(len(CANONICAL_LABELS), dtype=bool)
    return ModalityPrediction(
        modality, t, probs, mask, float(probs[top]), f"test/{modality}", **kwargs
    )


def real_rows() -> list[dict]:
    """Rows as the pipeline makes them (row_from_estimate over a real Fuser)."""
    fuser = Fuser()
    face = prediction(
        Modality.FACE,
        0.0,
        1,
        faces=(FaceDetection((10, 20, 64, 64), np.full(len(CANONICAL_LABELS), 1 / 7)),),
        detail={"primary_index": 0},
    )
    voice = prediction(Modality.VOICE, 0.2, 2, detail={"speech_fraction": 0.8}, t_end=2.2)
    text = prediction(Modality.TEXT, 0.4, 1)
    rows = [row_from_estimate(fuser.estimate(0.0))]  # abstains: nothing yet
    fuser.update(face)
    fuser.update(voice)
    rows.append(
        row_from_estimate(
            fuser.estimate(0.3), {Modality.TEXT: NoPrediction(Modality.TEXT, 0.3, "empty text")}
        )
    )
    fuser.update(text)
    rows.append(row_from_estimate(fuser.estimate(0.5)))
    return rows


def rows_with_content() -> list[dict]:
    """Real rows plus the text and media fields a live session may carry."""
    rows = real_rows()
    rows[2]["text"] = SECRET_TEXT
    rows[2]["modalities"]["text"]["text"] = SECRET_TEXT
    rows[2]["modalities"]["voice"]["transcript"] = SECRET_TEXT
    rows[1]["media"] = SECRET_MEDIA
    rows[1]["modalities"]["face"]["frame_path"] = SECRET_MEDIA + "#frame=3"
    rows[1]["modalities"]["face"]["faces"][0]["image"] = [[0, 1], [2, 3]]
    rows[2]["debug_dump"] = SECRET_TEXT  # a field no one classified
    return rows


@pytest.fixture
def audit(tmp_path: Path) -> AuditLog:
    return AuditLog(tmp_path / "config" / "audit.jsonl")


def test_every_field_of_a_real_row_is_a_known_score_field():
    """When the timeline grows a field, this fails until the field is classified in
    emoapp/privacy/export.py (score, text or media)."""
    for row in real_rows():
        dropped: set[str] = set()
        assert export_row(row, dropped=dropped) == json.loads(json.dumps(row))
        assert dropped == set()


def test_scores_only_by_default(tmp_path: Path, audit: AuditLog):
    out = tmp_path / "export.jsonl"
    result = export_timeline(rows_with_content(), out, audit=audit)
    text = out.read_text()
    assert SECRET_TEXT not in text and "divorce" not in text
    assert "therapy-session" not in text and "image" not in text
    assert result.rows == 3 and result.format == "jsonl"
    assert result.dropped >= {"text", "media", "debug_dump", "modalities.text.text"}
    assert "modalities.face.faces.image" in result.dropped
    back = read_timeline(out)
    assert back == [export_row(r) for r in real_rows()]  # exactly the scores
    assert back[2]["fused"]["label"] and back[1]["modalities"]["face"]["faces"][0]["box"]
    assert back[1]["notes"] == {"text": "empty text"}


def test_text_and_media_only_when_ticked(tmp_path: Path, audit: AuditLog):
    out = tmp_path / "with-text.jsonl"
    result = export_timeline(rows_with_content(), out, include_text=True, audit=audit)
    back = read_timeline(out)
    assert back[2]["text"] == SECRET_TEXT
    assert back[2]["modalities"]["text"]["text"] == SECRET_TEXT
    assert back[2]["modalities"]["voice"]["transcript"] == SECRET_TEXT
    assert "therapy-session" not in out.read_text()
    assert "debug_dump" in result.dropped and "debug_dump" not in back[2]

    out = tmp_path / "with-media.jsonl"
    export_timeline(rows_with_content(), out, include_media=True, audit=audit)
    back = read_timeline(out)
    assert back[1]["media"] == SECRET_MEDIA
    assert back[1]["modalities"]["face"]["frame_path"].startswith(SECRET_MEDIA)
    assert back[1]["modalities"]["face"]["faces"][0]["image"] == [[0, 1], [2, 3]]
    assert SECRET_TEXT not in out.read_text()


def test_csv_export(tmp_path: Path, audit: AuditLog):
    out = tmp_path / "export.csv"
    result = export_timeline(rows_with_content(), out, audit=audit)
    assert result.format == "csv"
    with out.open(newline="") as f:
        table = list(csv.DictReader(f))
    assert tuple(table[0].keys()) == CSV_COLUMNS
    assert len(table) == 3 and table[2]["fused_label"]
    assert SECRET_TEXT not in out.read_text() and SECRET_MEDIA not in out.read_text()

    out = tmp_path / "with-text.txt"
    export_timeline(rows_with_content(), out, include_text=True, fmt="csv", audit=audit)
    with out.open(newline="") as f:
        table = list(csv.DictReader(f))
    assert list(table[0].keys())[-1] == "text"
    assert table[2]["text"] == (
        f"text: {SECRET_TEXT} | voice.transcript: {SECRET_TEXT} | text.text: {SECRET_TEXT}"
    )
    assert table[0]["text"] == ""


def test_each_export_is_audited_without_content(tmp_path: Path, audit: AuditLog):
    export_timeline(rows_with_content(), tmp_path / "a.jsonl", audit=audit)
    export_timeline(rows_with_content(), tmp_path / "b.csv", include_text=True, audit=audit)
    entries = audit.entries()
    assert [
        (e.event, e.details["format"], e.details["text"], e.details["rows"]) for e in entries
    ] == [
        ("export", "jsonl", False, 3),
        ("export", "csv", True, 3),
    ]
    assert entries[0].details["path"] == str((tmp_path / "a.jsonl").resolve())
    assert entries[0].details["scores"] is True and entries[0].details["media"] is False
    log_text = audit.path.read_text()
    assert SECRET_TEXT not in log_text and "happy" not in log_text and "probs" not in log_text


def test_a_full_disk_leaves_the_earlier_export_and_no_partial_file(
    tmp_path: Path, audit: AuditLog, monkeypatch
):
    out = tmp_path / "export.jsonl"
    export_timeline(real_rows(), out, audit=audit)
    before = out.read_bytes()

    real_fdopen = atomic.os.fdopen

    class FullDisk:
        """A file whose second write fails as a full disk would."""

        def __init__(self, stream):
            self.stream, self.writes = stream, 0

        def write(self, text):
            self.writes += 1
            if self.writes >= 2:
                raise OSError(errno.ENOSPC, "No space left on device")
            return self.stream.write(text)

        def __getattr__(self, name):
            return getattr(self.stream, name)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.stream.close()

    monkeypatch.setattr(atomic.os, "fdopen", lambda *a, **k: FullDisk(real_fdopen(*a, **k)))
    with pytest.raises(
        ExportError, match=r"No space left on device.*earlier file there is unchanged"
    ):
        export_timeline(real_rows() * 50, out, audit=audit)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config", "export.jsonl"]
    assert len(audit.entries()) == 1  # the failed export is not logged as written

    with pytest.raises(ExportError):
        export_timeline(real_rows(), tmp_path / "new.jsonl", audit=audit)
    assert not (tmp_path / "new.jsonl").exists()


def test_a_failed_rename_leaves_no_temporary_file(tmp_path: Path, audit: AuditLog, monkeypatch):
    def refuse(src, dst):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(ExportError, match="Invalid cross-device link"):
        export_timeline(real_rows(), tmp_path / "x.jsonl", audit=audit)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_bad_rows_and_targets_are_one_line_errors(tmp_path: Path, audit: AuditLog):
    existing = tmp_path / "keep.jsonl"
    existing.write_text("earlier\n")
    with pytest.raises(ExportError, match="row 2 is not a timeline row"):
        export_timeline([real_rows()[0], {"no": "t"}], existing, audit=audit)
    assert existing.read_text() == "earlier\n"
    broken = real_rows()
    del broken[1]["modalities"]["face"]["probs"]
    with pytest.raises(ExportError, match="not a timeline row"):
        export_timeline(broken, existing, fmt="csv", audit=audit)
    assert existing.read_text() == "earlier\n"
    with pytest.raises(ExportError, match="is a folder"):
        export_timeline(real_rows(), tmp_path, audit=audit)
    with pytest.raises(ExportError, match="does not exist"):
        export_timeline(real_rows(), tmp_path / "missing" / "x.jsonl", audit=audit)
    with pytest.raises(ExportError, match="use jsonl or csv"):
        export_timeline(real_rows(), tmp_path / "x.jsonl", fmt="xlsx", audit=audit)  # type: ignore[arg-type]
    assert audit.entries() == []


def test_an_existing_file_keeps_its_permissions(tmp_path: Path, audit: AuditLog):
    out = tmp_path / "export.jsonl"
    out.write_text("old\n")
    out.chmod(0o640)
    export_timeline(real_rows(), out, audit=audit)
    assert out.stat().st_mode & 0o777 == 0o640
    assert len(read_timeline(out)) == 3
