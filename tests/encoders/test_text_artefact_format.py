"""The text model's artefact format with tiny artefacts written on the spot: context
blocks (the previous utterances), per-domain priors, temperatures and weights, the
first format (one temperature, no domains), and what is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emoapp.core.errors import ModelLoadError
from emoapp.core.explanation import TextExplanation
from emoapp.core.messages import Modality, ModalityPrediction, TextEntry
from emoapp.core.taxonomy import CANONICAL_LABELS
from emoapp.encoders.embedded.artefacts import write_checksums, write_npz
from emoapp.encoders.embedded.text import (
    PUNCTUATION_CAP,
    Block,
    NgramTextEncoder,
    punctuation,
    vector_tokens,
    vocab_array,
    words_of,
)
from emoapp.encoders.explain import explainer_for
from emoapp.registry import ModelSpec

TEXT_TERMS = ["happy", "sad", "angry", "so", "not", "really", "so happy"]
CONTEXT_TERMS = ["lied", "fired", "won", "you"]
K = len(CANONICAL_LABELS)
VECTOR_WORDS = ["happy", "sad", "do", "n't", "'s", "!", "it", "café", "so"]
VECTOR_TABLE = np.random.default_rng(3).normal(size=(len(VECTOR_WORDS), 4)).round(2)


def write_tiny(
    folder: Path,
    *,
    context: bool = True,
    domains: bool = True,
    vectors: bool = False,
    punctuation: bool = False,
    meta_extra: Any = None,
) -> Path:
    """A tiny artefact: a word 1-2-gram text block, (optionally) a word context block
    reading the last 2 utterances and (optionally) two word-vector blocks (mean and max
    of 4-d vectors), seeded random weights."""
    rng = np.random.default_rng(7)
    folder.mkdir(parents=True, exist_ok=True)
    blocks = [Block("word", "word", (1, 2))]
    terms = {"word": TEXT_TERMS}
    if context:
        blocks.append(Block("ctx", "word", (1, 1), source="context", scale=0.5))
        terms["ctx"] = CONTEXT_TERMS
    n = sum(len(t) for t in terms.values())
    if vectors:
        blocks += [
            Block("vec_mean", "vectors", (1, 1), vectors="vec", pooling="mean", scale=2.0),
            Block("vec_max", "vectors", (1, 1), vectors="vec", pooling="max", scale=0.5),
        ]
        n += 2 * VECTOR_TABLE.shape[1]
    if punctuation:
        blocks.append(Block("punct", "punctuation", (1, 1), scale=2.0))
        n += 3
    arrays: dict[str, np.ndarray] = {
        "coef": rng.normal(size=(K, n)).astype(np.float16),
        "coef_comments": rng.normal(size=(K, n)).astype(np.float16),
        "intercept": rng.normal(size=K).astype(np.float32),
    }
    if vectors:
        arrays["vocab_vec"] = vocab_array(VECTOR_WORDS)
        arrays["vectors_vec"] = VECTOR_TABLE.astype(np.float16)
    for block in blocks:
        if block.analyzer in ("vectors", "punctuation"):
            continue
        arrays[f"vocab_{block.name}"] = vocab_array(terms[block.name])
        arrays[f"idf_{block.name}"] = rng.uniform(1, 3, len(terms[block.name])).astype(np.float32)
    write_npz(folder / "weights.npz", arrays)
    meta: dict[str, Any] = {
        "model_id": "tiny-text",
        "version": "0",
        "labels": list(CANONICAL_LABELS),
        "blocks": [b.to_meta() for b in blocks],
        "temperature": 1.5,
    }
    if context:
        meta["context"] = {"turns": 2}
    if domains:
        meta["domains"] = {
            "conversation": {"bias": rng.normal(size=K).round(3).tolist(), "temperature": 1.2},
            "comments": {
                "bias": rng.normal(size=K).round(3).tolist(),
                "temperature": 0.7,
                "coef": "coef_comments",
            },
        }
        meta["default_domain"] = "conversation"
    meta.update(meta_extra or {})
    (folder / "meta.json").write_text(json.dumps(meta))
    write_checksums(folder)
    return folder


def load(folder: Path) -> NgramTextEncoder:
    encoder = NgramTextEncoder(ModelSpec(Modality.TEXT, str(folder), backend="embedded"))
    encoder.load()
    return encoder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> NgramTextEncoder:
    return load(write_tiny(tmp_path_factory.mktemp("tiny") / "text"))


def test_context_is_read_from_the_last_turns_utterances(tiny: NgramTextEncoder) -> None:
    assert tiny.uses_context and tiny.context_turns == 2
    text = "so happy"
    alone = tiny.probabilities(text)
    assert np.allclose(tiny.probabilities(text, ("", "   ")), alone)  # blank is no context
    said = tiny.probabilities(text, ("you lied",))
    assert not np.allclose(said, alone)
    # Only the last two utterances count.
    assert tiny.context_text(("you won", "ok", "you  lied")) == "ok you lied"
    assert np.allclose(
        tiny.probabilities(text, ("you won", "ok", "you lied")),
        tiny.probabilities(text, ("ok", "you lied")),
    )
    # Context words never count as the text's words, nor the reverse.
    columns, _ = tiny.features("lied", ())
    assert len(columns) == 0


def test_entries_bring_context_and_domain(tiny: NgramTextEncoder) -> None:
    entries = [
        TextEntry(0.0, "not happy"),
        TextEntry(0.0, "not happy", context=("you fired me",)),
        TextEntry(0.0, "not happy", context=("you fired me",), domain="comments"),
    ]
    plain, said, commented = tiny.encode(entries)
    assert isinstance(plain, ModalityPrediction) and isinstance(said, ModalityPrediction)
    assert isinstance(commented, ModalityPrediction)
    assert plain.detail["context_turns"] == 0 and said.detail["context_turns"] == 1
    assert np.allclose(said.probs, tiny.probabilities("not happy", ("you fired me",)))
    assert commented.detail["domain"] == "comments"
    assert np.allclose(
        commented.probs, tiny.probabilities("not happy", ("you fired me",), "comments")
    )


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(st.sampled_from([*TEXT_TERMS, "Happy!", "x", "so"]), max_size=8),
    st.lists(st.sampled_from([*CONTEXT_TERMS, "YOU", "hm"]), max_size=6),
    st.sampled_from(CANONICAL_LABELS),
    st.sampled_from(["conversation", "comments"]),
)
def test_text_and_context_attributions_split_the_logit_exactly(
    tiny: NgramTextEncoder, words: list[str], said: list[str], label: str, domain: str
) -> None:
    text, context = " ".join(words), (" ".join(said),)
    parts = tiny.attributions(text, label, context, domain)
    before = tiny.context_attributions(text, label, context, domain)
    assert [w for w, _ in parts] == text.split()
    assert [w for w, _ in before] == tiny.context_text(context).split()
    z = tiny.logits(text, context, domain) / tiny.domain(domain).temperature
    k = CANONICAL_LABELS.index(label)
    total = sum(w for _, w in parts) + sum(w for _, w in before)
    total += tiny.attribution_bias(label, domain)
    assert total == pytest.approx(float(z[k] - z.mean()), abs=1e-9)


def test_the_explainer_uses_the_entry_context(tiny: NgramTextEncoder) -> None:
    entry = TextEntry(0.0, "so happy", context=("you lied",))
    [prediction] = tiny.encode([entry])
    assert isinstance(prediction, ModalityPrediction)
    explainer = explainer_for(tiny)
    assert explainer is not None
    explanation = explainer.explain(entry, prediction)
    assert isinstance(explanation, TextExplanation)
    expected = tiny.attributions("so happy", explanation.label, ("you lied",))
    assert [w.weight for w in explanation.words] == pytest.approx([w for _, w in expected])


def test_the_first_format_loads_with_one_temperature(tmp_path: Path) -> None:
    old = load(write_tiny(tmp_path / "old", context=False, domains=False))
    assert list(old.domains) == ["default"] and old.temperature == 1.5
    assert not old.uses_context
    z = old.logits("so happy")
    assert np.allclose(old.probabilities("so happy"), np.exp(z / 1.5) / np.exp(z / 1.5).sum())
    [out] = old.encode([TextEntry(0.0, "so happy", domain="comments", context=("you",))])
    assert isinstance(out, ModalityPrediction) and "domain" not in out.detail
    assert np.allclose(out.probs, old.probabilities("so happy"))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"domains": {}}, "non-empty"),
        ({"domains": {"a": {"bias": [0.0] * 3, "temperature": 1.0}}}, "7 finite biases"),
        ({"domains": {"a": {"bias": [0.0] * 7, "temperature": -1.0}}}, "positive"),
        ({"domains": {"a": {"bias": [0.0] * 7, "temperature": 1, "coef": "nope"}}}, "nope"),
        ({"default_domain": "elsewhere"}, "default_domain"),
        ({"context": {"turns": 0}}, "turns"),
    ],
)
def test_malformed_meta_is_refused_with_a_reason(
    tmp_path: Path, extra: dict[str, Any], message: str
) -> None:
    with pytest.raises(ModelLoadError, match=message):
        load(write_tiny(tmp_path / "bad", meta_extra=extra))


def test_a_context_block_without_turns_is_refused(tmp_path: Path) -> None:
    folder = write_tiny(tmp_path / "t")
    meta = json.loads((folder / "meta.json").read_text())
    del meta["context"]
    (folder / "meta.json").write_text(json.dumps(meta))
    write_checksums(folder)
    with pytest.raises(ModelLoadError, match=r"context\.turns"):
        load(folder)


# --- word-vector blocks -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_vectors(tmp_path_factory: pytest.TempPathFactory) -> NgramTextEncoder:
    return load(write_tiny(tmp_path_factory.mktemp("vec") / "text", vectors=True))


def test_vector_tokens_split_words_as_glove_spells_them() -> None:
    assert vector_tokens(words_of("Don't! It’s CAFÉ, so-so")) == [
        ("do", 0),
        ("n't", 0),
        ("!", 0),
        ("it", 1),
        ("'s", 1),
        ("café", 2),
        ("so", 3),
        ("so", 3),
    ]


def test_vector_blocks_hold_the_normalised_mean_and_max(tiny_vectors: NgramTextEncoder) -> None:
    text = "It's not so happy!!"
    columns, values = tiny_vectors.features(text)
    n_word = len(TEXT_TERMS) + len(CONTEXT_TERMS)  # the n-gram columns come first
    table = VECTOR_TABLE.astype(np.float16).astype(np.float64)
    rows = [VECTOR_WORDS.index(t) for t in ("it", "'s", "so", "happy", "!", "!")]  # "not": no
    mean, top = table[rows].mean(axis=0), table[rows].max(axis=0)
    dense = dict(zip(columns.tolist(), values.tolist(), strict=True))
    got_mean = np.array([dense[n_word + j] for j in range(4)])
    got_max = np.array([dense[n_word + 4 + j] for j in range(4)])
    np.testing.assert_allclose(got_mean, 2.0 * mean / np.linalg.norm(mean), rtol=1e-12)
    np.testing.assert_allclose(got_max, 0.5 * top / np.linalg.norm(top), rtol=1e-12)
    assert list(columns) == sorted(columns)
    # A text with no known word has no dense features, as the training rows had none.
    columns, _ = tiny_vectors.features("xyzzy")
    assert all(c < n_word for c in columns)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.sampled_from([*TEXT_TERMS, "don't", "It's", "Happy!", "café", "x", "so"])
        | st.text(min_size=1, max_size=6),
        max_size=8,
    ),
    st.sampled_from(CANONICAL_LABELS),
    st.sampled_from(["conversation", "comments"]),
)
def test_vector_block_attributions_split_the_logit_exactly(
    tiny_vectors: NgramTextEncoder, words: list[str], label: str, domain: str
) -> None:
    assert_exact_split(tiny_vectors, " ".join(words), label, domain)


def assert_exact_split(encoder: NgramTextEncoder, text: str, label: str, domain: str) -> None:
    """One weight per written word, and with the label's share of the bias they sum to
    the label's centred, tempered logit."""
    parts = encoder.attributions(text, label, (), domain)
    assert [w for w, _ in parts] == text.split()
    z = encoder.logits(text, (), domain) / encoder.domain(domain).temperature
    k = CANONICAL_LABELS.index(label)
    total = sum(w for _, w in parts) + encoder.attribution_bias(label, domain)
    assert total == pytest.approx(float(z[k] - z.mean()), abs=1e-9)


