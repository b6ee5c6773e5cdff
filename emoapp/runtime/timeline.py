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
     "model": "trpakov/vit-face-expression", "baseline": false}

plus, for ``face``, ``faces``: every face found in the frame (``box`` [x, y, w, h] in
pixels, ``label``, ``probs``) and ``primary`` (the index of the face used); for
``voice``, ``speech``: the share of the window the voice-activity gate called speech
(null when the gate was off). The text itself is not written (transcripts and typed
text stay out of exported files).

``notes`` holds, per modality, why it is null or what its latest input said (the latest
frame had no face, the latest window was silence, the file has no audio track); notes
given by the caller win over those derived from the outputs.

CSV flattens a row to the columns of :data:`CSV_COLUMNS`; empty cells stand for null.

Writing (:class:`TimelineWriter`): the target is chosen by extension (``.csv`` for CSV,
anything else JSON lines; ``-`` is stdout as JSON lines). A file is opened only when the
first row is ready, so a run that fails before producing anything leaves an existing file
untouched, and every row is written in one call and flushed at once, so an interrupted
run leaves a valid file holding every row up to the interruption (whole JSON lines; CSV
with its header). Rows are not staged in a temporary file: a complete-so-far file at the
target is the point. :func:`resume_point` reads where such a file stops, and a writer
with ``append=True`` continues it (``emoapp analyze --resume``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TextIO

import numpy as np

from emoapp.core.errors import EmoappError
from emoapp.core.messages import (
    EncoderOutput,
    FusedEstimate,
    Modality,
    ModalityPrediction,
    NoPrediction,
)
from emoapp.core.taxonomy import CANONICAL_LABELS

MODALITIES: tuple[Modality, ...] = (Modality.FACE, Modality.VOICE, Modality.TEXT)
_DIGITS = 6

TimelineFormat = Literal["jsonl", "csv"]


# --- rows ----------------------------------------------------------------------------------


def _num(value: float | None) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not math.isfinite(value):
        return None
    return round(value, _DIGITS)


def probs_by_label(probs: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float | None]:
    """A probability vector as {label: p}; labels outside ``mask`` are left out, and a
    value that is not a number is null (JSON has no NaN: a row must stay parseable)."""
    return {
        label: _num(p)
        for label, p, kept in zip(
            CANONICAL_LABELS,
            probs,
            mask if mask is not None else [True] * len(CANONICAL_LABELS),
            strict=True,
        )
        if kept
    }


def prediction_entry(
    prediction: ModalityPrediction,
    weight: float | None,
    contribution: float | None,
    origin: float = 0.0,
    support: float | None = None,
    posterior: np.ndarray | None = None,
) -> dict[str, Any]:
    """The row entry of one modality's prediction (times relative to ``origin``)."""
    entry: dict[str, Any] = {
        "t": _num(prediction.t - origin),
        "label": prediction.label,
        "confidence": _num(prediction.confidence),
        "probs": probs_by_label(prediction.probs, prediction.mask),
        "weight": _num(weight),
        "contribution": _num(contribution),
        "support": _num(support),
        "posterior": probs_by_label(posterior) if posterior is not None else None,
        "model": prediction.model_id,
        "baseline": bool(prediction.baseline),
    }
    if prediction.t_end is not None:
        entry["t_end"] = _num(prediction.t_end - origin)
    if prediction.modality is Modality.FACE:
        entry["faces"] = [
            {
                "box": [int(v) for v in face.box],
                "label": face.label,
                "probs": probs_by_label(face.probs, prediction.mask),
            }
            for face in prediction.faces
        ]
        primary = prediction.detail.get("primary_index")
        entry["primary"] = (
            int(primary) if primary is not None else (0 if prediction.faces else None)
        )
    elif prediction.modality is Modality.VOICE:
        entry["speech"] = _num(prediction.detail.get("speech_fraction"))
    return entry


def _derived_note(
    modality: Modality, output: EncoderOutput | None, estimate: FusedEstimate
) -> str | None:
    if isinstance(output, NoPrediction):
        return output.reason
    if isinstance(output, ModalityPrediction) and modality not in estimate.inputs:
        return f"latest prediction ({estimate.t - output.t:.1f} s old) no longer counts"
    return None


def row_from_estimate(
    estimate: FusedEstimate,
    outputs_at_step: Mapping[Modality, EncoderOutput | None] | None = None,
    notes: Mapping[Modality, str] | Mapping[str, str] | None = None,
    origin: float = 0.0,
) -> dict[str, Any]:
    """One timeline row. Times are written relative to ``origin`` (the live runner passes
    the moment the run started, so live rows count seconds from there, as analysis rows
    count seconds of media).

    ``outputs_at_step`` maps each modality to its latest encoder output up to this step
    (a prediction or a NoPrediction), from which the notes are derived; ``notes`` adds or
    overrides notes per modality (keys are modalities or their names).
    """
    row: dict[str, Any] = {"t": _num(estimate.t - origin)}
    if estimate.abstained or estimate.probs is None:
        row["fused"] = None
        row["abstained"] = estimate.reason or "no estimate"
    else:
        row["fused"] = {
            "label": estimate.label,
            "confidence": _num(estimate.confidence),
            "probs": probs_by_label(estimate.probs),
            "valence": _num(estimate.valence),
            "arousal": _num(estimate.arousal),
            "rule": estimate.rule,
            "disagreement": _num(estimate.disagreement),
            "disagree": bool(estimate.disagree),
            "raw": {
                "label": estimate.raw_label or estimate.label,
                "probs": probs_by_label(
                    estimate.raw_probs if estimate.raw_probs is not None else estimate.probs
                ),
            },
        }
    modalities: dict[str, Any] = {}
    row_notes: dict[str, str] = {}
    outputs = outputs_at_step or {}
    for modality in MODALITIES:
        prediction = estimate.inputs.get(modality)
        if prediction is None:
            modalities[modality.value] = None
        else:
            modalities[modality.value] = prediction_entry(
                prediction,
                estimate.weights.get(modality),
                estimate.contributions.get(modality),
                origin,
                estimate.support.get(modality),
                estimate.posteriors.get(modality),
            )
        derived = _derived_note(modality, outputs.get(modality), estimate)
        if derived:
            row_notes[modality.value] = derived
    for key, note in (notes or {}).items():
        row_notes[Modality(key).value] = note
    row["modalities"] = modalities
    row["notes"] = row_notes
    return row


# --- CSV flattening ------------------------------------------------------------------------

CSV_COLUMNS: tuple[str, ...] = (
    "t",
    "fused_label",
    "fused_confidence",
    *(f"fused_{label}" for label in CANONICAL_LABELS),
    "valence",
    "arousal",
    "disagreement",
    "disagree",
    "fused_raw_label",
    "abstained",
    *(
        column
        for m in MODALITIES
        for column in (
            f"{m.value}_label",
            f"{m.value}_confidence",
            f"{m.value}_weight",
            f"{m.value}_contribution",
            f"{m.value}_support",
            *(f"{m.value}_{label}" for label in CANONICAL_LABELS),
            f"{m.value}_model",
        )
    ),
    "face_faces",
    "voice_speech",
    "notes",
)
"""The CSV columns, in order. Per-modality label columns are empty for labels outside the
model's mask."""


def flatten_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row as {CSV column: value}; None for null (written as an empty cell)."""
    flat: dict[str, Any] = dict.fromkeys(CSV_COLUMNS)
    flat["t"] = row["t"]
    fused = row.get("fused")
    if fused:
        flat["fused_label"] = fused["label"]
        flat["fused_confidence"] = fused["confidence"]
        for label in CANONICAL_LABELS:
            flat[f"fused_{label}"] = fused["probs"].get(label)
        flat["valence"] = fused["valence"]
        flat["arousal"] = fused["arousal"]
        flat["disagreement"] = fused["disagreement"]
        flat["disagree"] = int(bool(fused["disagree"]))
        flat["fused_raw_label"] = (fused.get("raw") or {}).get("label")
    else:
        flat["abstained"] = row.get("abstained", "")
    for m in MODALITIES:
        entry = (row.get("modalities") or {}).get(m.value)
        if not entry:
            continue
        for key in ("label", "confidence", "weight", "contribution", "support", "model"):
            flat[f"{m.value}_{key}"] = entry.get(key)
        for label in CANONICAL_LABELS:
            flat[f"{m.value}_{label}"] = entry["probs"].get(label)
        if m is Modality.FACE:
            flat["face_faces"] = len(entry.get("faces", []))
        elif m is Modality.VOICE:
            flat["voice_speech"] = entry.get("speech")
    notes = row.get("notes") or {}
    flat["notes"] = "; ".join(f"{k}: {v}" for k, v in notes.items()) or None
    return flat


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
    ) -> None:
        """``append``: add rows to the end of an existing file (after
        :func:`resume_point`) instead of replacing it; a CSV header is written only when
        the file is empty or missing."""
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
                try:
                    self._stream = open(  # noqa: SIM115 - closed in close()
                        self.target, "a" if self.append else "w", encoding="utf-8", newline=""
                    )
                except OSError as error:
                    raise EmoappError(
                        f"--out {self.target}: cannot write: {error.strerror or error}"
                    ) from error
                self._owns_stream = True
        return self._stream

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

    A last line without its newline is what a writer killed mid-row leaves: it is cut off
    the file (the only change made), so that appended rows start on a line of their own.
    Raises EmoappError (one line) for a file that is not a timeline emoapp wrote.
    """
    path = Path(target)
    if not path.is_file():
        return None
    try:
        with open(path, "rb+") as file:
            data = file.read()
            whole = data[: data.rfind(b"\n") + 1]
            if len(whole) < len(data):
                file.truncate(len(whole))
    except OSError as error:
        raise EmoappError(f"--out {path}: cannot read: {error.strerror or error}") from error
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


def read_timeline(path: str | Path) -> list[dict[str, Any]]:
    """Read back a JSON-lines timeline (for tests and tools)."""
    with open(path, encoding="utf-8") as file:
        return [json.loads(line) for line in file if line.strip()]
