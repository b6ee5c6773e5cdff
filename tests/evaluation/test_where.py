"""`--where COL=V,V`: keep only some items of a dataset (e.g. held-out RAVDESS actors)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from emoapp.cli import main
from emoapp.evaluation.datasets import DatasetError, parse_where, read_dataset


def ravdess(root: Path) -> Path:
    for actor in (1, 2, 15, 16, 18):
        for emotion in ("01", "05"):
            path = root / f"Actor_{actor:02d}" / f"03-01-{emotion}-01-01-01-{actor:02d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    return root


def test_parse_where_reads_values_and_ranges():
    assert parse_where("actor=15-18") == ("actor", ("15", "16", "17", "18"))
    assert parse_where("sex = female") == ("sex", ("female",))
    assert parse_where("actor=1,3-4, 9") == ("actor", ("1", "3", "4", "9"))
    assert parse_where("Speaker=Anne-Marie") == ("Speaker", ("Anne-Marie",))
    for bad in ("actor", "=15", "actor=", "actor=18-15"):
        with pytest.raises(ValueError):
            parse_where(bad)


@given(st.integers(0, 99), st.integers(0, 99))
def test_a_range_is_every_whole_number_between_its_ends(a, b):
    lo, hi = min(a, b), max(a, b)
    column, values = parse_where(f"actor={lo}-{hi}")
    assert column == "actor"
    assert [int(v) for v in values] == list(range(lo, hi + 1))


def test_where_keeps_only_matching_items(tmp_path):
    root = ravdess(tmp_path / "ravdess")
    ds = read_dataset(root, where=[parse_where("actor=15-18")])
    assert sorted({i.meta["actor"] for i in ds.items}) == ["15", "16", "18"]
    assert len(ds.items) == 6 and ds.records == 6
    assert any("--where actor=15,16,17,18: 6 of 10 items" in n for n in ds.notes)
    # Conditions combine; numbers match whatever their zero padding.
    both = read_dataset(root, where=[("actor", ("1", "16")), ("sex", ("FEMALE",))])
    assert [i.meta["actor"] for i in both.items] == ["16", "16"]


def test_where_errors_are_one_line(tmp_path):
    root = ravdess(tmp_path / "ravdess")
    with pytest.raises(DatasetError, match="--where height: no such column"):
        read_dataset(root, where=[("height", ("2",))])
    with pytest.raises(DatasetError, match="no usable items"):
        read_dataset(root, where=[("actor", ("7",))])


def test_evaluate_refuses_a_malformed_where(tmp_path, capsys):
    root = ravdess(tmp_path / "ravdess")
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(root), "--where", "actor"])
    assert exit_info.value.code == 2
    assert "is not COLUMN=VALUE" in capsys.readouterr().err
