"""Transcripts: SRT, WebVTT, plain text, encodings, and repairs of odd timestamps."""

from __future__ import annotations

from pathlib import Path

import pytest

from emoapp.capture.transcript import (
    decode_text,
    detect_format,
    parse_transcript,
    read_transcript,
)
from emoapp.core.errors import MediaError

SAMPLE_CUES = [
    (0.7, 2.653, "I am so happy to see you today."),
    (2.953, 4.394, "This is wonderful news."),
    (5.094, 6.821, "But I am worried about tomorrow."),
]


@pytest.mark.parametrize("name", ["speech.srt", "speech.vtt"])
def test_sample_subtitles(samples: Path, name: str) -> None:
    transcript = read_transcript(samples / name)
    assert transcript.format == name.rsplit(".", 1)[1]
    assert transcript.encoding == "utf-8" and transcript.warnings == []
    assert [e.text for e in transcript.entries] == [c[2] for c in SAMPLE_CUES]
    for entry, (start, end, _) in zip(transcript.entries, SAMPLE_CUES, strict=True):
        assert entry.t == pytest.approx(start) and entry.end == pytest.approx(end)
    assert all(e.source.endswith(name) for e in transcript.entries)


def test_plain_text_is_one_entry_at_zero(samples: Path) -> None:
    transcript = read_transcript(samples / "transcript.txt")
    assert transcript.format == "text"
    assert len(transcript.entries) == 1
    entry = transcript.entries[0]
    assert entry.t == 0.0 and entry.end is None
    assert entry.text.startswith("I can't believe")


def test_vtt_features_are_understood() -> None:
    text = (
        "\ufeffWEBVTT - a title\n\n"
        "NOTE this is a comment\nspanning lines\n\n"
        "STYLE\n::cue { color: red }\n\n"
        "intro\n00:01.000 --> 00:02.500 align:start position:10%\n"
        "<v Alice>Hello &amp; <i>welcome</i></v>\n<c.loud>everyone</c>\n\n"
        "01:00:00.250 --> 01:00:01.000\nAn hour in\n"
    )
    transcript = parse_transcript(text)
    assert transcript.format == "vtt"
    assert [(e.t, e.end, e.text) for e in transcript.entries] == [
        (1.0, 2.5, "Hello & welcome everyone"),
        (3600.25, 3601.0, "An hour in"),
    ]
    assert transcript.warnings == []


def test_srt_with_crlf_tags_and_missing_numbers() -> None:
    text = (
        "1\r\n00:00:01,5 --> 00:00:02,000\r\n{\\an8}<b>Top</b> line\r\n\r\n"
        "00:00:03.000 --> 00:00:04.000\r\nno number, dot fraction\r\n"
    )
    transcript = parse_transcript(text, "srt")
    assert [(e.t, e.text) for e in transcript.entries] == [
        (1.5, "Top line"),
        (3.0, "no number, dot fraction"),
    ]


def test_bad_timestamps_are_repaired_and_reported(tmp_path: Path) -> None:
    text = (
        "1\n00:00:05,000 --> 00:00:06,000\nfifth\n\n"
        "2\n00:00:01,000 --> 00:00:02,000\nfirst\n\n"
        "3\n-00:00:01,000 --> 00:00:00,500\nnegative\n\n"
        "4\n00:00:08,000 --> 00:00:07,000\nbackwards\n\n"
        "5\n00:00:05,500 --> 00:00:06,500\noverlaps fifth\n\n"
        "6\n00:00:99,000 --> 00:01:00,000\nbad seconds\n\n"
        "7\nthis is not a timing line\nlost\n\n"
        "8\n00:00:09,000 --> 00:00:10,000\n\n"
    )
    path = tmp_path / "odd.srt"
    path.write_text(text, encoding="utf-8")
    transcript = read_transcript(path)
    assert [(e.t, e.end, e.text) for e in transcript.entries] == [
        (0.0, 0.5, "negative"),
        (1.0, 2.0, "first"),
        (5.0, 6.0, "fifth"),
        (5.5, 6.5, "overlaps fifth"),
        (8.0, 8.0, "backwards"),
    ]
    warnings = "\n".join(transcript.warnings)
    assert "cue 3 has a negative time; clamped to 0" in warnings
    assert "cue 4 ends (7.000 s) before it starts (8.000 s)" in warnings
    assert "cue 6 has a bad timing line" in warnings
    assert "cue 7 has no 'start --> end' line" in warnings
    assert "not in time order; sorted" in warnings
    assert "overlap" in warnings
    assert all(str(path) in w and "\n" not in w for w in transcript.warnings)


def test_cp1252_falls_back_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "win.srt"
    path.write_bytes("1\n00:00:01,000 --> 00:00:02,000\nCafé “quoted” – déjà vu\n".encode("cp1252"))
    transcript = read_transcript(path)
    assert transcript.encoding == "cp1252"
    assert transcript.entries[0].text == "Café “quoted” – déjà vu"
    assert len(transcript.warnings) == 1
    assert "not valid UTF-8" in transcript.warnings[0] and "cp1252" in transcript.warnings[0]


def test_latin1_when_cp1252_cannot_decode() -> None:
    text, encoding, warnings = decode_text(b"caf\xe9 \x81", "x.txt")
    assert (text, encoding) == ("café \x81", "latin-1")
    assert warnings and "latin-1" in warnings[0]


def test_utf8_bom_and_utf16_are_read_without_warning(tmp_path: Path) -> None:
    body = "WEBVTT\n\n00:01.000 --> 00:02.000\nnaïve ☺\n"
    for encoding, name in (("utf-8-sig", "bom.vtt"), ("utf-16", "wide.vtt")):
        path = tmp_path / name
        path.write_text(body, encoding=encoding)
        transcript = read_transcript(path)
        assert transcript.warnings == []
        assert transcript.entries[0].text == "naïve ☺"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "no such transcript file"),
        (b"", "transcript file is empty"),
        (b"  \n\n", "transcript file is empty"),
        (b"\x00\x01binary\x00", "not a text file"),
        (b"1\nno timing here\nhello\n", "no subtitle cue could be read"),
    ],
)
def test_unreadable_transcripts_are_refused(tmp_path: Path, content, problem: str) -> None:
    path = tmp_path / "t.srt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MediaError) as caught:
        read_transcript(path)
    assert problem in str(caught.value) and "\n" not in str(caught.value)


def test_format_detection() -> None:
    assert detect_format("WEBVTT\n") == "vtt"
    assert detect_format("1\n00:00:01,000 --> 00:00:02,000\nhi\n") == "srt"
    assert detect_format("just words") == "text"
    assert detect_format("just words", Path("x.vtt")) == "vtt"
