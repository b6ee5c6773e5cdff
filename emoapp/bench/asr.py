"""Speech recognition in the benchmark: each profile's recogniser's real-time factor, and
what live transcription costs the face and voice estimates.

- **Real-time factor** (recogniser time / speech duration, wall and process CPU) over
  the speech segments of the sample speech (cut by the same voice-activity segmenter
  as live): the embedded PocketSphinx as shipped, and Whisper base.en (the ``cpu``
  profile's) and Whisper small (the default profile's) in their full-size
  architectures with random weights. Random weights do not stop by themselves, so each
  Whisper call decodes a fixed number of tokens, 3 per second of speech (about 2 words
  a second of conversational English): the same compute as a real transcript. Whisper
  always reads 30 s of (padded) audio, so its cost per segment barely depends on the
  segment's length.
- **Live impact**: the sustained live run (:mod:`emoapp.bench.live`) twice, with
  transcription off and then on (the embedded recogniser), and the ratio of the face and
  voice estimate ages (p50 and p95); the target is at most 1.10.
"""

from __future__ import annotations

import time
from typing import Any

from emoapp.bench.common import BenchConfig, sample_media, say
from emoapp.core.messages import Modality

TOKENS_PER_SPEECH_S = 3.0
AGE_RATIO_TARGET = 1.10

WHISPER_SHAPES: dict[str, dict[str, Any]] = {
    # From the checkpoints' config.json (Radford et al. 2022, table 1).
    "openai/whisper-base.en": {
        "d_model": 512, "encoder_layers": 6, "decoder_layers": 6,
        "encoder_attention_heads": 8, "decoder_attention_heads": 8,
        "encoder_ffn_dim": 2048, "decoder_ffn_dim": 2048, "vocab_size": 51864,
    },
    "openai/whisper-small": {
        "d_model": 768, "encoder_layers": 12, "decoder_layers": 12,
        "encoder_attention_heads": 12, "decoder_attention_heads": 12,
        "encoder_ffn_dim": 3072, "decoder_ffn_dim": 3072, "vocab_size": 51865,
    },
}  # fmt: skip


def speech_segments() -> list[Any]:
    from emoapp.capture.media import iter_audio_chunks
    from emoapp.encoders.asr import segment_audio
    from emoapp.encoders.vad import EnergyVAD

    chunks = list(iter_audio_chunks(sample_media("speech.wav"), 16_000, chunk_s=0.5))
    return segment_audio(chunks, EnergyVAD())


def _cpu_s() -> float:
    return time.process_time()


def _rtf(run: Any, segments: list[Any], reps: int) -> dict[str, Any]:
    run(segments[0])  # warm-up
    wall = cpu = speech = 0.0
    for _ in range(reps):
        for segment in segments:
            w0, c0 = time.perf_counter(), _cpu_s()
            run(segment)
            wall += time.perf_counter() - w0
            cpu += _cpu_s() - c0
            speech += segment.duration
    return {
        "segments": len(segments) * reps,
        "speech_s": round(speech, 2),
        "realtime_factor": round(wall / speech, 3),
        "realtime_factor_cpu": round(cpu / speech, 3),
    }


def embedded_rtf(segments: list[Any], reps: int) -> dict[str, Any]:
    from emoapp.encoders.embedded.asr_sphinx import SphinxRecognizer

    recognizer = SphinxRecognizer()
    recognizer.load()
    result = _rtf(lambda s: recognizer.transcribe(s.samples, s.sample_rate, s.t), segments, reps)
    return {"model": recognizer.model_id, "device": "cpu", **result}


