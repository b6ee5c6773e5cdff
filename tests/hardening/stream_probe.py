"""Stream an audio file the way ``emoapp analyze`` does, and report memory as it goes.

    python -m tests.hardening.stream_probe FILE

Decodes FILE with :func:`emoapp.capture.media.iter_audio_chunks` (16 kHz mono, 0.5 s
chunks), cuts windows with the voice module's :class:`~emoapp.encoders.voice.WindowBuffer`
(2 s every 0.5 s) and gates each with the energy VAD: the voice path of the analysis
without a model. Prints one JSON object: how much was decoded, how many windows and
speech windows, the elapsed time, and the process's peak resident memory (VmHWM) after a
warm-up and at the end, plus resident memory (VmRSS) sampled every ten minutes of audio.
Run in its own process so that the peak belongs to this work alone.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def main(path: str) -> dict[str, object]:
    from emoapp.capture.media import iter_audio_chunks
    from emoapp.encoders.vad import EnergyVAD
    from emoapp.encoders.voice import WindowBuffer

    gate = EnergyVAD()
    # Warm-up: first chunks through every step, so that libraries have allocated what
    # they keep (codec, resampler, numpy buffers) before the baseline is taken.
    warm = iter_audio_chunks(path, sample_rate=16_000, chunk_s=0.5)
    buffer = WindowBuffer(2.0, 0.5)
    for _, chunk in zip(range(20), warm, strict=False):
        for window in buffer.push(chunk):
            gate.measure(window.samples, window.sample_rate)
    warm.close()
    hwm_before = status_kib("VmHWM")
    rss_before = status_kib("VmRSS")

    started = time.perf_counter()
    buffer = WindowBuffer(2.0, 0.5)
    chunks = windows = speech = 0
    decoded_s = 0.0
    rss_samples: list[int] = []
    next_sample = 0.0
    for chunk in iter_audio_chunks(path, sample_rate=16_000, chunk_s=0.5):
        chunks += 1
        decoded_s = chunk.end
        for window in buffer.push(chunk):
            windows += 1
            if gate.measure(window.samples, window.sample_rate).speech_s >= 0.25:
                speech += 1
        if decoded_s >= next_sample:
            rss_samples.append(status_kib("VmRSS"))
            next_sample += 600.0
    return {
        "decoded_s": decoded_s,
        "chunks": chunks,
        "windows": windows,
        "speech_windows": speech,
        "elapsed_s": time.perf_counter() - started,
        "hwm_before_kib": hwm_before,
        "hwm_after_kib": status_kib("VmHWM"),
        "rss_before_kib": rss_before,
        "rss_after_kib": status_kib("VmRSS"),
        "rss_every_10_min_kib": rss_samples,
        "buffer_capacity_samples": buffer.capacity,
    }


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
