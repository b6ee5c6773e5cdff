"""The embedded text model: TF-IDF n-grams and a linear softmax classifier trained by
this project (``scripts/train_embedded_text.py``), run with numpy only.

Features reproduce scikit-learn's ``TfidfVectorizer`` exactly (the training script fits
with it; ``tests/encoders/test_embedded_text.py`` compares the two), one block per
vectoriser, concatenated in order:

- ``word`` blocks: the text lower-cased, tokens ``(?u)\\b\\w\\w+\\b``, n-grams of
  consecutive tokens joined by a space;
- ``char_wb`` blocks: the lower-cased text split on whitespace, each word padded with a
  space either side, its character n-grams (a padded word shorter than ``n`` counts once,
  whole, and ends the n loop, as scikit-learn does);

then per block: counts of the n-grams in the vocabulary, ``1 + log(count)`` when
``sublinear_tf``, times the block's idf, L2-normalised, times the block's ``scale``
(1 unless ``meta.json`` says otherwise). Before any block, curly quotes become straight
ones (one character for one, so the words stay the same words).

A ``vectors`` block is dense: the lower-cased words are split into tokens as GloVe spells
them (:func:`vector_tokens`: "don't" -> "do", "n't"), the tokens found in the block's
word-vector table (``weights.npz`` ``vocab_NAME`` and ``vectors_NAME``, words x
dimensions, float16) are pooled (``pooling``: their ``mean`` or their per-dimension
``max``), and the pooled vector is L2-normalised and multiplied by ``scale``; a text
with no known token gets zeros. Pretrained vectors reach words the n-gram blocks never
saw in training.

A block reads the text itself (``"source": "text"``, the default) or its *context*: the
utterances just before it in the same conversation (:attr:`TextEntry.context`), the last
``meta.json`` ``context.turns`` of them joined by a space. Without context, a context
block contributes nothing, as for the training rows that had none.

The logits are ``x @ coef.T + intercept + bias[domain]``; probabilities are
``softmax(logits / temperature[domain])``. ``meta.json`` ``domains`` maps each kind of
text the model was fitted for (``"conversation"``: dialogue, calls, chat, transcripts;
``"comments"``: social-media comments) to its per-label ``bias`` (its prior) and its
``temperature`` (fitted on that domain's dev data); ``default_domain`` is used when the
source of a text does not say (:attr:`TextEntry.domain`). An artefact without
``domains`` has one temperature (``meta.json`` ``temperature``) and no bias.

The artefact folder holds ``weights.npz`` (``coef`` labels x features, ``intercept``,
and per block ``idf_B`` and ``vocab_B``: the block's n-grams in column order, UTF-8,
joined by ``\\n``) written deterministically, and ``meta.json`` with ``labels``,
``blocks`` (the vectoriser settings), ``domains`` or ``temperature``, and ``context``.

Because the model is linear, the evidence for a label splits exactly over the words of
the text and of its context (a word-vector block gives each token its share of the
pooled vector: ``1/n`` of its vector for the mean, the dimensions where it holds the
maximum for the max, ties shared): :meth:`NgramTextEncoder.attributions` and
:meth:`NgramTextEncoder.context_attributions`.
"""

from __future__ import annotations

import math
import re
import time
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from emoapp.core.errors import ModelLoadError
from emoapp.core.messages import EncoderOutput, Modality, NoPrediction, TextEntry
from emoapp.core.taxonomy import CANONICAL_LABELS
from emoapp.encoders.embedded.base import EmbeddedEncoder

WEIGHTS = "weights.npz"
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
EMPTY_TEXT = "empty text"