def whisper_rtf(name: str, device: str, segments: list[Any], reps: int) -> dict[str, Any]:
    """A full-size random-weight Whisper of ``name``'s shape, decoding a fixed number of
    tokens per second of speech."""
    import torch
    import transformers
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration

    transformers.utils.logging.set_verbosity_error()  # generate's per-call notes
    torch.manual_seed(0)
    config = WhisperConfig(**WHISPER_SHAPES[name], num_mel_bins=80)
    dtype = torch.float16 if device.startswith("cuda") else torch.float32
    model = WhisperForConditionalGeneration(config).eval().to(device=device, dtype=dtype)
    features = WhisperFeatureExtractor(feature_size=80)

    def run(segment: Any) -> None:
        x = features(segment.samples, sampling_rate=16_000, return_tensors="pt").input_features
        tokens = max(1, round(TOKENS_PER_SPEECH_S * segment.duration))
        with torch.inference_mode():
            model.generate(
                x.to(device=device, dtype=dtype),
                min_new_tokens=tokens,
                max_new_tokens=tokens,
                do_sample=False,
            )
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    result = _rtf(run, segments, reps)
    return {
        "model": name,
        "weights": "random (full-size architecture)",
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "tokens_per_speech_s": TOKENS_PER_SPEECH_S,
        **result,
    }


def live_impact(
    config: BenchConfig, encoders: dict[Modality, Any], variant: str, pairs: int = 1
) -> dict:
    """The live run with transcription off, then on, ``pairs`` times (interleaved, so
    that a change in the machine's other load hits both alike); ages are averaged over
    the runs of each kind."""
    from emoapp.bench.live import run_live
    from emoapp.encoders.embedded.asr_sphinx import SphinxRecognizer
    from emoapp.encoders.vad import EnergyVAD
    from emoapp.live.transcriber import LiveTranscriber

    runs: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    for i in range(pairs):
        say(f"asr: live run {i + 1}/{pairs} without transcription")
        runs["off"].append(run_live(config, encoders, variant))
        say(f"asr: live run {i + 1}/{pairs} with the embedded recogniser transcribing")
        transcriber = LiveTranscriber(SphinxRecognizer(), lambda e: None, EnergyVAD())
        runs["on"].append(run_live(config, encoders, variant, transcriber=transcriber))

    def mean_age(kind: str, m: str, p: str) -> float | None:
        values = [r["modalities"].get(m, {}).get(p) for r in runs[kind]]
        present = [v for v in values if v is not None]
        return round(sum(present) / len(present), 1) if len(present) == len(values) else None

    ages: dict[str, Any] = {}
    ratios: dict[str, Any] = {}
    for m in ("face", "voice"):
        for p in ("age_p50_ms", "age_p95_ms"):
            off, on = mean_age("off", m, p), mean_age("on", m, p)
            ages[f"{m}_{p}"] = {"off": off, "on": on}
            if off and on is not None:
                ratios[f"{m}_{p.removesuffix('_ms')}_ratio"] = round(on / off, 3)
    worst = max(ratios.values()) if ratios else None
    return {
        "pairs": pairs,
        "ages_ms": ages,
        "cpu_cores_used": {k: [r["cpu_cores_used"] for r in v] for k, v in runs.items()},
        "asr": [r["asr"] for r in runs["on"]],
        "age_ratios": ratios,
        "worst_age_ratio": worst,
        "target": AGE_RATIO_TARGET,
        "met": None if worst is None else worst <= AGE_RATIO_TARGET,
    }


def run_asr(
    config: BenchConfig, encoders: dict[Modality, Any] | None, variant: str
) -> dict[str, Any]:
    import torch

    segments = speech_segments()
    reps = 1 if config.quick or config.size == "tiny" else 3
    say(f"asr: real-time factors over {len(segments)} speech segments")
    result: dict[str, Any] = {"recognizers": [embedded_rtf(segments, reps)]}
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and config.device != "cpu" else [])
    names = list(WHISPER_SHAPES) if config.size != "tiny" else []
    if config.quick:
        names = names[:1]
    for name in names:
        for device in devices:
            say(f"asr: {name} ({device})")
            result["recognizers"].append(whisper_rtf(name, device, segments, 1))
    if encoders is not None and config.runs("live"):
        pairs = 1 if config.quick or config.size == "tiny" else 2
        result["live"] = live_impact(config, encoders, variant, pairs)
    return result
