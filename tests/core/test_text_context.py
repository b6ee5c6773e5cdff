"""Conversation context for the text model: :func:`with_context`, and where transcripts,
recorded speech, the MELD reader and ``evaluate`` attach it."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.capture.transcript import parse_transcript
from emoapp.core.messages import TextEntry, with_context
from emoapp.evaluation.datasets import read_dataset
from tests.evaluation.test_datasets import MELD_HEADER, make_meld, write_csv


def test_each_entry_gets_the_texts_before_it() -> None:
    entries = [TextEntry(float(i), text) for i, text in enumerate(["a", "b  c", " ", "d", "e"])]
    out = with_context(entries, turns=2)
    assert [e.context for e in out] == [(), ("a",), ("a", "b c"), ("a", "b c"), ("b c", "d")]
    assert [e.text for e in out] == [e.text for e in entries]  # nothing else changes
    # What was said before the first entry leads the history; turns=0 adds nothing.
    assert with_context(entries[:1], turns=2, before=["x", "y", "z"])[0].context == ("y", "z")
    assert all(e.context == () for e in with_context(entries, turns=0))
    # An entry that already has context keeps it.
    given_context = TextEntry(0.0, "f", context=("kept",))
    assert with_context([given_context], before=["other"])[0].context == ("kept",)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.text(max_size=8), max_size=10), st.integers(min_value=1, max_value=4))
def test_context_is_the_last_turns_non_blank_texts(texts: list[str], turns: int) -> None:
    out = with_context([TextEntry(0.0, t) for t in texts], turns=turns)
    for i, entry in enumerate(out):
        said = [" ".join(t.split()) for t in texts[:i] if t.strip()]
        assert entry.context == tuple(said[-turns:])


def test_a_subtitle_transcript_is_one_conversation() -> None:
    srt = (
        "1\n00:00:01,000 --> 00:00:02,000\nI got the job!\n\n"
        "2\n00:00:02,500 --> 00:00:03,000\nNo way!\n\n"
        "3\n00:00:03,500 --> 00:00:04,000\nYes way.\n"
    )
    entries = parse_transcript(srt, "srt").entries
    assert [e.context for e in entries] == [(), ("I got the job!",), ("I got the job!", "No way!")]
    # A plain text transcript is one entry, with nothing before it.
    assert parse_transcript("just words", "text").entries[0].context == ()


def test_meld_items_carry_their_dialogue_before_them(tmp_path: Path) -> None:
    ds = read_dataset(make_meld(tmp_path / "meld", []))
    by_id = {i.id: i for i in ds.items}
    assert by_id["dia0_utt0"].context == ()
    assert by_id["dia0_utt1"].context == ("Oh my God, you're back!",)
    assert by_id["dia1_utt1"].context == ("Whatever.",)  # not the other dialogue's lines
    assert {i.domain for i in ds.items} == {"conversation"}


def test_meld_context_includes_unlabelled_lines_and_keeps_the_last_five(tmp_path: Path) -> None:
    rows = [
        [n + 1, f"line {n}", "Ross", "joy" if n != 2 else "bored", "positive", 7, n, 1, 1, "0", "1"]
        for n in range(8)
    ]
    ds = read_dataset(write_csv(tmp_path / "m" / "dev_sent_emo.csv", MELD_HEADER, rows))
    by_id = {i.id: i for i in ds.items}
    assert "dia7_utt2" not in by_id  # its label is not one of MELD's
    assert by_id["dia7_utt3"].context == ("line 0", "line 1", "line 2")
    assert by_id["dia7_utt7"].context == tuple(f"line {n}" for n in range(2, 7))


def test_goemotions_items_are_comments(tmp_path: Path) -> None:
    folder = tmp_path / "goemotions"
    folder.mkdir()
    (folder / "emotions.txt").write_text("joy\nneutral\n")
    (folder / "test.tsv").write_text("so glad\t0\tid1\nok then\t1\tid2\n")
    ds = read_dataset(folder / "test.tsv")
    assert [i.domain for i in ds.items] == ["comments", "comments"]
    assert all(i.context == () for i in ds.items)
