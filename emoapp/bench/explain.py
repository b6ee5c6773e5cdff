"""What explanations cost: per modality, one explanation of one input next to one
classification of it (the benchmark's models, and the built-in embedded ones a fresh
machine runs), and a second live run with explanations on (every
:data:`EXPLAIN_EVERY_S` seconds for every modality) whose estimate ages are compared
with the plain live run's: they may not grow by more than :data:`AGE_GROWTH_TARGET`.

Inputs: the first frame of the sample video with a face (all its faces), a 2 s window
of the sample speech, one typed sentence.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from emoapp.bench.common import BenchConfig, MeasureBudget, measure_pair, ratio, sample_media, say
from emoapp.core.messages import AudioChunk, Modality, ModalityPrediction, TextEntry, VideoFrame

EXPLAIN_EVERY_S = 1.0
AGE_GROWTH_TARGET = 1.10
"""Estimate age with explanations on, over the age without, at the median: at most."""
SENTENCE = "I can't believe you did that, I am so angry and disappointed right now"


def explain_inputs() -> dict[Modality, Any]:
    """One input per modality (see the module docstring)."""
    import av
    import soundfile as sf

    from emoapp.encoders.face import FaceConfig, FaceDetector, to_rgb_uint8

    detector = FaceDetector.from_config(FaceConfig())
    frame = None
    with av.open(str(sample_media("face_speech.mp4"))) as container:
        for i, decoded in enumerate(container.decode(video=0)):
            image = decoded.to_ndarray(format="rgb24")
            if detector.detect(to_rgb_uint8(image)):
                frame = VideoFrame(float(decoded.time or 0.0), image, i)
                break
    audio, rate = sf.read(sample_media("speech.wav"), dtype="float32")
    audio = audio if audio.ndim == 1 else audio.mean(axis=1)
    inputs: dict[Modality, Any] = {
        Modality.VOICE: AudioChunk(0.0, np.ascontiguousarray(audio[: 2 * rate]), int(rate)),
        Modality.TEXT: TextEntry(0.0, SENTENCE),
    }
    if frame is not None:
        inputs[Modality.FACE] = frame
    return inputs


def explanation_costs(
    encoders: dict[Modality, Any], inputs: dict[Modality, Any], budget: MeasureBudget
) -> dict[str, Any]:
    """Per modality: the explainer's method, one classification and one explanation of
    the same input (taking turns), and their ratio."""
    from emoapp.encoders.explain import explainer_for

    out: dict[str, Any] = {}
    for m, encoder in encoders.items():
        item = inputs.get(m)
        explainer = explainer_for(encoder)
        if item is None or explainer is None:
            out[m.value] = {"status": "no input" if item is None else "no explainer"}
            continue
        encoder.load()
        [prediction] = encoder.encode([item])
        if not isinstance(prediction, ModalityPrediction):
            out[m.value] = {"status": f"no prediction: {prediction.reason}"}
            continue

        def classify(encoder: Any = encoder, item: Any = item) -> Any:
            return encoder.encode([item])

        def explain(explainer: Any = explainer, item: Any = item, p: Any = prediction) -> Any:
            return explainer.explain(item, p)

        encode, explained = measure_pair(classify, explain, budget)
        out[m.value] = {
            "model": encoder.model_id,
            "method": explainer.method,
            "encode": encode.as_dict(),
            "explain": explained.as_dict(),
            "explain_over_encode": ratio(explained, encode),
            "explain_over_encode_cpu": ratio(explained, encode, cpu=True),
        }
    return out


def embedded_encoders() -> dict[Modality, Any]:
    """The built-in models a fresh machine runs."""
    from emoapp.encoders.factory import build_encoder
    from emoapp.registry import resolve_model

    refs = {
        Modality.FACE: "embedded/face-minixception",
        Modality.VOICE: "embedded/voice-multicorpus",
        Modality.TEXT: "embedded/text-conversation",
    }
    encoders = {}
    for m, ref in refs.items():
        spec = resolve_model(m, ref)
        assert spec is not None
        encoders[m] = build_encoder(spec)
    return encoders


def age_growth(plain: dict[str, Any], explained: dict[str, Any]) -> dict[str, Any]:
    """Per modality: median estimate age with explanations over without, and whether it
    meets :data:`AGE_GROWTH_TARGET` (voice: from the window's end, the freshest audio in
    it; text: its latency, as its age grows between entries by design)."""
    out: dict[str, Any] = {}
    for name, with_mod in explained.get("modalities", {}).items():
        without = plain.get("modalities", {}).get(name, {})
        key = {
            Modality.TEXT.value: "latency_p50_ms",
            Modality.VOICE.value: "age_from_window_end_p50_ms",
        }.get(name, "age_p50_ms")
        a, b = with_mod.get(key), without.get(key)
        growth = round(a / b, 3) if a and b else None
        out[name] = {
            "figure": key,
            "without_ms": b,
            "with_ms": a,
            "growth": growth,
            "met": None if growth is None else growth <= AGE_GROWTH_TARGET,
        }
    return out


def run_explain(
    config: BenchConfig,
    encoders: dict[Modality, Any],
    variant_name: str,
    plain_live: dict[str, Any] | None,
) -> dict[str, Any]:
    """The explanation part of ``emoapp bench`` (see the module docstring)."""
    from emoapp.bench.live import run_live

    inputs = explain_inputs()
    budget = config.budget
    say("explain: cost per modality")
    result: dict[str, Any] = {
        "every_s": EXPLAIN_EVERY_S,
        "age_growth_target": AGE_GROWTH_TARGET,
        "cost": explanation_costs(encoders, inputs, budget),
        "cost_embedded": explanation_costs(embedded_encoders(), inputs, budget),
    }
    if config.runs("live"):
        if plain_live is None or "modalities" not in plain_live:
            plain_live = run_live(config, encoders, variant_name)
        say(f"explain: live run with explanations every {EXPLAIN_EVERY_S:g} s")
        explained = run_live(config, encoders, variant_name, explain_every_s=EXPLAIN_EVERY_S)
        result["live"] = {
            "explanations": explained.get("explanations"),
            "cpu_cores_used": explained.get("cpu_cores_used"),
            "cpu_cores_used_without": plain_live.get("cpu_cores_used"),
            "age_growth": age_growth(plain_live, explained),
        }
    return result


def render(part: dict[str, Any]) -> list[str]:
    """Lines for the printed table."""
    if "status" in part:
        return [f"Explanations: {part['status']} {part.get('reason', '')}".rstrip()]
    out = ["Explanations (one input; median ms, explain / classify):"]
    for title, key in (("benchmark models", "cost"), ("built-in models", "cost_embedded")):
        for name, cost in part.get(key, {}).items():
            if "status" in cost:
                out.append(f"  {title:16} {name:5} {cost['status']}")
                continue
            out.append(
                f"  {title:16} {name:5} {cost['method']:16} classify "
                f"{cost['encode']['median_ms']} ms, explain {cost['explain']['median_ms']} ms "
                f"(x{cost['explain_over_encode']})"
            )
    live = part.get("live")
    if live:
        for name, growth in live["age_growth"].items():
            out.append(
                f"  live, every {part['every_s']:g} s: {name} {growth['figure']} "
                f"{growth['without_ms']} -> {growth['with_ms']} (x{growth['growth']}, target "
                f"<= x{part['age_growth_target']}: {'met' if growth['met'] else 'NOT met'})"
            )
    return out
