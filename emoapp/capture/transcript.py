"""Reading transcripts (SRT, WebVTT, plain text) into timestamped text entries.

Each subtitle cue becomes a :class:`~emoapp.core.messages.TextEntry` at the cue's start
(``t``, media time in seconds) with its end, and its speaker when a WebVTT voice tag
(``<v Name>``) names one; a plain-text file is one entry at t=0.

Encodings: UTF-8 (with or without a byte-order mark) is tried first, then UTF-16 when the
file starts with a UTF-16 byte-order mark. Anything else is read as Windows-1252 (cp1252,
the usual encoding of subtitles made on Windows), or Latin-1 for the five bytes cp1252
leaves undefined; both always decode, so the fallback is stated in ``warnings`` rather
than guessed silently. A file with NUL bytes (binary, not text) is refused with a
one-line :class:`~emoapp.core.errors.MediaError`.

Odd timestamps are repaired, never fatal, and each repair is reported in ``warnings``:
a cue line that does not parse is skipped; a negative time is clamped to 0; an end
before its start is set to the start; cues out of order are sorted by start (stable);
overlapping cues are kept (two speakers can talk at once) and reported.

The functions return warnings as data; the caller (``emoapp analyze``) prints them on
stderr.
"""

from __future__ import annotations

import html
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from emoapp.core.errors import MediaError
from emoapp.core.messages import TextEntry, with_context

TranscriptFormat = Literal["srt", "vtt", "text"]

_MAX_BYTES = 50 * 1024 * 1024
"""A transcript larger than this is surely not one (refused rather than read whole)."""

# [-][HH:]MM:SS[,.]mmm  (hours optional as in WebVTT; 1-3 digit fractions tolerated)
_TIME = r"(-?)(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[,.](\d{1,3}))?"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(?:\s+.*)?$")
_TAG = re.compile(r"<[^>]*>")  # <i>, <b>, <v Speaker>, <c.class>, <00:01.000>
_ASS_TAG = re.compile(r"\{\\[^}]*\}")  # {\an8} and friends in SRT
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]+)>")  # WebVTT <v Name>, <v.loud Name>


@dataclass(frozen=True)
class Transcript:
    """Entries in time order, the encoding they were read with, and any repairs made."""

    entries: list[TextEntry]
    format: TranscriptFormat
    encoding: str = "utf-8"
    warnings: list[str] = field(default_factory=list)


def decode_text(data: bytes, name: str = "transcript") -> tuple[str, str, list[str]]:
    """Bytes -> (text, encoding, warnings), with the fallbacks described above."""
    warnings: list[str] = []
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), "utf-16", warnings
        except UnicodeDecodeError as error:
            raise MediaError(f"{name}: starts like UTF-16 but does not decode: {error}") from error
    if b"\x00" in data:
        raise MediaError(f"{name}: not a text file (it contains NUL bytes)")
    try:
        return data.decode("utf-8-sig"), "utf-8", warnings
    except UnicodeDecodeError as error:
        where = f"byte {error.start}"
    try:
        text, encoding = data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        text, encoding = data.decode("latin-1"), "latin-1"
    warnings.append(
        f"{name}: not valid UTF-8 (at {where}); read as {encoding} instead — "
        "save it as UTF-8 if characters look wrong"
    )
    return text, encoding, warnings


def _seconds(sign: str, hours: str | None, minutes: str, seconds: str, frac: str | None) -> float:
    if int(minutes) >= 60 or int(seconds) >= 60:
        raise ValueError("minutes and seconds must be below 60")
    value = int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds)
    if frac:
        value += int(frac) / 10 ** len(frac)
    return -value if sign else float(value)


def _clean(lines: list[str]) -> str:
    text = " ".join(line.strip() for line in lines if line.strip())
    text = _ASS_TAG.sub("", _TAG.sub("", text))
    return " ".join(html.unescape(text).split())


