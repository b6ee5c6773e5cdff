"""Calls by speaker: planning (channels, names, silence, transcript routing), the maths
of segments, overlap and valence drops, and whole runs of `emoapp analyze --speakers
channels` over the bundled sample call (steps, utterances, the report)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.calls.analysis import (
    FRAME_S,
    overlap_s,
    parse_names,
    plan_call,
    speech_segments,
    utterance_row,
)
from emoapp.capture.transcript import parse_transcript
from emoapp.cli import main
from emoapp.core.errors import EmoappError
from emoapp.reports.call_report import label_shares, valence_drops
from emoapp.stream.server import schema_path

RATE = 8000


def _burst(seconds: float, seed: int) -> np.ndarray:
    """Speech-like noise: a 150 Hz buzz with noise, shaped by a syllable envelope."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(seconds * RATE)) / RATE
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t) ** 2
    return (0.4 * np.sin(2 * np.pi * 150 * t) + 0.1 * rng.standard_normal(len(t))) * envelope


def _stereo(path: Path, left: list[tuple[float, float]], right: list[tuple[float, float]] | None,
            seconds: float = 6.0) -> Path:  # fmt: skip
    channels = [np.zeros(round(seconds * RATE)) for _ in range(2 if right is not None else 1)]
    for index, spans in enumerate([left, right] if right is not None else [left]):
        for k, (start, end) in enumerate(spans):
            a = round(start * RATE)
            burst = _burst(end - start, seed=10 * index + k)
            channels[index][a : a + len(burst)] = burst
    sf.write(path, np.stack(channels, axis=1), RATE, subtype="PCM_16")
    return path


LEFT = [(0.5, 2.0), (3.0, 4.0)]
RIGHT = [(1.8, 2.8), (4.5, 5.5)]


def test_each_channel_is_a_speaker_with_its_own_segments(tmp_path: Path) -> None:
    call = _stereo(tmp_path / "call.wav", LEFT, RIGHT)
    plan = plan_call(call, names=["agent", "customer"])
    assert [(s.name, s.channel) for s in plan.speakers] == [("agent", 0), ("customer", 1)]
    assert plan.warnings == []
    for speaker, spans in zip(plan.speakers, [LEFT, RIGHT], strict=True):
        assert len(speaker.segments) == len(spans)
        for (start, end), (want_start, want_end) in zip(speaker.segments, spans, strict=True):
            assert abs(start - want_start) <= 2 * FRAME_S and abs(end - want_end) <= 2 * FRAME_S
    both = overlap_s(plan.speakers[0].segments, plan.speakers[1].segments)
    assert abs(both - 0.2) <= 0.05


def test_bad_call_input_says_what_and_analyses_what_it_can(tmp_path: Path, samples: Path):
    silent_right = _stereo(tmp_path / "half.wav", LEFT, [])
    plan = plan_call(silent_right, names=["agent", "customer", "supervisor"])
    assert "3 speaker names for 2 channel(s): supervisor unused" in plan.warnings
    assert any(w.startswith("channel 2 (customer) is silent") for w in plan.warnings)
    assert [s.name for s in plan.active] == ["agent"]

    mono = _stereo(tmp_path / "mono.wav", LEFT, None)
    plan = plan_call(mono, names=["agent"])
    assert plan.warnings == ["mono.wav has one audio channel: analysed as one speaker"]
    assert [(s.name, s.channel) for s in plan.speakers] == [("agent", None)]

    quiet = _stereo(tmp_path / "quiet.wav", [], [])
    with pytest.raises(EmoappError, match="every channel is silent"):
        plan_call(quiet)
    with pytest.raises(EmoappError, match="has no audio track"):
        plan_call(samples / "face_only.mp4")
    with pytest.raises(EmoappError, match="given twice"):
        parse_names("Agent,agent")
    with pytest.raises(EmoappError, match="a name is empty"):
        parse_names("agent,,customer")


