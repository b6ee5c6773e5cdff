"""The export guard: a timeline goes to a file with scores only, unless the person asks
for more, all at once, and audited.

:func:`export_timeline` takes timeline rows (the format of
:mod:`emoapp.recorded.timeline`: ``t``, ``fused``, ``abstained``, ``modalities`` {face,
voice, text}, ``notes``) and writes them as JSON lines or CSV.

*Scores only by default.* Rows are copied through an allow-list of score fields: the
fused estimate, each modality's time (and end, for an audio window), label,
probabilities, confidence, weight and contribution, model id, the input channel it came
from (``origin``: ``voice`` for a text prediction of heard words), face boxes, the share
of speech; plus the pipeline's notes (why
a modality said nothing). Typed or transcribed text (``text``, ``transcript`` keys, at
the row or in a modality entry) is kept only with ``include_text``; references to media
(``media``, ``frame``, ``audio``, ``*_path`` and the like) only with ``include_media``.
Any other key is dropped, and named in :attr:`ExportResult.dropped`: a new score field
must be added to the allow-list here on purpose (a test compares the allow-list with
what :func:`emoapp.core.rows.row_from_estimate` produces).

*All or nothing.* The file is written to a temporary file next to the target, fsynced
and renamed over it (:mod:`emoapp.privacy.atomic`): a full disk or a crash leaves any
earlier export intact and no partial file behind.

*Audited.* Each export adds a line to the audit log: kind, path, format, which fields
(scores / text / media), row count; never the rows.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from emoapp.core.errors import EmoappError
from emoapp.privacy.atomic import atomic_writer
from emoapp.privacy.audit import AuditLog, ExportFields

ExportFormat = Literal["jsonl", "csv"]

ROW_SCORE_KEYS = ("t", "fused", "abstained", "modalities", "notes")
FUSED_KEYS = (
    "label",
    "confidence",
    "probs",
    "valence",
    "arousal",
    "rule",
    "disagreement",
    "disagree",
    "uncertain",
    "raw",
)
ENTRY_SCORE_KEYS = (
    "t",
    "t_end",
    "label",
    "confidence",
    "probs",
    "weight",
    "contribution",
    "support",
    "posterior",
    "model",
    "baseline",
    "origin",
    "faces",
    "primary",
    "speech",
    "explain",
)
FACE_KEYS = ("box", "label", "probs", "saliency")
EXPLAIN_TEXT_KEYS = ("word",)
"""Keys of an ``explain`` object's words that hold the words themselves (text)."""
TEXT_KEYS = ("text", "transcript")
"""Keys that hold typed or transcribed text."""
MEDIA_KEYS = (
    "media",
    "media_path",
    "frame",
    "frame_path",
    "image",
    "image_path",
    "audio",
    "audio_path",
    "clip",
    "snapshot",
)
"""Keys that hold media, or references to media files."""