def _split_blocks(text: str) -> list[list[str]]:
    blocks: list[list[str]] = []
    current: list[str] = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.strip():
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _parse_cues(text: str, name: str, kind: TranscriptFormat) -> tuple[list[TextEntry], list[str]]:
    """Cues of an SRT or WebVTT text, in file order, with per-cue warnings."""
    entries: list[TextEntry] = []
    warnings: list[str] = []
    blocks = _split_blocks(text)
    if kind == "vtt":
        if not blocks or not blocks[0][0].lstrip("\ufeff").startswith("WEBVTT"):
            warnings.append(f"{name}: no WEBVTT header; reading it anyway")
        else:
            blocks = blocks[1:]
    for number, block in enumerate(blocks, start=1):
        if kind == "vtt" and block[0].startswith(("NOTE", "STYLE", "REGION")):
            continue
        timing_at = next((i for i, line in enumerate(block[:3]) if "-->" in line), None)
        if timing_at is None:
            warnings.append(f"{name}: cue {number} has no 'start --> end' line; skipped")
            continue
        match = _TIMING.match(block[timing_at])
        try:
            if match is None:
                raise ValueError("unreadable times")
            groups = match.groups()
            start, end = _seconds(*groups[:5]), _seconds(*groups[5:])
        except ValueError:
            warnings.append(
                f"{name}: cue {number} has a bad timing line {block[timing_at].strip()!r}; skipped"
            )
            continue
        if start < 0 or end < 0:
            warnings.append(f"{name}: cue {number} has a negative time; clamped to 0")
            start, end = max(start, 0.0), max(end, 0.0)
        if end < start:
            warnings.append(
                f"{name}: cue {number} ends ({end:.3f} s) before it starts ({start:.3f} s); "
                "end set to start"
            )
            end = start
        raw = block[timing_at + 1 :]
        body = _clean(raw)
        if not body:
            continue
        voice = _VOICE.search(" ".join(raw))
        speaker = " ".join(voice.group(1).split()) if voice else None
        entries.append(TextEntry(t=start, text=body, source=name, end=end, speaker=speaker))
    return entries, warnings


def _order(entries: list[TextEntry], name: str) -> tuple[list[TextEntry], list[str]]:
    """Sort by start (stable) and report disorder and overlaps."""
    warnings: list[str] = []
    ordered = sorted(entries, key=lambda e: e.t)
    if ordered != entries:
        warnings.append(f"{name}: cues are not in time order; sorted by start time")
    overlaps = sum(
        1
        for before, after in itertools.pairwise(ordered)
        if before.end is not None and after.t < before.end - 1e-9
    )
    if overlaps:
        warnings.append(f"{name}: {overlaps} cue(s) overlap the one before; kept as they are")
    return ordered, warnings


def detect_format(text: str, path: Path | None = None) -> TranscriptFormat:
    """By extension (.srt, .vtt), else by content (a WEBVTT header, or timing lines)."""
    suffix = path.suffix.lower() if path is not None else ""
    if suffix == ".srt":
        return "srt"
    if suffix in (".vtt", ".webvtt"):
        return "vtt"
    stripped = text.lstrip("\ufeff \t\r\n")
    if stripped.startswith("WEBVTT"):
        return "vtt"
    if any(_TIMING.match(line) for line in stripped.splitlines()[:20]):
        return "srt"
    return "text"


def parse_transcript(
    text: str, format: TranscriptFormat | None = None, name: str = "transcript"
) -> Transcript:
    """Parse transcript text (already decoded); ``format`` None detects it from content."""
    kind = format or detect_format(text)
    if kind == "text":
        body = " ".join(text.lstrip("\ufeff").split())
        entries = [TextEntry(t=0.0, text=body, source=name)] if body else []
        return Transcript(entries=entries, format="text")
    entries, warnings = _parse_cues(text, name, kind)
    entries, order_warnings = _order(entries, name)
    # Cues are one conversation: each carries the cues before it as context.
    entries = with_context(entries)
    return Transcript(entries=entries, format=kind, warnings=warnings + order_warnings)


def read_transcript(path: str | Path) -> Transcript:
    """Read an SRT, WebVTT or plain-text transcript file.

    Raises MediaError (one line) for a missing, empty, unreadable, binary or huge file,
    and for a subtitle file in which no cue could be read.
    """
    path = Path(path)
    name = str(path)
    if not path.exists():
        raise MediaError(f"{name}: no such transcript file")
    if path.is_dir():
        raise MediaError(f"{name}: is a folder, not a transcript file")
    try:
        size = path.stat().st_size
        if size > _MAX_BYTES:
            raise MediaError(f"{name}: {size / 1e6:.0f} MB is too large for a transcript")
        data = path.read_bytes()
    except OSError as error:
        raise MediaError(f"{name}: cannot read: {error.strerror or error}") from error
    if not data.strip():
        raise MediaError(f"{name}: transcript file is empty")
    text, encoding, warnings = decode_text(data, name)
    kind = detect_format(text, path)
    transcript = parse_transcript(text, kind, name)
    if kind != "text" and not transcript.entries:
        raise MediaError(f"{name}: no subtitle cue could be read (is it really {kind.upper()}?)")
    return Transcript(
        entries=transcript.entries,
        format=transcript.format,
        encoding=encoding,
        warnings=warnings + transcript.warnings,
    )
