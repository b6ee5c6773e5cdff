"""Readers of the acted speech corpora (TESS, EmoDB, EMOVO, TurEV-DB) on tiny layouts,
and the speaker each item carries for the voice model's adaptation."""

from __future__ import annotations

from pathlib import Path

import pytest

from emoapp.evaluation.datasets import (
    DatasetError,
    EvalItem,
    detect_format,
    read_dataset,
)
from emoapp.evaluation.predict import speaker_of


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def test_tess_speakers_labels_and_suspect_files(tmp_path):
    root = tmp_path / "tess"
    touch(root / "OAF_pleasant_surprise" / "OAF_bean_ps.flac")
    touch(root / "OAF_neutral" / "OA_bite_neutral.flac")  # the corpus's own typo
    touch(root / "YAF_sad" / "YAF_beg_sad.flac")  # flagged in SOURCES.md
    touch(root / "YAF_fear" / "YAF_dog_fear.flac")
    touch(root / "notes.txt")
    assert detect_format(root) == "tess"
    data = read_dataset(root)
    got = {i.id: (i.label, i.speaker, i.meta["sex"]) for i in data.items}
    assert got == {
        "tess/OAF_bean_ps": ("surprised", "tess-OAF", "female"),
        "tess/OA_bite_neutral": ("neutral", "tess-OAF", "female"),
        "tess/YAF_dog_fear": ("fearful", "tess-YAF", "female"),
    }
    assert [s.reason for s in data.skipped] == ["flagged as modified in SOURCES.md"]
    assert data.group_by == "sex"


def test_emodb_drops_boredom_and_knows_sex(tmp_path):
    root = tmp_path / "emodb" / "wav"
    for name in ("03a01Wa.flac", "08a01Fa.flac", "09b02Ld.flac", "16b10Tb.flac"):
        touch(root / name)
    assert detect_format(root) == "emodb"
    data = read_dataset(root)
    got = {i.id: (i.label, i.speaker, i.group) for i in data.items}
    assert got == {
        "emodb/03a01Wa": ("angry", "emodb-03", "male"),
        "emodb/08a01Fa": ("happy", "emodb-08", "female"),
        "emodb/16b10Tb": ("sad", "emodb-16", "female"),
    }
    assert data.skipped_reasons() == {"EmoDB boredom has no canonical label": 1}


def test_emovo_and_turev(tmp_path):
    emovo = tmp_path / "EMOVO"
    touch(emovo / "f1" / "gio-f1-b1.flac")
    touch(emovo / "m3" / "sor-m3-n5.flac")
    data = read_dataset(emovo, format="emovo")
    assert {(i.label, i.speaker, i.group) for i in data.items} == {
        ("happy", "emovo-f1", "female"),
        ("surprised", "emovo-m3", "male"),
    }
    turev = tmp_path / "turev"
    touch(turev / "Calm" / "1234_sk_acik.flac")
    touch(turev / "Angry" / "1157_kz_algi.flac")
    assert detect_format(turev) == "turev"
    data = read_dataset(turev, group_by="speaker")
    assert {(i.label, i.speaker) for i in data.items} == {
        ("neutral", "turev-1234"),
        ("angry", "turev-1157"),
    }
    assert any("Calm" in n for n in data.notes)


def test_a_folder_with_no_corpus_files_is_refused(tmp_path):
    touch(tmp_path / "x" / "hello.flac")
    with pytest.raises(DatasetError):
        read_dataset(tmp_path / "x", format="tess")


def test_speakers_from_ravdess_manifest_or_file(tmp_path):
    root = tmp_path / "RAVDESS"
    touch(root / "Actor_07" / "03-01-05-01-01-01-07.wav")
    item = read_dataset(root).items[0]
    assert item.speaker == "ravdess-07"
    assert speaker_of(item) == "speaker:ravdess-07"
    clip = touch(tmp_path / "m" / "a.wav")
    manifest = tmp_path / "m" / "set.csv"
    manifest.write_text("path,label,speaker,start,end\na.wav,angry,Kim,0,2\na.wav,sad,,2,4\n")
    items = read_dataset(manifest).items
    assert items[0].speaker == "Kim" and speaker_of(items[0]) == "speaker:Kim"
    # no speaker: the segments of one file are one speaker
    assert items[1].speaker is None and speaker_of(items[1]) == f"file:{clip}"
    assert speaker_of(EvalItem(id="t", label="sad", text="hi")) == "item:t"