class ExportError(EmoappError):
    """An export could not be written (the earlier file, if any, is unchanged)."""


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote."""

    path: Path
    format: ExportFormat
    rows: int
    fields: ExportFields
    dropped: frozenset[str] = field(default_factory=frozenset)
    """Keys left out because they are not on the allow-list (``modalities.face.x``)."""
    audited: bool = True


def export_row(
    row: Mapping[str, Any],
    include_text: bool = False,
    include_media: bool = False,
    dropped: set[str] | None = None,
) -> dict[str, Any]:
    """A copy of ``row`` with only the fields the export may hold."""
    extra = (TEXT_KEYS if include_text else ()) + (MEDIA_KEYS if include_media else ())
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key == "fused":
            out[key] = _pick(value, FUSED_KEYS, "fused", dropped) if value is not None else None
        elif key == "modalities":
            out[key] = {
                name: (_entry(name, entry, extra, dropped) if isinstance(entry, Mapping) else None)
                for name, entry in (value or {}).items()
            }
        elif key == "notes":
            out[key] = {str(k): str(v) for k, v in (value or {}).items()}
        elif key in ROW_SCORE_KEYS or key in extra:
            out[key] = _copy(value)
        elif dropped is not None:
            dropped.add(key)
    return out


def _entry(
    name: str, entry: Mapping[str, Any], extra: tuple[str, ...], dropped: set[str] | None
) -> dict[str, Any]:
    out = _pick(entry, ENTRY_SCORE_KEYS + extra, f"modalities.{name}", dropped)
    if isinstance(out.get("faces"), list):
        out["faces"] = [
            _pick(face, FACE_KEYS + extra, f"modalities.{name}.faces", dropped)
            for face in out["faces"]
            if isinstance(face, Mapping)
        ]
    explain = out.get("explain")
    if (
        isinstance(explain, dict)
        and isinstance(explain.get("words"), list)
        and not (set(TEXT_KEYS) & set(extra))
    ):
        # the attributed words are text: only their positions and weights stay
        explain["words"] = [
            {k: v for k, v in word.items() if k not in EXPLAIN_TEXT_KEYS}
            for word in explain["words"]
            if isinstance(word, dict)
        ]
    return out


def _pick(
    mapping: Mapping[str, Any], keys: tuple[str, ...], where: str, dropped: set[str] | None
) -> dict[str, Any]:
    if dropped is not None:
        dropped.update(f"{where}.{key}" for key in mapping if key not in keys)
    return {key: _copy(mapping[key]) for key in mapping if key in keys}


def _copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_copy(v) for v in value]
    return value


def _format_of(path: Path, fmt: str | None) -> ExportFormat:
    if fmt is None:
        return "csv" if path.suffix.lower() == ".csv" else "jsonl"
    if fmt not in ("jsonl", "csv"):
        raise ExportError(f"export format {fmt!r}: use jsonl or csv")
    return fmt  # type: ignore[return-value]  # checked just above


def _check_target(path: Path) -> None:
    if path.is_dir():
        raise ExportError(f"export to {path}: is a folder; give a file name")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"export to {path}: folder {parent} does not exist")


def export_timeline(
    rows: Iterable[Mapping[str, Any]],
    path: str | os.PathLike[str],
    include_text: bool = False,
    include_media: bool = False,
    fmt: ExportFormat | None = None,
    audit: AuditLog | None = None,
    kind: str = "timeline",
) -> ExportResult:
    """Write ``rows`` to ``path`` (see the module docstring); the format follows the
    suffix (``.csv``, else JSON lines) unless ``fmt`` is given. ``audit`` defaults to the
    audit log in the config folder."""
    from emoapp.core.rows import CSV_COLUMNS, flatten_row

    target = Path(path)
    format_ = _format_of(target, fmt)
    _check_target(target)
    extra_columns = (("text",) if include_text else ()) + (("media",) if include_media else ())
    dropped: set[str] = set()
    count = 0
    try:
        with atomic_writer(target, newline="" if format_ == "csv" else None) as stream:
            writer: csv.DictWriter[str] | None = None
            if format_ == "csv":
                writer = csv.DictWriter(
                    stream, fieldnames=[*CSV_COLUMNS, *extra_columns], lineterminator="\n"
                )
                writer.writeheader()
            for index, row in enumerate(rows):
                if not isinstance(row, Mapping) or "t" not in row:
                    raise ExportError(f"export: row {index + 1} is not a timeline row")
                clean = export_row(row, include_text, include_media, dropped)
                if writer is not None:
                    flat = flatten_row(clean)
                    if include_text:
                        flat["text"] = _joined(clean, TEXT_KEYS)
                    if include_media:
                        flat["media"] = _joined(clean, MEDIA_KEYS)
                    writer.writerow(flat)
                else:
                    stream.write(json.dumps(clean, ensure_ascii=False, separators=(",", ":")))
                    stream.write("\n")
                count += 1
    except (KeyError, TypeError, AttributeError) as error:
        raise ExportError(f"export: a row is not a timeline row ({error})") from error
    except OSError as error:
        raise ExportError(
            f"export to {target} failed: {error.strerror or error}; "
            "nothing was written (an earlier file there is unchanged)"
        ) from error
    fields = ExportFields(scores=True, text=include_text, media=include_media)
    audited = (audit if audit is not None else AuditLog()).exported(
        kind, target, format_, fields, count
    )
    return ExportResult(target, format_, count, fields, frozenset(dropped), audited)


def _joined(row: Mapping[str, Any], keys: tuple[str, ...]) -> str | None:
    """The text (or media) values of a row and its modality entries, for one CSV cell."""
    found = [f"{key}: {_cell(row[key])}" for key in keys if row.get(key) is not None]
    for name, entry in (row.get("modalities") or {}).items():
        if isinstance(entry, Mapping):
            found += [
                f"{name}.{key}: {_cell(entry[key])}" for key in keys if entry.get(key) is not None
            ]
    return " | ".join(found) or None


def _cell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