def test_transcript_cues_go_to_their_speaker(tmp_path: Path) -> None:
    call = _stereo(tmp_path / "call.wav", LEFT, RIGHT)
    vtt = tmp_path / "call.vtt"
    vtt.write_text(
        "WEBVTT\n\n00:00.500 --> 00:02.000\n<v Agent>Hello, how can I help?\n\n"
        "00:01.800 --> 00:02.800\n<v.loud Customer>I am angry!</v>\n\n"
        "00:03.000 --> 00:04.000\nNobody said this.\n\n"
        "00:04.500 --> 00:05.500\n<v Bob>Who am I?\n"
    )
    plan = plan_call(call, vtt, ["agent", "CUSTOMER"])
    agent, customer = plan.speakers
    assert [e.text for e in agent.entries] == ["Hello, how can I help?"]
    assert [(e.text, e.speaker) for e in customer.entries] == [("I am angry!", "CUSTOMER")]
    assert any("1 cue(s) by speakers that match no name" in w and "Bob (1)" in w
               for w in plan.warnings)  # fmt: skip
    assert any("1 cue(s) have no speaker tag" in w for w in plan.warnings)

    srt = tmp_path / "call.srt"
    srt.write_text(
        "1\n00:00:00,500 --> 00:00:02,000\nagent: Hello there.\n\n"
        "2\n00:00:01,800 --> 00:00:02,800\nCustomer: This is awful.\n"
    )
    plan = plan_call(call, srt, ["Agent", "Customer"])
    assert [e.text for e in plan.speakers[0].entries] == ["Hello there."]
    assert [e.text for e in plan.speakers[1].entries] == ["This is awful."]

    plan = plan_call(call, vtt, [])  # default names: speaker 1, speaker 2
    assert not any(s.entries for s in plan.speakers)
    assert any(
        "its speakers (Agent, Bob, Customer) match no speaker name (speaker 1, speaker 2)" in w
        and "--speaker-names Agent,Bob,Customer" in w
        for w in plan.warnings
    )


def test_webvtt_voice_tags_are_read_and_stripped() -> None:
    parsed = parse_transcript(
        "WEBVTT\n\n00:01.000 --> 00:02.000\n<v Ann Lee>Hi <i>there</i></v>\n", "vtt"
    )
    assert [(e.text, e.speaker) for e in parsed.entries] == [("Hi there", "Ann Lee")]


# --- properties ----------------------------------------------------------------------------

levels = st.lists(st.floats(-120, 0), min_size=1, max_size=400).map(np.array)


@given(levels)
@settings(max_examples=60, deadline=None)
def test_segments_are_ordered_apart_and_long_enough(values: np.ndarray) -> None:
    segments = speech_segments(values)
    end = len(values) * FRAME_S
    for start, stop in segments:
        assert 0 <= start < stop <= end + 1e-6 and stop - start >= 0.2 - 1e-6
    for (_, a_end), (b_start, _) in itertools.pairwise(segments):
        assert b_start - a_end >= 0.3 - 1e-6


spans = st.lists(st.tuples(st.floats(0, 100), st.floats(0.01, 5)), max_size=12).map(
    lambda items: _disjoint(items)
)


