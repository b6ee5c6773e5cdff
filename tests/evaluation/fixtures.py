"""Small datasets in each format's real layout, built from the committed sample media."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np


def copy(source: Path, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    return target


def write_csv(path: Path, header: list[str], rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def blank_video(path: Path, seconds: float = 2.0, fps: int = 5) -> Path:
    """A grey video with no face and no sound."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for _ in range(int(seconds * fps)):
            image = np.full((120, 160, 3), 128, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def remux_to_flv(source: Path, target: Path) -> Path:
    """The same streams in an FLV container (CREMA-D ships its videos as .flv)."""
    import av

    target.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(source)) as src, av.open(str(target), "w", format="flv") as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is None:  # the demuxer's final flush packets
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
    return target


def make_ravdess(root: Path, samples: Path) -> Path:
    av_clip, video_only, audio = (
        samples / "face_speech.mp4",
        samples / "face_only.mp4",
        samples / "speech.wav",
    )
    copy(av_clip, root / "Actor_01" / "01-01-03-01-01-01-01.mp4")  # happy, male, AV
    copy(av_clip, root / "Actor_02" / "01-01-05-02-01-01-02.mp4")  # angry, female, AV
    copy(video_only, root / "Actor_02" / "02-01-04-01-01-01-02.mp4")  # sad, video only
    copy(audio, root / "Audio_Speech" / "Actor_01" / "03-01-06-01-02-01-01.wav")  # fearful
    return root


def make_cremad(root: Path, samples: Path) -> Path:
    copy(samples / "speech.wav", root / "AudioWAV" / "1001_DFA_ANG_XX.wav")
    copy(samples / "speech.wav", root / "AudioWAV" / "1002_IEO_HAP_HI.wav")
    copy(samples / "speech.wav", root / "AudioWAV" / "1002_TIE_NEU_XX.wav")
    remux_to_flv(samples / "face_speech.mp4", root / "VideoFlash" / "1001_DFA_ANG_XX.flv")
    write_csv(
        root / "VideoDemographics.csv",
        ["ActorID", "Age", "Sex", "Race", "Ethnicity"],
        [
            [1001, 51, "Male", "Caucasian", "Not Hispanic"],
            [1002, 21, "Female", "African American", "Not Hispanic"],
        ],
    )
    return root


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


def make_meld(root: Path, samples: Path) -> Path:
    rows = [
        [
            1,
            "I am so happy to see you today.",
            "Rachel",
            "joy",
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
            "I feel sad and lonely tonight.",
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
            "Why would you do that? I am furious.",
            "Monica",
            "anger",
            "negative",
            1,
            0,
            3,
            20,
            "00:01:00,000",
            "00:01:01,000",
        ],
    ]
    write_csv(root / "test_sent_emo.csv", MELD_HEADER, rows)
    copy(samples / "face_speech.mp4", root / "output_repeated_splits_test" / "dia0_utt0.mp4")
    return root / "test_sent_emo.csv"


EMOTIONS = [
    "admiration",
    "amusement",
    "anger",
    "annoyance",
    "approval",
    "caring",
    "confusion",
    "curiosity",
    "desire",
    "disappointment",
    "disapproval",
    "disgust",
    "embarrassment",
    "excitement",
    "fear",
    "gratitude",
    "grief",
    "joy",
    "love",
    "nervousness",
    "optimism",
    "pride",
    "realization",
    "relief",
    "remorse",
    "sadness",
    "surprise",
    "neutral",
]

_GOEMOTIONS_ROWS = [
    ("I am so happy to see you today.", "joy"),
    ("This is wonderful news, thank you!", "gratitude,joy"),
    ("I am worried about tomorrow and I feel afraid.", "fear"),
    ("That is disgusting, I hate it.", "disgust"),
    ("Why would you do that? I am furious.", "anger"),
    ("I feel sad and lonely tonight.", "sadness"),
    ("Wow, I did not expect that at all!", "surprise"),
    ("The meeting is at three o'clock in room four.", "neutral"),
    ("Thanks, but that makes me sad.", "gratitude,sadness"),  # dropped: two labels
]


def make_goemotions(root: Path, copies: int = 3) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "emotions.txt").write_text("\n".join(EMOTIONS) + "\n", encoding="utf-8")
    index = {name: i for i, name in enumerate(EMOTIONS)}
    lines = []
    for k in range(copies):
        for n, (text, labels) in enumerate(_GOEMOTIONS_ROWS):
            ids = ",".join(str(index[x]) for x in labels.split(","))
            lines.append(f"{text}\t{ids}\tc{k}_{n}\n")
    (root / "test.tsv").write_text("".join(lines), encoding="utf-8")
    return root