def test_a_word_only_the_vectors_know_still_moves_the_labels(
    tiny_vectors: NgramTextEncoder,
) -> None:
    # "café" is in no n-gram block: its evidence comes from its vector alone.
    [(word, weight)] = tiny_vectors.attributions("café", "happy")
    assert word == "café" and weight != 0.0
    assert not np.allclose(tiny_vectors.probabilities("café"), tiny_vectors.probabilities(""))


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m, a: m["blocks"][-1].update(pooling="median"), "pooling"),
        (lambda m, a: m["blocks"][-1].update(vectors="other"), "vocab_other"),
        (lambda m, a: a.update(vectors_vec=a["vectors_vec"][:-1]), "words"),
        (lambda m, a: a.update(vectors_vec=a["vectors_vec"] * np.float16("nan")), "finite"),
        (lambda m, a: m["blocks"][-1].update(token_pattern=r"\w+"), "token_pattern"),
    ],
)
def test_malformed_vector_blocks_are_refused(tmp_path: Path, edit: Any, message: str) -> None:
    folder = rewritten(write_tiny(tmp_path / "v", vectors=True), edit)
    with pytest.raises(ModelLoadError, match=message):
        load(folder)


def rewritten(folder: Path, edit: Any) -> Path:
    """``folder`` after ``edit(meta, arrays)`` changed its meta.json and weights.npz (and
    its checksums were written again, so only the edit can make it fail)."""
    meta = json.loads((folder / "meta.json").read_text())
    with np.load(folder / "weights.npz") as data:
        arrays = {name: data[name] for name in data.files}
    edit(meta, arrays)
    (folder / "meta.json").write_text(json.dumps(meta))
    write_npz(folder / "weights.npz", arrays)
    write_checksums(folder)
    return folder


