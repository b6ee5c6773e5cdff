"""Tiny, randomly initialised models in the real layouts, made on the spot.

Tests (and anyone trying emoapp without downloads) build a ViT face classifier, a
Wav2Vec2 voice classifier and a RoBERTa text classifier from configs, save them with
``save_pretrained`` and load them back through the same code users run. The RoBERTa
tokenizer is a byte-level BPE trained offline with ``tokenizers``. ``size="full"`` builds
full-size architectures instead, the ``cpu`` profile's shapes (ViT-base, wav2vec2-base,
which is HuBERT-base's shape, a 6-layer RoBERTa), and ``size="large"`` the ``default``
profile's (the same ViT, HuBERT-large, RoBERTa-large): random weights, the same compute,
for benchmarks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

FACE_LABELS = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
VOICE_LABELS = ("neu", "hap", "ang", "sad")
TEXT_LABELS = ("anger", "disgust", "fear", "joy", "neutral", "sadness", "surprise")

Size = Literal["tiny", "full", "large"]

_CORPUS = [
    "I am so happy to see you today.",
    "This is wonderful news, thank you!",
    "I am worried about tomorrow and I feel afraid.",
    "That is disgusting, I hate it.",
    "Why would you do that? I am furious.",
    "I feel sad and lonely tonight.",
    "Wow, I did not expect that at all!",
    "The meeting is at three o'clock in room four.",
]


def _labels(labels: Sequence[str]) -> tuple[dict[int, str], dict[str, int]]:
    id2label = dict(enumerate(labels))
    return id2label, {v: k for k, v in id2label.items()}


def make_face_model(
    path: Path, labels: Sequence[str] = FACE_LABELS, size: Size = "tiny", seed: int = 0
) -> Path:
    """A ViT image classifier (ViT-base/16 at 224 px when full) with its image processor."""
    import torch
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(seed)
    id2label, label2id = _labels(labels)
    if size != "tiny":
        config = ViTConfig(image_size=224, patch_size=16, id2label=id2label, label2id=label2id)
        image_size = 224
    else:
        image_size = 32
        config = ViTConfig(
            image_size=image_size,
            patch_size=8,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            id2label=id2label,
            label2id=label2id,
        )
    ViTForImageClassification(config).save_pretrained(path)
    ViTImageProcessor(
        size={"height": image_size, "width": image_size},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    ).save_pretrained(path)
    return path


def make_voice_model(
    path: Path, labels: Sequence[str] = VOICE_LABELS, size: Size = "tiny", seed: int = 0
) -> Path:
    """A Wav2Vec2 audio classifier (wav2vec2-base when full) with its feature extractor.
    ``size="large"`` is not a wav2vec2: use :func:`make_hubert_er_model`."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForSequenceClassification,
    )

    torch.manual_seed(seed)
    id2label, label2id = _labels(labels)
    if size == "large":
        raise ValueError("the large voice model is HuBERT: make_hubert_er_model(size='large')")
    if size == "full":
        config = Wav2Vec2Config(id2label=id2label, label2id=label2id, use_weighted_layer_sum=True)
    else:
        config = _tiny_speech_config(Wav2Vec2Config, labels)
    Wav2Vec2ForSequenceClassification(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16_000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    ).save_pretrained(path)
    return path


