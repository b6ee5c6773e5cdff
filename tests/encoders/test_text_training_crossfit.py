"""The text training script's cross-fitting step (scripts/train_embedded_text.py
``--cross-fit``): folds that keep dialogues whole, per-label offsets and what they are
invariant to, and out-of-fold logits of a tiny model fitted on the spot."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.core.messages import Modality
from emoapp.core.taxonomy import CANONICAL_LABELS
from emoapp.encoders.embedded.text import NgramTextEncoder
from emoapp.evaluation.metrics import macro_f1, weighted_f1
from emoapp.registry import ModelSpec

K = len(CANONICAL_LABELS)


@pytest.fixture(scope="module")
def script() -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    try:
        import train_embedded_text
    finally:
        sys.path.pop(0)
    return train_embedded_text


@settings(max_examples=60, deadline=None)
@given(
    groups=st.lists(st.integers(0, 40), min_size=1, max_size=120),
    k=st.integers(2, 6),
    seed=st.integers(0, 3),
)
def test_folds_partition_the_rows_and_keep_dialogues_whole(
    script: Any, groups: list[int], k: int, seed: int
) -> None:
    groups_array = np.array(groups)
    dialogues = np.unique(groups_array)
    if len(dialogues) < k:
        with pytest.raises(ValueError, match="folds"):
            script.dialogue_folds(groups_array, k, seed)
        return
    folds = script.dialogue_folds(groups_array, k, seed)
    assert folds.shape == (len(groups),)
    assert set(folds.tolist()) == set(range(k))  # every fold holds something
    for dialogue in dialogues:  # a dialogue lies in one fold
        assert len(set(folds[groups_array == dialogue].tolist())) == 1
    per_fold = [len(np.unique(groups_array[folds == f])) for f in range(k)]
    assert max(per_fold) - min(per_fold) <= 1
    assert sum(per_fold) == len(dialogues)
    # Seeded: the same draw again; the fold of a dialogue does not depend on row order.
    np.testing.assert_array_equal(script.dialogue_folds(groups_array, k, seed), folds)
    order = np.random.default_rng(seed).permutation(len(groups))
    np.testing.assert_array_equal(script.dialogue_folds(groups_array[order], k, seed), folds[order])


def test_fewer_than_two_folds_are_refused(script: Any) -> None:
    with pytest.raises(ValueError, match="folds"):
        script.dialogue_folds(np.arange(10), 1)


def _logits(draw: Any, n: int) -> np.ndarray:
    # m/2 + j/16 for label j: exact in binary, and no two labels of a row differ by a
    # multiple of 1/2, so adding tenth-step offsets never makes a near-tie that a
    # shifted copy could round differently.
    m = draw(st.lists(st.integers(-6, 6), min_size=n * K, max_size=n * K))
    return np.array(m, dtype=np.float64).reshape(n, K) / 2 + np.arange(K) / 16


@settings(max_examples=25, deadline=None)
@given(data=st.data(), n=st.integers(4, 30))
def test_offsets_ignore_a_constant_added_to_a_row_and_never_lose(
    script: Any, data: st.DataObject, n: int
) -> None:
    logits = _logits(data.draw, n)
    gold = np.array(data.draw(st.lists(st.integers(0, K - 1), min_size=n, max_size=n)))
    shift = np.array(data.draw(st.lists(st.integers(-5, 5), min_size=n, max_size=n)), float)
    goal = script.objective("conversation", gold)
    offsets = script.fit_offsets(logits, goal, rounds=1)
    shifted = script.fit_offsets(logits + shift[:, None], goal, rounds=1)
    np.testing.assert_array_equal(offsets, shifted)
    assert offsets[0] == 0.0  # neutral is the reference
    assert np.all(np.abs(offsets) <= 2.0)
    # Coordinate ascent from zero offsets never ends below where it started.
    assert goal((logits + offsets).argmax(axis=1)) >= goal(logits.argmax(axis=1))
    # The order of the items does not matter.
    order = np.random.default_rng(n).permutation(n)
    np.testing.assert_array_equal(
        script.fit_offsets(logits[order], script.objective("conversation", gold[order]), 1),
        offsets,
    )


def test_offsets_recover_a_shifted_prior(script: Any) -> None:
    # Logits that know the label but carry a wrong prior (+1 on sad): the offsets take it
    # back off.
    rng = np.random.default_rng(0)
    gold = rng.integers(0, K, 400)
    logits = rng.normal(0, 0.5, (400, K))
    logits[np.arange(400), gold] += 1.5
    logits[:, 2] += 1.0
    offsets = script.fit_offsets(logits, script.objective("conversation", gold))
    assert -1.5 <= offsets[2] <= -0.5
    before = macro_f1(gold, logits.argmax(axis=1))
    assert macro_f1(gold, (logits + offsets).argmax(axis=1)) > before


def test_the_protocols_score_offsets_chosen_elsewhere_on_dev(script: Any) -> None:
    rng = np.random.default_rng(1)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        gold = rng.choice(K, n, p=[0.4, 0.2, 0.1, 0.1, 0.05, 0.05, 0.1])
        logits = rng.normal(0, 1.0, (n, K))
        logits[np.arange(n), gold] += 1.2
        return logits - 0.5 * np.arange(K), gold  # the same wrong prior in both

    oof, oof_gold = draw(600)
    dev, dev_gold = draw(120)
    result = script.offset_protocols(oof, oof_gold, dev, dev_gold)
    carried = result["dev_offsets_from_train_oof"]
    pred = (dev + np.array([carried["offsets"][label] for label in CANONICAL_LABELS])).argmax(1)
    assert carried["macro_f1"] == round(macro_f1(dev_gold, pred), 4)
    assert carried["weighted_f1"] == round(weighted_f1(dev_gold, pred), 4)
    assert 0.05 <= carried["temperature"] <= 20
    # Offsets chosen on dev itself score dev at least as well as any others (the
    # objective is their sum), which is why that figure is optimistic.
    own = result["dev_offsets_from_dev_optimistic"]
    assert own["macro_f1"] + own["weighted_f1"] >= carried["macro_f1"] + carried["weighted_f1"]
    boot = result["bootstrap"]["train_oof_minus_no_offsets"]["macro_f1"]
    assert boot["low"] <= boot["difference"] <= boot["high"]
    none = result["dev_no_offsets"]
    assert boot["difference"] == pytest.approx(carried["macro_f1"] - none["macro_f1"], abs=2e-4)


WORDS = {
    0: ["okay", "fine", "well", "so"],
    1: ["great", "love", "yay", "wonderful"],
    2: ["sad", "miss", "cry", "sorry"],
    3: ["hate", "stupid", "shut", "mad"],
    4: ["scared", "afraid", "help", "run"],
    5: ["gross", "eww", "yuck", "disgusting"],
    6: ["what", "really", "wow", "whoa"],
}


def _corpus(script: Any, n: int, seed: int, dialogues: bool) -> Any:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % K
    marks = {2: "...", 3: "!", 6: "?!"}  # on about half of these labels' rows
    texts = [
        " ".join(rng.choice(WORDS[int(label)], 3).tolist() + rng.choice(WORDS[0], 1).tolist())
        + (marks.get(int(label), "") if rng.random() < 0.5 else "")
        for label in y
    ]
    groups = np.arange(n) // 3 if dialogues else None
    return script.Corpus(texts, [()] * n, y, np.ones(n), groups)


def test_out_of_fold_logits_come_from_models_that_never_saw_the_fold(script: Any) -> None:
    pytest.importorskip("sklearn")
    goe = _corpus(script, 60, 0, dialogues=False)
    meld = _corpus(script, 63, 1, dialogues=True)
    fitted = script.fit(goe, meld, 1.0, 0.5, 0.0, 1.0)
    folds = script.dialogue_folds(meld.groups, 3)
    oof, iterations = script.cross_fit(fitted, goe, meld, folds, 1.0, 1.0)
    assert oof.shape == (63, K) and np.isfinite(oof).all()
    assert len(iterations) == 3 and max(iterations) < script.MAX_ITER
    # Relabelling the rows of fold 0 changes the other folds' logits (their models
    # trained on those rows) but not fold 0's own beyond the solver's tolerance (its
    # model saw them only through the warm start).
    moved = script.Corpus(meld.texts, meld.contexts, meld.y.copy(), meld.w, meld.groups)
    moved.y[folds == 0] = (moved.y[folds == 0] + 1) % K
    refitted = script.fit(goe, moved, 1.0, 0.5, 0.0, 1.0)
    oof_moved, _ = script.cross_fit(refitted, goe, moved, folds, 1.0, 1.0)
    held = folds == 0
    np.testing.assert_allclose(oof_moved[held], oof[held], atol=0.02)
    assert np.abs(oof_moved[~held] - oof[~held]).max() > 0.1


def test_paired_bootstrap_of_equal_predictions_is_zero(script: Any) -> None:
    rng = np.random.default_rng(2)
    gold = rng.integers(0, K, 80)
    pred = rng.integers(0, K, 80)
    result = script.paired_bootstrap(gold, pred, [pred, pred], samples=50)
    for metric in ("macro_f1", "weighted_f1"):
        assert result[metric] == {"difference": 0.0, "low": 0.0, "high": 0.0}


MELD_NAMES = ["neutral", "joy", "sadness", "anger", "fear", "disgust", "surprise"]


def _write_data(root: Path) -> None:
    """GoEmotions and MELD folders in their published formats, with made-up lines."""
    from emoapp.core.labelmap import GOEMOTIONS_EKMAN

    goe = root / "goemotions"
    goe.mkdir(parents=True)
    names = [*sorted(m for members in GOEMOTIONS_EKMAN.values() for m in members), "neutral"]
    (goe / "emotions.txt").write_text("\n".join(names) + "\n")
    (goe / "ekman_mapping.json").write_text(json.dumps(GOEMOTIONS_EKMAN))
    first = {group: members[0] for group, members in GOEMOTIONS_EKMAN.items()}
    ekman = ["neutral", "joy", "sadness", "anger", "fear", "disgust", "surprise"]
    fine = [names.index(first[g]) if g != "neutral" else names.index("neutral") for g in ekman]
    rng = np.random.default_rng(5)
    for split, n in (("train", 70), ("dev", 35)):
        rows = []
        for i in range(n):
            label = i % K
            words = " ".join(rng.choice(WORDS[label], 3).tolist())
            rows.append(f"{words}\t{fine[label]}\tc{split}{i}")
        (goe / f"{split}.tsv").write_text("\n".join(rows) + "\n")
    meld = root / "meld"
    meld.mkdir()
    header = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID"
    for split, n in (("train", 84), ("dev", 28)):
        lines = [header]
        for i in range(n):
            label = i % K
            words = " ".join(rng.choice(WORDS[label], 3).tolist())
            lines.append(f"{i + 1},{words},A,{MELD_NAMES[label]},neutral,{i // 4},{i % 4}")
        (meld / f"{split}_sent_emo.csv").write_text("\n".join(lines) + "\n")


def test_the_script_cross_fits_and_a_cached_rerun_writes_the_same_bytes(
    script: Any, tmp_path: Path
) -> None:
    pytest.importorskip("sklearn")
    _write_data(tmp_path / "data")
    args = ["--data", str(tmp_path / "data"), "--cross-fit", "3", "--cache", str(tmp_path / "c")]
    assert script.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert script.main([*args, "--out", str(tmp_path / "b")]) == 0
    (kept,) = (tmp_path / "c").iterdir()  # one folder named after the data and settings
    fits = ["fold0of3.npz", "fold1of3.npz", "fold2of3.npz", "full.npz"]
    assert sorted(f.name for f in kept.iterdir()) == [*fits, "speech-1"]
    assert sorted(f.name for f in (kept / "speech-1").iterdir()) == fits  # its own fits
    checksums = (tmp_path / "a" / "checksums.sha256").read_text()
    assert checksums == (tmp_path / "b" / "checksums.sha256").read_text()
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    crossed = meta["training"]["cross_fitting"]
    assert crossed["folds"] == 3 and sum(crossed["fold_sizes"]) == 84
    assert max(crossed["fold_iterations"]) < script.MAX_ITER
    protocols = meta["training"]["offset_protocols"]
    assert protocols["meld_train_oof_items"] == 84 and protocols["meld_dev_items"] == 28
    pooled = protocols["dev_offsets_from_train_oof_and_dev"]
    conversation = meta["domains"]["conversation"]
    assert conversation["temperature"] == pooled["temperature"]
    assert "out-of-fold" in conversation["fitted_on"]
    assert meta["dev"]["meld_dev"]["calibrated"]["macro_f1"] == pooled["macro_f1"]
    # Without cross-fitting the conversation domain is chosen on MELD dev alone.
    assert (
        script.main(
            ["--data", str(tmp_path / "data"), "--cross-fit", "0", "--out", str(tmp_path / "d")]
        )
        == 0
    )
    plain = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert "cross_fitting" not in plain["training"]
    assert plain["domains"]["conversation"]["fitted_on"] == "MELD dev (dev_sent_emo.csv)"


# --- supervised term weights (--term-weighting, a trial) -------------------------------


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 50), power=st.sampled_from([0.5, 1.0, 2.0]))
def test_term_weights_favour_n_grams_that_tell_labels_apart(
    script: Any, seed: int, power: float
) -> None:
    """Weights are positive with mean 1 per block; a column present in all rows of one
    label and in no other weighs most; one present in every row (it says nothing about
    the label) weighs less than the mean; the weights ignore the rows' order."""
    from scipy import sparse

    rng = np.random.default_rng(seed)
    n = 70
    y = np.arange(n) % K
    presence = (rng.random((n, 6)) < 0.3).astype(float)
    presence[:, 0] = 1.0  # everywhere
    presence[:, 1] = (y == 2).astype(float)  # only label 2
    w = rng.uniform(0.5, 2.0, n)
    (weights,) = script.term_weights([sparse.csr_matrix(presence * 0.5)], y, w, power)
    assert weights.shape == (6,) and (weights > 0).all()
    assert weights.mean() == pytest.approx(1.0)
    assert weights[1] == weights.max()  # present in all of one label's rows, no other
    assert weights[0] < 1.0  # present everywhere: below the block's mean
    order = rng.permutation(n)
    (shuffled,) = script.term_weights(
        [sparse.csr_matrix(presence[order])], y[order], w[order], power
    )
    np.testing.assert_allclose(shuffled, weights, rtol=1e-10)


