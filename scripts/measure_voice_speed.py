"""Time the embedded voice model's parts on one 2 s window, one thread:
``python scripts/measure_voice_speed.py [--data ../shared/data]``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def per_call_ms(f: Callable[[], object], n: int = 30) -> float:
    started = time.perf_counter()
    for _ in range(n):
        f()
    return (time.perf_counter() - started) / n * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = parser.parse_args()
    import numpy as np
    import soundfile as sf
    import torch

    from emoapp.core.messages import AudioChunk, Modality
    from emoapp.encoders.embedded.voice import EmbeddedVoiceEncoder, window_features
    from emoapp.encoders.voice import VoiceConfig
    from emoapp.registry import resolve_model

    torch.set_num_threads(1)
    spec = resolve_model(Modality.VOICE, "embedded/voice-multicorpus")
    assert spec is not None
    enc = EmbeddedVoiceEncoder(spec, VoiceConfig(vad="energy"))
    enc.load()
    path = args.data / "ravdess" / "Actor_01" / "03-01-05-02-01-01-01.flac"
    audio, _ = sf.read(path, dtype="float32")
    w = np.resize(audio, 32_000).astype(np.float32)
    x = enc.vector(w)
    chunk = AudioChunk(0.0, w, 16_000)
    print(
        f"acoustic features {per_call_ms(lambda: window_features(w, enc.features)):.1f} ms, "
        f"speaker embedding {per_call_ms(lambda: enc._embedder.embed(w)):.1f} ms, "
        f"adapt+classify {per_call_ms(lambda: enc.classify(x[None], None), 300):.2f} ms, "
        f"whole encode (energy gate) {per_call_ms(lambda: enc.encode([chunk])):.1f} ms "
        "per 2 s window"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
