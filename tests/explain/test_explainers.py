"""Explainers, and the honesty checks every one of them must pass:

- a saliency map depends on the model: randomising the weights changes it (Adebayo et
  al., 2018, "Sanity checks for saliency maps": the model-parameter randomisation test);
- deleting the top-attributed words lowers the label's probability more than deleting
  as many random words;
- explanations exist only for labels the model can express (its mask).
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emoapp.core.explanation import (
    GRID,
    FaceExplanation,
    NotExpressibleError,
    TextExplanation,
    VoiceExplanation,
    normalise_grid,
)
from emoapp.core.messages import (
    AudioChunk,
    Modality,
    ModalityPrediction,
    TextEntry,
    VideoFrame,
)
from emoapp.core.taxonomy import LABEL_INDEX
from emoapp.encoders.base import EncoderConfig
from emoapp.encoders.embedded.face import MiniXceptionFaceEncoder
from emoapp.encoders.explain import explainer_for
from emoapp.encoders.face import FaceEncoder
from emoapp.encoders.factory import build_encoder
from emoapp.encoders.voice import VoiceConfig, VoiceEncoder
from emoapp.registry import resolve_model


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def embedded(modality: Modality, ref: str):
    spec = resolve_model(modality, ref)
    assert spec is not None and spec.backend == "embedded"
    enc = build_encoder(spec)
    enc.load()
    return enc


@pytest.fixture(scope="module")
def face_encoder() -> MiniXceptionFaceEncoder:
    enc = embedded(Modality.FACE, "embedded/face-minixception")
    assert isinstance(enc, MiniXceptionFaceEncoder)
    return enc


@pytest.fixture(scope="module")
def text_encoder():
    return embedded(Modality.TEXT, "embedded/text-conversation")


@pytest.fixture(scope="module")
def voice_encoder():
    return embedded(Modality.VOICE, "embedded/voice-multicorpus")


@pytest.fixture(scope="module")
def frames(face_only_frames) -> list[VideoFrame]:
    return face_only_frames


@pytest.fixture(scope="module")
def speech(samples) -> np.ndarray:
    import soundfile as sf

    audio, rate = sf.read(samples / "speech.wav", dtype="float32")
    assert rate == 16_000
    return audio if audio.ndim == 1 else audio.mean(axis=1)


def predictions(encoder, items):
    outputs = encoder.encode(items)
    pairs = [
        (i, o) for i, o in zip(items, outputs, strict=True) if isinstance(o, ModalityPrediction)
    ]
    assert pairs, "the sample gave no prediction"
    return pairs


def grids(explainer, pairs) -> list[np.ndarray]:
    return [f.grid for item, p in pairs for f in explainer.explain(item, p).faces]


def ranks(x: np.ndarray) -> np.ndarray:
    """Ranks of ``x``'s values, ties sharing their mean rank."""
    order = np.argsort(x, kind="stable")
    plain = np.empty(len(x))
    plain[order] = np.arange(len(x))
    _, tie, counts = np.unique(x, return_inverse=True, return_counts=True)
    return (np.bincount(tie, weights=plain) / counts)[tie]


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    rx, ry = ranks(x.ravel()), ranks(y.ravel())
    if rx.std() == 0 or ry.std() == 0:
        return 0.0
    return float(np.corrcoef(rx, ry)[0, 1])