@pytest.mark.parametrize("punctuation", [0.0, 2.0])
def test_the_folds_term_weighted_features_equal_the_featurisers(
    script: Any, punctuation: float
) -> None:
    """The folds' features (weighted_blocks) equal the full featuriser's once its idf
    carries the same weights, with and without the punctuation block (which takes no
    term weights)."""
    pytest.importorskip("sklearn")
    goe = _corpus(script, 60, 0, dialogues=False)
    meld = _corpus(script, 63, 1, dialogues=True)
    fitted = script.fit(
        goe, meld, 1.0, 0.5, 0.0, 1.0, term_weighting=1.0, punctuation_scale=punctuation
    )
    assert fitted.blocks is not None and fitted.dense is not None
    assert (fitted.dense[1] is None) == (punctuation == 0.0)
    meld_blocks = fitted.blocks[1]
    every = np.arange(63)
    weights = script.counted_weights(fitted.blocks, goe, meld, every, 1.0, "both")
    direct = script.weighted_blocks(fitted.featuriser, meld_blocks, weights, fitted.dense[1])
    np.testing.assert_allclose(
        direct.toarray(), fitted.featuriser.matrix(meld).toarray(), atol=1e-12
    )


def test_term_weighted_folds_never_read_the_held_folds_labels(script: Any) -> None:
    """With term weights, relabelling fold 0 moves fold 0's out-of-fold logits no more
    than the warm start's tolerance: its weights came from the other folds' rows."""
    pytest.importorskip("sklearn")
    goe = _corpus(script, 60, 0, dialogues=False)
    meld = _corpus(script, 63, 1, dialogues=True)
    folds = script.dialogue_folds(meld.groups, 3)
    fitted = script.fit(goe, meld, 1.0, 0.5, 0.0, 1.0, term_weighting=1.0)
    oof, _ = script.cross_fit(fitted, goe, meld, folds, 1.0, 1.0, term_weighting=1.0)
    moved = script.Corpus(meld.texts, meld.contexts, meld.y.copy(), meld.w, meld.groups)
    moved.y[folds == 0] = (moved.y[folds == 0] + 1) % K
    refitted = script.fit(goe, moved, 1.0, 0.5, 0.0, 1.0, term_weighting=1.0)
    oof_moved, _ = script.cross_fit(refitted, goe, moved, folds, 1.0, 1.0, term_weighting=1.0)
    held = folds == 0
    np.testing.assert_allclose(oof_moved[held], oof[held], atol=0.02)
    assert np.abs(oof_moved[~held] - oof[~held]).max() > 0.1


