"""Make small demonstration calls with espeak-ng (two synthetic voices), for the calls
guide (docs/guide/calls.md): nothing recorded from a person.

    python scripts/make_call_demo.py FOLDER

writes FOLDER/support-mono.wav (agent and customer on one channel), FOLDER/support-stereo.wav
(the same call, agent left, customer right) and FOLDER/billing-mono.wav (a shorter, calmer
call), 16 kHz 16-bit WAV. Needs espeak-ng on the PATH.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

RATE = 16_000
AGENT = ["en-us", "-p", "35", "-s", "160"]
CUSTOMER = ["en+f3", "-p", "75", "-s", "170"]
SUPPORT = [
    (AGENT, "Thank you for calling. My name is Sam. How can I help you today?"),
    (CUSTOMER, "My internet has been down for three days. I am really angry about it."),
    (AGENT, "I am sorry to hear that. Let me check your account."),
    (CUSTOMER, "This is the third time I call. Nobody ever fixes anything. It is terrible."),
    (AGENT, "I understand. I can send a technician tomorrow morning."),
    (CUSTOMER, "Fine. Thank you, that is great."),
]
BILLING = [
    (AGENT, "Good morning, billing department, how can I help?"),
    (CUSTOMER, "Hello. I would like to change the date of my payment."),
    (AGENT, "Of course. Which day would you like?"),
    (CUSTOMER, "The fifth of each month, please. Thank you so much."),
]


def say(voice: list[str], text: str, folder: Path) -> np.ndarray:
    wav = folder / "line.wav"
    subprocess.run(["espeak-ng", "-v", *voice, "-w", str(wav), text], check=True)
    samples, rate = sf.read(wav, dtype="float32")
    if rate != RATE:
        import librosa

        samples = librosa.resample(samples, orig_sr=rate, target_sr=RATE)
    loud = np.flatnonzero(np.abs(samples) > 0.01)
    return samples[loud[0] : loud[-1] + 1]


def build(lines: list, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(left, right) channels: the agent's lines left, the customer's right, 0.7 s apart,
    except the fourth line, which starts 0.5 s before the third ends (an overlap)."""
    pieces = [(voice is CUSTOMER, say(voice, text, folder)) for voice, text in lines]
    total = sum(len(p) for _, p in pieces) + RATE * (len(pieces) + 2)
    left, right = np.zeros(total, np.float32), np.zeros(total, np.float32)
    t = RATE // 2
    for i, (customer, samples) in enumerate(pieces):
        if i == 3:
            t -= int(1.2 * RATE)
        target = right if customer else left
        target[t : t + len(samples)] += samples * (0.8 if customer else 0.6)
        t += len(samples) + int(0.7 * RATE)
    return left[: t + RATE // 2], right[: t + RATE // 2]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        print("make_call_demo: needs espeak-ng (apt-get install espeak-ng)", file=sys.stderr)
        return 1
    args.folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        left, right = build(SUPPORT, Path(scratch))
        sf.write(args.folder / "support-stereo.wav", np.stack([left, right], 1), RATE, "PCM_16")
        sf.write(args.folder / "support-mono.wav", np.clip(left + right, -1, 1), RATE, "PCM_16")
        left, right = build(BILLING, Path(scratch))
        sf.write(args.folder / "billing-mono.wav", np.clip(left + right, -1, 1), RATE, "PCM_16")
    for path in sorted(args.folder.glob("*.wav")):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
