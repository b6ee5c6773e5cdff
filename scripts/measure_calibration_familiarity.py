"""How familiar a "calibrate to me" reading makes a speaker look to the voice model's
speaker-novelty temperature, against all of that speaker's speech.

For each RAVDESS actor named, the actor's neutral clips (about 16 s: what the 15 s reading
gives) and then all 60 of their clips are turned into speaker statistics the way
``emoapp voice-calibration record`` does (``EmbeddedVoiceEncoder.calibration_stats``);
the table gives each one's novelty and the temperature the model would use (the reading
counted with its calibration weight, as live). Use a model that never heard the actors:

    python scripts/train_embedded_voice.py --holdout-actors 15-18 --candidates 1,9 \
        --no-tables --out /tmp/voice-1-14
    python scripts/measure_calibration_familiarity.py /tmp/voice-1-14 --actors 15-18
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def read(paths: list[Path]) -> np.ndarray:
    import librosa
    import soundfile as sf

    out = []
    for path in paths:
        x, sr = sf.read(path, dtype="float32")
        if x.ndim > 1:
            x = x.mean(axis=1)
        out.append(librosa.resample(x, orig_sr=sr, target_sr=16_000))
        out.append(np.zeros(8_000, np.float32))  # 0.5 s between clips
    return np.concatenate(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="an embedded voice model folder (with a novelty block)")
    parser.add_argument("--ravdess", type=Path, default=ROOT.parent / "shared/data/ravdess")
    parser.add_argument("--actors", default="15-18", metavar="A-B")
    args = parser.parse_args(argv)
    from emoapp.core.messages import Modality
    from emoapp.encoders.factory import RuntimeOptions, build_encoder
    from emoapp.registry import ModelSpec

    encoder = build_encoder(
        ModelSpec(Modality.VOICE, args.model, backend="embedded"), RuntimeOptions(device="cpu")
    )
    encoder.load()
    novelty = getattr(encoder, "novelty_temperature", None)
    if novelty is None:
        parser.error(f"{args.model} has no speaker-novelty temperature")
    weight = encoder.adaptation.calibration_weight  # type: ignore[attr-defined]
    first, last = (int(a) for a in args.actors.split("-"))
    print(
        f"t_familiar {novelty.t_familiar:.2f}, t_novel {novelty.t_novel:.2f}; "
        f"a calibration window counts {weight:g}x"
    )
    print(
        "| actor | neutral reading (s) | its novelty | its temperature "
        "| all 60 clips: novelty | temperature |"
    )
    print("|---|---|---|---|---|---|")
    for actor in range(first, last + 1):
        files = sorted((args.ravdess / f"Actor_{actor:02d}").glob("*.*"))
        neutral = [f for f in files if f.name.split("-")[2] == "01"]
        reading = read(neutral)
        mine = encoder.calibration_stats(reading)  # type: ignore[attr-defined]
        every = encoder.calibration_stats(read(files))  # type: ignore[attr-defined]
        print(
            f"| {actor:02d} | {reading.size / 16_000:.1f} | {novelty.novelty(mine):.2f} | "
            f"{novelty.temperature(mine.scaled(weight)):.2f} | {novelty.novelty(every):.2f} | "
            f"{novelty.temperature(every):.2f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
