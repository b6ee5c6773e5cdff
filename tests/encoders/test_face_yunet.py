"""YuNet face detection, its Haar fallback, track ids, the primary-face rule and the
FER2013-style whole-image locator, on the sample videos."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from emoapp.capture.media import iter_video_frames
from emoapp.core.errors import ModelLoadError
from emoapp.encoders.face import (
    CROP_LANDMARKS,
    FaceConfig,
    FaceDetector,
    ImageFaceLocator,
    TrackingLocator,
    YuNetDetector,
    face_detail,
    follow_face,
    locate_faces,
    make_detector,
    yunet_path,
)

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "samples" / "face_speech.mp4"


@pytest.fixture(scope="module")
def speech_frames() -> list[np.ndarray]:
    """Every 4th of the first 60 frames of face_speech.mp4 (the Haar cascade put a
    second, false box on the shoulder in many of them)."""
    return [f.image for i, f in enumerate(iter_video_frames(SAMPLE)) if i % 4 == 0 and i < 60]


@pytest.fixture(scope="module")
def yunet() -> YuNetDetector:
    return YuNetDetector()


def test_the_shipped_yunet_is_the_default_detector():
    detector = make_detector(FaceConfig())
    assert isinstance(detector, YuNetDetector)
    assert detector.path == yunet_path()


def test_yunet_finds_exactly_one_face_with_landmarks_inside_it(yunet, speech_frames):
    for image in speech_frames:
        found = yunet.detect_landmarked(image)
        assert len(found) == 1
        (x, y, w, h), score, marks = found[0]
        assert 0.6 <= score <= 1.0 and w >= 40 and h >= 40
        assert marks is not None and marks.shape == (5, 2)
        assert np.all((marks[:, 0] > x) & (marks[:, 0] < x + w))
        assert np.all((marks[:, 1] > y) & (marks[:, 1] < y + h))
        # right eye left of the left eye (image coordinates), eyes above the mouth
        assert marks[0, 0] < marks[1, 0] and marks[:2, 1].max() < marks[3:, 1].min()


def test_yunet_on_the_face_only_sample(yunet, face_only_frames):
    for frame in face_only_frames:
        assert len(yunet.detect(frame.image)) == 1


def test_a_downscaled_detection_reports_boxes_in_full_size_pixels(speech_frames):
    full = YuNetDetector(max_side=0).detect(speech_frames[0])[0]
    small = YuNetDetector(max_side=240).detect(speech_frames[0])[0]
    assert abs(full[0] - small[0]) < 12 and abs(full[2] - small[2]) < 16


def test_a_blank_frame_has_no_face(yunet):
    assert yunet.detect_landmarked(np.zeros((240, 320, 3), dtype=np.uint8)) == []


@pytest.mark.parametrize("content", [None, b"not an onnx model at all"])
def test_a_missing_or_corrupt_yunet_falls_back_to_haar_and_says_why(
    tmp_path, caplog, speech_frames, content
):
    path = tmp_path / "yunet.onnx"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelLoadError, match="YuNet face detector"):
        YuNetDetector(path)
    with caplog.at_level(logging.WARNING):
        detector = make_detector(FaceConfig(), yunet=path)
    assert isinstance(detector, FaceDetector)
    assert "using the Haar cascade" in (detector.fallback_reason or "")
    assert str(path) in detector.fallback_reason
    assert "using the Haar cascade" in caplog.text
    faces = locate_faces(detector, speech_frames[0], FaceConfig())
    assert faces is not None
    detail = face_detail(faces, len(faces.boxes), 0.0, 1, detector)
    assert detail["detector"] == "haar" and "YuNet" in detail["detector_note"]


def test_a_shipped_yunet_that_fails_its_checksum_is_refused(tmp_path, monkeypatch):
    import shutil

    import emoapp.encoders.face as face

    folder = tmp_path / "face-yunet"
    shutil.copytree(yunet_path().parent, folder)
    model = folder / yunet_path().name
    model.write_bytes(model.read_bytes()[:-10])
    monkeypatch.setattr(face, "yunet_path", lambda: model)
    with pytest.raises(ModelLoadError, match="checksum"):
        YuNetDetector()
    assert make_detector(FaceConfig()).fallback_reason  # type: ignore[attr-defined]


def test_track_ids_stay_the_same_across_detections_and_tracking(yunet, speech_frames):
    tracker = TrackingLocator(yunet, every=3)
    seen = []
    for image in speech_frames:
        faces = locate_faces(tracker, image, FaceConfig())
        assert faces is not None and len(faces.boxes) == 1
        seen.append((faces.track_ids[0], faces.located))
        assert faces.landmarks[0] is not None
    assert {track for track, _ in seen} == {1}
    assert {how for _, how in seen} == {"detected", "tracked"}


def _two(image: np.ndarray) -> np.ndarray:
    """The frame twice side by side, the right copy smaller: two faces."""
    import cv2

    h, w = image.shape[:2]
    small = cv2.resize(image, (w * 3 // 4, h * 3 // 4))
    out = np.zeros((h, w * 2, 3), dtype=np.uint8)
    out[:, :w] = image
    out[: small.shape[0], w : w + small.shape[1]] = small
    return out


def test_a_new_face_gets_a_new_id_and_old_ids_are_kept(yunet, speech_frames):
    tracker = TrackingLocator(yunet, every=1)
    both = [_two(image) for image in speech_frames[:3]]
    first = locate_faces(tracker, both[0], FaceConfig())
    assert first is not None and sorted(first.track_ids) == [1, 2]
    ids_by_side = {
        box[0] < speech_frames[0].shape[1]: t
        for box, t in zip(first.boxes, first.track_ids, strict=True)
    }
    for image in both[1:]:
        again = locate_faces(tracker, image, FaceConfig())
        assert again is not None
        assert {
            box[0] < speech_frames[0].shape[1]: t
            for box, t in zip(again.boxes, again.track_ids, strict=True)
        } == ids_by_side
    tracker.reset()
    fresh = locate_faces(tracker, both[0], FaceConfig())
    assert fresh is not None and min(fresh.track_ids) >= 3  # ids are never reused


def test_the_primary_face_is_the_largest_unless_one_is_followed(yunet, speech_frames):
    tracker = TrackingLocator(yunet, every=1)
    image = _two(speech_frames[0])
    faces = locate_faces(tracker, image, FaceConfig())
    assert faces is not None and faces.primary_rule == "largest"
    largest = faces.primary
    assert faces.boxes[largest][2] == max(b[2] for b in faces.boxes)
    other = faces.track_ids[1 - largest]
    followed = locate_faces(tracker, image, FaceConfig(), follow=other)
    assert followed is not None and followed.primary_rule == "followed"
    assert followed.track_ids[followed.primary] == other
    gone = locate_faces(tracker, image, FaceConfig(), follow=99)
    assert gone is not None and gone.primary == largest and gone.primary_rule == "largest"


def test_follow_face_sets_and_clears_what_an_encoder_follows():
    class Holder:
        follow = None

    holder = Holder()
    assert follow_face(holder, 3) and holder.follow == 3
    assert follow_face(holder, None) and holder.follow is None
    assert not follow_face(object(), 3)
    with pytest.raises(ValueError):
        follow_face(holder, 0)


def test_a_face_crop_is_one_face_whose_landmarks_are_found_or_estimated(yunet, speech_frames):
    import cv2

    locator = ImageFaceLocator(yunet)
    (x, y, w, h), _, _ = yunet.detect_landmarked(speech_frames[0])[0]
    crop = np.ascontiguousarray(speech_frames[0][y : y + h, x : x + w])
    sharp = locator.detect_landmarked(cv2.resize(crop, (96, 96)))
    assert sharp[0][0] == (0, 0, 96, 96) and locator.with_landmarks == 1
    blank = locator.detect_landmarked(np.full((48, 48, 3), 128, dtype=np.uint8))
    np.testing.assert_allclose(blank[0][2], CROP_LANDMARKS * 48)
    assert locator.estimated == 1
    blind = ImageFaceLocator(None).detect_landmarked(crop)
    assert blind[0][0] == (0, 0, w, h)


def test_face_config_names_its_detectors():
    assert FaceConfig().detector == "yunet"
    with pytest.raises(ValueError, match="unknown face detector"):
        FaceConfig(detector="dlib")
