"""Detect-every-N-frames with tracking in between (TrackingLocator) on the sample video."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emoapp.capture.media import iter_video_frames
from emoapp.encoders.face import (
    FaceConfig,
    FaceDetector,
    TrackingLocator,
    face_detail,
    locate_faces,
    track_faces,
)

SAMPLE = Path(__file__).resolve().parents[2] / "resources" / "samples" / "face_speech.mp4"
FRAMES = 40


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    out = []
    for frame in iter_video_frames(SAMPLE):
        out.append(frame.image)
        if len(out) == FRAMES:
            break
    return out


@pytest.fixture(scope="module")
def detected(frames) -> list:
    """Detection on every frame: what tracking must agree with."""
    detector = FaceDetector()
    return [locate_faces(detector, image, FaceConfig()) for image in frames]


def iou(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)


def primary_box(faces):
    return faces.boxes[faces.primary]


def test_tracked_frames_give_the_same_primary_face_as_detection(frames, detected):
    assert all(d is not None for d in detected)
    tracker = TrackingLocator(FaceDetector(), every=5)
    located = [locate_faces(tracker, image, FaceConfig()) for image in frames]
    hows = [faces.located for faces in located]
    assert hows[:6] == ["detected", "tracked", "tracked", "tracked", "tracked", "detected"]
    assert hows.count("detected") == FRAMES // 5
    assert tracker.detections == FRAMES // 5 and tracker.tracked == FRAMES - FRAMES // 5
    for mine, reference in zip(located, detected, strict=True):
        assert iou(primary_box(mine), primary_box(reference)) > 0.6


def test_a_cut_is_detected_afresh_and_the_detail_says_so(frames):
    tracker = TrackingLocator(FaceDetector(), every=30)
    config = FaceConfig()
    first = locate_faces(tracker, frames[0], config)
    second = locate_faces(tracker, frames[1], config)
    assert (first.located, second.located) == ("detected", "tracked")
    # A cut: the same scene, mirrored and darkened (the face moved and looks different).
    cut = np.ascontiguousarray(frames[2][:, ::-1] // 2)
    after = locate_faces(tracker, cut, config)
    assert after is not None and after.located == "detected"
    assert face_detail(after, 1, 0.0, 1, tracker)["located"] == "detected"
    assert face_detail(second, 1, 0.0, 1, tracker)["located"] == "tracked"
    # A frame with no face at all: nothing to track, detection says none.
    assert locate_faces(tracker, np.zeros_like(frames[0]), config) is None
    assert locate_faces(tracker, frames[3], config).located == "detected"


def test_a_new_frame_size_is_detected_afresh(frames):
    tracker = TrackingLocator(FaceDetector(), every=10)
    config = FaceConfig()
    assert locate_faces(tracker, frames[0], config).located == "detected"
    bigger = np.pad(frames[1], ((0, 40), (0, 40), (0, 0)))
    assert locate_faces(tracker, bigger, config).located == "detected"


def test_track_faces_wraps_an_encoders_detector_once():
    class Encoder:
        detector = FaceDetector()

    encoder = Encoder()
    assert not track_faces(encoder, 1)
    assert track_faces(encoder, 4)
    wrapped = encoder.detector
    assert isinstance(wrapped, TrackingLocator) and wrapped.every == 4
    assert track_faces(encoder, 6)
    assert encoder.detector is wrapped and wrapped.every == 6
    with pytest.raises(ValueError):
        TrackingLocator(FaceDetector(), every=0)