_ANALYZERS = ("word", "char_wb", "vectors", "punctuation")
_SOURCES = ("text", "context")
_POOLINGS = ("mean", "max")
# Tokens a word-vector block looks up, within each lower-cased whitespace word, as GloVe
# spells them: "don't" -> "do", "n't"; "it's" -> "it", "'s"; "wow!!" -> "wow", "!", "!".
VECTOR_TOKEN_PATTERN = r"n't|'[^\W\d_]+|[^\W_]+|[!?]"
# Curly quotes and primes as typed by phones and subtitle tools -> straight ones (one
# character for one: the words of the text stay the same words).
_QUOTES = str.maketrans(
    {
        "\u2019": "'",
        "\u2018": "'",
        "\u02bc": "'",
        "\u2032": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2033": '"',
    }
)


# A punctuation block: how often the text shouts ("!") and asks ("?"), each count capped
# at PUNCTUATION_CAP and divided by it, and whether it trails off ("..." or "…"); three
# dense features beside the n-grams. The word analyzer's token pattern drops punctuation,
# and a mark inside a character n-gram is diluted by the block's L2 norm.
PUNCTUATION_MARKS = ("!", "?", "...")
PUNCTUATION_CAP = 3


def punctuation(words: Sequence[str], scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A punctuation block's three values for a text given as its whitespace words, and
    each word's part of them (rows sum to the values): a capped count is split over the
    words in proportion to the marks they hold, the ellipsis flag equally over the words
    that hold one. No mark: all zero."""
    n = len(words)
    held = np.zeros((n, 3))
    for i, word in enumerate(words):
        held[i] = (word.count("!"), word.count("?"), float("..." in word or "\u2026" in word))
    totals = held.sum(axis=0)
    values = np.array(
        [
            min(totals[0], PUNCTUATION_CAP) / PUNCTUATION_CAP,
            min(totals[1], PUNCTUATION_CAP) / PUNCTUATION_CAP,
            float(totals[2] > 0),
        ]
    )
    parts = np.divide(held, totals, out=np.zeros_like(held), where=totals > 0) * values
    return values * scale, parts * scale


def normalise(text: str) -> str:
    """The text as the features see it before lower-casing: curly quotes made straight."""
    return text.translate(_QUOTES)


@dataclass(frozen=True)
class Block:
    """One vectoriser's settings (a ``meta.json`` ``blocks`` entry)."""

    name: str
    analyzer: str
    ngram_range: tuple[int, int]
    sublinear_tf: bool = True
    lowercase: bool = True
    source: str = "text"
    scale: float = 1.0
    vectors: str = ""  # vectors blocks: the word-vector table (weights.npz vectors_NAME)
    pooling: str = "mean"  # vectors blocks: how the words' vectors are pooled

    @property
    def is_vectors(self) -> bool:
        return self.analyzer == "vectors"

    @property
    def is_punctuation(self) -> bool:
        return self.analyzer == "punctuation"

    @classmethod
    def from_meta(cls, raw: Mapping[str, Any]) -> Block:
        try:
            vectors = raw.get("analyzer") == "vectors"
            dense = vectors or raw.get("analyzer") == "punctuation"
            ngrams = raw.get("ngram_range", [1, 1]) if dense else raw["ngram_range"]
            block = cls(
                name=str(raw["name"]),
                analyzer=str(raw["analyzer"]),
                ngram_range=(int(ngrams[0]), int(ngrams[1])),
                sublinear_tf=bool(raw.get("sublinear_tf", True)),
                lowercase=bool(raw.get("lowercase", True)),
                source=str(raw.get("source", "text")),
                scale=float(raw.get("scale", 1.0)),
                vectors=str(raw["vectors"]) if vectors else "",
                pooling=str(raw.get("pooling", "mean")),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ModelLoadError(f"malformed feature block in meta.json: {raw!r}") from exc
        if block.analyzer not in _ANALYZERS:
            raise ModelLoadError(f"unknown analyzer {block.analyzer!r} (known: {_ANALYZERS})")
        if block.source not in _SOURCES:
            raise ModelLoadError(f"unknown block source {block.source!r} (known: {_SOURCES})")
        if not (math.isfinite(block.scale) and block.scale > 0):
            raise ModelLoadError(f"block {block.name!r}: scale must be positive")
        if block.is_punctuation:
            marks = raw.get("marks", list(PUNCTUATION_MARKS))
            cap = raw.get("cap", PUNCTUATION_CAP)
            if list(marks) != list(PUNCTUATION_MARKS) or cap != PUNCTUATION_CAP:
                raise ModelLoadError(
                    f"block {block.name!r}: a punctuation block counts {PUNCTUATION_MARKS} "
                    f"capped at {PUNCTUATION_CAP} (meta.json says {marks}, cap {cap})"
                )
            return block
        if block.is_vectors:
            if block.pooling not in _POOLINGS:
                raise ModelLoadError(
                    f"block {block.name!r}: unknown pooling {block.pooling!r} (known: {_POOLINGS})"
                )
            if not block.vectors or not block.lowercase:
                raise ModelLoadError(
                    f"block {block.name!r}: a vectors block names its table and lower-cases"
                )
            if raw.get("token_pattern", VECTOR_TOKEN_PATTERN) != VECTOR_TOKEN_PATTERN:
                raise ModelLoadError(f"block {block.name!r}: unsupported vector token_pattern")
            return block
        low, high = block.ngram_range
        if not 1 <= low <= high:
            raise ModelLoadError(f"bad ngram_range {block.ngram_range} in meta.json")
        if raw.get("token_pattern", TOKEN_PATTERN) != TOKEN_PATTERN:
            raise ModelLoadError("only scikit-learn's default token_pattern is supported")
        return block

    def to_meta(self) -> dict[str, Any]:
        if self.is_punctuation:
            return {
                "name": self.name,
                "analyzer": "punctuation",
                "marks": list(PUNCTUATION_MARKS),
                "cap": PUNCTUATION_CAP,
                "source": self.source,
                "scale": self.scale,
            }
        if self.is_vectors:
            return {
                "name": self.name,
                "analyzer": "vectors",
                "vectors": self.vectors,
                "pooling": self.pooling,
                "token_pattern": VECTOR_TOKEN_PATTERN,
                "lowercase": True,
                "norm": "l2",
                "source": self.source,
                "scale": self.scale,
            }
        return {
            "name": self.name,
            "analyzer": self.analyzer,
            "ngram_range": list(self.ngram_range),
            "sublinear_tf": self.sublinear_tf,
            "lowercase": self.lowercase,
            "token_pattern": TOKEN_PATTERN,
            "norm": "l2",
            "smooth_idf": True,
            "source": self.source,
            "scale": self.scale,
        }


_TOKEN_RE = re.compile(TOKEN_PATTERN)
_VECTOR_TOKEN_RE = re.compile(VECTOR_TOKEN_PATTERN)


def vector_tokens(words: Sequence[str]) -> list[tuple[str, int]]:
    """The tokens a vectors block looks up in its table, each with the index of the
    (lower-cased whitespace) word it comes from; "n't" is split off first, as GloVe's
    tokeniser does."""
    return [
        (token, i)
        for i, word in enumerate(words)
        for token in _VECTOR_TOKEN_RE.findall(word.replace("n't", " n't"))
    ]


def words_of(text: str, lowercase: bool = True) -> list[str]:
    """The whitespace-separated words the features are computed over (and attributed
    to), quotes straightened and lower-cased like the features."""
    text = normalise(text)
    return (text.lower() if lowercase else text).split()


def block_ngrams(block: Block, words: Sequence[str]) -> list[tuple[str, tuple[int, ...]]]:
    """Every n-gram occurrence of ``block`` in a text given as its (lower-cased)
    whitespace words, each with the indices of the words it comes from; in the order
    scikit-learn's analyzer produces them."""
    low, high = block.ngram_range
    out: list[tuple[str, tuple[int, ...]]] = []
    if block.analyzer == "char_wb":
        for i, word in enumerate(words):
            padded = f" {word} "
            size = len(padded)
            for n in range(low, high + 1):
                offset = 0
                out.append((padded[offset : offset + n], (i,)))
                while offset + n < size:
                    offset += 1
                    out.append((padded[offset : offset + n], (i,)))
                if offset == 0:  # a padded word shorter than n counts once
                    break
        return out
    tokens = [(token, i) for i, word in enumerate(words) for token in _TOKEN_RE.findall(word)]
    for n in range(low, high + 1):
        for start in range(len(tokens) - n + 1):
            span = tokens[start : start + n]
            out.append((" ".join(t for t, _ in span), tuple(sorted({i for _, i in span}))))
    return out


@dataclass(frozen=True)
class _BlockWeights:
    block: Block
    vocab: dict[str, int]  # n-gram -> column in the whole feature vector
    idf: np.ndarray  # per column of this block
    offset: int  # the block's first column


@dataclass(frozen=True)
class VectorBlock:
    block: Block
    vocab: dict[str, int]  # word -> row of ``table``
    table: np.ndarray  # words x dimensions (float64 copy of the stored float16)
    offset: int  # the block's first column

    def pooled(self, words: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[int]]:
        """(the block's feature values, per in-vocabulary token its part of them (rows sum
        to the values), the word index of each such token). No known word: all zero."""
        found = [(self.vocab[t], i) for t, i in vector_tokens(words) if t in self.vocab]
        dim = self.table.shape[1]
        if not found:
            return np.zeros(dim), np.zeros((0, dim)), []
        vectors = self.table[[row for row, _ in found]]
        if self.block.pooling == "mean":
            parts = vectors / len(found)
        else:  # max: each dimension belongs to the token(s) holding the maximum
            top = vectors.max(axis=0)
            holds = vectors == top
            parts = np.where(holds, top / holds.sum(axis=0), 0.0)
        pooled = parts.sum(axis=0) if self.block.pooling == "mean" else vectors.max(axis=0)
        norm = float(np.sqrt(np.dot(pooled, pooled)))
        factor = self.block.scale / norm if norm > 0 else 0.0
        return pooled * factor, parts * factor, [i for _, i in found]


@dataclass(frozen=True)
class Domain:
    """A kind of text the model was fitted for: its per-label prior and temperature."""

    name: str
    bias: np.ndarray  # per raw label, added to the logits
    temperature: float
    coef_t: np.ndarray | None = None  # features x labels; None: the shared ``coef``


@dataclass(frozen=True)
class _Occurrence:
    column: int
    source: int  # 0: the text, 1: its context
    owners: tuple[int, ...]  # word indices in that source


class NgramTextEncoder(EmbeddedEncoder):
    """Emotion of English text from TF-IDF n-grams (of the text and, where the model has
    context blocks, of the utterance before it) and a softmax classifier; numpy only,
    about a millisecond a sentence."""

    modality: ClassVar[Modality] = Modality.TEXT

    def _load_artefact(self, folder: Path, meta: dict[str, Any]) -> None:
        arrays = _read_npz(folder / WEIGHTS)
        labels = list(meta["labels"])
        try:
            coef = np.asarray(arrays["coef"], dtype=np.float64)
            intercept = np.asarray(arrays["intercept"], dtype=np.float64)
            raw_blocks = meta["blocks"]
        except KeyError as exc:
            raise ModelLoadError(f"{folder} lacks {exc} (weights.npz or meta.json)") from exc
        domains, default = _domains_of(meta, len(labels), folder, arrays, coef.shape)
        blocks: list[_BlockWeights] = []
        vector_blocks: list[VectorBlock] = []
        punctuation_blocks: list[tuple[Block, int]] = []
        tables: dict[str, tuple[dict[str, int], np.ndarray]] = {}
        offset = 0
        for raw in raw_blocks:
            block = Block.from_meta(raw)
            if block.is_punctuation:
                punctuation_blocks.append((block, offset))
                offset += len(PUNCTUATION_MARKS)
                continue
            if block.is_vectors:
                if block.vectors not in tables:
                    tables[block.vectors] = _vector_table(arrays, block.vectors, folder)
                vocab_rows, table = tables[block.vectors]
                vector_blocks.append(VectorBlock(block, vocab_rows, table, offset))
                offset += table.shape[1]
                continue
            try:
                vocab_bytes = np.asarray(arrays[f"vocab_{block.name}"], dtype=np.uint8)
                idf = np.asarray(arrays[f"idf_{block.name}"], dtype=np.float64)
            except KeyError as exc:
                raise ModelLoadError(f"{folder / WEIGHTS} lacks {exc}") from exc
            terms = vocab_bytes.tobytes().decode("utf-8").split("\n")
            if len(terms) != len(idf) or len(set(terms)) != len(terms):
                raise ModelLoadError(
                    f"{folder / WEIGHTS}: block {block.name!r} has {len(terms)} terms "
                    f"(distinct: {len(set(terms))}) for {len(idf)} idf values"
                )
            vocab = {term: offset + j for j, term in enumerate(terms)}
            blocks.append(_BlockWeights(block, vocab, idf, offset))
            offset += len(terms)
        if coef.shape != (len(labels), offset) or intercept.shape != (len(labels),):
            raise ModelLoadError(
                f"{folder / WEIGHTS}: coef {coef.shape} / intercept {intercept.shape} do not "
                f"match {len(labels)} labels and {offset} features"
            )
        turns = 0
        sources = (
            [bw.block.source for bw in blocks]
            + [vb.block.source for vb in vector_blocks]
            + [b.source for b, _ in punctuation_blocks]
        )
        if "context" in sources:
            try:
                turns = int(meta["context"]["turns"])
            except (KeyError, TypeError, ValueError) as exc:
                raise ModelLoadError(
                    f"{folder / 'meta.json'}: context blocks need context.turns"
                ) from exc
            if turns < 1:
                raise ModelLoadError(f"{folder / 'meta.json'}: context.turns must be >= 1")
        self._blocks = blocks
        self._vector_blocks = vector_blocks
        self._punctuation_blocks = punctuation_blocks
        self._coef_t = np.ascontiguousarray(coef.T)  # features x labels
        self._intercept = intercept
        self.domains = domains
        self.default_domain = default
        self.temperature = domains[default].temperature
        self.context_turns = turns
        self.raw_labels = labels
        self.n_features = offset

    # -- features --------------------------------------------------------------------

    @property
    def uses_context(self) -> bool:
        """Whether the model reads the utterances before a text (a context block)."""
        self.load()
        return self.context_turns > 0

    def context_text(self, context: Sequence[str] = ()) -> str:
        """The part of ``context`` (utterances before the text, oldest first) the model
        reads: the last ``context.turns`` of them joined by a space ("" for none)."""
        self.load()
        if not self.context_turns:
            return ""
        kept = [c for c in context if c and c.strip()][-self.context_turns :]
        return " ".join(" ".join(c.split()) for c in kept)

    def _occurrences(
        self, text: str, context: Sequence[str] = ()
    ) -> tuple[list[list[str]], list[_Occurrence]]:
        """The words of the text and of its context, and every in-vocabulary feature
        occurrence (column, which of the two, the words it comes from)."""
        sources = [words_of(text), words_of(self.context_text(context))]
        found: list[_Occurrence] = []
        for bw in self._blocks:
            vocab = bw.vocab
            index = 1 if bw.block.source == "context" else 0
            for gram, owners in block_ngrams(bw.block, sources[index]):
                column = vocab.get(gram)
                if column is not None:
                    found.append(_Occurrence(column, index, owners))
        return sources, found

    def features(self, text: str, context: Sequence[str] = ()) -> tuple[np.ndarray, np.ndarray]:
        """The text's non-zero TF-IDF features: (columns sorted, values)."""
        self.load()
        sources, found = self._occurrences(text, context)
        columns, values = self._values(Counter(o.column for o in found))
        if not self._vector_blocks and not self._punctuation_blocks:
            return columns, values
        col_parts, value_parts = [columns], [values]
        for vb in self._vector_blocks:
            pooled, _, owners = vb.pooled(sources[1 if vb.block.source == "context" else 0])
            if owners:
                col_parts.append(np.arange(vb.offset, vb.offset + len(pooled), dtype=np.int64))
                value_parts.append(pooled)
        for block, offset in self._punctuation_blocks:
            marks, _ = punctuation(sources[1 if block.source == "context" else 0], block.scale)
            held = np.flatnonzero(marks)
            col_parts.append(offset + held.astype(np.int64))
            value_parts.append(marks[held])
        columns, values = np.concatenate(col_parts), np.concatenate(value_parts)
        order = np.argsort(columns, kind="stable")
        return columns[order], values[order]

    def _values(self, counts: Counter[int]) -> tuple[np.ndarray, np.ndarray]:
        if not counts:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        columns = np.array(sorted(counts), dtype=np.int64)
        tf = np.array([counts[c] for c in columns], dtype=np.float64)
        values = np.empty_like(tf)
        for bw in self._blocks:
            lo, hi = bw.offset, bw.offset + len(bw.idf)
            sel = (columns >= lo) & (columns < hi)
            if not sel.any():
                continue
            t = tf[sel]
            if bw.block.sublinear_tf:
                t = 1.0 + np.log(t)
            v = t * bw.idf[columns[sel] - lo]
            norm = float(np.sqrt(np.dot(v, v)))
            values[sel] = (v / norm if norm > 0 else v) * bw.block.scale
        return columns, values

    def domain(self, name: str | None = None) -> Domain:
        """The named domain (None: the default); an unknown name is an error."""
        self.load()
        key = self.default_domain if name is None else name
        try:
            return self.domains[key]
        except KeyError:
            known = ", ".join(self.domains)
            raise ValueError(
                f"{self.model_id} knows no text domain {key!r} (known: {known})"
            ) from None

    def logits(
        self, text: str, context: Sequence[str] = (), domain: str | None = None
    ) -> np.ndarray:
        """Raw-label logits (with the domain's prior, before its temperature)."""
        columns, values = self.features(text, context)
        d = self.domain(domain)
        return self._intercept + d.bias + values @ self._coef_of(d)[columns]

    def probabilities(
        self, text: str, context: Sequence[str] = (), domain: str | None = None
    ) -> np.ndarray:
        """Calibrated probabilities over the raw labels (``meta.json`` ``labels``)."""
        return _softmax(self.logits(text, context, domain) / self.domain(domain).temperature)

    # -- the encoder -----------------------------------------------------------------

    def encode(self, items: Sequence[TextEntry | str]) -> list[EncoderOutput]:
        self.load()
        outputs: list[EncoderOutput] = []
        for item in items:
            started = time.perf_counter()
            if isinstance(item, TextEntry):
                text, t, context, wanted = item.text, item.t, item.context, item.domain
            else:
                text, t, context, wanted = str(item), 0.0, (), None
            if not text.strip():
                outputs.append(NoPrediction(self.modality, t, EMPTY_TEXT, self.model_id))
                continue
            # A domain this model was not fitted for falls back to its default.
            name = wanted if wanted in self.domains else self.default_domain
            domain = self.domains[name]
            columns, values = self.features(text, context)
            logits = self._intercept + domain.bias + values @ self._coef_of(domain)[columns]
            raw = _softmax(logits / domain.temperature)
            detail: dict[str, Any] = {"known_features": len(columns)}
            if len(self.domains) > 1:
                detail["domain"] = name
            if self.context_turns:
                detail["context_turns"] = min(
                    self.context_turns, sum(1 for c in context if c and c.strip())
                )
            outputs.append(
                self.prediction(
                    t,
                    raw,
                    time.perf_counter() - started,
                    t_end=item.end if isinstance(item, TextEntry) else None,
                    detail=detail,
                )
            )
        return outputs

    # -- explanations ----------------------------------------------------------------

    def _attribute(
        self, text: str, label: str, context: Sequence[str], domain: str | None
    ) -> tuple[list[list[str]], list[np.ndarray]]:
        self.load()
        k = self._label_index(label)
        d = self.domain(domain)
        temperature = d.temperature
        coef_t = self._coef_of(d)
        sources, found = self._occurrences(text, context)
        counts = Counter(o.column for o in found)
        columns, values = self._values(counts)
        value_of = dict(zip(columns.tolist(), values.tolist(), strict=True))
        centred = coef_t[:, k] - coef_t.mean(axis=1)
        weights = [np.zeros(len(words)) for words in sources]
        for o in found:
            share = value_of[o.column] / counts[o.column] * centred[o.column] / temperature
            for owner in o.owners:
                weights[o.source][owner] += share / len(o.owners)
        for vb in self._vector_blocks:
            index = 1 if vb.block.source == "context" else 0
            _, parts, owners = vb.pooled(sources[index])
            if owners:  # each token its part of the pooled vector
                shares = parts @ centred[vb.offset : vb.offset + parts.shape[1]] / temperature
                np.add.at(weights[index], owners, shares)
        for block, offset in self._punctuation_blocks:
            index = 1 if block.source == "context" else 0
            _, parts = punctuation(sources[index], block.scale)  # each word its marks' part
            weights[index] += parts @ centred[offset : offset + parts.shape[1]] / temperature
        return sources, weights

    def attributions(
        self, text: str, label: str, context: Sequence[str] = (), domain: str | None = None
    ) -> list[tuple[str, float]]:
        """How much each word of ``text`` moves ``label`` (a raw or canonical label), in
        logit units after the temperature, relative to the mean over all labels (the
        softmax ignores what moves every label alike).

        One ``(word, weight)`` per whitespace-separated word, in text order, with the
        word as written. The split is exact: these weights, those of the context's words
        (:meth:`context_attributions`) and the label's share of the intercept and the
        domain's prior (:meth:`attribution_bias`) sum to the label's centred, tempered
        logit. A word n-gram spanning two words gives each half; repeated n-grams share
        their (sub-linear) weight equally."""
        shown = text.split()
        sources, weights = self._attribute(text, label, context, domain)
        if len(shown) != len(sources[0]):  # pragma: no cover - lower() never adds whitespace
            shown = sources[0]
        return [(word, float(w)) for word, w in zip(shown, weights[0], strict=True)]

    def context_attributions(
        self, text: str, label: str, context: Sequence[str] = (), domain: str | None = None
    ) -> list[tuple[str, float]]:
        """The same for the words of the context the model read (:meth:`context_text`);
        empty for a model without context blocks or a text without context."""
        sources, weights = self._attribute(text, label, context, domain)
        shown = self.context_text(context).split()
        if len(shown) != len(sources[1]):  # pragma: no cover - as above
            shown = sources[1]
        return [(word, float(w)) for word, w in zip(shown, weights[1], strict=True)]

    def attribution_bias(self, label: str, domain: str | None = None) -> float:
        """The part of ``label``'s centred, tempered logit that no word carries."""
        self.load()
        k = self._label_index(label)
        d = self.domain(domain)
        base = self._intercept + d.bias
        return float((base[k] - base.mean()) / d.temperature)

    def _coef_of(self, domain: Domain) -> np.ndarray:
        return self._coef_t if domain.coef_t is None else domain.coef_t

    def _label_index(self, label: str) -> int:
        if label in self.raw_labels:
            return self.raw_labels.index(label)
        assert self.label_map is not None
        matches = [i for i, target in enumerate(self.label_map.targets) if target == label]
        if len(matches) == 1:
            return matches[0]
        known = ", ".join(self.raw_labels)
        if label in CANONICAL_LABELS and not matches:
            raise ValueError(f"{self.model_id} cannot express {label!r} (its labels: {known})")
        raise ValueError(f"unknown label {label!r} (labels: {known})")


GoEmotionsTextEncoder = NgramTextEncoder
"""The former name (the first embedded text model was trained on GoEmotions alone)."""


def _domains_of(
    meta: Mapping[str, Any],
    n_labels: int,
    folder: Path,
    arrays: Mapping[str, np.ndarray],
    shape: tuple[int, ...],
) -> tuple[dict[str, Domain], str]:
    """The artefact's domains and default; an artefact without ``domains`` has one,
    ``"default"``, with no bias and ``meta.json`` ``temperature``. A domain with
    ``"coef": NAME`` has its own coefficients (``weights.npz`` array NAME, shaped like
    ``coef``); the others use the shared ``coef``."""
    where = folder / "meta.json"
    raw = meta.get("domains")
    if raw is None:
        temperature = _temperature(meta.get("temperature", 1.0), where)
        return {"default": Domain("default", np.zeros(n_labels), temperature)}, "default"
    if not isinstance(raw, Mapping) or not raw:
        raise ModelLoadError(f"{where}: domains must be a non-empty mapping")
    domains: dict[str, Domain] = {}
    for name, entry in raw.items():
        try:
            bias = np.asarray(entry["bias"], dtype=np.float64)
            temperature = _temperature(entry["temperature"], where)
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"{where}: domain {name!r} is malformed ({exc})") from exc
        if bias.shape != (n_labels,) or not np.all(np.isfinite(bias)):
            raise ModelLoadError(f"{where}: domain {name!r} needs {n_labels} finite biases")
        coef_t = None
        if entry.get("coef") is not None:
            own = arrays.get(str(entry["coef"]))
            if own is None or own.shape != shape:
                raise ModelLoadError(
                    f"{where}: domain {name!r} names coefficients {entry['coef']!r} that "
                    f"{WEIGHTS} lacks or that are not shaped {shape}"
                )
            coef_t = np.ascontiguousarray(np.asarray(own, dtype=np.float64).T)
        domains[str(name)] = Domain(str(name), bias, temperature, coef_t)
    default = str(meta.get("default_domain", next(iter(domains))))
    if default not in domains:
        raise ModelLoadError(f"{where}: default_domain {default!r} is not among the domains")
    return domains, default


def _vector_table(
    arrays: Mapping[str, np.ndarray], name: str, folder: Path
) -> tuple[dict[str, int], np.ndarray]:
    """The word-vector table ``name``: its words (``vocab_NAME``) and vectors
    (``vectors_NAME``, words x dimensions)."""
    try:
        words_bytes = np.asarray(arrays[f"vocab_{name}"], dtype=np.uint8)
        table = np.asarray(arrays[f"vectors_{name}"], dtype=np.float64)
    except KeyError as exc:
        raise ModelLoadError(f"{folder / WEIGHTS} lacks {exc}") from exc
    words = words_bytes.tobytes().decode("utf-8").split("\n")
    if table.ndim != 2 or len(words) != table.shape[0] or len(set(words)) != len(words):
        raise ModelLoadError(
            f"{folder / WEIGHTS}: vectors {name!r} has {len(words)} words (distinct: "
            f"{len(set(words))}) for a table shaped {table.shape}"
        )
    if not np.all(np.isfinite(table)):
        raise ModelLoadError(f"{folder / WEIGHTS}: vectors {name!r} are not all finite")
    return {word: row for row, word in enumerate(words)}, table


def _temperature(value: Any, where: Path) -> float:
    try:
        temperature = float(value)
    except (TypeError, ValueError):
        raise ModelLoadError(f"{where}: temperature must be a number") from None
    if not (math.isfinite(temperature) and temperature > 0):
        raise ModelLoadError(f"{where}: temperature must be positive")
    return temperature


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - np.max(z, axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing from the embedded model") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelLoadError(f"{path} cannot be read: {exc}") from exc


def vocab_array(terms: Sequence[str]) -> np.ndarray:
    """A block's n-grams in column order as one UTF-8 byte array (``\\n``-joined)."""
    joined = "\n".join(terms)
    if any("\n" in term for term in terms):
        raise ValueError("an n-gram contains a newline")
    return np.frombuffer(joined.encode("utf-8"), dtype=np.uint8).copy()
