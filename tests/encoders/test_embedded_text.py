"""The embedded text model (embedded/text-conversation): the shipped artefact, its
checksums, its behaviour on clear sentences, its domains and context, its calibration, the
numpy vectoriser against scikit-learn's, and the exact word attributions (of the text and
of its context)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emoapp.core.errors import ModelLoadError
from emoapp.core.messages import Modality, ModalityPrediction, NoPrediction, TextEntry
from emoapp.core.taxonomy import CANONICAL_LABELS, LABEL_INDEX
from emoapp.encoders.base import Encoder
from emoapp.encoders.embedded.artefacts import artefact_dir, read_checksums, sha256_of, verify
from emoapp.encoders.embedded.text import (
    WEIGHTS,
    Block,
    NgramTextEncoder,
    block_ngrams,
    normalise,
    words_of,
)
from emoapp.encoders.factory import build_encoder, is_available_locally
from emoapp.encoders.heard import EMBEDDED_ASR, HeardSegment, HeardWord, heard_entry
from emoapp.registry import ModelSpec, registry, resolve_model, resolve_profile

MODEL_ID = "embedded/text-conversation"
DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "goemotions" / "dev.tsv"


@pytest.fixture(scope="module")
def encoder() -> NgramTextEncoder:
    spec = resolve_model(Modality.TEXT, MODEL_ID)
    assert spec is not None
    enc = build_encoder(spec)
    assert isinstance(enc, NgramTextEncoder)
    enc.load()
    return enc


def _local(folder: Path) -> NgramTextEncoder:
    return NgramTextEncoder(ModelSpec(Modality.TEXT, str(folder), backend="embedded"))


# --- the shipped artefact -------------------------------------------------------------


def test_the_shipped_artefact_is_complete_and_matches_its_checksums() -> None:
    folder = artefact_dir(MODEL_ID)
    sums = read_checksums(folder)
    assert set(sums) == {p.name for p in folder.iterdir()} - {"checksums.sha256"}
    assert {"meta.json", WEIGHTS} <= set(sums)
    for name, digest in sums.items():
        assert sha256_of(folder / name) == digest
    verify(folder)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["model_id"] == MODEL_ID
    assert meta["labels"] == list(CANONICAL_LABELS)
    assert meta["temperature"] > 0
    assert meta["default_domain"] == "conversation"
    assert set(meta["domains"]) == {"conversation", "comments", "speech"}
    assert all(d["temperature"] > 0 for d in meta["domains"].values())
    # Small enough to ship: well under the 20 MB all three embedded models share.
    assert sum(p.stat().st_size for p in folder.iterdir()) < 8_000_000


def test_the_embedded_profile_builds_it_with_nothing_to_download(
    encoder: NgramTextEncoder,
) -> None:
    spec = resolve_profile("embedded")[Modality.TEXT]
    assert spec is not None and spec.model == MODEL_ID and spec.bundled
    assert is_available_locally(spec)
    built = build_encoder(spec)
    assert isinstance(built, NgramTextEncoder) and isinstance(built, Encoder)
    info = encoder.info()
    assert info.model_id == MODEL_ID and info.modality is Modality.TEXT
    assert not info.baseline and info.revision == encoder.meta["version"]
    assert dict(info.label_mapping) == {label: label for label in CANONICAL_LABELS}
    entry = registry()[MODEL_ID]
    assert "scripts/train_embedded_text.py" in entry.architecture
    assert "CC BY 4.0" in entry.license and "GPL-3.0" in entry.license
    assert "MELD" in entry.training_data and "TODO" not in entry.reported


def test_a_corrupted_copy_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "text"
    shutil.copytree(artefact_dir(MODEL_ID), copy)
    _local(copy).load()  # the intact copy loads
    weights = copy / WEIGHTS
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="checksum"):
        _local(copy).load()


def test_a_hand_edited_meta_or_a_missing_file_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "text"
    shutil.copytree(artefact_dir(MODEL_ID), copy)
    meta = json.loads((copy / "meta.json").read_text())
    meta["temperature"] = 1.0
    (copy / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError, match="checksum"):
        _local(copy).load()
    shutil.copytree(artefact_dir(MODEL_ID), tmp_path / "again")
    (tmp_path / "again" / WEIGHTS).unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        _local(tmp_path / "again").load()


# --- behaviour --------------------------------------------------------------------------

CLEAR = [
    ("I am so happy and grateful, thank you so much!", "happy"),
    ("I love this, it's wonderful", "happy"),
    ("This is disgusting.", "disgusted"),
    ("That is so gross, I feel sick", "disgusted"),
    ("I'm so sad, I miss her so much", "sad"),
    ("I am terrified, this is really scary", "fearful"),
    ("Wow, I did not expect that at all!", "surprised"),
    ("I am furious, this makes me so angry", "angry"),
    ("The meeting is at 3pm on Tuesday.", "neutral"),
]


def as_heard(text: str) -> str:
    """``text`` as PocketSphinx writes speech: lower-case words, no punctuation."""
    return " ".join(re.sub(r"[^\w\s']", " ", text).lower().split())


@pytest.mark.parametrize("domain", ["conversation", "comments", "speech"])
def test_clear_sentences_get_their_emotion(encoder: NgramTextEncoder, domain: str) -> None:
    heard = domain == "speech"  # the speech domain reads them as a recogniser writes them
    outputs = encoder.encode(
        [TextEntry(0.0, as_heard(text) if heard else text, domain=domain) for text, _ in CLEAR]
    )
    top_hits = top_two = 0
    for (text, label), out in zip(CLEAR, outputs, strict=True):
        assert isinstance(out, ModalityPrediction), text
        ranked = [CANONICAL_LABELS[i] for i in np.argsort(-out.probs)]
        top_hits += ranked[0] == label
        top_two += label in ranked[:2]
    # One miss allowed ("That is so gross, I feel sick" reads angry in conversation).
    assert top_hits >= len(CLEAR) - 1 and top_two >= len(CLEAR) - 1


def test_outputs_are_distributions_over_all_seven_labels(
    encoder: NgramTextEncoder,
) -> None:
    entries = [TextEntry(t=1.5, text="well that was unexpected", end=2.0), "ꙮꙮꙮ ꙮꙮ", "ok"]
    outputs = encoder.encode(entries)
    assert len(outputs) == 3
    for out in outputs:
        assert isinstance(out, ModalityPrediction)
        assert out.modality is Modality.TEXT and out.model_id == MODEL_ID
        assert out.mask.all() and not out.baseline
        assert abs(out.probs.sum() - 1.0) < 1e-9 and (out.probs > 0).all()
        assert out.confidence == pytest.approx(out.probs.max())
        assert out.valence is not None and out.arousal is not None
    assert outputs[0].t == 1.5 and outputs[0].t_end == 2.0
    # Nothing it knows: only the intercepts speak, and they say neutral.
    assert outputs[1].detail["known_features"] == 0
    assert int(np.argmax(outputs[1].probs)) == LABEL_INDEX["neutral"]


def test_empty_text_yields_no_prediction_with_a_reason(encoder: NgramTextEncoder) -> None:
    outputs = encoder.encode(["", "   \n\t", TextEntry(t=3.0, text=" ")])
    assert all(isinstance(o, NoPrediction) and o.reason for o in outputs)
    assert outputs[2].t == 3.0
    assert encoder.encode([]) == []


def test_the_calibration_does_not_collapse_onto_one_label(
    encoder: NgramTextEncoder,
) -> None:
    texts = [text for text, _ in CLEAR] + ["I guess so", "What do you mean?", "Thanks!"]
    tops = {int(np.argmax(encoder.probabilities(t))) for t in texts}
    assert len(tops) >= 6
    assert 0.1 < encoder.temperature < 10


# --- the vectoriser against scikit-learn ------------------------------------------------


_SKLEARN: dict[int, list] = {}


def _sklearn_features(encoder: NgramTextEncoder, texts: list[str]) -> Any:
    """The same features from scikit-learn's TfidfVectorizer, given the stored
    vocabulary and idf."""
    pytest.importorskip("sklearn")
    from scipy import sparse

    if id(encoder) not in _SKLEARN:
        _SKLEARN[id(encoder)] = _sklearn_vectorisers(encoder)
    texts = [normalise(t) for t in texts]
    blocks = [
        vec.transform(texts if bw.block.source == "text" else [""] * len(texts)) * bw.block.scale
        for bw, vec in zip(encoder._blocks, _SKLEARN[id(encoder)], strict=True)
    ]
    return sparse.hstack(blocks).tocsr()


def _sklearn_vectorisers(encoder: NgramTextEncoder) -> list:
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorisers = []
    for bw in encoder._blocks:
        terms = sorted(bw.vocab, key=bw.vocab.__getitem__)
        vec = TfidfVectorizer(
            analyzer=bw.block.analyzer,
            ngram_range=bw.block.ngram_range,
            sublinear_tf=bw.block.sublinear_tf,
            lowercase=bw.block.lowercase,
            vocabulary=terms,
            dtype=np.float64,
        )
        vec.idf_ = bw.idf
        vectorisers.append(vec)
    return vectorisers


def _assert_same_features(encoder: NgramTextEncoder, texts: list[str]) -> None:
    theirs = _sklearn_features(encoder, texts)
    theirs.sort_indices()
    for i, text in enumerate(texts):
        columns, values = encoder.features(text)
        ngram = np.zeros(len(columns), dtype=bool)  # word-vector blocks are tested apart
        for bw in encoder._blocks:
            ngram |= (columns >= bw.offset) & (columns < bw.offset + len(bw.idf))
        columns, values = columns[ngram], values[ngram]
        row = theirs[i]
        np.testing.assert_array_equal(columns, row.indices, err_msg=repr(text))
        np.testing.assert_allclose(values, row.data, rtol=1e-9, atol=1e-12, err_msg=repr(text))


def _dev_sentences(n: int) -> list[str]:
    if not DEV.is_file():
        return []
    lines = DEV.read_text(encoding="utf-8").splitlines()
    return [line.split("\t")[0] for line in lines[:: max(1, len(lines) // n)]][:n]


TRICKY = [
    "I'm SO happy!!! :) 😍😍",
    "well-known   spaces\tand\nnewlines",
    "a b c d e",
    "Ünïcödé ÇAFÉ naïve İstanbul ΣΟΦΟΣ",
    "don't won't can't",
    "[NAME] said /r/AskReddit is 10/10",
    "x",
    "ab",
]


def test_the_numpy_vectoriser_reproduces_scikit_learn(encoder: NgramTextEncoder) -> None:
    texts = TRICKY + _dev_sentences(300)
    _assert_same_features(encoder, texts)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=60))
def test_the_vectoriser_matches_scikit_learn_on_any_text(
    encoder: NgramTextEncoder, text: str
) -> None:
    _assert_same_features(encoder, [text])


def test_block_ngrams_follow_scikit_learn_rules_and_know_their_words() -> None:
    char = Block("char", "char_wb", (2, 5))
    # " hi " gives its 2-, 3- and (whole, once) 4-grams; " a " is shorter than 4, so its
    # 3-gram is the whole padded word and ends the n loop.
    assert block_ngrams(char, words_of("Hi a")) == [
        *[(g, (0,)) for g in (" h", "hi", "i ", " hi", "hi ", " hi ")],
        *[(g, (1,)) for g in (" a", "a ", " a ")],
    ]
    word = Block("word", "word", (1, 2))
    # Tokens are runs of 2+ word characters; a bigram belongs to the words it spans.
    assert block_ngrams(word, words_of("Well-known FACT, a x")) == [
        ("well", (0,)),
        ("known", (0,)),
        ("fact", (1,)),
        ("well known", (0,)),
        ("known fact", (0, 1)),
    ]


# --- attributions -----------------------------------------------------------------------


def _centred_logit(
    encoder: NgramTextEncoder,
    text: str,
    label: str,
    context: tuple[str, ...] = (),
    domain: str | None = None,
) -> float:
    z = encoder.logits(text, context, domain) / encoder.domain(domain).temperature
    k = encoder.raw_labels.index(label)
    return float(z[k] - z.mean())


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.sampled_from(["I", "am", "so", "happy", "not", "angry", "gross", "wow!", "sad", "a"])
        | st.text(min_size=1, max_size=8),
        max_size=12,
    ),
    st.sampled_from(CANONICAL_LABELS),
)
def test_attributions_split_the_label_logit_exactly(
    encoder: NgramTextEncoder, words: list[str], label: str
) -> None:
    text = " ".join(words)
    parts = encoder.attributions(text, label)
    assert [w for w, _ in parts] == text.split()
    total = sum(w for _, w in parts) + encoder.attribution_bias(label)
    assert total == pytest.approx(_centred_logit(encoder, text, label), abs=1e-9)


def test_attributions_point_at_the_emotion_words(encoder: NgramTextEncoder) -> None:
    parts = encoder.attributions("Honestly I am so happy and grateful today", "happy")
    ranked = [w for w, _ in sorted(parts, key=lambda p: -p[1])]
    assert set(ranked[:2]) <= {"happy", "grateful"}
    disgust = dict(encoder.attributions("This is disgusting", "disgusted"))
    assert max(disgust, key=disgust.__getitem__) == "disgusting"
    with pytest.raises(ValueError, match="unknown label"):
        encoder.attributions("hi", "bored")
    assert encoder.attributions("", "happy") == []
    assert LABEL_INDEX["happy"] == encoder.raw_labels.index("happy")


# --- domains and context (the shipped model) -------------------------------------------


def test_text_entries_carry_their_domain_to_the_model(encoder: NgramTextEncoder) -> None:
    text = "No way, that is amazing"
    plain, commented = encoder.encode(
        [TextEntry(0.0, text), TextEntry(0.0, text, domain="comments")]
    )
    assert isinstance(plain, ModalityPrediction) and isinstance(commented, ModalityPrediction)
    assert plain.detail["domain"] == "conversation" == encoder.default_domain
    assert np.allclose(plain.probs, encoder.probabilities(text))
    assert commented.detail["domain"] == "comments"
    assert np.allclose(commented.probs, encoder.probabilities(text, domain="comments"))
    assert not np.allclose(plain.probs, commented.probs)
    # A domain the model does not know falls back to its default; asking for it directly
    # is an error.
    [other] = encoder.encode([TextEntry(0.0, text, domain="poetry")])
    assert isinstance(other, ModalityPrediction) and np.allclose(other.probs, plain.probs)
    with pytest.raises(ValueError, match="poetry"):
        encoder.probabilities("hi", domain="poetry")


def test_the_shipped_model_reads_no_context(encoder: NgramTextEncoder) -> None:
    # Dev said the previous utterance did not help (meta.json training.candidates), so
    # the shipped model has no context block: context is accepted and changes nothing.
    assert not encoder.uses_context and encoder.context_text(("You lied to me!",)) == ""
    text = "Really?"
    [alone, said] = encoder.encode(
        [TextEntry(0.0, text), TextEntry(0.0, text, context=("You lied to me!",))]
    )
    assert isinstance(alone, ModalityPrediction) and isinstance(said, ModalityPrediction)
    assert np.allclose(alone.probs, said.probs)
    assert "context_turns" not in said.detail
    assert encoder.context_attributions(text, "angry", ("You lied to me!",)) == []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.sampled_from(["so", "happy", "not", "angry", "what", "oh", "my", "god", "?"]),
        max_size=8,
    ),
    st.sampled_from(CANONICAL_LABELS),
    st.sampled_from(["conversation", "comments", "speech"]),
)
def test_attributions_in_each_domain_split_the_logit_exactly(
    encoder: NgramTextEncoder, words: list[str], label: str, domain: str
) -> None:
    text = " ".join(words)
    parts = encoder.attributions(text, label, domain=domain)
    total = sum(w for _, w in parts) + encoder.attribution_bias(label, domain)
    assert total == pytest.approx(_centred_logit(encoder, text, label, (), domain), abs=1e-9)


# --- calibration ---------------------------------------------------------------------------


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(max_size=50), st.sampled_from(["conversation", "comments", "speech"]))
def test_the_temperature_keeps_the_top_label_and_only_changes_confidence(
    encoder: NgramTextEncoder, text: str, domain: str
) -> None:
    logits = encoder.logits(text, domain=domain)
    probs = encoder.probabilities(text, domain=domain)
    assert int(np.argmax(probs)) == int(np.argmax(logits))
    assert probs.sum() == pytest.approx(1.0)
    untempered = np.exp(logits - logits.max())
    untempered /= untempered.sum()
    # T > 1 softens, T < 1 sharpens (or leaves a uniform distribution alone).
    t = encoder.domain(domain).temperature
    if t > 1:
        assert probs.max() <= untempered.max() + 1e-12
    else:
        assert probs.max() >= untempered.max() - 1e-12


def test_heard_text_is_read_in_the_speech_domain(encoder: NgramTextEncoder) -> None:
    """What PocketSphinx hears is marked as the speech domain and read with its weights;
    a recogniser that writes punctuation (Whisper) keeps the default domain."""
    words = (HeardWord("i", 0.1, 0.2), HeardWord("am", 0.2, 0.3), HeardWord("furious", 0.3, 0.9))
    heard = heard_entry(HeardSegment(0.0, 1.0, "i am furious", EMBEDDED_ASR, words))
    whisper = heard_entry(HeardSegment(0.0, 1.0, "I am furious!", "openai/whisper-small"))
    assert heard is not None and heard.domain == "speech"
    assert whisper is not None and whisper.domain is None
    [out, typed] = encoder.encode([heard, TextEntry(0.0, "i am furious")])
    assert isinstance(out, ModalityPrediction) and isinstance(typed, ModalityPrediction)
    assert out.detail["domain"] == "speech" and typed.detail["domain"] == "conversation"
    assert np.allclose(out.probs, encoder.probabilities("i am furious", domain="speech"))
    assert not np.allclose(out.probs, typed.probs)


def test_the_speech_domain_reads_unpunctuated_dialogue_better_and_calibrated(
    encoder: NgramTextEncoder,
) -> None:
    """The figures the training script measured through this encoder on MELD dev without
    punctuation (meta.json dev): the speech domain beats reading it as conversation."""
    bare = encoder.meta["dev"]["meld_dev_unpunctuated"]
    speech, conversation = bare["as_speech"], bare["as_conversation"]
    assert speech["weighted_f1"] > conversation["weighted_f1"]
    assert speech["macro_f1"] > conversation["macro_f1"]
    assert speech["ece"] <= 0.06


def test_each_domain_is_calibrated_on_its_own_dev_split(encoder: NgramTextEncoder) -> None:
    dev = encoder.meta["dev"]
    for name in ("meld_dev", "goemotions_dev"):
        calibrated, before = dev[name]["calibrated"], dev[name].get("before_temperature")
        assert calibrated["ece"] <= 0.06, name
        if before is not None:  # the temperature lowers the log-likelihood it was fitted on
            assert calibrated["nll"] <= before["nll"] + 1e-4


def test_the_explainer_reads_the_entry_as_the_encoder_did(encoder: NgramTextEncoder) -> None:
    from emoapp.encoders.explain import explainer_for

    entry = TextEntry(1.0, "Oh my God, really?", domain="comments")
    [prediction] = encoder.encode([entry])
    assert isinstance(prediction, ModalityPrediction)
    explainer = explainer_for(encoder)
    assert explainer is not None
    explanation = explainer.explain(entry, prediction)
    expected = encoder.attributions(entry.text, explanation.label, domain="comments")
    assert [w.weight for w in explanation.words] == pytest.approx([w for _, w in expected])