def mean_rank_correlation(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return float(np.mean([spearman(x, y) for x, y in zip(a, b, strict=True)]))


def randomise(module, seed: int) -> None:
    import torch

    torch.manual_seed(seed)
    for layer in module.modules():
        if hasattr(layer, "reset_parameters"):
            layer.reset_parameters()


# --- face ------------------------------------------------------------------------------


def test_grad_cam_gives_a_grid_per_face_over_the_crop(face_encoder, frames):
    explainer = explainer_for(face_encoder)
    assert explainer is not None and explainer.method == "grad-cam"
    for frame, prediction in predictions(face_encoder, frames):
        explanation = explainer.explain(frame, prediction)
        assert isinstance(explanation, FaceExplanation)
        assert len(explanation.faces) == len(prediction.faces)
        for saliency, face in zip(explanation.faces, prediction.faces, strict=True):
            assert saliency.label == face.label
            assert saliency.grid.shape == (GRID, GRID)
            assert saliency.grid.min() >= 0 and saliency.grid.max() == pytest.approx(1.0)
            # the grid covers the face box grown by the model's crop margin
            x, y, w, h = saliency.box
            fx, fy, fw, fh = face.box
            assert x <= fx and y <= fy and x + w >= fx + fw and y + h >= fy + fh


def test_grad_cam_changes_when_the_weights_are_randomised(face_encoder, frames):
    explainer = explainer_for(face_encoder)
    pairs = predictions(face_encoder, frames)
    before = grids(explainer, pairs)
    assert mean_rank_correlation(before, grids(explainer, pairs)) == pytest.approx(1.0)
    shuffled = copy.copy(face_encoder)
    shuffled.model = copy.deepcopy(face_encoder.model)
    # cascading randomisation from the top, as in Adebayo et al.
    for depth, layer in enumerate([shuffled.model.head, *reversed(shuffled.model.blocks[2:])]):
        randomise(layer, seed=depth)
        after = grids(explainer_for(shuffled), pairs)
        assert mean_rank_correlation(before, after) < 0.3, f"randomised {depth + 1} layer(s)"


def test_gradient_saliency_of_a_transformers_model_depends_on_its_weights(tiny_models, frames):
    class WholeFrame:
        name = "fixed"

        def detect(self, image):
            return [(100, 40, 240, 240)]

    enc = FaceEncoder(EncoderConfig(str(tiny_models["face"]), device="cpu"), detector=WholeFrame())
    explainer = explainer_for(enc)
    assert explainer is not None and explainer.method == "gradient-x-input"
    pairs = predictions(enc, frames)
    before = grids(explainer, pairs)
    assert all(g.shape == (GRID, GRID) and g.max() == pytest.approx(1.0) for g in before)
    shuffled = FaceEncoder(
        EncoderConfig(str(tiny_models["face"]), device="cpu"), detector=WholeFrame()
    )
    shuffled.load()
    randomise(shuffled.model, seed=7)
    after = grids(explainer_for(shuffled), [(f, p) for f, p in pairs])
    assert mean_rank_correlation(before, after) < 0.5


def test_face_explanations_refuse_labels_outside_the_mask(face_encoder, frames):
    frame, prediction = predictions(face_encoder, frames)[0]
    mask = prediction.mask.copy()
    mask[LABEL_INDEX["disgusted"]] = False
    narrowed = ModalityPrediction(
        Modality.FACE,
        prediction.t,
        prediction.probs,
        mask,
        prediction.confidence,
        prediction.model_id,
        faces=prediction.faces,
    )
    with pytest.raises(NotExpressibleError, match="cannot express 'disgusted'"):
        explainer_for(face_encoder).explain(frame, narrowed, "disgusted")
    with pytest.raises(ValueError, match="unknown label"):
        explainer_for(face_encoder).explain(frame, prediction, "bored")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=49, max_size=49))
def test_normalised_grids_are_finite_non_negative_with_top_one_or_all_zero(values):
    grid = normalise_grid(np.array(values).reshape(7, 7))
    assert np.all(np.isfinite(grid)) and grid.min() >= 0
    assert grid.max() in (0.0, 1.0) or grid.max() == pytest.approx(1.0)


# --- text ------------------------------------------------------------------------------

SENTENCES = [
    "I am so happy and grateful for all your help today",
    "This is disgusting and I hate the smell of it",
    "I am furious that they lied to me again",
    "I feel so sad and lonely since she left",
    "I am terrified of what might happen tomorrow night",
    "Wow I did not expect that at all what a surprise",
    "Thank you so much this made my day wonderful",
    "That is the worst thing I have ever seen, gross",
    "Why would you do that I am really angry now",
    "I miss my grandmother so much it hurts every day",
    "I am scared and nervous about the exam results",
    "Oh wow really I had no idea that was possible",
    "I love this song it makes me smile every time",
    "Stop it you are annoying me and I am mad",
    "Sorry for your loss that is heartbreaking news",
    "This horror movie frightened me so badly last night",
]


