"""Window features of every speech corpus in ``../shared/data`` for training and
cross-validating the embedded voice model (``scripts/train_embedded_voice.py``).

Each clip (RAVDESS actors 01-18, TESS, EmoDB without boredom, EMOVO, TurEV-DB; read by the
readers ``emoapp evaluate`` uses, :mod:`emoapp.evaluation.datasets`) is cut into the
windows the app sees (2 s every 0.5 s), gated as the app gates them (Silero), and every
window with speech is described by :func:`emoapp.encoders.embedded.voice.window_features`
(with the relative mel means) and by the 256-d speaker embedding
(:mod:`emoapp.encoders.speaker_embedding`). Cached per corpus under ``--cache``, keyed by
the code that cuts, gates and describes windows.

    scripts/voice_corpora.py [--data ../shared/data] [--cache DIR] [--corpora a,b]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emoapp.core.taxonomy import CANONICAL_LABELS  # noqa: E402
from emoapp.evaluation.datasets import (  # noqa: E402
    EvalItem,
    read_ravdess,
    read_speech_corpus,
)

CORPORA = ("ravdess", "tess", "emodb", "emovo", "turev")
TRAIN_ACTORS = tuple(range(1, 19))


@dataclass
class Corpus:
    """Every gated window of every clip of one corpus."""

    name: str
    x: np.ndarray  # (windows, features): window_features with mel means
    emb: np.ndarray  # (windows, 256) speaker embedding of the window
    clip: np.ndarray  # (windows,) clip index
    ids: list[str]
    label: np.ndarray  # (clips,) canonical label index
    speaker: np.ndarray  # (clips,) str
    sex: np.ndarray  # (clips,) str ("" unknown)


def items_of(data: Path, corpus: str) -> list[EvalItem]:
    if corpus == "ravdess":
        items = read_ravdess(data / "ravdess").items
        return [i for i in items if int(i.meta["actor"]) in TRAIN_ACTORS and i.audio]
    return read_speech_corpus(data / "speech" / corpus, corpus).items


def _key() -> str:
    import inspect

    from emoapp.encoders.embedded import voice as embedded_voice

    code = [
        hashlib.sha1((ROOT / "emoapp" / "encoders" / name).read_bytes()).hexdigest()
        for name in ("voice.py", "vad.py", "speaker_embedding.py")
    ]
    # The feature function itself, not the whole module (the classifier may change).
    for fn in (embedded_voice.window_features, embedded_voice._stats):
        code.append(hashlib.sha1(inspect.getsource(fn).encode()).hexdigest())
    DEFAULT_FEATURES = embedded_voice.DEFAULT_FEATURES
    return hashlib.sha1(json.dumps([DEFAULT_FEATURES, code], sort_keys=True).encode()).hexdigest()[
        :12
    ]


def speech_windows(
    items: list[EvalItem], corpus: str, skip: Sequence[bool] | None = None
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Every window of the items' audio that the voice pipeline's gate passes as speech,
    in order: (item index, window index, samples at 16 kHz); items where ``skip`` is true
    are not read. Progress every 200 items on stderr."""
    import soundfile as sf

    from emoapp.encoders.vad import make_gate
    from emoapp.encoders.voice import VoiceConfig, gate_windows, sliding_windows

    voice = VoiceConfig()
    gate = make_gate(voice.vad, voice.vad_threshold, voice.energy_dbfs)
    started = time.perf_counter()
    for i, item in enumerate(items):
        if skip is not None and skip[i]:
            continue
        assert item.audio is not None
        audio, sr = sf.read(item.audio, dtype="float32", always_2d=False)
        if audio.ndim > 1:
            audio = audio.mean(axis=1)
        if sr != 16_000:
            raise SystemExit(f"{item.audio}: {sr} Hz; expected 16000")
        windows = list(sliding_windows(audio, sr, 0.0, voice.window_s, voice.hop_s))
        gated = gate_windows(windows, sr, voice, gate)
        for index in sorted(gated.speech):
            yield i, index, gated.speech[index].samples
        if i % 200 == 0:
            print(
                f"  {corpus}: {i}/{len(items)} ({time.perf_counter() - started:.0f} s)",
                file=sys.stderr,
            )


def extract(data: Path, corpus: str, cache: Path) -> Corpus:
    from emoapp.encoders.embedded.voice import DEFAULT_FEATURES, window_features
    from emoapp.encoders.speaker_embedding import SpeakerEmbedder

    items = items_of(data, corpus)
    part = cache / f"{corpus}-{_key()}.npz"
    if not part.is_file():
        settings = {**DEFAULT_FEATURES, "mel_means": True}
        embedder = SpeakerEmbedder.load()
        rows, embs, owners = [], [], []
        for i, _, samples in speech_windows(items, corpus):
            rows.append(window_features(samples, settings))
            embs.append(embedder.embed(samples))
            owners.append(i)
        cache.mkdir(parents=True, exist_ok=True)
        np.savez(
            part,
            x=np.asarray(rows),
            emb=np.asarray(embs, dtype=np.float32),
            owner=np.asarray(owners, dtype=np.int64),
        )
    with np.load(part) as f:
        x, emb, owner = f["x"], f["emb"], f["owner"]
    return Corpus(
        corpus,
        x,
        emb.astype(np.float64),
        owner,
        [i.id for i in items],
        np.array([CANONICAL_LABELS.index(i.label) for i in items]),
        np.array([i.speaker or "" for i in items], dtype=object),
        np.array([i.meta.get("sex", "") for i in items], dtype=object),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/emoapp-cache/voice"))
    parser.add_argument("--corpora", default=",".join(CORPORA))
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        import torch

        torch.set_num_threads(1)
        for corpus in args.corpora.split(","):
            c = extract(args.data, corpus, args.cache)
            print(f"{corpus}: {len(c.ids)} clips, {len(c.x)} windows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
