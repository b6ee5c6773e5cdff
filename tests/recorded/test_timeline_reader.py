"""The small timeline reader a program uses: rows back exactly as written, the header
record skipped, a line cut short by an interruption ignored, a damaged line named."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emoapp.core.errors import EmoappError
from emoapp.recorded.runheader import build_header
from emoapp.recorded.timeline import TimelineWriter, iter_rows, read_timeline

_values = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.text(max_size=5))
_rows = st.lists(
    st.fixed_dictionaries(
        {"t": st.floats(0, 1e4, allow_nan=False)},
        optional={"fused": st.dictionaries(st.text(max_size=4), _values, max_size=3)},
    ),
    max_size=8,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=_rows)
def test_rows_come_back_as_written_without_the_header(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("t") / "rows.jsonl"
    header = build_header(media=None, transcript=None, text="hi", models={}, options={})
    writer = TimelineWriter(str(path), header=header)
    for row in rows:
        writer.write(row)
    writer.close()
    if not rows:  # a run that produced nothing leaves no file
        assert not path.exists()
        return
    assert list(iter_rows(path)) == [json.loads(json.dumps(r)) for r in rows]


def test_a_last_line_cut_short_is_skipped(tmp_path: Path):
    path = tmp_path / "cut.jsonl"
    path.write_text('{"header": {"format": "emoapp-timeline"}}\n{"t": 0.0}\n{"t": 0.5, "fu')
    assert read_timeline(path) == [{"t": 0.0}]


def test_a_damaged_line_is_named(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"t": 0.0}\nnot json\n{"t": 1.0}\n')
    with pytest.raises(EmoappError, match=r"bad.jsonl:2: not a timeline row"):
        read_timeline(path)
    path.write_text('{"t": 0.0}\n[1, 2]\n')
    with pytest.raises(EmoappError, match=r":2: not a timeline row \(not a JSON object\)"):
        read_timeline(path)


def test_a_missing_file_is_one_clear_error(tmp_path: Path):
    with pytest.raises(EmoappError, match="cannot read"):
        read_timeline(tmp_path / "absent.jsonl")
