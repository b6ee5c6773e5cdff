"""Checks shared by the hardening tests: what a clean failure and a valid timeline look like."""

from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path
from typing import Any

from emoapp.core.taxonomy import CANONICAL_LABELS
from emoapp.recorded.timeline import CSV_COLUMNS

ERROR_LINE = re.compile(r"^emoapp(?: [a-z]+)?: error: (.*)$")
"""``emoapp: error: ...`` (an EmoappError), or argparse's ``emoapp analyze: error: ...``."""
_TRACEBACK = re.compile(r"^(Traceback \(most recent call last\)|\s+File \".*\", line \d+)")


def _no_constants(name: str) -> Any:
    raise ValueError(f"timeline holds {name}, which is not JSON")


def assert_no_traceback(stderr: str) -> None:
    lines = [line for line in stderr.splitlines() if _TRACEBACK.match(line)]
    assert not lines, "traceback on stderr:\n" + stderr[-3000:]


def error_lines(stderr: str) -> list[str]:
    """The error messages on stderr (without their prefix)."""
    return [m.group(1) for m in map(ERROR_LINE.match, stderr.splitlines()) if m]


def assert_one_line_error(stderr: str, says: str = "") -> str:
    """Exactly one ``emoapp: error:`` line, matching ``says`` (a regex), and no traceback."""
    assert_no_traceback(stderr)
    errors = error_lines(stderr)
    assert len(errors) == 1, f"expected one error line, got {errors!r} in:\n{stderr[-2000:]}"
    message = errors[0]
    assert message.strip(), "empty error message"
    if says:
        assert re.search(says, message, re.IGNORECASE), f"{message!r} does not say {says!r}"
    return message


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Every row of a JSON-lines timeline, parsed strictly (NaN/Infinity refused); the
    header record, which only the first line may be, is left out."""
    from emoapp.recorded.runheader import is_header

    text = path.read_text(encoding="utf-8")
    assert text == "" or text.endswith("\n"), "the last row is cut off"
    records = [json.loads(line, parse_constant=_no_constants) for line in text.splitlines()]
    assert not any(is_header(r) for r in records[1:]), "a header record after the first line"
    return [r for r in records if not is_header(r)]


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n"), "the last CSV row is cut off"
    reader = csv.DictReader(text.splitlines())
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    rows = list(reader)
    for row in rows:
        assert None not in row, f"a CSV row has extra cells: {row}"
        assert all(value is not None for value in row.values()), "a CSV row is short"
    return rows


def assert_valid_rows(rows: list[dict[str, Any]]) -> None:
    """Rows in time order, each with a complete fused estimate or an abstention."""
    assert rows, "no rows"
    last = -math.inf
    for row in rows:
        t = row["t"]
        assert isinstance(t, int | float) and math.isfinite(t) and t >= 0
        assert t > last, f"rows out of order at t={t}"
        last = t
        fused = row["fused"]
        if fused is None:
            assert row["abstained"]
        else:
            assert list(fused["probs"]) == list(CANONICAL_LABELS)
            assert math.isclose(sum(fused["probs"].values()), 1.0, abs_tol=1e-4)
            assert fused["label"] in CANONICAL_LABELS
            for key in ("confidence", "valence", "arousal"):
                assert 0.0 <= fused[key] <= 1.0
        assert set(row["modalities"]) == {"face", "voice", "text"}
        for entry in row["modalities"].values():
            if entry is not None:
                assert all(0.0 <= p <= 1.0 for p in entry["probs"].values())
