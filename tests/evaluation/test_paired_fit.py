"""Paired evaluation, issue 23: FER2013 faces read from the archive, and --fit on tuples
(reliability, certainty power, temperatures and the "uncertain" threshold chosen on
tuples from one half of every set)."""

from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.core.fusion import FusionConfig
from emoapp.core.messages import Modality
from emoapp.core.taxonomy import CANONICAL_LABELS, LABEL_INDEX, NUM_LABELS
from emoapp.evaluation.datasets import DatasetError, EvalDataset, EvalItem, filter_items
from emoapp.evaluation.paired import (
    WholeFrameLocator,
    draw_pairs,
    fit_paired,
    fitted_setup,
    is_fer2013,
    materialise_fer2013,
    paired_predictions,
    paired_profile_toml,
    read_fer2013,
    score_pairs,
    split_sets,
    uncertain_threshold,
)
from emoapp.evaluation.predict import ItemPrediction
from emoapp.evaluation.scoring import FusionSetup


def _fer_archive(path, names):
    import cv2

    with tarfile.open(path, "w:gz") as tar:
        for name in names:
            ok, jpg = cv2.imencode(".jpg", np.full((48, 48), 128, np.uint8))
            assert ok
            data = jpg.tobytes()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_fer2013_faces_are_read_from_the_archive_and_written_only_when_needed(tmp_path):
    archive = _fer_archive(
        tmp_path / "test.tar.gz",
        [
            "./happy/PublicTest_1.jpg",
            "./fear/PrivateTest_2.jpg",
            "./surprise/PublicTest_3.jpg",
            "./notes.txt",
        ],
    )
    assert is_fer2013(archive)
    dataset = read_fer2013(archive, cache=tmp_path / "cache")
    assert {i.label for i in dataset.items} == {"happy", "fearful", "surprised"}
    assert all(not i.video.exists() for i in dataset.items)
    filter_items(dataset, [("split", ("PublicTest",))])
    assert sorted(i.label for i in dataset.items) == ["happy", "surprised"]
    assert materialise_fer2013(dataset.items) == 2
    assert all(i.video.is_file() for i in dataset.items)
    assert materialise_fer2013(dataset.items) == 0  # already there
    assert WholeFrameLocator().detect(np.zeros((48, 40, 3), np.uint8)) == [(0, 0, 40, 48)]


def test_a_tar_without_fer_faces_is_refused_in_one_line(tmp_path):
    archive = _fer_archive(tmp_path / "x.tar.gz", ["./readme/notes.jpg"])
    with pytest.raises(DatasetError, match=r"no \./<emotion>/<Split>_<n>\.jpg faces"):
        read_fer2013(archive, cache=tmp_path)
    (tmp_path / "broken.tar.gz").write_bytes(b"not a tar")
    with pytest.raises(DatasetError, match="cannot read it as a FER2013 archive"):
        read_fer2013(tmp_path / "broken.tar.gz", cache=tmp_path)


@settings(max_examples=150, deadline=None)
@given(
    conf=st.lists(st.floats(0.0, 1.0), min_size=1, max_size=60),
    data=st.data(),
    target=st.floats(0.3, 0.95),
)
def test_the_uncertain_threshold_keeps_the_stated_precision(conf, data, target):
    correct = np.array(data.draw(st.lists(st.booleans(), min_size=len(conf), max_size=len(conf))))
    c = np.array(conf)
    t, precision, shown = uncertain_threshold(c, correct, target)
    if np.isnan(precision):
        assert shown == 0.0
        return
    kept = c >= t
    assert precision == pytest.approx(correct[kept].mean())
    assert shown == pytest.approx(kept.mean())
    # the precision is met on the rows it shows; ties at t are shown together
    assert precision >= target - 1e-12 or np.sum(c == t) > 1


def _set(name: str, per_label: int) -> EvalDataset:
    items = [
        EvalItem(f"{name}-{label}-{i}", label, text="x")
        for label in CANONICAL_LABELS
        for i in range(per_label)
    ]
    return EvalDataset(name, "csv", None, items)  # type: ignore[arg-type]


def _predictions(dataset, modality, accuracy, seed, sharp=1.0):
    """Right ``accuracy`` of the time; ``sharp`` > 1 makes the model over-confident."""
    rng = np.random.default_rng(seed)
    out = {}
    for item in dataset.items:
        right = rng.random() < accuracy
        k = LABEL_INDEX[item.label] if right else int(rng.integers(0, NUM_LABELS))
        p = np.full(NUM_LABELS, 0.05)
        p[k] = rng.uniform(0.5, 0.9) if right else rng.uniform(0.1, 0.4)
        p = p**sharp
        out[item.id] = ItemPrediction(
            item.id, modality, f"{modality.value}-model", "ok", (p / p.sum())[None],
            np.ones(7, bool), 1,
        )  # fmt: skip
    return out