def make_text_model(
    path: Path, labels: Sequence[str] = TEXT_LABELS, size: Size = "tiny", seed: int = 0
) -> Path:
    """A RoBERTa sequence classifier (distilroberta-base's shape when full, RoBERTa-large's
    when large) with a byte-level BPE tokenizer trained offline on a few sentences."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from tokenizers.processors import RobertaProcessing
    from transformers import RobertaConfig, RobertaForSequenceClassification, RobertaTokenizerFast

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    vocab_size = 400 if size == "tiny" else 50265
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        _CORPUS * 4,
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
    )
    bpe.post_processor = RobertaProcessing(
        ("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>"))
    )
    max_len = 64 if size == "tiny" else 512
    tokenizer = RobertaTokenizerFast(
        tokenizer_object=bpe._tokenizer,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=max_len,
    )
    tokenizer.save_pretrained(path)
    id2label, label2id = _labels(labels)
    if size == "large":
        config = RobertaConfig(
            vocab_size=len(tokenizer),
            hidden_size=1024,
            num_hidden_layers=24,
            num_attention_heads=16,
            intermediate_size=4096,
            max_position_embeddings=514,
            id2label=id2label,
            label2id=label2id,
        )
    elif size == "full":
        config = RobertaConfig(
            vocab_size=len(tokenizer),
            num_hidden_layers=6,
            max_position_embeddings=514,
            id2label=id2label,
            label2id=label2id,
        )
    else:
        config = RobertaConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=max_len + 2,
            id2label=id2label,
            label2id=label2id,
        )
    RobertaForSequenceClassification(config).save_pretrained(path)
    return path


def make_all(root: Path, size: Size = "tiny") -> dict[str, Path]:
    """All three models under ``root``: {"face": ..., "voice": ..., "text": ...}."""
    root = Path(root)
    return {
        "face": make_face_model(root / f"{size}-face", size=size),
        "voice": (
            make_hubert_er_model(root / f"{size}-voice", size="large")
            if size == "large"
            else make_voice_model(root / f"{size}-voice", size=size)
        ),
        "text": make_text_model(
            root / f"{size}-text",
            labels=EMOBERTA_LABELS if size == "large" else TEXT_LABELS,
            size=size,
        ),
    }


WHISPER_SPECIALS = ("<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|transcribe|>")
WHISPER_NO_TIMESTAMPS = "<|notimestamps|>"


def make_asr_model(path: Path, seed: int = 0) -> Path:
    """A tiny English-only Whisper speech recogniser (random weights) with its feature
    extractor and a byte-level BPE tokenizer trained offline on a few sentences: it
    transcribes gibberish, but through the same loading and generation code as
    ``openai/whisper-*``."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
        WhisperTokenizer,
    )

    torch.manual_seed(seed)
    path.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        _CORPUS * 4,
        vocab_size=300,
        min_frequency=1,
        special_tokens=list(WHISPER_SPECIALS),
    )
    tokenizer = WhisperTokenizer(
        tokenizer_object=bpe._tokenizer,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=64,
    )
    # Whisper reads every id above <|notimestamps|> as a timestamp: it must be the last.
    tokenizer.add_special_tokens({"additional_special_tokens": [WHISPER_NO_TIMESTAMPS]})
    feature_extractor = WhisperFeatureExtractor(feature_size=80)
    WhisperProcessor(feature_extractor=feature_extractor, tokenizer=tokenizer).save_pretrained(path)
    ids: dict[str, int] = {
        name: int(tokenizer.convert_tokens_to_ids(name))  # type: ignore[arg-type]
        for name in (*WHISPER_SPECIALS, WHISPER_NO_TIMESTAMPS)
    }
    assert ids[WHISPER_NO_TIMESTAMPS] == len(tokenizer) - 1
    config = WhisperConfig(
        vocab_size=len(tokenizer),
        num_mel_bins=80,
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=1500,
        max_target_positions=64,
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"],
        decoder_start_token_id=ids["<|startoftranscript|>"],
    )
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(
        decoder_start_token_id=ids["<|startoftranscript|>"],
        eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        bos_token_id=ids["<|endoftext|>"],
        no_timestamps_token_id=ids[WHISPER_NO_TIMESTAMPS],
        is_multilingual=False,
        # Random weights: keep the special tokens out so the output is words (gibberish).
        suppress_tokens=[ids[name] for name in (*WHISPER_SPECIALS[1:], WHISPER_NO_TIMESTAMPS)],
        begin_suppress_tokens=[ids["<|endoftext|>"]],
    )
    model.save_pretrained(path)
    return path


# The label order of ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition's config.json
# (RAVDESS's eight emotions, alphabetical).
RAVDESS_LABELS = ("angry", "calm", "disgust", "fearful", "happy", "neutral", "sad", "surprised")
# superb/hubert-*-superb-er (IEMOCAP, four classes).
IEMOCAP_LABELS = ("neu", "hap", "ang", "sad")
# tae898/emoberta-*: MELD's seven labels, in the order its model card lists them.
EMOBERTA_LABELS = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")


def _tiny_speech_config(config_cls: Any, labels: Sequence[str], **extra: object) -> Any:
    id2label, label2id = _labels(labels)
    return config_cls(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16, 16),
        conv_stride=(5, 4, 4),
        conv_kernel=(10, 4, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        classifier_proj_size=16,
        id2label=id2label,
        label2id=label2id,
        **extra,
    )


