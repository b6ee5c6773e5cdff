"""The embedded speech recogniser: CMU PocketSphinx 5 with the US English acoustic model,
dictionary and language model that ship inside its PyPI wheel (no download).

It is small and fast (a few tenths of a second of CPU per second of speech) and weak: a
2000s-era HMM recogniser with a general 3-gram language model. Its word error rate, as
measured by emoapp, is on its model card (``models/registry.toml``, ``[asr.models]``).
Word times come from its segmentation (100 frames per second).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np

from emoapp.core.errors import MissingDependencyError, ModelLoadError
from emoapp.encoders.heard import ASR_RATE, EMBEDDED_ASR, HeardSegment, HeardWord, to_asr_rate

_FRAME_S = 0.01
_FILLERS = {"<s>", "</s>", "<sil>"}


def _clean_word(word: str) -> str | None:
    """A dictionary word without its pronunciation variant (``dogs(2)`` -> ``dogs``);
    None for silences and noises (``<sil>``, ``[NOISE]``, ``++BREATH++``)."""
    if word in _FILLERS or word.startswith(("[", "+")):
        return None
    return word.split("(", 1)[0]


class SphinxRecognizer:
    """PocketSphinx over one segment at a time (calls are serialised: the decoder keeps
    state)."""

    model_id = EMBEDDED_ASR

    def __init__(self) -> None:
        self._decoder: Any = None
        self._lock = threading.Lock()

    def load(self) -> None:
        with self._lock:
            if self._decoder is not None:
                return
            try:
                from pocketsphinx import Decoder
            except ImportError as exc:
                raise MissingDependencyError(
                    "pocketsphinx", "the embedded speech recogniser"
                ) from exc
            try:
                self._decoder = Decoder(samprate=ASR_RATE, loglevel="FATAL")
            except (RuntimeError, ValueError, OSError) as exc:
                raise ModelLoadError(
                    f"PocketSphinx failed to load its English model: {exc}"
                ) from exc

    @property
    def version(self) -> str:
        from importlib.metadata import version

        return version("pocketsphinx")

    def transcribe(self, samples: np.ndarray, sample_rate: int, t: float = 0.0) -> HeardSegment:
        self.load()
        started = time.perf_counter()
        x = to_asr_rate(samples, sample_rate)
        end = t + x.size / ASR_RATE
        if x.size < ASR_RATE // 10:  # under 0.1 s: nothing to hear
            return HeardSegment(t, end, "", self.model_id, (), time.perf_counter() - started)
        pcm = (x * 32767.0).astype("<i2").tobytes()
        with self._lock:
            decoder = self._decoder
            decoder.start_utt()
            decoder.process_raw(pcm, full_utt=True)
            decoder.end_utt()
            hyp = decoder.hyp()
            segments = list(decoder.seg()) if hyp is not None else []
        words = []
        for seg in segments:
            word = _clean_word(seg.word)
            if word:
                words.append(
                    HeardWord(
                        word, t + seg.start_frame * _FRAME_S, t + (seg.end_frame + 1) * _FRAME_S
                    )
                )
        text = " ".join(w.word for w in words)
        return HeardSegment(
            t, end, text, self.model_id, tuple(words), time.perf_counter() - started
        )