def test_fit_on_tuples_keeps_an_overconfident_useless_channel_from_hurting():
    sets = {Modality.FACE: _set("face", 30), Modality.VOICE: _set("voice", 30),
            Modality.TEXT: _set("text", 30)}  # fmt: skip
    preds = {
        Modality.FACE: _predictions(sets[Modality.FACE], Modality.FACE, 0.6, 1),
        Modality.VOICE: _predictions(sets[Modality.VOICE], Modality.VOICE, 0.5, 2),
        # text: at chance, and sure of itself
        Modality.TEXT: _predictions(sets[Modality.TEXT], Modality.TEXT, 0.0, 3, sharp=4.0),
    }
    fit_sets, held_sets = split_sets(sets, seed=0)
    fit_ids = {i.id for d in fit_sets.values() for i in d.items}
    held_ids = {i.id for d in held_sets.values() for i in d.items}
    assert not fit_ids & held_ids
    fit_pairs = draw_pairs(fit_sets, 600, seed=0)
    held_pairs = draw_pairs(held_sets, 600, seed=1)
    setup = FusionSetup(FusionConfig(reliability={"face": 1, "voice": 1, "text": 1}))
    items, paired = paired_predictions(fit_pairs, preds)
    chosen = fit_paired(items, paired, setup, target_precision=0.8)
    # Over-confidence found and undone: calibrated, the chance-level text is nearly flat,
    # so its certainty, and with it its weight, all but vanish whatever its prior.
    assert chosen.temperatures["text-model"] > 5.0
    assert chosen.confidence_power > 0
    assert 0.0 <= chosen.uncertain_below <= 1.0
    after = fitted_setup(setup, chosen)
    text_pred = after.prediction(next(iter(preds[Modality.TEXT].values())))
    face_pred = after.prediction(next(iter(preds[Modality.FACE].values())))
    w = after._fuser.weights_at({Modality.TEXT: text_pred, Modality.FACE: face_pred}, 0.0)
    assert w[Modality.TEXT] < 0.1 * w[Modality.FACE]
    assert after.config.uncertain_below == chosen.uncertain_below
    scores = {s.system.name: s.report.macro_f1 for s in
              score_pairs(held_pairs, preds, after, bootstrap=0).scores}  # fmt: skip
    before = {s.system.name: s.report.macro_f1 for s in
              score_pairs(held_pairs, preds, setup, bootstrap=0).scores}  # fmt: skip
    assert before["face+voice+text"] < before["face+voice"]  # the harm, before fitting
    assert scores["face+voice+text"] >= scores["face+voice"] - 0.02
    toml = paired_profile_toml("p", {Modality.FACE: "f"}, chosen, "weighted", "synthetic")
    import tomllib

    table = tomllib.loads(toml)["profiles"]["p"]["fusion"]
    assert table["uncertain_below"] == pytest.approx(chosen.uncertain_below, abs=1e-4)
    assert set(table["reliability"]) == {"face", "voice", "text"}


def test_a_fitted_profile_and_the_option_set_the_fusion(tmp_path):
    from emoapp.config import FusionOptions, ModelOptions, fusion_config
    from emoapp.evaluation.paired import PairedFit

    chosen = PairedFit(
        {Modality.FACE: 1.0, Modality.VOICE: 0.7, Modality.TEXT: 0.2}, 2.0, 0.42, 0.8,
        0.5, 0.8, 0.7, [], {"embedded/face-minixception": 1.5},
    )  # fmt: skip
    models = {Modality.FACE: "embedded/face-minixception"}
    path = tmp_path / "profile.toml"
    path.write_text(paired_profile_toml("fitted", models, chosen, "weighted", "synthetic"))
    options = ModelOptions(profile="fitted", profiles_file=path)
    config = fusion_config(options, FusionOptions())
    assert config.confidence_power == 2.0 and config.uncertain_below == pytest.approx(0.42)
    assert config.reliability[Modality.TEXT] == pytest.approx(0.2)
    assert config.temperature == {"embedded/face-minixception": 1.5}
    assert fusion_config(options, FusionOptions(uncertain_below=0.0)).uncertain_below == 0.0
    assert fusion_config(options, FusionOptions(certainty="confidence")).certainty == "confidence"
