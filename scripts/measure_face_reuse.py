"""Measure reusing a tracked face's classification: how often, and how often it is right.

    python scripts/measure_face_reuse.py [--every 5] [--max-age 1.0] [--json FILE]

The live face path detects faces on one frame in ``--every`` and tracks them in between
(:class:`~emoapp.encoders.face.TrackingLocator`); :class:`~emoapp.encoders.face.ClassifyReuse`
then keeps a tracked face's earlier class distribution when its box moved less than
``max_shift`` of the face's size and its 32 x 32 grey crop differs from the crop last
classified by at most ``max_diff`` grey levels on average, for up to ``--max-age``
seconds. This script runs that gate over sequences made from the bundled sample video
(``resources/samples/face_speech.mp4``: 110 frames at 15 fps of a smiling face with a slow
pan and zoom) and, for every frame, also classifies the face afresh with the embedded
mini-Xception (real trained weights), so that each reuse can be checked:

- **agreement**: the share of reused primary faces (the face that gives the prediction)
  whose reused top label equals the fresh one; also over every face found (the Haar
  cascade finds a false face in the sample's background now and then);
- **|dp|**: the mean and largest absolute difference between the reused and the fresh
  probabilities (over the 7 labels of every reused primary face);
- **reused**: the share of frames whose faces were all reused (the classifier not run).

Sequences (all seeded): ``video`` as is; ``noise``: camera noise (Gaussian, sd 4 grey
levels); ``drift``: the picture moves 1 px a frame sideways (plus noise, sd 2);
``lighting``: the light dims to half and back; ``hand``: a skin-coloured hand rises over
the mouth in half a second, stays a second, and goes; ``blur``: the mouth blurs and
sharpens again (stands in for an expression that fades: the model's top label changes
from happy); ``flip``: the face cross-fades to its upside-down self and back (the model's
output jumps abruptly). Each is read by the worker at 15, 5 and 3 frames a second (every
frame, every 3rd, every 5th), as a live worker takes the newest frame when it is free.

Thresholds are chosen as the most reuse with top-label agreement of the primary face of
at least 98.5 % over all sequences; the worst sequence is shown beside. ``--grid G``
compares the face's look in G x G blocks (the largest block's change counts; emoapp uses
4: 1, 2 and 8 reuse about as much for less agreement or more |dp| on ``blur``), ``--side``
sets the grey crop's side. Nothing is written except ``--json``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from emoapp.bench.common import sample_media  # noqa: E402
from emoapp.capture.media import iter_video_frames  # noqa: E402
from emoapp.core.messages import Modality, VideoFrame  # noqa: E402
from emoapp.encoders.embedded.face import MiniXceptionFaceEncoder, face_inputs  # noqa: E402
from emoapp.encoders.face import (  # noqa: E402
    REUSE_MAX_DIFF,
    REUSE_MAX_SHIFT,
    ClassifyReuse,
    FaceConfig,
    FaceDetector,
    FrameFaces,
    TrackingLocator,
    locate_faces,
    merge_reused,
)
from emoapp.registry import resolve_model  # noqa: E402

SHIFTS = (0.02, 0.05, 0.1)
DIFFS = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0, 12.0)
STRIDES = (1, 3, 5)
MIN_AGREEMENT = 0.985


def sequences(frames: list[VideoFrame], boxes: list[tuple[int, int, int, int]]) -> dict:
    """The synthetic sequences (name -> list of RGB images), from the sample frames and
    each frame's detected face box."""
    import cv2

    rng = np.random.default_rng(15)
    n = len(frames)
    images = [f.image for f in frames]

    def noisy(image: np.ndarray, sd: float) -> np.ndarray:
        noise = rng.normal(0.0, sd, image.shape)
        return np.clip(image + noise, 0, 255).astype(np.uint8)

    def shifted(image: np.ndarray, dx: float) -> np.ndarray:
        m = np.float32([[1, 0, dx], [0, 1, 0]])
        h, w = image.shape[:2]
        return cv2.warpAffine(image, m, (w, h), borderMode=cv2.BORDER_REPLICATE)

    def hand(i: int) -> float:
        """How far the hand has risen over the lower face (0-1) at frame i: up in 8
        frames from frame 30, held 15 frames, down in 8."""
        ramp = [0.0] * n
        for k in range(n):
            if 30 <= k < 38:
                ramp[k] = (k - 30 + 1) / 8
            elif 38 <= k < 53:
                ramp[k] = 1.0
            elif 53 <= k < 61:
                ramp[k] = 1.0 - (k - 53 + 1) / 8
        return ramp[i]

    def with_hand(image: np.ndarray, box: tuple[int, int, int, int], a: float) -> np.ndarray:
        if a <= 0:
            return image
        x, y, w, h = box
        out = image.copy()
        top = round(y + h + 0.1 * h - a * 0.7 * h)
        out[top : y + h + int(0.1 * h), max(0, x - 5) : x + w + 5] = (205, 160, 135)
        return out

    def blurred(image: np.ndarray, box: tuple[int, int, int, int], a: float) -> np.ndarray:
        k = 1 + 2 * round(a * 10)
        if k <= 1:
            return image
        x, y, w, h = box
        out = image.copy()
        part = out[y + h // 2 : y + h, x : x + w]
        out[y + h // 2 : y + h, x : x + w] = cv2.GaussianBlur(part, (k, k), 0)
        return out

    def flipped(image: np.ndarray, box: tuple[int, int, int, int], a: float) -> np.ndarray:
        x, y, w, h = box
        out = image.astype(np.float32)
        face = out[y : y + h, x : x + w]
        out[y : y + h, x : x + w] = (1 - a) * face + a * face[::-1]
        return np.clip(out, 0, 255).astype(np.uint8)

    wave = [0.5 - 0.5 * np.cos(2 * np.pi * i / n) for i in range(n)]  # 0 -> 1 -> 0
    return {
        "video": images,
        "noise": [noisy(im, 4.0) for im in images],
        "drift": [noisy(shifted(im, i - n / 2), 2.0) for i, im in enumerate(images)],
        "lighting": [
            np.clip(im * (1.0 - 0.5 * wave[i]), 0, 255).astype(np.uint8)
            for i, im in enumerate(images)
        ],
        "hand": [with_hand(im, boxes[i], hand(i)) for i, im in enumerate(images)],
        "blur": [blurred(im, boxes[i], 2.0 * wave[i]) for i, im in enumerate(images)],
        "flip": [flipped(im, boxes[i], wave[i]) for i, im in enumerate(images)],
    }


@dataclass
class Stream:
    """One sequence as a worker reads it: frames, where the tracker found the faces,
    and a fresh classification of every face of every frame."""

    name: str
    stride: int
    frames: list[VideoFrame]
    located: list[FrameFaces | None]
    fresh: list[np.ndarray | None]
    """Canonical probabilities, one row per face (None: no face)."""


def prepare(
    encoder: MiniXceptionFaceEncoder, name: str, images: list[np.ndarray], stride: int, every: int
) -> Stream:
    assert encoder.label_map is not None
    frames = [VideoFrame(i / 15.0, images[i], i) for i in range(0, len(images), stride)]
    tracker = TrackingLocator(FaceDetector(), every)
    located = [locate_faces(tracker, f.image, FaceConfig()) for f in frames]
    fresh: list[np.ndarray | None] = []
    for frame, info in zip(frames, located, strict=True):
        if info is None:
            fresh.append(None)
            continue
        raw = encoder.classify(face_inputs(frame.image, info.boxes, encoder.crop_margin))
        fresh.append(np.array([encoder.label_map.apply(p) for p in raw]))
    return Stream(name, stride, frames, located, fresh)


@dataclass
class Tally:
    frames: int = 0
    reused_frames: int = 0
    reused_primary: int = 0
    agree: int = 0
    """Reused primary faces (the face that gives the prediction) whose top label is the
    fresh one's."""
    dp_sum: float = 0.0
    dp_n: int = 0
    dp_max: float = 0.0
    reused_faces: int = 0
    agree_faces: int = 0
    """The same over every reused face (false faces the detector finds in the sample's
    background included)."""

    def add(self, other: Tally) -> None:
        for name in self.__dataclass_fields__:
            if name == "dp_max":
                self.dp_max = max(self.dp_max, other.dp_max)
            else:
                setattr(self, name, getattr(self, name) + getattr(other, name))

    @property
    def agreement(self) -> float:
        return self.agree / self.reused_primary if self.reused_primary else 1.0

    @property
    def agreement_faces(self) -> float:
        return self.agree_faces / self.reused_faces if self.reused_faces else 1.0

    @property
    def reused(self) -> float:
        return self.reused_frames / self.frames if self.frames else 0.0

    def row(self) -> dict[str, float | int]:
        return {
            "frames": self.frames,
            "reused_frames": self.reused_frames,
            "reused_share": round(self.reused, 4),
            "reused_primary_faces": self.reused_primary,
            "top_label_agreement": round(self.agreement, 4),
            "mean_abs_dp": round(self.dp_sum / self.dp_n, 5) if self.dp_n else 0.0,
            "max_abs_dp": round(self.dp_max, 4),
            "reused_faces_all": self.reused_faces,
            "top_label_agreement_all_faces": round(self.agreement_faces, 4),
        }


def simulate(stream: Stream, max_age: float, shift: float, diff: float) -> Tally:
    """Run the reuse gate over a stream; every reused face is checked against its fresh
    classification."""
    reuse = ClassifyReuse(max_age, shift, diff)
    tally = Tally()
    for frame, info, fresh in zip(stream.frames, stream.located, stream.fresh, strict=True):
        if info is None or fresh is None:
            continue
        tally.frames += 1
        plan = reuse.plan(frame.image, info, frame.t)
        outputs = merge_reused(plan, [fresh[i] for i in plan.fresh])
        reuse.remember(info, plan, outputs)
        if plan.all_reused:
            tally.reused_frames += 1
        for i, earlier in enumerate(plan.reused):
            if earlier is None:
                continue
            same = int(np.argmax(earlier) == np.argmax(fresh[i]))
            tally.reused_faces += 1
            tally.agree_faces += same
            if i != info.primary:
                continue
            tally.reused_primary += 1
            tally.agree += same
            dp = np.abs(earlier - fresh[i])
            tally.dp_sum += float(dp.sum())
            tally.dp_n += dp.size
            tally.dp_max = max(tally.dp_max, float(dp.max()))
    return tally


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--every", type=int, default=5, help="detect on one frame in N")
    parser.add_argument("--max-age", type=float, default=1.0, help="seconds (default: 1)")
    parser.add_argument("--grid", type=int, help="compare the look in G x G blocks")
    parser.add_argument("--side", type=int, help="side of the grey crop compared")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    import emoapp.encoders.face as face_module

    if args.grid is not None:
        face_module.THUMB_GRID = args.grid
    if args.side is not None:
        face_module.THUMB_SIDE = args.side

    import torch

    torch.set_num_threads(1)
    spec = resolve_model(Modality.FACE, "embedded/face-minixception")
    assert spec is not None
    encoder = MiniXceptionFaceEncoder(spec)
    encoder.load()
    frames = list(iter_video_frames(sample_media("face_speech.mp4")))
    detector = FaceDetector()
    boxes = []
    for frame in frames:
        info = locate_faces(detector, frame.image, FaceConfig())
        assert info is not None, "the sample video has a face in every frame"
        boxes.append(info.boxes[info.primary])
    streams = [
        prepare(encoder, name, images, stride, args.every)
        for name, images in sequences(frames, boxes).items()
        for stride in STRIDES
    ]
    changes = {}
    for s in streams:
        if s.stride != 1:
            continue
        tops = [
            int(np.argmax(p[info.primary]))
            for p, info in zip(s.fresh, s.located, strict=True)
            if p is not None and info is not None
        ]
        changes[s.name] = sum(int(a != b) for a, b in itertools.pairwise(tops))
    print(
        f"{len(streams)} streams ({len(changes)} sequences x worker rates 15/5/3 Hz), "
        f"detect every {args.every}, max age {args.max_age:g} s, look compared on a "
        f"{face_module.THUMB_SIDE} px grey crop in {face_module.THUMB_GRID}x"
        f"{face_module.THUMB_GRID} blocks; "
        "top-label changes between consecutive frames (fresh, 15 Hz): "
        + ", ".join(f"{k} {v}" for k, v in changes.items())
    )

    grid = []
    print(
        "\nagreement and |dp|: of the primary face (the one that gives the prediction); "
        "all faces: every face found\n"
        "max_shift max_diff  reused  agreement (worst sequence)  mean|dp|  max|dp|  all faces"
    )
    for shift in SHIFTS:
        for diff in DIFFS:
            total = Tally()
            each: dict[str, Tally] = {}
            for stream in streams:
                t = simulate(stream, args.max_age, shift, diff)
                total.add(t)
                each.setdefault(stream.name, Tally()).add(t)
            worst = min(each.items(), key=lambda kv: kv[1].agreement)
            row = {"max_shift": shift, "max_diff": diff, **total.row()}
            row["worst"] = {"sequence": worst[0], "agreement": round(worst[1].agreement, 4)}
            row["sequences"] = {k: v.row() for k, v in each.items()}
            grid.append(row)
            print(
                f"{shift:9.2f} {diff:8.1f}  {total.reused:6.1%}  {total.agreement:8.2%} "
                f"({worst[0]} {worst[1].agreement:.2%})  {row['mean_abs_dp']:.4f}  "
                f"{row['max_abs_dp']:.3f}   {total.agreement_faces:.2%}"
            )
    ok = [r for r in grid if r["top_label_agreement"] >= MIN_AGREEMENT]
    chosen = max(ok, key=lambda r: (r["reused_share"], -r["max_shift"])) if ok else None
    if chosen is None:
        print("\nno thresholds meet the agreement bar")
    else:
        print(
            f"\nchosen (most reuse with agreement >= {MIN_AGREEMENT:.1%}): "
            f"max_shift {chosen['max_shift']}, "
            f"max_diff {chosen['max_diff']}: {chosen['reused_share']:.1%} of frames reused, "
            f"top-label agreement {chosen['top_label_agreement']:.2%}, mean |dp| "
            f"{chosen['mean_abs_dp']:.4f}, max |dp| {chosen['max_abs_dp']:.3f} "
            f"(all faces: agreement {chosen['top_label_agreement_all_faces']:.2%})"
        )
        print("  per sequence: reused / agreement / max|dp|")
        for name, r in chosen["sequences"].items():
            print(
                f"  {name:9s} {r['reused_share']:6.1%} / {r['top_label_agreement']:7.2%} / "
                f"{r['max_abs_dp']:.3f}"
            )
    print(
        f"emoapp's defaults: max_shift {REUSE_MAX_SHIFT}, max_diff {REUSE_MAX_DIFF}"
        + (
            " (as chosen)"
            if chosen
            and (chosen["max_shift"], chosen["max_diff"]) == (REUSE_MAX_SHIFT, REUSE_MAX_DIFF)
            else " (differ from the choice)"
        )
    )
    ages = {}
    if chosen is not None:
        print("\nwith the chosen thresholds, by max age:")
        for age in (0.5, 1.0, 2.0, 4.0):
            total = Tally()
            for stream in streams:
                total.add(simulate(stream, age, chosen["max_shift"], chosen["max_diff"]))
            ages[age] = total.row()
            print(
                f"  {age:3g} s: {total.reused:6.1%} reused, agreement {total.agreement:.2%}, "
                f"max |dp| {total.dp_max:.3f}"
            )
    if args.json is not None:
        result = {
            "every": args.every,
            "thumb_side": face_module.THUMB_SIDE,
            "thumb_grid": face_module.THUMB_GRID,
            "max_age_s": args.max_age,
            "label_changes_15hz": changes,
            "grid": grid,
            "chosen": chosen,
            "by_max_age": ages,
        }
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
