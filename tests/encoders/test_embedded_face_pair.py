"""The MobileFaceNet expression model and the embedded face pair (two members pooled by
the project's one pooling implementation)."""

from __future__ import annotations

import builtins
import json
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.core.errors import ModelLoadError
from emoapp.core.fusion import pool_batch
from emoapp.core.messages import Modality, ModalityPrediction
from emoapp.core.observation import DEFAULT_OBSERVATION
from emoapp.encoders.embedded.artefacts import write_checksums
from emoapp.encoders.embedded.face import (
    FacePairEncoder,
    MiniXceptionFaceEncoder,
    MobileFaceNetFaceEncoder,
    OnnxClassifier,
    member_encoder,
    pool_members,
)
from emoapp.registry import data_dir, resolve_model

PAIR = "embedded/face-pair"
MFN = "embedded/face-mobilefacenet"


def _encoder(model: str):
    spec = resolve_model(Modality.FACE, model)
    assert spec is not None
    enc = member_encoder(spec)
    enc.load()
    return enc


@pytest.fixture(scope="module")
def pair() -> FacePairEncoder:
    enc = _encoder(PAIR)
    assert isinstance(enc, FacePairEncoder)
    return enc


def test_the_pair_has_both_members_with_shares_that_sum_to_one(pair):
    assert [type(m) for m in pair.members] == [MiniXceptionFaceEncoder, MobileFaceNetFaceEncoder]
    assert pair.weights.sum() == pytest.approx(1.0)
    assert all(m.detector is pair.detector for m in pair.members)  # one detection
    meta = json.loads((data_dir("models") / "embedded/face-pair/meta.json").read_text())
    assert [m["weight"] for m in meta["members"]] == pytest.approx(list(pair.weights))


def test_the_pair_on_the_sample_frames_pools_its_members(pair, face_only_frames):
    outputs = pair.encode(face_only_frames)
    for frame, out in zip(face_only_frames, outputs, strict=True):
        assert isinstance(out, ModalityPrediction) and out.model_id == PAIR
        assert len(out.faces) == 1 and out.detail["detector"] == "yunet"
        assert set(out.detail["members"]) == {"embedded/face-minixception", MFN}
        found = pair.detector.detect_landmarked(frame.image)  # type: ignore[union-attr]
        rows = pair.face_rows(frame.image, [found[0][0]], [found[0][2]])
        members = pair.member_probs(rows)
        q = np.stack([DEFAULT_OBSERVATION.posterior(p, np.ones(7, bool)) for p in members], 1)
        expected = pool_batch(q, pair.weights[None, :], pair.rule)[0]
        np.testing.assert_allclose(out.probs, expected, atol=1e-6)


def test_mobilefacenet_reads_an_aligned_face(face_only_frames):
    enc = _encoder(MFN)
    (out,) = enc.encode(face_only_frames[:1])
    assert isinstance(out, ModalityPrediction)
    assert out.mask.all() and out.probs.sum() == pytest.approx(1.0)
    assert out.detail["runtime"].startswith("onnxruntime")
    found = enc.detector.detect_landmarked(face_only_frames[0].image)  # type: ignore[union-attr]
    (row,) = enc.face_rows(face_only_frames[0].image, [found[0][0]], [found[0][2]])
    assert row.shape == (112, 112, 3) and row.dtype == np.uint8


def test_without_onnxruntime_cv2_dnn_gives_nearly_the_same_outputs(monkeypatch, pair):
    path = data_dir("models") / "embedded/face-mobilefacenet"
    (onnx,) = path.glob("*.onnx")
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 112, 112)).astype(np.float32)
    fast = OnnxClassifier(onnx)(x)
    real_import = builtins.__import__

    def no_ort(name, *args, **kwargs):
        if name == "onnxruntime":
            raise ImportError("no onnxruntime here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ort)
    slow = OnnxClassifier(onnx)
    assert slow.runtime.startswith("cv2.dnn")
    # int8 logits: the two runtimes may round a value to the next quantisation step (0.115)
    np.testing.assert_allclose(slow(x), fast, atol=0.25)
    assert (slow(x).argmax(axis=1) == fast.argmax(axis=1)).all()


def test_a_corrupt_onnx_file_is_refused(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07garbage")
    with pytest.raises(ModelLoadError, match="cannot be loaded"):
        OnnxClassifier(bad)
    with pytest.raises(ModelLoadError, match="missing"):
        OnnxClassifier(tmp_path / "absent.onnx")


def test_a_pair_whose_meta_lists_one_member_is_refused(tmp_path):
    folder = tmp_path / "pair"
    shutil.copytree(data_dir("models") / "embedded/face-pair", folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["members"] = meta["members"][:1]
    (folder / "meta.json").write_text(json.dumps(meta))
    write_checksums(folder)
    spec = resolve_model(Modality.FACE, str(folder))
    assert spec is not None
    with pytest.raises(ModelLoadError, match="fewer than two members"):
        member_encoder(spec).load()


def _dist(values):
    p = np.asarray(values, dtype=float) + 1e-3
    return p / p.sum()


probs7 = st.lists(st.floats(0, 1), min_size=7, max_size=7).map(_dist)


@settings(max_examples=60, deadline=None)
@given(a=probs7, b=probs7, w=st.floats(0, 1), rule=st.sampled_from(["weighted", "product"]))
def test_pooling_members_is_a_distribution_between_them(a, b, w, rule):
    mask = np.ones(7, dtype=bool)
    pooled = pool_members([a[None], b[None]], [mask, mask], np.array([w, 1 - w]), rule)[0]
    assert pooled.sum() == pytest.approx(1.0) and np.all(pooled >= 0)
    qa = DEFAULT_OBSERVATION.posterior(a, mask)
    qb = DEFAULT_OBSERVATION.posterior(b, mask)
    if w == 1:
        np.testing.assert_allclose(pooled, qa, atol=1e-9)
    if w == 0:
        np.testing.assert_allclose(pooled, qb, atol=1e-9)
    if rule == "weighted":  # the linear pool: each label between the members' values
        assert np.all(pooled >= np.minimum(qa, qb) - 1e-12)
        assert np.all(pooled <= np.maximum(qa, qb) + 1e-12)
