"""Each reader on a small dataset built here in the real layout (empty media files: the
readers only look at names and tables), auto-detection, groups and --limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from emoapp.evaluation.datasets import (
    DatasetError,
    canonical_label,
    detect_format,
    read_dataset,
)
from tests.evaluation.fixtures import EMOTIONS, write_csv

SHARED_GOEMOTIONS = Path(__file__).resolve().parents[3] / "shared" / "data" / "goemotions"


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def make_goemotions(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "emotions.txt").write_text("\n".join(EMOTIONS) + "\n")
    idx = {name: i for i, name in enumerate(EMOTIONS)}
    rows = [
        ("I love this so much", f"{idx['love']}", "c1"),
        ("haha great and thanks", f"{idx['amusement']},{idx['gratitude']}", "c2"),  # both happy
        ("happy but also sad", f"{idx['joy']},{idx['sadness']}", "c3"),  # conflicting
        ("The bus is at nine", f"{idx['neutral']}", "c4"),
        ("this is gross", f"{idx['disgust']}", "c5"),
        ("broken row without labels", "", "c6"),
    ]
    (root / "test.tsv").write_text("".join(f"{t}\t{labels}\t{c}\n" for t, labels, c in rows))
    return root


def test_canonical_label_uses_the_encoders_aliases():
    assert canonical_label("ANG") == "angry"
    assert canonical_label("calm") == "neutral"
    assert canonical_label("joy") == "happy"
    assert canonical_label("disappointment") == "sad"
    assert canonical_label("other") is None
    assert canonical_label("bewildered") is None


def test_goemotions_keeps_rows_with_one_canonical_label(tmp_path):
    root = make_goemotions(tmp_path / "goemotions")
    assert detect_format(root) == "goemotions"
    assert detect_format(root / "test.tsv") == "goemotions"
    ds = read_dataset(root)
    assert [(i.id, i.label) for i in ds.items] == [
        ("c1", "happy"),
        ("c2", "happy"),
        ("c4", "neutral"),
        ("c5", "disgusted"),
    ]
    assert ds.items[1].meta["labels"] == "amusement,gratitude"
    assert ds.items[0].text == "I love this so much"
    reasons = ds.skipped_reasons()
    assert reasons["labels map to more than one canonical label"] == 1
    assert reasons["not a GoEmotions row (text, label ids)"] == 1
    assert ds.group_by is None


def test_ravdess_merges_the_files_of_one_performance(tmp_path):
    root = tmp_path / "RAVDESS"
    touch(root / "Actor_01" / "01-01-03-01-01-01-01.mp4")  # AV, happy, actor 1 (male)
    touch(root / "Actor_01" / "02-01-03-01-01-01-01.mp4")  # its video-only twin
    touch(root / "Audio" / "Actor_01" / "03-01-03-01-01-01-01.wav")  # its audio-only twin
    touch(root / "Audio" / "Actor_02" / "03-01-02-02-02-02-02.wav")  # calm, actor 2
    touch(root / "Actor_02" / "02-02-06-01-01-01-02.mp4")  # song, fearful, video only
    touch(root / "README.txt")
    assert detect_format(root) == "ravdess"
    ds = read_dataset(root)
    by_id = {i.id: i for i in ds.items}
    assert set(by_id) == {"01-03-01-01-01-01", "01-02-02-02-02-02", "02-06-01-01-01-02"}
    happy = by_id["01-03-01-01-01-01"]
    assert happy.label == "happy" and happy.group == "male"
    assert happy.video is not None and happy.video.name.startswith("01-")
    assert happy.audio == happy.video  # the AV file gives both
    calm = by_id["01-02-02-02-02-02"]
    assert calm.label == "neutral" and calm.meta["emotion"] == "calm"
    assert calm.video is None and calm.group == "female"
    song = by_id["02-06-01-01-01-02"]
    assert song.audio is None and song.meta["vocal_channel"] == "song"
    assert ds.missing["face: no video file (audio-only recording)"] == 1
    by_actor = read_dataset(root, group_by="actor")
    assert {i.group for i in by_actor.items} == {"01", "02"}
    with pytest.raises(DatasetError, match="no such column"):
        read_dataset(root, group_by="height")


def test_cremad_pairs_audio_and_video_and_reads_demographics(tmp_path):
    root = tmp_path / "CREMA-D"
    touch(root / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    touch(root / "VideoFlash" / "1001_DFA_ANG_XX.flv")
    touch(root / "AudioWAV" / "1002_IEO_HAP_HI.wav")
    touch(root / "AudioWAV" / "1003_TIE_SAD_LO.wav")
    write_csv(
        root / "VideoDemographics.csv",
        ["ActorID", "Age", "Sex", "Race", "Ethnicity"],
        [
            [1001, 51, "Male", "Caucasian", "Not Hispanic"],
            [1002, 21, "Female", "African American", "Not Hispanic"],
        ],
    )
    assert detect_format(root) == "cremad"
    ds = read_dataset(root)
    by_id = {i.id: i for i in ds.items}
    anger = by_id["1001_DFA_ANG_XX"]
    assert anger.label == "angry"
    assert anger.audio is not None and anger.audio.suffix == ".wav"
    assert anger.video is not None and anger.video.suffix == ".flv"
    assert anger.group == "Male" and anger.meta["sentence"] == "Don't forget a jacket"
    assert by_id["1002_IEO_HAP_HI"].meta["level"] == "high"
    assert by_id["1003_TIE_SAD_LO"].group is None  # actor missing from the table
    assert ds.missing["group: actor not in the demographics file"] == 1
    races = read_dataset(root, group_by="race")
    assert races.group_by == "Race"
    assert {i.group for i in races.items} == {"Caucasian", "African American", None}


MELD_HEADER = [
    "Sr No.",
    "Utterance",
    "Speaker",
    "Emotion",
    "Sentiment",
    "Dialogue_ID",
    "Utterance_ID",
    "Season",
    "Episode",
    "StartTime",
    "EndTime",
]


def make_meld(root: Path, clips_for: list[tuple[int, int]]) -> Path:
    rows = [
        [
            1,
            "Oh my God, you're back!",
            "Rachel",
            "surprise",
            "positive",
            0,
            0,
            3,
            19,
            "00:14:38,127",
            "00:14:40,378",
        ],
        [
            2,
            "I'm so sorry.",
            "Ross",
            "sadness",
            "negative",
            0,
            1,
            3,
            19,
            "00:14:41,000",
            "00:14:42,500",
        ],
        [
            3,
            "Whatever.",
            "Monica",
            "neutral",
            "neutral",
            1,
            0,
            3,
            20,
            "00:01:00,000",
            "00:01:01,000",
        ],
        [4, "Get out!", "Joey", "anger", "negative", 1, 1, 3, 20, "00:01:02,000", "00:01:03,000"],
    ]
    csv_path = write_csv(root / "test_sent_emo.csv", MELD_HEADER, rows)
    for d, u in clips_for:
        touch(root / "output_repeated_splits_test" / f"dia{d}_utt{u}.mp4")
    touch(root / "train_splits" / "dia0_utt0.mp4")  # another split's clip of the same name
    return csv_path


def test_meld_uses_clips_where_present_and_text_elsewhere(tmp_path):
    csv_path = make_meld(tmp_path / "MELD.Raw", [(0, 0), (1, 1)])
    assert detect_format(tmp_path / "MELD.Raw") == "meld"
    assert detect_format(csv_path) == "meld"
    ds = read_dataset(csv_path, group_by="Speaker")
    by_id = {i.id: i for i in ds.items}
    assert by_id["dia0_utt0"].label == "surprised"
    clip = by_id["dia0_utt0"].video
    assert clip is not None and clip.parent.name == "output_repeated_splits_test"
    assert by_id["dia0_utt1"].video is None and by_id["dia0_utt1"].text == "I'm so sorry."
    assert by_id["dia1_utt1"].label == "angry" and by_id["dia1_utt1"].group == "Joey"
    # Episode times are not cut points in a per-utterance clip.
    assert by_id["dia0_utt0"].start is None
    assert by_id["dia0_utt0"].meta["StartTime"] == "00:14:38,127"
    assert ds.missing["face, voice: clip file not found"] == 2


def test_meld_without_clips_is_text_only(tmp_path):
    root = tmp_path / "meld"
    write_csv(
        root / "dev_sent_emo.csv",
        MELD_HEADER,
        [
            [1, "Hi.", "Ross", "joy", "positive", 0, 0, 1, 1, "0", "1"],
        ],
    )
    ds = read_dataset(root)
    assert ds.items[0].video is None and ds.items[0].text == "Hi."
    assert any("text only" in n for n in ds.notes)


def test_csv_manifest(tmp_path):
    touch(tmp_path / "clips" / "a.wav")
    manifest = write_csv(
        tmp_path / "manifest.csv",
        ["path", "text", "label", "group", "start", "end", "speaker"],
        [
            ["clips/a.wav", "", "ANGRY", "g1", "0.5", "2.5", "s1"],
            ["", "what a lovely day", "joy", "g2", "", "", "s2"],
            ["clips/missing.wav", "", "sad", "g1", "", "", "s1"],  # no file, no text
            ["clips/a.wav", "", "bored", "g1", "", "", "s1"],  # unknown label
            ["clips/a.wav", "", "sad", "g1", "3", "1", "s1"],  # end before start
        ],
    )
    assert detect_format(manifest) == "csv"
    ds = read_dataset(manifest)
    assert len(ds.items) == 2
    first, second = ds.items
    assert first.label == "angry" and first.start == 0.5 and first.end == 2.5
    assert first.audio == tmp_path / "clips" / "a.wav" and first.group == "g1"
    assert second.text == "what a lovely day" and second.video is None
    assert ds.skipped_reasons() == {
        "no media file found and no text": 1,
        "label 'bored' has no canonical mapping": 1,
        "end is not after start": 1,
    }
    assert ds.missing["path: file not found"] == 1
    by_speaker = read_dataset(manifest, group_by="speaker")
    assert [i.group for i in by_speaker.items] == ["s1", "s2"]


def test_limit_takes_a_seeded_sample_in_order(tmp_path):
    rows = [[f"text {i}", ["joy", "anger", "fear"][i % 3]] for i in range(30)]
    manifest = write_csv(tmp_path / "m.csv", ["text", "label"], rows)
    a = read_dataset(manifest, limit=10, seed=3)
    b = read_dataset(manifest, limit=10, seed=3)
    assert [i.id for i in a.items] == [i.id for i in b.items]
    assert len(a.items) == 10 and a.records == 30
    positions = [int(i.text.split()[1]) for i in a.items]  # type: ignore[union-attr]
    assert positions == sorted(positions)


def test_unreadable_inputs_are_one_line_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        read_dataset(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="cannot tell the dataset format"):
        read_dataset(tmp_path / "empty")
    bad = write_csv(tmp_path / "bad.csv", ["text"], [["hi"]])
    with pytest.raises(DatasetError):
        read_dataset(bad, format="csv")


@pytest.mark.skipif(not SHARED_GOEMOTIONS.is_dir(), reason="shared GoEmotions data not present")
def test_real_goemotions_test_split():
    ds = read_dataset(SHARED_GOEMOTIONS)
    assert ds.records + len(ds.skipped) == 5427
    assert len(ds.items) > 4500
    assert set(ds.label_counts()) == {
        "neutral",
        "happy",
        "sad",
        "angry",
        "fearful",
        "disgusted",
        "surprised",
    }
