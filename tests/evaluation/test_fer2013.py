"""FER2013 as its image-folder release has it: a tar.gz of <emotion>/<file>.jpg, read
without unpacking, through ``emoapp evaluate``."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from emoapp.evaluation.datasets import (
    DatasetError,
    archive_member,
    detect_format,
    read_archive_file,
    read_dataset,
)


def _jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return data.tobytes()


@pytest.fixture()
def fer_tar(tmp_path, face_only_frames) -> Path:
    """A tiny FER2013-style split: two 48x48 grey crops of the sample's face, a blank,
    a file outside any class folder and one in an unknown class."""
    grey = cv2.cvtColor(face_only_frames[0].image, cv2.COLOR_RGB2GRAY)
    h, w = grey.shape
    face = cv2.resize(grey[h // 8 : h * 7 // 8, w // 4 : w * 3 // 4], (48, 48))
    files = {
        "./happy/Training_1.jpg": _jpeg(face),
        "./surprise/Training_1.jpg": _jpeg(np.fliplr(face).copy()),  # same name, other class
        "./sad/Training_2.jpg": _jpeg(np.full((48, 48), 120, np.uint8)),
        "./README.txt": b"not an image",
        "./other/Training_3.jpg": _jpeg(face),
    }
    path = tmp_path / "train.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_the_split_is_read_from_the_archive(fer_tar):
    assert detect_format(fer_tar) == "fer2013"
    dataset = read_dataset(fer_tar)
    assert dataset.format == "fer2013" and dataset.name == "fer2013-train"
    assert {i.id: i.label for i in dataset.items} == {
        "happy/Training_1.jpg": "happy",
        "surprise/Training_1.jpg": "surprised",
        "sad/Training_2.jpg": "sad",
    }
    assert len(dataset.skipped) == 2
    item = dataset.items[0]
    assert item.video is not None and archive_member(item.video) == (fer_tar, item.id)
    data = read_archive_file(item.video)
    assert data is not None and data[:2] == b"\xff\xd8"
    assert read_archive_file(Path("/not/in/an/archive.jpg")) is None
    with pytest.raises(DatasetError, match="no member"):
        read_archive_file(fer_tar / "happy" / "absent.jpg")


def test_a_file_that_is_not_a_tar_is_refused(tmp_path):
    bad = tmp_path / "test.tar.gz"
    bad.write_bytes(b"not a tar")
    with pytest.raises(DatasetError, match="cannot read the archive"):
        read_dataset(bad, "fer2013")


def test_evaluate_scores_each_crop_as_one_face(fer_tar, tmp_path):
    from emoapp.cli import main

    report = tmp_path / "report"
    code = main(
        [
            "evaluate", str(fer_tar), "--report", str(report),
            "--face-model", "embedded/face-minixception", "--voice-model", "none",
            "--text-model", "none", "--bootstrap", "20", "-q",
        ]
    )  # fmt: skip
    assert code == 0
    metrics = json.loads((report / "metrics.json").read_text())
    (face,) = [s for s in metrics["systems"] if s["system"] == "face"]
    assert face["n"] == 3  # every crop is a face, even the blank one