def _disjoint(items: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for start, length in sorted(items):
        if not out or start > out[-1][1]:
            out.append((start, start + length))
    return out


@given(spans, spans)
@settings(max_examples=80, deadline=None)
def test_overlap_is_symmetric_and_bounded(a, b) -> None:
    both = overlap_s(a, b)
    assert both == pytest.approx(overlap_s(b, a))
    assert 0 <= both <= min(sum(e - s for s, e in a), sum(e - s for s, e in b)) + 1e-9
    assert overlap_s(a, a) == pytest.approx(sum(e - s for s, e in a))


@given(st.lists(st.floats(0, 1), min_size=1, max_size=200))
@settings(max_examples=80, deadline=None)
def test_valence_drops_are_real_falls_far_apart(values: list[float]) -> None:
    series = [(0.5 * i, v) for i, v in enumerate(values)]
    drops = valence_drops(series)
    assert len(drops) <= 3
    times = [d["t"] for d in drops]
    assert times == sorted(times)
    assert all(b - a >= 5.0 for a, b in itertools.pairwise(times))
    for drop in drops:
        assert drop["drop"] >= 0.05 - 1e-9
        assert drop["valence_from"] - drop["valence_to"] == pytest.approx(drop["drop"], abs=1e-3)
        assert 0 <= drop["t"] - drop["from_t"] <= 5.0
    if not drops:  # then no fall of 0.05 within 5 s anywhere
        for i, (t, v) in enumerate(series):
            assert all(u - v < 0.05 for s, u in series[: i + 1] if s >= t - 5.0)


def test_label_shares_and_an_utterance_row() -> None:
    def row(t: float, label: str | None, valence: float = 0.5) -> dict:
        probs = {name: (0.9 if name == label else 0.0) for name in ("neutral", "happy", "angry")}
        fused = None if label is None else {"label": label, "probs": probs, "valence": valence,
                                             "arousal": 0.5, "rule": "weighted"}  # fmt: skip
        voice = {"label": label, "probs": probs, "confidence": 0.9, "model": "m"}
        modalities = {"face": None, "voice": voice if label else None, "text": None}
        notes = {} if label else {"voice": "silence"}
        return {"t": t, "fused": fused, "modalities": modalities, "notes": notes}

    rows = [row(0.0, None), row(0.5, "angry", 0.2), row(1.0, "angry", 0.3), row(1.5, "happy"),
            row(4.0, "happy")]  # fmt: skip
    shares = label_shares(rows, [(0.4, 1.0)])
    assert shares == {
        "happy": pytest.approx(1 / 3, abs=1e-3),
        "angry": pytest.approx(2 / 3, abs=1e-3),
    }
    utterance = utterance_row(rows, 0.4, 1.0, "customer")
    assert (utterance["t"], utterance["end"], utterance["speaker"]) == (0.4, 1.0, "customer")
    assert utterance["rows"] == 3 and utterance["fused"]["label"] == "angry"
    assert utterance["fused"]["valence"] == pytest.approx((0.2 + 0.3 + 0.5) / 3, abs=1e-6)
    assert utterance["modalities"]["voice"]["share"] == 1.0
    assert utterance_row(rows, 2.2, 2.5, "x")["fused"] is None  # no row from 2.2 to 3.0 s


# --- whole runs over the sample call -------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict:
    return json.loads(schema_path().read_text(encoding="utf-8"))


def test_the_sample_call_by_step_with_a_report(
    samples: Path, tmp_path: Path, capsys, schema
) -> None:
    out, report = tmp_path / "call.jsonl", tmp_path / "report"
    code = main([
        "analyze", str(samples / "call.flac"), "--speakers", "channels",
        "--speaker-names", "Agent,Customer", "--transcript", str(samples / "call.vtt"),
        "--profile", "baseline", "--vad", "energy", "--out", str(out), "--report", str(report),
    ])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    speakers = [row["speaker"] for row in rows]
    assert set(speakers) == {"Agent", "Customer"} and speakers == sorted(speakers)
    for row in rows:
        jsonschema.validate(row, schema)
        assert row["modalities"]["face"] is None
    for name in ("Agent", "Customer"):
        mine = [r for r in rows if r["speaker"] == name]
        assert [r["t"] for r in mine] == sorted(r["t"] for r in mine)
        assert any(r["modalities"]["text"] for r in mine)  # its own cues were analysed
    assert "angry about it" not in out.read_text()  # the transcript's words stay out
    assert "[channel 1 (Agent)] analysed call.flac" in err
    assert "[channel 2 (Customer)] analysed call.flac" in err

    summary = json.loads((report / "summary.json").read_text())
    agent, customer = summary["speakers"]
    assert (agent["name"], agent["cues"], customer["cues"]) == ("Agent", 4, 3)
    assert agent["talk_share"] + customer["talk_share"] == pytest.approx(1.0, abs=1e-3)
    assert 0.2 <= summary["overlap_s"] <= 0.8  # the sample's one overlap lasts 0.4 s
    for speaker in (agent, customer):
        assert sum(speaker["label_share"].values()) == pytest.approx(1.0, abs=1e-3)
        assert len(speaker["valence_drops"]) <= 3
    page = (report / "report.html").read_text()
    assert page.count("<svg") == 5  # talk time, and two figures per speaker
    assert "<script" not in page and "<link" not in page and 'src="http' not in page
    assert "not know what anyone feels" in page
    assert "Text from the transcript." in page  # a transcript wins: nothing is transcribed
    assert "no words: text from the transcript was analysed but is left out" in page
    assert "angry about it" not in page and "<audio" not in page


def test_utterance_rows_follow_the_speech_segments(tmp_path: Path, capsys, schema) -> None:
    call, out = _stereo(tmp_path / "call.wav", LEFT, RIGHT), tmp_path / "utterances.jsonl"
    code = main([
        "analyze", str(call), "--speakers", "channels", "--by", "utterance",
        "--speaker-names", "agent,customer", "--profile", "baseline", "--vad", "energy",
        "--asr", "off", "--out", str(out), "-q",
    ])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for row in rows:
        jsonschema.validate(row, schema)
    got = [(r["speaker"], r["t"], r["end"]) for r in rows]
    want = [("agent", *span) for span in LEFT] + [("customer", *span) for span in RIGHT]
    assert len(got) == len(want)
    for (speaker, start, end), (want_speaker, want_start, want_end) in zip(got, want, strict=True):
        assert speaker == want_speaker
        assert abs(start - want_start) <= 2 * FRAME_S and abs(end - want_end) <= 2 * FRAME_S
    assert all(r["rows"] >= 1 and r["modalities"]["voice"] for r in rows)


def test_the_sample_calls_utterances_start_with_its_turns(samples: Path, tmp_path: Path, capsys):
    """The customer's segments found in the sample call start where call.vtt says."""
    plan = plan_call(samples / "call.flac", samples / "call.vtt", ["Agent", "Customer"])
    starts = {name: [e.t for e in s.entries] for name, s in ((s.name, s) for s in plan.speakers)}
    for speaker in plan.speakers:
        for cue_start in starts[speaker.name]:
            assert min(abs(start - cue_start) for start, _ in speaker.segments) < 0.1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--text", "hi"], "--text is not tied to a speaker"),
        (["--resume", "--out", "x.jsonl"], "--resume does not work with a call"),
    ],
)
def test_call_options_that_do_not_fit(samples: Path, capsys, extra, message) -> None:
    code = main(["analyze", str(samples / "call.flac"), "--speakers", "channels", *extra])
    assert code == 2
    assert message in capsys.readouterr().err


def test_one_channel_of_a_stereo_file_is_decoded_alone(tmp_path: Path) -> None:
    from emoapp.capture.media import iter_audio_chunks
    from emoapp.core.errors import MediaError

    call = _stereo(tmp_path / "call.wav", LEFT, [])
    left = np.concatenate([c.samples for c in iter_audio_chunks(call, 8000, channel=0)])
    right = np.concatenate([c.samples for c in iter_audio_chunks(call, 8000, channel=1)])
    mixed = np.concatenate([c.samples for c in iter_audio_chunks(call, 8000)])
    assert np.abs(left).max() > 0.3 and np.abs(right).max() == 0.0
    np.testing.assert_allclose(mixed, left / 2, atol=1e-4)
    with pytest.raises(MediaError, match="has 2 audio channel"):
        next(iter(iter_audio_chunks(call, 8000, channel=2)))
