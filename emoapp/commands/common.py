"""Options shared by the commands that run models (analyze, live, the window, evaluate,
bench): their argparse definitions, and the typed configuration
(:mod:`emoapp.config`) built from them. What the options mean for a run (which models,
which encoders, which fusion) is decided in :mod:`emoapp.config`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from emoapp.config import AUTO_PROFILE, FusionOptions, LiveOptions, ModelOptions, parse_weights
from emoapp.core.fusion import RULE_ALIASES
from emoapp.core.messages import Modality


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("models")
    group.add_argument(
        "--profile",
        default=AUTO_PROFILE,
        help="model profile: default, cpu, embedded, baseline, or one from your profile file "
        "(default: auto = the default profile's models that are available locally, the "
        "built-in embedded models for the rest)",
    )
    group.add_argument("--profiles-file", type=Path, help="an extra profile TOML file")
    for modality in Modality:
        group.add_argument(
            f"--{modality.value}-model",
            metavar="MODEL",
            help=f"{modality.value} model: registry id, hub id[@revision], local directory, "
            "or 'none' to switch the modality off",
        )
    group.add_argument("--device", default="auto", help="auto (CUDA, MPS, CPU), cpu, cuda[:N], mps")
    group.add_argument(
        "--dtype",
        default="auto",
        help="auto (float16 on CUDA; on the CPU float32, or bfloat16/int8 where `emoapp bench "
        "--part precision` measured it faster and in agreement on this machine), float32, "
        "float16, bfloat16, int8 (CPU only: text and voice linear layers quantised)",
    )
    group.add_argument(
        "--models-dir",
        help="where pulled models live (default: EMOAPP_MODELS_DIR or the Hugging Face cache)",
    )
    group.add_argument(
        "--download",
        action="store_true",
        help="allow downloading missing models from the Hugging Face hub (off by default: "
        "emoapp makes no network connection unless asked)",
    )


def add_fusion_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("fusion")
    group.add_argument(
        "--fusion-rule",
        choices=sorted(RULE_ALIASES),
        default="weighted",
        help="how the modalities' full posteriors are pooled: weighted (= linear, the "
        "default: a weighted mean) or product (= loglinear: a weighted product of experts)",
    )
    group.add_argument(
        "--weights",
        metavar="M=W,...",
        help="reliability prior per modality, e.g. face=1,voice=0.5,text=0.8",
    )
    group.add_argument(
        "--smoothing",
        type=float,
        default=None,
        metavar="SECONDS",
        help="exponential smoothing time constant of the fused estimate (0: off)",
    )
    group.add_argument(
        "--hysteresis",
        type=float,
        default=None,
        metavar="MARGIN",
        help="the shown label changes only when another label leads it by this much "
        "(0: off); rows keep the raw estimate beside it",
    )
    group.add_argument(
        "--min-hold",
        type=float,
        default=None,
        metavar="SECONDS",
        help="the shown state (a label, or uncertain) stays at least this long once shown "
        "(0: off; the window and live default to the value chosen by measurement)",
    )
    group.add_argument(
        "--certainty",
        choices=("entropy", "confidence"),
        default=None,
        help="what scales a channel's weight on each input: entropy (default: 1 - H/log 7 "
        "of its calibrated posterior; a flat posterior counts for nothing) or confidence "
        "(its top probability, the rule before issue 23)",
    )
    group.add_argument(
        "--uncertain-below",
        type=float,
        default=None,
        metavar="P",
        help="flag the fused estimate 'uncertain' when its label's probability is below P "
        "(0: never; default: the profile's, else the value chosen on dev data, see "
        "docs/guide/fusion.md)",
    )


def model_options(args: argparse.Namespace) -> ModelOptions:
    """The model options (:func:`add_model_options`) of parsed arguments."""
    return ModelOptions(
        profile=args.profile,
        profiles_file=getattr(args, "profiles_file", None),
        models={m: getattr(args, f"{m.value}_model", None) for m in Modality},
        device=args.device,
        dtype=args.dtype,
        models_dir=args.models_dir,
        download=args.download,
    )


def fusion_options(args: argparse.Namespace) -> FusionOptions:
    """The fusion options (:func:`add_fusion_options`) of parsed arguments; EmoappError
    for a malformed ``--weights``."""
    return FusionOptions(
        rule=args.fusion_rule,
        weights=parse_weights(args.weights) if args.weights else None,
        smoothing_s=args.smoothing,
        hysteresis=getattr(args, "hysteresis", None),
        uncertain_below=getattr(args, "uncertain_below", None),
        certainty=getattr(args, "certainty", None),
        min_hold_s=getattr(args, "min_hold", None),
    )


# --- argument types shared by the commands ------------------------------------------------


def positive_number(value: str) -> float:
    """A finite number above 0 (argparse type)."""
    try:
        number = float(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from error
    if not number > 0 or number == float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} must be a positive number")
    return number


def whole_number(low: int = 0) -> Callable[[str], int]:
    """An argparse type: a whole number of at least ``low``."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError as error:
            raise argparse.ArgumentTypeError(f"{value!r} is not a whole number") from error
        if number < low:
            raise argparse.ArgumentTypeError(
                f"{value!r} must not be negative"
                if low == 0
                else f"{value!r} must be at least {low}"
            )
        return number

    return parse


def add_live_options(parser: argparse.ArgumentParser) -> None:
    """The live session's use of the computer (``emoapp live`` and the window)."""
    group = parser.add_argument_group("performance")
    group.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="threads per model worker for torch, OpenCV and BLAS (default: "
        "EMOAPP_THREADS, else the cores shared among the running workers)",
    )
    group.add_argument(
        "--face-detect-every",
        type=int,
        default=5,
        metavar="N",
        help="detect faces on one frame in N and track them in between (1: every frame; "
        "default: 5)",
    )
    group.add_argument(
        "--face-reclassify-after",
        type=float,
        default=1.0,
        metavar="S",
        help="a tracked face that neither moved nor changed keeps its classification for "
        "up to S seconds instead of being classified again (0: classify every frame; "
        "default: 1)",
    )


def live_options(args: argparse.Namespace) -> LiveOptions:
    return LiveOptions(
        threads=getattr(args, "threads", None),
        face_detect_every=getattr(args, "face_detect_every", 5),
        face_reclassify_after=getattr(args, "face_reclassify_after", 1.0),
    )


def refuse_overwriting_inputs(out: str, inputs: list[Path | None]) -> None:
    """Refuse an ``--out`` that names one of the inputs (it would be truncated)."""
    if out == "-":
        return
    from emoapp.core.errors import EmoappError

    target = Path(out).resolve()
    for path in inputs:
        if path is not None and path.resolve() == target:
            raise EmoappError(f"--out {out} is an input file; give another name")
