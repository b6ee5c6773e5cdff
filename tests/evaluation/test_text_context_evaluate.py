"""``emoapp evaluate`` gives the text model each MELD utterance's dialogue context and
the dataset's text domain, and reports weighted F1."""

from __future__ import annotations

import numpy as np
import pytest

from emoapp.evaluation.metrics import weighted_f1


def test_evaluate_passes_context_and_domain_and_reports_weighted_f1(tmp_path):
    from emoapp.core.messages import Modality, ModalityPrediction, TextEntry
    from emoapp.encoders.base import EncoderInfo
    from emoapp.evaluation.datasets import read_dataset
    from emoapp.evaluation.report import summary_table
    from emoapp.evaluation.runner import EvaluationOptions, evaluate
    from tests.evaluation.test_datasets import make_meld

    class RecordingText:
        """Says 'neutral' to everything; remembers what it was given."""

        modality = Modality.TEXT
        model_id = "recording-text"
        baseline = False

        def __init__(self) -> None:
            self.seen: list[TextEntry] = []

        def load(self) -> None:
            pass

        def info(self) -> EncoderInfo:
            return EncoderInfo(Modality.TEXT, self.model_id, "cpu", "float32", False)

        def encode(self, items):
            self.seen.extend(items)
            probs = np.eye(7)[0] * 0.9 + 0.1 / 7
            return [
                ModalityPrediction(Modality.TEXT, 0.0, probs, np.ones(7, bool), 0.9, self.model_id)
                for _ in items
            ]

    dataset = read_dataset(make_meld(tmp_path / "meld", []))
    encoder = RecordingText()
    result = evaluate(dataset, {Modality.TEXT: encoder}, EvaluationOptions(bootstrap=0))
    by_text = {e.text: e for e in encoder.seen}
    assert by_text["I'm so sorry."].context == ("Oh my God, you're back!",)
    assert by_text["Oh my God, you're back!"].context == ()
    assert {e.domain for e in encoder.seen} == {"conversation"}
    report = result.scores[0].report
    gold = np.array([6, 2, 0, 3])  # surprised, sad, neutral, angry; all predicted neutral
    assert report.weighted_f1 == pytest.approx(weighted_f1(gold, np.zeros(4, dtype=int)))
    assert "weighted-F1" in summary_table(result)
