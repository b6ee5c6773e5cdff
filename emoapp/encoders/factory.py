"""Build the encoder a :class:`~emoapp.registry.ModelSpec` asks for.

Transformers models load from local files only unless downloads are allowed; baseline
encoders need nothing to download. Heavy modules are imported here, on demand.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from emoapp.core.errors import ModelLoadError
from emoapp.core.messages import Modality
from emoapp.encoders.base import Encoder, EncoderConfig
from emoapp.registry import ModelSpec


@dataclass
class RuntimeOptions:
    """Where and how models run, shared by every encoder of a session."""

    device: str = "auto"
    dtype: str = "auto"
    allow_download: bool = False
    models_dir: str | None = None
    """Hugging Face cache folder for pulled models (default: ``EMOAPP_MODELS_DIR``, else
    the usual ``HF_HUB_CACHE`` / ``HF_HOME`` location)."""
    batch_size: int = 16

    def cache_dir(self) -> str | None:
        return self.models_dir or os.environ.get("EMOAPP_MODELS_DIR") or None


def is_available_locally(spec: ModelSpec, options: RuntimeOptions | None = None) -> bool:
    """True when the model can load with no network: a baseline, a local directory, or a
    hub model whose files are already in the cache at the wanted revision."""
    if spec.bundled or spec.is_local_dir:
        return True
    from emoapp.modelstore import local_state

    options = options or RuntimeOptions()
    state = local_state(spec.model, spec.revision, options.cache_dir())
    if state.snapshot is None:
        return False
    # A pull by emoapp leaves a manifest; a download by transformers itself fetches
    # config.json first, so a config alone could be an interrupted download: then ask for
    # the weights too.
    return state.manifest is not None or any(
        (state.snapshot / name).exists() for name in _WEIGHT_FILES
    )


_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def encoder_config(spec: ModelSpec, options: RuntimeOptions) -> EncoderConfig:
    return EncoderConfig(
        model=spec.model,
        revision=spec.revision,
        device=options.device,
        dtype=options.dtype,
        local_files_only=not options.allow_download,
        cache_dir=options.cache_dir(),
        batch_size=options.batch_size,
        label_overrides=dict(spec.label_overrides),
        expected_sampling_rate=spec.entry.sampling_rate if spec.entry is not None else None,
    )


def build_encoder(
    spec: ModelSpec,
    options: RuntimeOptions | None = None,
    modality_config: Any = None,
) -> Encoder:
    """An (unloaded) encoder for ``spec``. ``modality_config`` is a ``FaceConfig`` or
    ``VoiceConfig`` where the modality takes one."""
    options = options or RuntimeOptions()
    if spec.baseline:
        return _build_baseline(spec, modality_config)
    if spec.bundled:
        return _build_embedded(spec, modality_config)
    config = encoder_config(spec, options)
    if spec.modality is Modality.FACE:
        from emoapp.encoders.face import FaceEncoder

        return FaceEncoder(config, modality_config)
    if spec.modality is Modality.VOICE:
        from emoapp.encoders.voice import VoiceEncoder

        return VoiceEncoder(config, modality_config)
    from emoapp.encoders.text import TextEncoder

    return TextEncoder(config)


def _build_baseline(spec: ModelSpec, modality_config: Any) -> Encoder:
    if spec.model == "baseline/face-smile":
        from emoapp.encoders.baseline import SmileFaceEncoder

        return SmileFaceEncoder(modality_config)
    if spec.model == "baseline/voice-prosody":
        from emoapp.encoders.baseline import ProsodyVoiceEncoder

        return ProsodyVoiceEncoder(modality_config)
    if spec.model == "baseline/text-lexicon":
        from emoapp.encoders.baseline import LexiconTextEncoder

        return LexiconTextEncoder()
    raise ModelLoadError(f"unknown baseline model {spec.model!r}")


def _build_embedded(spec: ModelSpec, modality_config: Any) -> Encoder:
    """The embedded (trained, shipped) models: artefacts in ``models/embedded/NAME``, or
    a local artefact folder; one embedded encoder class per modality."""
    if spec.modality is Modality.FACE:
        from emoapp.encoders.embedded.face import member_encoder

        return member_encoder(spec, modality_config)
    if spec.modality is Modality.VOICE:
        from emoapp.encoders.embedded.voice import EmbeddedVoiceEncoder

        return EmbeddedVoiceEncoder(spec, modality_config)
    from emoapp.encoders.embedded.text import NgramTextEncoder

    return NgramTextEncoder(spec)


def bundled_mask(spec: ModelSpec) -> Any:
    """The canonical labels a built-in (baseline or embedded) model can express."""
    if spec.baseline:
        from emoapp.encoders.baseline import baseline_mask

        return baseline_mask(spec.model)
    from emoapp.core.labelmap import build_label_map
    from emoapp.encoders.embedded.artefacts import load_meta

    _, meta = load_meta(spec.model, check=False)
    return build_label_map(spec.model, list(meta["labels"]), spec.label_overrides).mask


def embedded_present(spec: ModelSpec) -> bool:
    """True when an embedded model's artefact folder is there (not yet verified)."""
    from emoapp.encoders.embedded.artefacts import META, artefact_dir

    return (artefact_dir(spec.model) / META).is_file()
