#!/usr/bin/env python3
"""Two tiny wav2vec2 voice classifiers (random weights) that show the load-time integrity
check of docs/guide/models.md: OUT/renamed-head, whose head tensors are saved under other
names (transformers would initialise the head at random), and OUT/ehcalabres-layout, saved
in the layout of ehcalabres/wav2vec2-lg-xlsr-en-speech-emotion-recognition (pooled
dense -> tanh -> output head), which loads through emoapp's head adapter.

    python scripts/make_head_layout_demo.py /tmp/layouts
    emoapp analyze resources/samples/speech.wav --voice-model /tmp/layouts/renamed-head ...
"""

from __future__ import annotations

import argparse
from pathlib import Path

from safetensors.torch import load_file, save_file

from emoapp.bench.tinymodels import make_pooled_head_voice_model, make_voice_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to create the two models in")
    out = parser.parse_args().out
    make_pooled_head_voice_model(out / "ehcalabres-layout")
    renamed = make_voice_model(out / "renamed-head")
    weights = renamed / "model.safetensors"
    state = load_file(str(weights))
    state = {
        ("classifier.output." + k[len("classifier.") :] if k.startswith("classifier.") else k): v
        for k, v in state.items()
    }
    save_file(state, str(weights), metadata={"format": "pt"})
    print(f"wrote {out / 'renamed-head'} and {out / 'ehcalabres-layout'}")


if __name__ == "__main__":
    main()
