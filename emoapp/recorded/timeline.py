"""The timeline row format, and writers for it (JSON lines, CSV).

One row per step of an analysis (``emoapp analyze``) or of a live session that records
to a file. :func:`row_from_estimate` builds a row from a fused estimate and the latest
encoder outputs; it depends only on the core, so the live runner writes the very same
format. A row is a JSON-ready dict::

    {
      "t": 1.5,                                  # seconds (media time, or since a live run started)
      "fused": {                                 # null when the fuser abstained
        "label": "happy", "confidence": 0.62,
        "probs": {"neutral": ..., ..., "surprised": ...},   # all 7 labels, summing to 1
        "valence": 0.81, "arousal": 0.66,
        "rule": "weighted", "disagreement": 0.12, "disagree": false,
        "uncertain": false,                      # true: the shown label is unsure (below
                                                 # the fuser's uncertain_below): "uncertain"
        "raw": {"label": "sad", "probs": {...}}   # the pooled estimate before smoothing
      },                                         # and hysteresis (equal when both are off)
      "abstained": "no modality has a prediction",          # only when "fused" is null
      "modalities": {
        "face":  {...} | null,                   # null: absent, or no usable prediction now
        "voice": {...} | null,
        "text":  {...} | null
      },
      "notes": {"voice": "no speech (voice activity 0.05)"}  # why a modality says nothing
    }

A modality entry describes the prediction the fuser used at this step::

    {"t": 1.33, "label": "happy", "confidence": 0.7,
     "t_end": 3.33,           # only for inputs spanning time (an audio window): its end;
                              # the fusion weight decays from here
     "probs": {...},          # only the labels the model can express (its mask); the
                              # others are absent, not 0: the model casts no vote on them
     "weight": 0.64,          # raw fusion weight (prior x confidence x age decay)
     "contribution": 0.55,    # its share of the pool (the weights, normalised)
     "support": 0.71,         # its share of the fused probability of the shown label
     "posterior": {...},      # all 7 labels: its prediction expanded by its observation
                              # model, as the fuser pooled it
     "model": "trpakov/vit-face-expression", "baseline": false,
     "origin": "face"}        # the input channel its input was captured on: "voice" for
                              # a text prediction of words the speech recogniser heard
                              # (microphone data), else the modality's own

plus, for ``face``, ``faces``: every face found in the frame (``box`` [x, y, w, h] in
pixels, ``label``, ``probs``) and ``primary`` (the index of the face used); for
``voice``, ``speech``: the share of the window the voice-activity gate called speech
(null when the gate was off). The text itself is not written (transcripts and typed
text stay out of exported files).

``notes`` holds, per modality, why it is null or what its latest input said (the latest
frame had no face, the latest window was silence, the file has no audio track); notes
given by the caller win over those derived from the outputs.

CSV flattens a row to the columns of :data:`CSV_COLUMNS`; empty cells stand for null.

A file written by ``emoapp analyze`` starts with a **header record** (no ``"t"``; see
:mod:`emoapp.recorded.runheader`): the media fingerprint, the models and their
revisions, and the options of the run, which ``--resume`` checks. In JSON lines it is the
first line; a CSV file keeps it in a sidecar, ``FILE.csv.header.json``. Readers skip it
(:func:`iter_rows` and :func:`read_timeline` do; :func:`emoapp.recorded.runheader.is_header`
tells it apart). Both are described by JSON Schemas in ``resources/schema/``.

Writing (:class:`TimelineWriter`): the target is chosen by extension (``.csv`` for CSV,
anything else JSON lines; ``-`` is stdout as JSON lines). A file is opened only when the
first row is ready, so a run that fails before producing anything leaves an existing file
untouched, and every row is written in one call and flushed at once, so an interrupted
run leaves a valid file holding every row up to the interruption (whole JSON lines; CSV
with its header). Rows are not staged in a temporary file: a complete-so-far file at the
target is the point. :func:`resume_point` reads where such a file stops (reading only),
:func:`cut_partial_row` cuts a half-written last row once the file is known to be the one
to continue, and a writer with ``append=True`` continues it (``emoapp analyze
--resume``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal, TextIO

from emoapp.core.errors import EmoappError
from emoapp.core.rows import (  # the row schema lives in the core; re-exported here
    CSV_COLUMNS,
    MODALITIES,
    flatten_row,
    prediction_entry,
    probs_by_label,
    row_from_estimate,
)

__all__ = [
    "CSV_COLUMNS",
    "MODALITIES",
    "TimelineFormat",
    "TimelineWriter",
    "cut_partial_row",
    "flatten_row",
    "format_for",
    "prediction_entry",
    "probs_by_label",
    "read_timeline",
    "resume_point",
    "row_from_estimate",
]

TimelineFormat = Literal["jsonl", "csv"]


# --- writers -------------------------------------------------------------------------------


def format_for(target: str | Path) -> TimelineFormat:
    """``csv`` for a ``.csv`` path, ``jsonl`` for anything else (and for ``-``)."""
    return "csv" if str(target) != "-" and Path(target).suffix.lower() == ".csv" else "jsonl"


class TimelineWriter:
    """Writes rows to a file or stdout as JSON lines or CSV, flushing each row.

    The file is opened (and an existing one replaced) only when the first row arrives;
    :meth:`check` can be called first to fail early on an unwritable target.
    """

    def __init__(
        self,
        target: str | Path,
        format: TimelineFormat | None = None,
        stream: TextIO | None = None,
        append: bool = False,
        header: Mapping[str, Any] | None = None,
    ) -> None:
        """``append``: add rows to the end of an existing file (after
        :func:`resume_point`) instead of replacing it (a half-written last row is cut
        when the first row is written); a CSV header is written only when
        the file is empty or missing. ``header``: the run's header record
        (:mod:`emoapp.recorded.runheader`), written before the first row of a new file
        (first JSON line, or a CSV's sidecar); never to stdout, never when appending."""
        self.target = str(target)
        self.format: TimelineFormat = format or format_for(target)
        self.rows_written = 0
        self._stream: TextIO | None = stream
        self._owns_stream = False
        self._csv: csv.DictWriter[str] | None = None
        self.append = append and not self.is_stdout and stream is None
        self._needs_header = not (
            self.append and Path(self.target).is_file() and Path(self.target).stat().st_size > 0
        )
        self.header = header if self._needs_header and not self.is_stdout else None
        self.check()

    @property
    def is_stdout(self) -> bool:
        return self.target == "-"

    def check(self) -> None:
        """Raise EmoappError (one line) when the target cannot be written."""
        if self.is_stdout or self._stream is not None:
            return
        path = Path(self.target)
        if path.is_dir():
            raise EmoappError(f"--out {path}: is a folder; give a file name")
        parent = path.parent if str(path.parent) else Path(".")
        if not parent.is_dir():
            raise EmoappError(f"--out {path}: folder {parent} does not exist")
        if path.exists() and not _writable(path):
            raise EmoappError(f"--out {path}: file is not writable")
        if not path.exists() and not _writable(parent):
            raise EmoappError(f"--out {path}: folder {parent} is not writable")

    def _open(self) -> TextIO:
        if self._stream is None:
            if self.is_stdout:
                self._stream = sys.stdout
            else:
                if self.append:
                    cut_partial_row(self.target)  # appended rows start on a line of their own
                try:
                    self._stream = open(  # noqa: SIM115 - closed in close()
                        self.target, "a" if self.append else "w", encoding="utf-8", newline=""
                    )
                except OSError as error:
                    raise EmoappError(
                        f"--out {self.target}: cannot write: {error.strerror or error}"
                    ) from error
                self._owns_stream = True
                if self.header is not None:
                    self._write_header_record(self._stream)
        return self._stream

    def _write_header_record(self, stream: TextIO) -> None:
        from emoapp.recorded.runheader import write_sidecar

        assert self.header is not None
        if self.format == "csv":
            write_sidecar(self.target, self.header)
        else:
            stream.write(json.dumps(self.header, ensure_ascii=False, separators=(",", ":")) + "\n")
            stream.flush()

    def write(self, row: Mapping[str, Any]) -> None:
        """Write one row and flush it."""
        stream = self._open()
        if self.format == "csv":
            buffer = io.StringIO()
            writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
            if self._needs_header:
                writer.writeheader()
                self._needs_header = False
            writer.writerow(flatten_row(row))
            text = buffer.getvalue()
        else:
            text = json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n"
        stream.write(text)  # one call per row: an interruption never splits a row
        stream.flush()
        self.rows_written += 1

    def close(self) -> None:
        """Close the file (stdout is flushed, not closed)."""
        if self._stream is None:
            return
        try:
            self._stream.flush()
        finally:
            if self._owns_stream:
                self._stream.close()
            self._stream = None

    def __enter__(self) -> TimelineWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def resume_point(target: str | Path) -> float | None:
    """The ``t`` of the last whole row of an existing timeline file (JSON lines or CSV, by
    extension), to continue it from; None when the file is missing or holds no row.

    It only reads: a last line without its newline (what a writer killed mid-row leaves)
    is ignored here, and cut off by :func:`cut_partial_row` once the file is known to be
    the one to continue (``emoapp analyze --resume`` checks its header record first).
    Raises EmoappError (one line) for a file that is not a timeline emoapp wrote.
    """
    path = Path(target)
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
    except OSError as error:
        raise EmoappError(f"--out {path}: cannot read: {error.strerror or error}") from error
    whole = data[: data.rfind(b"\n") + 1]
    try:
        lines = whole.decode("utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise EmoappError(f"--out {path}: not a timeline (not UTF-8 text)") from error
    if format_for(path) == "csv":
        if not lines:
            return None
        if lines[0] != ",".join(CSV_COLUMNS):
            raise EmoappError(f"--out {path}: not a timeline CSV (its header differs)")
        rows = list(csv.DictReader(lines))
        last_t = rows[-1].get("t") if rows else None
    else:
        last_line = next((line for line in reversed(lines) if line.strip()), None)
        if last_line is None:
            return None
        try:
            last_t = json.loads(last_line).get("t")
        except (json.JSONDecodeError, AttributeError) as error:
            raise EmoappError(f"--out {path}: not a JSON-lines timeline") from error
    if last_t is None:
        return None
    try:
        t = float(last_t)
    except (TypeError, ValueError) as error:
        raise EmoappError(f"--out {path}: its last row has no time ({last_t!r})") from error
    if not math.isfinite(t) or t < 0:
        raise EmoappError(f"--out {path}: its last row has an invalid time ({last_t!r})")
    return t


def cut_partial_row(target: str | Path) -> int:
    """Cut a last line that has no newline (a row a killed writer left half-written) off
    ``target``, so that appended rows start on a line of their own; returns the bytes cut.
    Call it only once the file is known to be the one to continue."""
    path = Path(target)
    try:
        with open(path, "rb+") as file:
            data = file.read()
            whole = data.rfind(b"\n") + 1
            if whole < len(data):
                file.truncate(whole)
            return len(data) - whole
    except FileNotFoundError:
        return 0
    except OSError as error:
        raise EmoappError(f"--out {path}: cannot write: {error.strerror or error}") from error


def iter_rows(path: str | Path) -> Iterator[dict[str, Any]]:
    """The rows of a JSON-lines timeline, one at a time, without the header record (the
    reader a program uses: ``for row in iter_rows("timeline.jsonl")``). A line that is
    not a JSON object raises :class:`EmoappError` naming the file and line; a last line
    cut short by an interruption is skipped, as ``--resume`` does."""
    from emoapp.recorded.runheader import is_header

    try:
        file = open(path, encoding="utf-8")  # noqa: SIM115 - closed below, rows stream
    except OSError as error:
        raise EmoappError(f"{path}: cannot read: {error.strerror or error}") from error
    with file:
        pending: tuple[int, str] | None = None
        for number, line in enumerate(file, start=1):
            if pending is not None:
                raise EmoappError(f"{path}:{pending[0]}: not a timeline row: {pending[1]}")
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                if not line.endswith("\n"):
                    return  # the last line, cut short mid-write
                pending = (number, str(error))
                continue
            if not isinstance(record, dict):
                raise EmoappError(f"{path}:{number}: not a timeline row (not a JSON object)")
            if not is_header(record):
                yield record
        if pending is not None:
            raise EmoappError(f"{path}:{pending[0]}: not a timeline row: {pending[1]}")


def read_timeline(path: str | Path) -> list[dict[str, Any]]:
    """All the rows of a JSON-lines timeline (:func:`iter_rows`), the header skipped."""
    return list(iter_rows(path))