def dense_columns(encoder: NgramTextEncoder, text: str, first: int, width: int) -> np.ndarray:
    """The encoder's feature values of ``text`` in columns ``first`` to ``first + width``."""
    out = np.zeros(width)
    for column, value in zip(*encoder.features(text), strict=True):
        if column >= first:
            out[column - first] = value
    return out


@pytest.fixture
def script(monkeypatch: pytest.MonkeyPatch) -> Any:
    """scripts/train_embedded_text.py as a module (it needs scikit-learn)."""
    pytest.importorskip("sklearn")
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "scripts"))
    import train_embedded_text

    return train_embedded_text


def corpora(script: Any, texts: list[str]) -> tuple[Any, Any]:
    """``texts`` as a corpus, and a training corpus of three copies of them (so that every
    n-gram passes the blocks' minimum document frequencies)."""
    n = len(texts)
    corpus = script.Corpus(texts, [()] * n, np.zeros(n, int), np.ones(n))
    train = script.Corpus(texts * 3, [()] * 3 * n, np.zeros(3 * n, int), np.ones(3 * n))
    return corpus, train


def test_the_training_script_computes_the_vector_blocks_as_the_encoder_reads_them(
    tiny_vectors: NgramTextEncoder, script: Any
) -> None:
    texts = ["It's not so happy!!", "café", "xyzzy", "don't be sad", ""]
    corpus, train = corpora(script, texts)
    vectors = script.WordVectors(VECTOR_WORDS, VECTOR_TABLE.astype(np.float16), {})
    featuriser = script.Featuriser([train], 0.0, vectors, 2.0)
    dense = featuriser.matrix(corpus).toarray()[:, -8:]
    n_ngram = len(TEXT_TERMS) + len(CONTEXT_TERMS)
    for text, row in zip(texts, dense, strict=True):
        # The tiny artefact's mean block has scale 2 as here; its max block has 0.5.
        expected = dense_columns(tiny_vectors, text, n_ngram, 8)
        expected[4:] *= 2.0 / 0.5
        np.testing.assert_allclose(row, expected, rtol=1e-12, atol=1e-15, err_msg=text)


