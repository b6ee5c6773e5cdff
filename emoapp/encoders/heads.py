"""Classification heads that transformers does not build, rebuilt from the checkpoint.

A head layout is recognised by the tensors a checkpoint holds (names and shapes), never by
the model's name; :func:`emoapp.encoders.integrity.load_whole` asks each layout in turn
when transformers' own class for the config would leave weights random or tensors unused.

:class:`PooledTanhHead`: ``classifier.dense.{weight,bias}`` and
``classifier.output.{weight,bias}`` beside a speech backbone (wav2vec2, HuBERT, WavLM...).
The forward is the one of the ``Wav2Vec2ForSpeechClassification`` class of the soxan
notebooks that ``ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition`` was trained
with: the backbone's last hidden states averaged over time, then ``dense``, ``tanh``,
``output`` (dropout is off at inference). Labels come from the config's ``id2label``. In a
padded batch the average runs over each clip's own frames (the backbone's feature-vector
mask), which is what the original computes for one clip at a time.

A regression head (audeering's ``classifier.out_proj``: arousal, dominance, valence) is
not a classifier: nothing here takes it, so such a checkpoint is refused rather than read
as class scores.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Protocol

from emoapp.core.errors import ModelLoadError
from emoapp.encoders.integrity import CheckpointTensors, LoadProblems, quiet_load_report


class HeadLayout(Protocol):
    """A head layout that transformers' classes do not build."""

    @property
    def name(self) -> str:
        """What to call it in messages and ``EncoderInfo``."""

    def matches(self, tensors: CheckpointTensors, config: Any) -> bool:
        """Whether the checkpoint holds exactly this head, consistent with ``config``."""

    def build(self, transformers: Any, source: str, kwargs: dict[str, Any], model_id: str) -> Any:
        """The model with this head, every weight from the checkpoint (ModelLoadError
        otherwise)."""


class PooledTanhHead:
    """Mean-pooled hidden states -> dense -> tanh -> output, for audio classification."""

    name: ClassVar[str] = "pooled-tanh (classifier.dense + classifier.output)"
    prefix: ClassVar[str] = "classifier."
    keys: ClassVar[tuple[str, ...]] = ("dense.weight", "dense.bias", "output.weight", "output.bias")

    def matches(self, tensors: CheckpointTensors, config: Any) -> bool:
        head = tensors.under(self.prefix)
        if set(head) != set(self.keys) or any(k.startswith("projector.") for k in tensors.shapes):
            return False
        if getattr(config, "problem_type", None) == "regression":
            return False
        dense, dense_b = head["dense.weight"], head["dense.bias"]
        out, out_b = head["output.weight"], head["output.bias"]
        labels = len(getattr(config, "id2label", None) or {})
        return (
            len(dense) == 2
            and dense[1] == getattr(config, "hidden_size", None)
            and dense_b == (dense[0],)
            and len(out) == 2
            and out[1] == dense[0]
            and out_b == (out[0],)
            and out[0] == labels
        )

    def build(self, transformers: Any, source: str, kwargs: dict[str, Any], model_id: str) -> Any:
        from emoapp.encoders.integrity import checkpoint_tensors

        with quiet_load_report():
            backbone, info = transformers.AutoModel.from_pretrained(
                source, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
            )
        problems = LoadProblems.from_info(info)
        head_keys = tuple(self.prefix + k for k in self.keys)
        if problems.missing or problems.mismatched or set(problems.unexpected) != set(head_keys):
            raise ModelLoadError(
                problems.describe(model_id, f"{type(backbone).__name__} with a {self.name} head")
            )
        weights = checkpoint_tensors(transformers, source, kwargs).read(head_keys)
        return pooled_tanh_classifier(backbone, *(weights[k] for k in head_keys))


def pooled_tanh_classifier(
    backbone: Any, dense_w: Any, dense_b: Any, out_w: Any, out_b: Any
) -> Any:
    """A torch module: ``backbone`` with the pooled dense-tanh-output head."""
    import torch
    from transformers.modeling_outputs import SequenceClassifierOutput

    class PooledTanhClassifier(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = backbone
            self.config = backbone.config
            self.dense = torch.nn.Linear(dense_w.shape[1], dense_w.shape[0])
            self.output = torch.nn.Linear(out_w.shape[1], out_w.shape[0])
            with torch.no_grad():
                for layer, w, b in ((self.dense, dense_w, dense_b), (self.output, out_w, out_b)):
                    layer.weight.copy_(w)
                    layer.bias.copy_(b)

        def forward(
            self, input_values: torch.Tensor, attention_mask: torch.Tensor | None = None
        ) -> SequenceClassifierOutput:
            hidden = self.backbone(input_values, attention_mask=attention_mask).last_hidden_state
            frames = getattr(self.backbone, "_get_feature_vector_attention_mask", None)
            if attention_mask is not None and frames is not None:
                mask = frames(hidden.shape[1], attention_mask).to(hidden.dtype).unsqueeze(-1)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
            else:
                pooled = hidden.mean(dim=1)
            return SequenceClassifierOutput(logits=self.output(torch.tanh(self.dense(pooled))))

    return PooledTanhClassifier()


AUDIO_HEADS: Sequence[HeadLayout] = (PooledTanhHead(),)
"""The layouts tried for audio classifiers, in order."""
