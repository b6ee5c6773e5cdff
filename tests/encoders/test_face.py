"""The face encoder on a real photograph (scikit-image's astronaut) with a tiny ViT."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from emoapp.core.messages import (
    FaceDetection,
    Modality,
    ModalityPrediction,
    NoPrediction,
    VideoFrame,
)
from emoapp.encoders.base import EncoderConfig
from emoapp.encoders.face import (
    NO_FACE,
    FaceConfig,
    FaceDetector,
    FaceEncoder,
    FaceLocator,
    choose_primary,
    expand_box,
    to_rgb_uint8,
)

# Where the Haar cascade finds the astronaut's face (x, y, w, h), give or take a few px.
ASTRONAUT_FACE = (177, 67, 93, 93)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Tiny models run faster on one thread, and do not stall on a busy CI machine."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return data.astronaut()


@pytest.fixture(scope="module")
def two_faces(astronaut) -> np.ndarray:
    """The astronaut at full size on the left and at half size on the right."""
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    right = np.zeros((512, 256, 3), np.uint8)
    right[128:384] = small
    return np.concatenate([astronaut, right], axis=1)


@pytest.fixture(scope="module")
def encoder(tiny_models) -> FaceEncoder:
    enc = FaceEncoder(EncoderConfig(str(tiny_models["face"]), device="cpu"))
    enc.load()
    return enc


def _overlap(a, b) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0, min(ay + ah, by + bh) - max(ay, by))
    inter = w * h
    return inter / (aw * ah + bw * bh - inter)


def _assert_valid_prediction(out, mask) -> None:
    assert isinstance(out, ModalityPrediction)
    assert out.modality is Modality.FACE
    assert out.probs.sum() == pytest.approx(1.0)
    assert out.probs[mask].sum() == pytest.approx(1.0)
    assert np.all(out.probs[~mask] == 0)
    assert np.array_equal(out.mask, mask)
    assert 0 < out.confidence <= 1


def test_astronaut_gives_one_face_inside_the_frame(encoder, astronaut):
    [out] = encoder.encode([VideoFrame(12.5, astronaut, index=3)])
    _assert_valid_prediction(out, encoder.label_map.mask)
    assert out.t == 12.5
    assert len(out.faces) >= 1
    h, w = astronaut.shape[:2]
    for face in out.faces:
        assert isinstance(face, FaceDetection)
        x, y, bw, bh = face.box
        assert x >= 0 and y >= 0 and bw > 0 and bh > 0
        assert x + bw <= w and y + bh <= h
        assert face.probs.sum() == pytest.approx(1.0)
    assert _overlap(out.faces[0].box, ASTRONAUT_FACE) > 0.7
    np.testing.assert_array_equal(out.probs, out.faces[out.detail["primary_index"]].probs)
    assert out.detail["faces"] == len(out.faces)
    assert out.detail["detect_s"] > 0
    assert out.detail["classify_s"] > 0
    assert out.latency_s > 0
    assert out.model_id == encoder.model_id


def test_blank_frame_gives_no_face(encoder):
    [out] = encoder.encode([VideoFrame(1.0, np.zeros((240, 320, 3), np.uint8))])
    assert isinstance(out, NoPrediction)
    assert out.reason == NO_FACE
    assert out.t == 1.0
    assert out.modality is Modality.FACE


def test_two_faces_are_classified_in_one_batch_and_the_larger_is_primary(
    encoder, two_faces, monkeypatch
):
    calls = []
    forward = encoder.model.forward

    def spy(*args, **kwargs):
        calls.append(kwargs["pixel_values"].shape[0])
        return forward(*args, **kwargs)

    monkeypatch.setattr(encoder.model, "forward", spy)
    [out] = encoder.encode([VideoFrame(0.0, two_faces)])

    assert calls == [2]  # one forward pass, both faces in it
    assert isinstance(out, ModalityPrediction)
    assert len(out.faces) == 2
    primary = out.faces[out.detail["primary_index"]]
    assert primary.area == max(f.area for f in out.faces)
    assert primary.box[0] < 512  # the full-size copy is on the left
    np.testing.assert_array_equal(out.probs, primary.probs)
    # The half-size copy's face is found at about half the size.
    other = next(f for f in out.faces if f is not primary)
    assert other.box[0] >= 512
    assert 0.3 < other.box[2] / primary.box[2] < 0.7


def test_center_primary_picks_the_face_nearest_the_centre(tiny_models, astronaut):
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    frame = np.zeros((512, 1536, 3), np.uint8)
    frame[:, :512] = astronaut
    frame[128:384, 640:896] = small  # small face near the frame's centre (768, 256)
    enc = FaceEncoder(
        EncoderConfig(str(tiny_models["face"]), device="cpu"),
        FaceConfig(primary="center", detector_max_side=0),
    )
    [out] = enc.encode([VideoFrame(0.0, frame)])
    assert isinstance(out, ModalityPrediction) and len(out.faces) == 2
    primary = out.faces[out.detail["primary_index"]]
    assert primary.area == min(f.area for f in out.faces)
    assert 640 <= primary.box[0] < 896


def test_max_faces_keeps_the_largest(tiny_models, two_faces):
    enc = FaceEncoder(
        EncoderConfig(str(tiny_models["face"]), device="cpu"), FaceConfig(max_faces=1)
    )
    [out] = enc.encode([VideoFrame(0.0, two_faces)])
    assert isinstance(out, ModalityPrediction)
    assert len(out.faces) == 1
    assert out.detail["faces_found"] == 2
    assert out.faces[0].box[0] < 512


@pytest.mark.parametrize(
    "convert",
    [
        pytest.param(lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), id="gray-2d"),
        pytest.param(lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2GRAY)[:, :, None], id="gray-1ch"),
        pytest.param(lambda im: cv2.cvtColor(im, cv2.COLOR_RGB2RGBA), id="rgba"),
        pytest.param(lambda im: im.astype(np.float32) / 255.0, id="float01"),
        pytest.param(lambda im: im.astype(np.uint16) * 257, id="uint16"),
    ],
)
def test_other_image_formats_are_converted(encoder, astronaut, convert):
    [out] = encoder.encode([VideoFrame(0.0, convert(astronaut))])
    _assert_valid_prediction(out, encoder.label_map.mask)
    assert any(_overlap(f.box, ASTRONAUT_FACE) > 0.7 for f in out.faces)


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (np.zeros((0, 0, 3), np.uint8), "empty frame"),
        (np.zeros((10, 0), np.uint8), "empty frame"),
        (np.zeros((4, 4, 5), np.uint8), "5 channels"),
        (np.zeros((2, 4, 4, 3), np.uint8), "shape"),
        (np.zeros((8, 8, 3), np.complex64), "cannot be used"),
        ("not an image", "not an image array"),
    ],
)
def test_unusable_frames_say_why(encoder, image, reason):
    [out] = encoder.encode([VideoFrame(7.0, image)])
    assert isinstance(out, NoPrediction)
    assert reason in out.reason
    assert out.t == 7.0


def test_a_batch_of_frames_gives_one_output_per_frame_in_order(encoder, astronaut, two_faces):
    frames = [
        VideoFrame(0.0, astronaut),
        VideoFrame(0.1, np.zeros((100, 100, 3), np.uint8)),
        VideoFrame(0.2, two_faces),
        VideoFrame(0.3, np.zeros((0, 0, 3), np.uint8)),
        astronaut,  # a bare array works too (t = 0)
    ]
    outs = encoder.encode(frames)
    assert [type(o) for o in outs] == [
        ModalityPrediction,
        NoPrediction,
        ModalityPrediction,
        NoPrediction,
        ModalityPrediction,
    ]
    assert [o.t for o in outs] == [0.0, 0.1, 0.2, 0.3, 0.0]
    assert [len(o.faces) for o in outs if isinstance(o, ModalityPrediction)] == [1, 2, 1]
    # The same face gets the same distribution whatever else is in the batch.
    np.testing.assert_allclose(outs[0].probs, outs[4].probs, atol=1e-6)
    [alone] = encoder.encode([VideoFrame(0.0, astronaut)])
    np.testing.assert_allclose(outs[0].probs, alone.probs, atol=1e-5)


def test_batches_are_split_by_batch_size(tiny_models, astronaut, two_faces, monkeypatch):
    enc = FaceEncoder(EncoderConfig(str(tiny_models["face"]), device="cpu", batch_size=2))
    enc.load()
    calls = []
    forward = enc.model.forward
    monkeypatch.setattr(
        enc.model,
        "forward",
        lambda **kw: calls.append(kw["pixel_values"].shape[0]) or forward(**kw),
    )
    outs = enc.encode([astronaut, two_faces])  # three faces
    assert calls == [2, 1]
    assert [len(o.faces) for o in outs] == [1, 2]


def test_custom_detector_plugs_in(tiny_models, astronaut):
    class FixedLocator:
        name = "fixed"

        def detect(self, image):
            return [(0, 0, 50, 60), (100, 100, 200, 200)]

    locator = FixedLocator()
    assert isinstance(locator, FaceLocator)
    enc = FaceEncoder(EncoderConfig(str(tiny_models["face"]), device="cpu"), detector=locator)
    [out] = enc.encode([astronaut])
    assert [f.box for f in out.faces] == [(100, 100, 200, 200), (0, 0, 50, 60)]
    assert out.detail["detector"] == "fixed"


def test_detector_on_a_downscaled_copy_reports_full_size_boxes(astronaut):
    big = cv2.resize(astronaut, (1536, 1536), interpolation=cv2.INTER_CUBIC)
    boxes = FaceDetector(max_side=512).detect(big)
    assert boxes
    expected = tuple(3 * v for v in ASTRONAUT_FACE)
    assert max(_overlap(b, expected) for b in boxes) > 0.6


def test_min_face_filters_small_faces(astronaut):
    assert FaceDetector(min_face=40).detect(astronaut)
    assert FaceDetector(min_face=150).detect(astronaut) == []


def test_expand_box_adds_margin_and_clips():
    assert expand_box((100, 100, 50, 50), 0.2, 640, 480) == (90, 90, 70, 70)
    assert expand_box((0, 0, 50, 50), 0.2, 640, 480) == (0, 0, 60, 60)
    assert expand_box((600, 440, 40, 40), 0.5, 640, 480) == (580, 420, 60, 60)


def test_choose_primary():
    boxes = [(0, 0, 100, 100), (300, 200, 40, 40)]
    assert choose_primary(boxes, 640, 480, "largest") == 0
    assert choose_primary(boxes, 640, 480, "center") == 1


def test_to_rgb_uint8_passes_rgb_through(astronaut):
    assert to_rgb_uint8(astronaut) is astronaut
    mirrored = to_rgb_uint8(astronaut[:, ::-1])  # e.g. a mirrored camera view
    assert mirrored.flags.c_contiguous
    np.testing.assert_array_equal(mirrored, astronaut[:, ::-1])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"margin": -0.1},
        {"min_face": 0},
        {"max_faces": 0},
        {"primary": "left"},
        {"scale_factor": 1.0},
    ],
)
def test_face_config_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        FaceConfig(**kwargs)


def test_a_weakly_detected_larger_false_face_is_not_primary(samples):
    """The bundled sample has frames where the cascade also fires, more weakly, on a
    larger patch of background: the primary face must stay the real one."""
    from emoapp.capture.media import iter_video_frames
    from emoapp.encoders.face import FaceDetector, choose_primary

    detector = FaceDetector()
    two_found = 0
    for frame in iter_video_frames(samples / "face_speech.mp4"):
        scored = detector.detect_scored(frame.image)
        boxes = [b for b, _ in scored]
        if len(boxes) < 2:
            continue
        two_found += 1
        primary = choose_primary(boxes, 480, 360, "largest", [s for _, s in scored])
        assert boxes[primary][0] < 250, f"frame {frame.index}: background chosen as primary"
        assert max(b[2] * b[3] for b in boxes) > boxes[primary][2] * boxes[primary][3]
    assert two_found > 0