# --- the punctuation block ----------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_punctuation(tmp_path_factory: pytest.TempPathFactory) -> NgramTextEncoder:
    folder = tmp_path_factory.mktemp("punct") / "text"
    return load(write_tiny(folder, vectors=True, punctuation=True))


MARKED_WORDS = st.lists(
    st.sampled_from(["what?!", "no!!", "so...", "well…", "happy", "?", "!?!", "ok"])
    | st.text(alphabet="ab!?.…", min_size=1, max_size=6),
    max_size=10,
)


@given(MARKED_WORDS, st.floats(0.1, 4.0))
def test_punctuation_values_are_capped_counts_split_exactly_over_the_words(
    words: list[str], scale: float
) -> None:
    values, parts = punctuation(words, scale)
    assert parts.shape == (len(words), 3)
    np.testing.assert_allclose(parts.sum(axis=0), values, atol=1e-12)
    assert np.all(values >= 0) and np.all(values <= scale + 1e-12) and np.all(parts >= 0)
    text = " ".join(words)
    for j, mark in enumerate("!?"):
        expected = min(text.count(mark), PUNCTUATION_CAP) / PUNCTUATION_CAP * scale
        assert values[j] == pytest.approx(expected)
        # A word holds a part of a mark's value only if it holds that mark.
        assert all(parts[i, j] == 0 for i, w in enumerate(words) if mark not in w)
    trails = any("..." in w or "…" in w for w in words)
    assert values[2] == pytest.approx(scale if trails else 0.0)