def deletion_drops(encoder, explainer, sentences, k: int, seed: int = 0):
    """Mean drop of each sentence's predicted-label probability when its top-k
    attributed words are deleted, and when k random words are."""
    rng = np.random.default_rng(seed)
    top_drops, random_drops = [], []
    for sentence in sentences:
        [prediction] = encoder.encode([TextEntry(0.0, sentence)])
        explanation = explainer.explain(sentence, prediction)
        index = LABEL_INDEX[explanation.label]
        words = [w.word for w in explanation.words]
        weights = np.array([w.weight for w in explanation.words])

        def without(drop, words=words) -> str:
            return " ".join(w for i, w in enumerate(words) if i not in set(drop))

        base = prediction.probs[index]
        top = np.argsort(-weights)[:k]
        [after_top] = encoder.encode([without(top.tolist())])
        top_drops.append(base - after_top.probs[index])
        for _ in range(5):
            chosen = rng.choice(len(words), size=k, replace=False).tolist()
            [after_random] = encoder.encode([without(chosen)])
            random_drops.append(base - after_random.probs[index])
    return float(np.mean(top_drops)), float(np.mean(random_drops))


def test_the_linear_text_explanation_is_exact(text_encoder):
    explainer = explainer_for(text_encoder)
    assert explainer is not None and explainer.method == "exact-linear"
    text = "Honestly, I am SO happy   today!"
    [prediction] = text_encoder.encode([text])
    explanation = explainer.explain(TextEntry(2.0, text), prediction)
    assert isinstance(explanation, TextExplanation) and explanation.label == prediction.label
    assert [w.word for w in explanation.words] == text.split()
    assert all(text[w.start : w.start + len(w.word)] == w.word for w in explanation.words)
    k = text_encoder._label_index(explanation.label)
    logits = text_encoder.logits(text) / text_encoder.temperature
    total = sum(w.weight for w in explanation.words) + text_encoder.attribution_bias(
        explanation.label
    )
    assert total == pytest.approx(logits[k] - logits.mean())


@pytest.mark.parametrize("k", [1, 2])
def test_deleting_top_attributed_words_lowers_the_label_more_than_random_words(text_encoder, k):
    explainer = explainer_for(text_encoder)
    top, random = deletion_drops(text_encoder, explainer, SENTENCES, k)
    assert top > 0.1 and top > 3 * random


def test_occlusion_passes_the_deletion_check_on_the_lexicon_baseline():
    spec = resolve_model(Modality.TEXT, "baseline/text-lexicon")
    enc = build_encoder(spec)
    enc.load()
    explainer = explainer_for(enc)
    assert explainer is not None and explainer.method == "occlusion"
    top, random = deletion_drops(enc, explainer, SENTENCES, 1)
    assert top > 0.05 and top > 2 * random


def test_occlusion_of_a_transformers_text_model_scores_each_word(tiny_models):
    from emoapp.encoders.text import TextEncoder

    enc = TextEncoder(EncoderConfig(str(tiny_models["text"]), device="cpu"))
    explainer = explainer_for(enc)
    text = "I am so happy to see you"
    [prediction] = enc.encode([text])
    explanation = explainer.explain(text, prediction)
    index = LABEL_INDEX[explanation.label]
    for i, word in enumerate(explanation.words):
        rest = " ".join(w for j, w in enumerate(text.split()) if j != i)
        [p] = enc.encode([rest])
        assert word.weight == pytest.approx(prediction.probs[index] - p.probs[index], abs=1e-5)


def test_text_explanations_refuse_labels_outside_the_mask(text_encoder):
    [prediction] = text_encoder.encode(["what a lovely day"])
    mask = prediction.mask.copy()
    mask[LABEL_INDEX["fearful"]] = False
    narrowed = ModalityPrediction(
        Modality.TEXT, 0.0, prediction.probs, mask, prediction.confidence, prediction.model_id
    )
    with pytest.raises(NotExpressibleError):
        explainer_for(text_encoder).explain("what a lovely day", narrowed, "fearful")