def _save_quietly(model: object, path: Path) -> None:
    """``save_pretrained`` without transformers' progress bar (whose tqdm monitor thread
    would outlive a test)."""
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        model.save_pretrained(path)  # type: ignore[attr-defined]
    finally:
        if was_enabled:
            logging.enable_progress_bar()


def _save_speech_extractor(path: Path) -> None:
    from transformers import Wav2Vec2FeatureExtractor

    Wav2Vec2FeatureExtractor(
        feature_size=1,
        sampling_rate=16_000,
        padding_value=0.0,
        do_normalize=True,
        return_attention_mask=True,
    ).save_pretrained(path)


def make_pooled_head_voice_model(
    path: Path,
    labels: Sequence[str] = RAVDESS_LABELS,
    head: tuple[str, str] = ("dense", "output"),
    weights: Literal["safetensors", "bin"] = "safetensors",
    seed: int = 0,
) -> Path:
    """A tiny replica of ``ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition``'s
    layout: a wav2vec2 backbone with stable layer norm and layer-normed feature encoder
    (as wav2vec2-large-xlsr-53), the config naming ``Wav2Vec2ForSpeechClassification``
    with ``pooling_mode = "mean"``, and the head saved as ``classifier.<head[0]>.*``
    (hidden x hidden) and ``classifier.<head[1]>.*`` (labels x hidden), random weights.
    Other ``head`` names make a checkpoint whose head no layout knows."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2Model

    torch.manual_seed(seed)
    config = _tiny_speech_config(
        Wav2Vec2Config,
        labels,
        do_stable_layer_norm=True,
        feat_extract_norm="layer",
        architectures=["Wav2Vec2ForSpeechClassification"],
        problem_type="single_label_classification",
        finetuning_task="wav2vec2_clf",
    )
    config.pooling_mode = "mean"
    backbone = Wav2Vec2Model(config)
    hidden = int(config.hidden_size)
    state = {f"wav2vec2.{k}": v.contiguous() for k, v in backbone.state_dict().items()}
    first, second = head
    state[f"classifier.{first}.weight"] = torch.randn(hidden, hidden) * 0.2
    state[f"classifier.{first}.bias"] = torch.randn(hidden) * 0.1
    state[f"classifier.{second}.weight"] = torch.randn(len(labels), hidden) * 0.5
    state[f"classifier.{second}.bias"] = torch.randn(len(labels)) * 0.1
    path.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(path)
    if weights == "safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path / "model.safetensors"), metadata={"format": "pt"})
    else:
        torch.save(state, path / "pytorch_model.bin")
    _save_speech_extractor(path)
    return path


def hubert_er_config(
    labels: Sequence[str] = IEMOCAP_LABELS,
    variant: Literal["large", "base"] = "large",
    size: Size = "tiny",
) -> Any:
    """The ``HubertConfig`` of :func:`make_hubert_er_model`."""
    from transformers import HubertConfig

    large = variant == "large"
    layout: dict[str, Any] = {
        "do_stable_layer_norm": large,
        "feat_extract_norm": "layer" if large else "group",
        "use_weighted_layer_sum": True,
    }
    if size == "tiny":
        return _tiny_speech_config(HubertConfig, labels, **layout)
    id2label, label2id = _labels(labels)
    width, layers, heads = (1024, 24, 16) if large else (768, 12, 12)
    return HubertConfig(
        hidden_size=width,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * width,
        conv_bias=large,
        id2label=id2label,
        label2id=label2id,
        **layout,
    )


def make_hubert_er_model(
    path: Path,
    labels: Sequence[str] = IEMOCAP_LABELS,
    variant: Literal["large", "base"] = "large",
    seed: int = 0,
    size: Size = "tiny",
) -> Path:
    """A tiny replica of ``superb/hubert-{large,base}-superb-er``'s layout: HuBERT (large:
    stable layer norm and a layer-normed feature encoder; base: group norm), a weighted
    sum of all layers, projector and classifier (``HubertForSequenceClassification``,
    transformers' own class), IEMOCAP's four labels. ``size`` other than ``"tiny"`` builds
    the variant's real sizes (large: 24 layers, 1024 wide, 16 heads; base: 12, 768, 12),
    random weights."""
    import torch
    from transformers import HubertForSequenceClassification

    torch.manual_seed(seed)
    config = hubert_er_config(labels, variant, size)
    _save_quietly(HubertForSequenceClassification(config), path)
    _save_speech_extractor(path)
    return path