@given(MARKED_WORDS)
def test_one_more_mark_never_lowers_its_value(words: list[str]) -> None:
    before, _ = punctuation(words)
    for j, mark in enumerate(["!", "?", "..."]):
        after, _ = punctuation([*words, mark])
        assert after[j] >= before[j]
        assert np.array_equal(np.delete(after, j), np.delete(before, j))


def test_punctuation_features_follow_the_other_blocks(
    tiny_punctuation: NgramTextEncoder,
) -> None:
    first = len(TEXT_TERMS) + len(CONTEXT_TERMS) + 2 * VECTOR_TABLE.shape[1]
    columns, values = tiny_punctuation.features("What?! So happy!!!! Really...")
    dense = dict(zip(columns.tolist(), values.tolist(), strict=True))
    # "!" 5 times (capped at 3), "?" once, an ellipsis; the block's scale is 2.
    assert [dense[first + j] for j in range(3)] == pytest.approx([2.0, 2.0 / 3, 2.0])
    columns, _ = tiny_punctuation.features("so happy")
    assert all(c < first for c in columns)  # no mark, no punctuation columns
    # The marks move the estimate: without them the text reads differently.
    assert not np.allclose(
        tiny_punctuation.probabilities("so happy!!"), tiny_punctuation.probabilities("so happy")
    )


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    MARKED_WORDS, st.sampled_from(CANONICAL_LABELS), st.sampled_from(["conversation", "comments"])
)
def test_punctuation_attributions_split_the_logit_exactly(
    tiny_punctuation: NgramTextEncoder, words: list[str], label: str, domain: str
) -> None:
    assert_exact_split(tiny_punctuation, " ".join(words), label, domain)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m, a: m["blocks"][-1].update(cap=4), "capped"),
        (lambda m, a: m["blocks"][-1].update(marks=["!", "?"]), "capped"),
        (lambda m, a: m["blocks"][-1].update(scale=0), "scale"),
        (lambda m, a: m["blocks"][-1].update(analyzer="punctuations"), "malformed feature block"),
        # weights for two punctuation columns, not three
        (
            lambda m, a: a.update(coef=a["coef"][:, :-1], coef_comments=a["coef_comments"][:, :-1]),
            "do not match",
        ),
    ],
)
def test_malformed_punctuation_blocks_are_refused(tmp_path: Path, edit: Any, message: str) -> None:
    folder = rewritten(write_tiny(tmp_path / "p", punctuation=True), edit)
    with pytest.raises(ModelLoadError, match=message):
        load(folder)


def test_the_training_script_computes_the_punctuation_block_as_the_encoder_reads_it(
    tiny_punctuation: NgramTextEncoder, script: Any
) -> None:
    texts = ["What?! So happy!!!!", "well… ok", "xyzzy", "no... no?", ""]
    corpus, train = corpora(script, texts)
    featuriser = script.Featuriser([train], 0.0, punctuation_scale=2.0)
    assert featuriser.all_blocks[-1].to_meta() == tiny_punctuation_block_meta()
    dense = featuriser.matrix(corpus).toarray()[:, -3:]
    first = len(TEXT_TERMS) + len(CONTEXT_TERMS) + 2 * VECTOR_TABLE.shape[1]
    for text, row in zip(texts, dense, strict=True):
        expected = dense_columns(tiny_punctuation, text, first, 3)
        np.testing.assert_allclose(row, expected, rtol=1e-12, atol=1e-15, err_msg=text)


def tiny_punctuation_block_meta() -> dict[str, Any]:
    """The tiny artefact's punctuation block, named as the training script names it."""
    return Block("punctuation", "punctuation", (1, 1), scale=2.0).to_meta()