def test_the_script_with_term_weights_writes_an_artefact_the_encoder_agrees_with(
    script: Any, tmp_path: Path
) -> None:
    """The encoder reads the weighted idf as the block's idf: the dev figures measured
    through it equal those the training side computed for the same offsets."""
    pytest.importorskip("sklearn")
    _write_data(tmp_path / "data")
    args = ["--data", str(tmp_path / "data"), "--cross-fit", "3", "--term-weighting", "1"]
    args.append("--no-speech-domain")  # the speech refit would reuse every fold's term weights
    with pytest.raises(SystemExit):  # so the two are refused together
        script.main(args[:-1])
    assert script.main([*args, "--out", str(tmp_path / "a")]) == 0
    meta = json.loads((tmp_path / "a" / "meta.json").read_text())
    assert meta["training"]["term_weighting"] == 1.0
    pooled = meta["training"]["offset_protocols"]["dev_offsets_from_train_oof_and_dev"]
    through_encoder = meta["dev"]["meld_dev"]["calibrated"]
    for name in ("accuracy", "macro_f1", "weighted_f1"):
        assert through_encoder[name] == pooled[name]
    with np.load(tmp_path / "a" / "weights.npz") as arrays:
        plain = script.main(
            ["--data", str(tmp_path / "data"), "--cross-fit", "0", "--out", str(tmp_path / "b")]
        )
        assert plain == 0
        with np.load(tmp_path / "b" / "weights.npz") as unweighted:
            assert not np.allclose(arrays["idf_word"], unweighted["idf_word"])