# --- voice -----------------------------------------------------------------------------


def test_voice_occlusion_gives_weight_only_to_what_the_model_heard(voice_encoder, speech):
    explainer = explainer_for(voice_encoder)
    assert explainer is not None and explainer.method == "occlusion"
    rate = 16_000
    window = np.concatenate([speech[:rate], np.zeros(rate, dtype=np.float32)])
    item = AudioChunk(10.0, window, rate)
    [prediction] = voice_encoder.encode([item])
    assert isinstance(prediction, ModalityPrediction)
    explanation = explainer.explain(item, prediction)
    assert isinstance(explanation, VoiceExplanation) and explanation.label == prediction.label
    starts = [m.t for m in explanation.moments]
    assert starts == pytest.approx([10.0 + 0.25 * i for i in range(8)])
    assert explanation.moments[-1].t_end == pytest.approx(12.0)
    # silencing what is already silent changes nothing; the speech carried the label
    assert all(m.weight == 0.0 for m in explanation.moments[4:])
    assert any(abs(m.weight) > 1e-3 for m in explanation.moments[:4])


def test_voice_explanations_refuse_labels_outside_the_mask(tiny_models, speech):
    enc = VoiceEncoder(
        EncoderConfig(str(tiny_models["voice"]), device="cpu"), VoiceConfig(vad="off")
    )
    item = AudioChunk(0.0, speech[:32_000], 16_000)
    [prediction] = enc.encode([item])
    assert isinstance(prediction, ModalityPrediction)
    assert not prediction.mask[LABEL_INDEX["surprised"]]  # a 4-class model
    explainer = explainer_for(enc)
    with pytest.raises(NotExpressibleError):
        explainer.explain(item, prediction, "surprised")
    explanation = explainer.explain(item, prediction)
    assert len(explanation.moments) == 8


def test_encoders_without_a_method_offer_no_explainer():
    for modality, ref in (
        (Modality.FACE, "baseline/face-smile"),
        (Modality.VOICE, "baseline/voice-prosody"),
    ):
        enc = build_encoder(resolve_model(modality, ref))
        assert explainer_for(enc) is None


# --- weight randomisation for the text and voice explainers -------------------------------


def test_text_attributions_change_when_the_linear_model_is_randomised(text_encoder):
    explainer = explainer_for(text_encoder)
    shuffled = copy.copy(text_encoder)
    rng = np.random.default_rng(0)
    coef = text_encoder._coef_t
    shuffled._coef_t = rng.normal(0.0, coef.std(), size=coef.shape)
    before, after = [], []
    for sentence in SENTENCES:
        [prediction] = text_encoder.encode([sentence])
        before.append(np.array([w.weight for w in explainer.explain(sentence, prediction).words]))
        words = explainer_for(shuffled).explain(sentence, prediction).words
        after.append(np.array([w.weight for w in words]))
    assert mean_rank_correlation(before, before) == pytest.approx(1.0)
    assert mean_rank_correlation(before, after) < 0.3


def test_voice_moments_change_when_the_voice_model_is_randomised(voice_encoder, speech):
    explainer = explainer_for(voice_encoder)
    shuffled = copy.copy(voice_encoder)
    rng = np.random.default_rng(0)
    shuffled.weights = {
        k: (rng.normal(0.0, v.std(), size=v.shape) if k.endswith("_w") else v)
        for k, v in voice_encoder.weights.items()
    }
    rate = 16_000
    before, after = [], []
    for start in (0.0, 0.5, 1.0):
        item = AudioChunk(start, speech[int(start * rate) : int(start * rate) + 2 * rate], rate)
        [prediction] = voice_encoder.encode([item])
        assert isinstance(prediction, ModalityPrediction)
        before.append(np.array([m.weight for m in explainer.explain(item, prediction).moments]))
        moments = explainer_for(shuffled).explain(item, prediction).moments
        after.append(np.array([m.weight for m in moments]))
    assert mean_rank_correlation(before, after) < 0.5
