"""Paired evaluation: label-matched tuples from unimodal sets, scored with the app's
fusion; and the command's refusals."""

from __future__ import annotations

import numpy as np
import pytest

from emoapp.cli import main
from emoapp.core.errors import EmoappError
from emoapp.core.fusion import FusionConfig
from emoapp.core.messages import Modality
from emoapp.core.taxonomy import CANONICAL_LABELS, LABEL_INDEX, NUM_LABELS
from emoapp.evaluation.datasets import EvalDataset, EvalItem
from emoapp.evaluation.paired import draw_pairs, paired_predictions, score_pairs, shared_labels
from emoapp.evaluation.predict import ItemPrediction
from emoapp.evaluation.scoring import FusionSetup


def _set(name: str, labels: list[str], per_label: int = 5) -> EvalDataset:
    items = [
        EvalItem(f"{name}-{label}-{i}", label, text="x")
        for label in labels
        for i in range(per_label)
    ]
    return EvalDataset(name, "csv", None, items)  # type: ignore[arg-type]


def _noisy_predictions(
    dataset: EvalDataset, modality: Modality, accuracy: float, seed: int
) -> dict[str, ItemPrediction]:
    """A model right ``accuracy`` of the time, and more sure when it is right (calibrated
    confidence is what lets late fusion pick the modality that knows)."""
    rng = np.random.default_rng(seed)
    out = {}
    for item in dataset.items:
        right = rng.random() < accuracy
        k = LABEL_INDEX[item.label] if right else int(rng.integers(0, NUM_LABELS))
        p = np.full(NUM_LABELS, 0.05)
        p[k] = rng.uniform(0.5, 0.9) if right else rng.uniform(0.1, 0.4)
        out[item.id] = ItemPrediction(
            item.id,
            modality,
            f"{modality.value}-model",
            "ok",
            (p / p.sum())[None],
            np.ones(7, bool),
            1,
        )
    return out


def test_pairs_are_label_matched_seeded_and_over_the_shared_labels():
    voice = _set("voice", ["neutral", "happy", "sad", "angry"])
    text = _set("text", ["happy", "sad", "angry", "surprised"])
    datasets = {Modality.VOICE: voice, Modality.TEXT: text}
    assert shared_labels(datasets) == ["happy", "sad", "angry"]
    pairs = draw_pairs(datasets, 300, seed=7)
    assert pairs == draw_pairs(datasets, 300, seed=7)
    assert pairs != draw_pairs(datasets, 300, seed=8)
    for pair in pairs:
        assert {m.label for m in pair.members.values()} == {pair.label}
    counts = {label: sum(p.label == label for p in pairs) for label in ("happy", "sad", "angry")}
    assert min(counts.values()) > 60  # each shared label drawn with equal chance


def test_refusals_name_the_problem():
    voice = _set("voice", ["neutral"])
    text = _set("text", ["happy"])
    with pytest.raises(EmoappError, match="share no label"):
        draw_pairs({Modality.VOICE: voice, Modality.TEXT: text}, 10)
    with pytest.raises(EmoappError, match="at least two"):
        draw_pairs({Modality.VOICE: voice}, 10)
    with pytest.raises(EmoappError, match="positive"):
        draw_pairs({Modality.VOICE: voice, Modality.TEXT: voice}, 0)


def test_fusing_two_independent_informative_modalities_beats_either_on_pairs():
    labels = list(CANONICAL_LABELS)
    voice, text = _set("voice", labels, 20), _set("text", labels, 20)
    datasets = {Modality.VOICE: voice, Modality.TEXT: text}
    pairs = draw_pairs(datasets, 1500, seed=1)
    predictions = {
        Modality.VOICE: _noisy_predictions(voice, Modality.VOICE, 0.5, 1),
        Modality.TEXT: _noisy_predictions(text, Modality.TEXT, 0.55, 2),
    }
    items, paired = paired_predictions(pairs, predictions)
    assert [i.id for i in items] == [p.id for p in pairs]
    assert set(paired[Modality.VOICE]) == {p.id for p in pairs}
    setup = FusionSetup(FusionConfig(reliability={"face": 1, "voice": 1, "text": 1}))
    result = score_pairs(pairs, predictions, setup, bootstrap=200, seed=0)
    by_name = {s.system.name: s.report.macro_f1 for s in result.scores}
    assert by_name["voice+text"] > max(by_name["voice"], by_name["text"])
    assert result.gain is not None and result.gain.best_single == "text"
    assert result.gain.difference > 0
    assert result.gain.interval is not None and result.gain.interval.low > 0


def test_command_refuses_a_dataset_and_pairs_together_and_a_single_pair(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path), "--pair", f"text={tmp_path}"]) == 2
    assert "either a DATASET or --pair" in capsys.readouterr().err
    assert main(["evaluate", "--pair", f"text={tmp_path}"]) == 2
    assert "at least two" in capsys.readouterr().err
    assert main(["evaluate"]) == 2
    assert "give a DATASET" in capsys.readouterr().err