def test_term_weights_counted_on_conversation_ignore_the_comments_labels(script: Any) -> None:
    pytest.importorskip("sklearn")
    goe = _corpus(script, 60, 0, dialogues=False)
    meld = _corpus(script, 63, 1, dialogues=True)
    featuriser = script.Featuriser([goe, meld], 0.0)
    blocks = (featuriser.block_matrices(goe), featuriser.block_matrices(meld))
    every = np.arange(63)
    mine = script.counted_weights(blocks, goe, meld, every, 1.0, "conversation")
    shuffled = script.Corpus(goe.texts, goe.contexts, goe.y[::-1].copy(), goe.w)
    again = script.counted_weights(blocks, shuffled, meld, every, 1.0, "conversation")
    for a, b in zip(mine, again, strict=True):
        np.testing.assert_array_equal(a, b)
    both = script.counted_weights(blocks, shuffled, meld, every, 1.0, "both")
    assert any(not np.allclose(a, b) for a, b in zip(mine, both, strict=True))


def test_the_speech_domain_leaves_the_other_domains_as_they_were(
    script: Any, tmp_path: Path
) -> None:
    """With and without the speech domain, the written domains' arrays and meta entries
    are the same; the speech domain's weights have the same columns and are read by the
    encoder."""
    pytest.importorskip("sklearn")
    _write_data(tmp_path / "data")
    args = ["--data", str(tmp_path / "data"), "--cross-fit", "3"]
    assert script.main([*args, "--out", str(tmp_path / "with")]) == 0
    assert script.main([*args, "--no-speech-domain", "--out", str(tmp_path / "without")]) == 0
    with (
        np.load(tmp_path / "with" / "weights.npz") as a,
        np.load(tmp_path / "without" / "weights.npz") as b,
    ):
        assert set(a.files) - set(b.files) == {"coef_speech"}
        assert all(np.array_equal(a[k], b[k]) for k in b.files)
        assert a["coef_speech"].shape == a["coef"].shape
    with_meta = json.loads((tmp_path / "with" / "meta.json").read_text())
    without_meta = json.loads((tmp_path / "without" / "meta.json").read_text())
    for domain in ("conversation", "comments"):
        assert with_meta["domains"][domain] == without_meta["domains"][domain]
    assert with_meta["domains"]["speech"]["coef"] == "coef_speech"
    encoder = NgramTextEncoder(ModelSpec(Modality.TEXT, str(tmp_path / "with"), backend="embedded"))
    encoder.load()
    assert set(encoder.domains) == {"conversation", "comments", "speech"}
    assert script.unpunctuated("Oh, REALLY?! I can't...") == "oh really i can't"
