"""Explainers: what inside one modality drove a prediction (see
:mod:`emoapp.core.explanation` for what an explanation is, and what it is not).

- face: Grad-CAM (Selvaraju et al., 2017) for the embedded mini-Xception CNN,
  gradient x input summed per region for transformers image models (ViT and the like);
- text: the exact per-word split of the embedded linear model's logit; word occlusion
  (delete one word, re-classify) for any other text model;
- voice: occlusion over time (silence one stretch of the window, re-classify).

Every method scores the canonical label the prediction shows, on the model's own output
(``log`` of the label's probability for gradients, the probability for occlusion), and
refuses labels outside the model's mask. They are made on demand (``emoapp analyze
--explain``, the window's explanation worker), never on every frame by default.
:func:`explainer_for` picks the method for an encoder, or None when it offers none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Protocol

from emoapp.core.explanation import EXPLANATION, EXPLANATION_ERROR, Explanation
from emoapp.core.messages import EncoderOutput, ModalityPrediction


class Explainer(Protocol):
    """Explains one prediction of one encoder, given the input it was made from."""

    method: str

    def explain(
        self, item: Any, prediction: ModalityPrediction, label: str | None = None
    ) -> Explanation:
        """The explanation of ``prediction`` (made by the encoder from ``item``) for
        ``label`` (default: the label the prediction shows). Raises
        :class:`~emoapp.core.explanation.NotExpressibleError` for a label outside the
        model's mask."""
        ...


def explainer_for(encoder: Any) -> Explainer | None:
    """The explainer for ``encoder``, or None when it offers none (the baselines' face
    and voice heuristics)."""
    from emoapp.encoders.embedded.face import FacePairEncoder, MiniXceptionFaceEncoder
    from emoapp.encoders.embedded.text import NgramTextEncoder
    from emoapp.encoders.embedded.voice import EmbeddedVoiceEncoder
    from emoapp.encoders.face import FaceEncoder
    from emoapp.encoders.voice import VoiceEncoder

    if isinstance(encoder, FacePairEncoder):
        from emoapp.encoders.explain.face import PairGradCamFaceExplainer

        return PairGradCamFaceExplainer(encoder)
    if isinstance(encoder, MiniXceptionFaceEncoder):
        from emoapp.encoders.explain.face import GradCamFaceExplainer

        return GradCamFaceExplainer(encoder)
    if isinstance(encoder, FaceEncoder):
        from emoapp.encoders.explain.face import GradientFaceExplainer

        return GradientFaceExplainer(encoder)
    if isinstance(encoder, NgramTextEncoder):
        from emoapp.encoders.explain.text import LinearTextExplainer

        return LinearTextExplainer(encoder)
    if isinstance(encoder, (EmbeddedVoiceEncoder, VoiceEncoder)):
        from emoapp.encoders.explain.voice import OcclusionVoiceExplainer

        return OcclusionVoiceExplainer(encoder)
    if getattr(encoder, "modality", None) is not None and str(encoder.modality) == "text":
        from emoapp.encoders.explain.text import OcclusionTextExplainer

        return OcclusionTextExplainer(encoder)
    return None


def with_explanation(
    explainer: Explainer, item: Any, prediction: ModalityPrediction
) -> ModalityPrediction:
    """``prediction`` with its explanation in ``detail`` (or, when explaining fails, the
    reason under :data:`EXPLANATION_ERROR`: a failed explanation never loses the
    prediction)."""
    try:
        detail = {**prediction.detail, EXPLANATION: explainer.explain(item, prediction)}
    # An explainer runs the model in another way (gradients, edited inputs): whatever
    # goes wrong there is reported on the prediction, never raised into the pipeline.
    except Exception as exc:  # noqa: BLE001
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc) else ''}"
        detail = {**prediction.detail, EXPLANATION_ERROR: reason.rstrip(": ")}
    return replace(prediction, detail=detail)


class ExplainingEncoder:
    """An encoder whose every prediction carries its explanation (``emoapp analyze
    --explain``). Everything else is the wrapped encoder's."""

    def __init__(self, encoder: Any, explainer: Explainer) -> None:
        self._encoder = encoder
        self.explainer = explainer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)

    def encode(self, items: Sequence[Any]) -> list[EncoderOutput]:
        outputs = self._encoder.encode(items)
        return [
            with_explanation(self.explainer, item, out)
            if isinstance(out, ModalityPrediction)
            else out
            for item, out in zip(items, outputs, strict=True)
        ]
