"""``emoapp evaluate``: how well each modality, and their fusion, do on a labelled dataset.

    emoapp evaluate DATASET [--format auto|ravdess|cremad|meld|goemotions|fer2013|csv]
                    [--modalities face,voice,text] [--report DIR] [--limit N]
                    [--face-detector auto|yunet|haar|image]
                    [--group-by COL] [--where COL=V,V] [--fit] [model and fusion options]

Reads the dataset (:mod:`emoapp.evaluation.datasets`), loads the models the dataset can
use, runs them over every item (cached in ``DIR/predictions.jsonl``, so an interrupted
run resumes), scores every modality alone, every combination and the full fusion, and
writes a Markdown report with figures to ``--report``. A short table goes to stdout; the
progress bar and notes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoapp.commands.common import (
    add_fusion_options,
    add_model_options,
    fusion_options,
    model_options,
    positive_number,
    whole_number,
)
from emoapp.config import describe_priors, fusion_config, load_encoders
from emoapp.core.errors import EmoappError
from emoapp.core.messages import Modality
from emoapp.evaluation.datasets import FORMATS

PROFILE_FILE = "profile.toml"


def _fraction(value: str) -> float:
    number = positive_number(value)
    if number >= 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be between 0 and 1")
    return number


def _where(value: str) -> tuple[str, tuple[str, ...]]:
    from emoapp.evaluation.datasets import parse_where

    try:
        return parse_where(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from error


def _modality(name: str) -> Modality:
    try:
        return Modality(name.strip().lower())
    except ValueError as error:
        raise argparse.ArgumentTypeError(
            f"{name!r} is not a modality (face, voice, text)"
        ) from error


def _pair(value: str) -> tuple[Modality, Path]:
    name, sep, path = value.partition("=")
    if not sep or not path.strip():
        raise argparse.ArgumentTypeError(f"{value!r} is not MODALITY=SET (e.g. voice=DIR)")
    return _modality(name), Path(path.strip()).expanduser()


def _pair_where(value: str) -> tuple[Modality, tuple[str, tuple[str, ...]]]:
    name, sep, rest = value.partition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"{value!r} is not MODALITY:COL=V,V")
    return _modality(name), _where(rest)


def _modalities(value: str) -> list[Modality]:
    out = []
    for part in value.split(","):
        name = part.strip().lower()
        if not name:
            continue
        try:
            out.append(Modality(name))
        except ValueError as error:
            raise argparse.ArgumentTypeError(
                f"{part!r} is not a modality (face, voice, text)"
            ) from error
    if not out:
        raise argparse.ArgumentTypeError("name at least one modality: face, voice, text")
    return out


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        help="measure each modality and their fusion on a labelled dataset",
        description=(
            "Evaluate the face, voice and text models, every combination of them and their "
            "fusion on a labelled dataset (RAVDESS, CREMA-D, MELD, GoEmotions, or a CSV "
            "manifest): accuracy, macro-F1, per-class recall, confusion matrices, "
            "calibration, per-group gaps, bootstrap intervals. --fit learns calibration "
            "and fusion weights and writes a profile. What is measured is recognition of "
            "labelled, displayed expression, not of feelings."
        ),
    )
    parser.add_argument(
        "dataset",
        type=Path,
        nargs="?",
        metavar="DATASET",
        help="dataset folder or file (or give --pair sets instead)",
    )
    parser.add_argument(
        "--format", choices=("auto", *FORMATS), default="auto", help="dataset layout (auto)"
    )
    parser.add_argument(
        "--modalities",
        type=_modalities,
        metavar="M,M",
        help="which of face, voice, text to evaluate (default: all the dataset has)",
    )
    parser.add_argument(
        "--report",
        type=Path,
        metavar="DIR",
        help="write README.md, metrics.json, figures and the prediction cache here",
    )
    parser.add_argument(
        "--limit",
        type=whole_number(0),
        metavar="N",
        help="evaluate a random (seeded) sample of N items",
    )
    parser.add_argument(
        "--group-by",
        metavar="COL",
        help="group column for per-group scores (RAVDESS: sex, actor, ...; CREMA-D: Sex, "
        "Age, Race, Ethnicity; MELD: Speaker, ...; CSV: group or any column; 'none': off)",
    )
    parser.add_argument(
        "--where",
        type=_where,
        action="append",
        default=[],
        metavar="COL=V,V",
        help="keep only items whose COL (a --group-by column) is one of the values; "
        "A-B is a range of whole numbers (RAVDESS held-out speakers: --where actor=15-18); "
        "repeat to combine",
    )
    parser.add_argument(
        "--clips", type=Path, metavar="DIR", help="MELD: the folder of the dia*_utt*.mp4 clips"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of --limit, the bootstrap and --fit (0)"
    )
    parser.add_argument(
        "--bootstrap",
        type=whole_number(0),
        default=1000,
        metavar="N",
        help="bootstrap resamples for the intervals (1000; 0: none)",
    )
    paired = parser.add_argument_group(
        "paired evaluation (unimodal labelled sets, label-matched into tuples)"
    )
    paired.add_argument(
        "--pair",
        type=_pair,
        action="append",
        default=[],
        metavar="MODALITY=SET",
        help="a labelled set for one modality, e.g. --pair voice=../shared/data/ravdess "
        "--pair text=../shared/data/goemotions/test.tsv; two or three of them draw "
        "label-matched tuples and score each modality, every combination and the fusion",
    )
    paired.add_argument(
        "--pair-where",
        type=_pair_where,
        action="append",
        default=[],
        metavar="MODALITY:COL=V,V",
        help="like --where, for one --pair set (e.g. voice:actor=15-18)",
    )
    paired.add_argument(
        "--pairs", type=whole_number(0), default=1000, metavar="N", help="tuples to draw (1000)"
    )
    media = parser.add_argument_group("media")
    media.add_argument(
        "--face-fps",
        type=positive_number,
        default=2.0,
        metavar="F",
        help="frames per second classified per clip (2)",
    )
    media.add_argument(
        "--face-detector",
        choices=("auto", "yunet", "haar", "image"),
        default="auto",
        help="how faces are found (auto: 'image' for FER2013, whose images are face crops "
        "(landmarks from YuNet on an upscaled copy); 'yunet' for everything else)",
    )
    media.add_argument(
        "--max-frames", type=int, default=120, metavar="N", help="frames per clip at most (120)"
    )
    media.add_argument(
        "--window", type=positive_number, metavar="S", help="voice window in seconds (default 2)"
    )
    media.add_argument(
        "--hop",
        type=positive_number,
        metavar="S",
        help="seconds between voice windows (default 0.5)",
    )
    media.add_argument(
        "--vad",
        choices=("silero", "energy", "off"),
        help="voice-activity gate before the voice model (default: the app's, silero; "
        "energy is much faster on a CPU)",
    )
    fit = parser.add_argument_group("fitting")
    fit.add_argument(
        "--fit",
        action="store_true",
        help="learn per-model temperature and fusion reliability on part of the data, "
        "compare before/after on the rest, and write a profile",
    )
    fit.add_argument(
        "--fit-fraction",
        type=_fraction,
        default=0.5,
        metavar="F",
        help="share of the items used for fitting (0.5)",
    )
    fit.add_argument(
        "--target-precision",
        type=_fraction,
        default=0.8,
        metavar="P",
        help="with --pair --fit: choose the 'uncertain' threshold so that shown labels are "
        "right at least this often on the fit tuples (0.8)",
    )
    fit.add_argument(
        "--fit-name", metavar="NAME", help="name of the written profile (default: PROFILE-fitted)"
    )
    fit.add_argument(
        "--fit-profile",
        type=Path,
        metavar="FILE",
        help=f"where the profile goes (default: DIR/{PROFILE_FILE} of --report)",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bar or notes")
    add_model_options(parser)
    add_fusion_options(parser)
    parser.set_defaults(func=run)


def _model_ref(spec: Any) -> str | None:
    """A profile reference for a resolved model spec (local folders made absolute)."""
    if spec is None:
        return None
    if spec.is_local_dir:
        return str(Path(spec.model).expanduser().resolve())
    pinned = spec.entry.revision if spec.entry is not None else None
    if spec.revision and spec.revision != pinned:
        return f"{spec.model}@{spec.revision}"
    return spec.model


@dataclass
class ProfileFusion:
    """The ``[profiles.NAME.fusion]`` table of the chosen profile, checked."""

    reliability: dict[Modality, float] = field(default_factory=dict)
    temperatures: dict[str, float] = field(default_factory=dict)
    source: str = ""


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise EmoappError(f"{what} must be a non-negative number, not {value!r}")
    return float(value)


def profile_fusion(args: argparse.Namespace) -> ProfileFusion:
    """Reliabilities and temperatures from the chosen profile's fusion table (a profile
    written by ``--fit``), so that a fitted profile is evaluated as fitted."""
    from emoapp.registry import profiles

    if args.profile == "auto":
        return ProfileFusion()
    profile = profiles(args.profiles_file).get(args.profile)
    if profile is None or not profile.fusion:
        return ProfileFusion()
    where = f"profile {profile.name!r} ({profile.origin})"
    table = profile.fusion
    out = ProfileFusion(source=where)
    reliability = table.get("reliability", {})
    temperature = table.get("temperature", {})
    if not isinstance(reliability, dict) or not isinstance(temperature, dict):
        raise EmoappError(f"{where}: fusion reliability and temperature must be tables")
    for name, value in reliability.items():
        try:
            modality = Modality(name)
        except ValueError as error:
            raise EmoappError(f"{where}: {name!r} is not a modality") from error
        out.reliability[modality] = _number(value, f"{where}: reliability of {name}")
    for model_id, value in temperature.items():
        t = _number(value, f"{where}: temperature of {model_id}")
        if t <= 0:
            raise EmoappError(f"{where}: temperature of {model_id} must be positive")
        out.temperatures[str(model_id)] = t
    return out


def run(args: argparse.Namespace) -> int:
    from emoapp.encoders.voice import VoiceConfig
    from emoapp.evaluation.datasets import read_dataset
    from emoapp.evaluation.predict import PredictionSettings
    from emoapp.evaluation.report import summary_table, write_report
    from emoapp.evaluation.runner import (
        CACHE_NAME,
        EvaluationOptions,
        FitOptions,
        dataset_modalities,
        evaluate,
    )

    def note(message: str) -> None:
        if not args.quiet:
            print(f"emoapp: {message}", file=sys.stderr)

    if args.pair:
        if args.dataset is not None:
            raise EmoappError("give either a DATASET or --pair sets, not both")
        return run_paired(args)
    if args.dataset is None:
        raise EmoappError("give a DATASET to evaluate (or --pair MODALITY=SET two or three times)")
    if args.pair_where:
        raise EmoappError("--pair-where goes with --pair sets; use --where for a DATASET")
    if args.fit and args.report is None and args.fit_profile is None:
        raise EmoappError("--fit writes a profile: give --report DIR (or --fit-profile FILE)")
    # Everything about the dataset is checked before a model loads.
    dataset = read_dataset(
        args.dataset, args.format, args.group_by, args.limit, args.seed, args.clips, args.where
    )
    has = dataset_modalities(dataset)
    wanted = args.modalities or has
    skipped = {m: f"the dataset has no {m.value} input" for m in wanted if m not in has}
    for m, why in skipped.items():
        note(f"{m.value} not evaluated: {why}")
    usable = {m for m in wanted if m in has}
    if not usable:
        raise EmoappError(
            f"nothing to evaluate: {dataset.name} has {', '.join(m.value for m in has)} input"
        )
    defaults = VoiceConfig()
    voice = VoiceConfig(
        window_s=args.window or defaults.window_s,
        hop_s=args.hop or defaults.hop_s,
        vad=args.vad or defaults.vad,
    )
    from emoapp.encoders.face import FaceConfig

    detector = args.face_detector
    if detector == "auto":
        detector = "image" if dataset.format == "fer2013" else FaceConfig().detector
    if detector != FaceConfig().detector:
        note(f"faces: --face-detector {detector}")
    loaded = load_encoders(
        model_options(args),
        usable,
        {Modality.VOICE: voice, Modality.FACE: FaceConfig(detector=detector)},
    )
    for m, why in loaded.failures.items():
        skipped[m] = f"model failed to load: {why}"
    for m in usable:
        if m not in loaded.encoders and m not in skipped:
            skipped[m] = "switched off by the profile or model options"
    if not loaded.encoders:
        raise EmoappError(
            "no model to evaluate: " + "; ".join(f"{m.value}: {why}" for m, why in skipped.items())
        )
    fit_options = None
    if args.fit:
        default_name = "fitted" if args.profile == "auto" else f"{args.profile}-fitted"
        fit_options = FitOptions(
            fraction=args.fit_fraction,
            profile_path=args.fit_profile or args.report / PROFILE_FILE,
            profile_name=args.fit_name or default_name,
            model_refs={m: _model_ref(spec) for m, spec in loaded.choice.specs.items()},
        )
    fusion = fusion_config(model_options(args), fusion_options(args))
    from_profile = profile_fusion(args)
    if not args.weights:  # --weights wins over the profile's reliabilities
        fusion.reliability.update(from_profile.reliability)
    options = EvaluationOptions(
        settings=PredictionSettings(
            face_fps=args.face_fps,
            max_frames=max(1, args.max_frames),
            voice_window_s=voice.window_s,
            voice_hop_s=voice.hop_s,
        ),
        fusion=fusion,
        temperatures=from_profile.temperatures,
        fusion_source=from_profile.source,
        bootstrap=args.bootstrap,
        seed=args.seed,
        cache_path=None if args.report is None else args.report / CACHE_NAME,
        progress=not args.quiet and sys.stderr.isatty(),
        fit=fit_options,
    )
    note(
        f"{dataset.name}: {len(dataset.items)} items; evaluating "
        + ", ".join(f"{m.value} ({e.model_id})" for m, e in loaded.encoders.items())
    )
    result = evaluate(dataset, loaded.encoders, options, skipped)
    print(summary_table(result))
    if args.report is not None:
        readme = write_report(result, args.report)
        note(f"report: {readme}")
    elif not args.quiet:
        note("no --report DIR: nothing written (and nothing cached for a resume)")
    if result.fit is not None and result.fit.profile_path is not None and fit_options:
        note(
            f"profile written to {result.fit.profile_path}; use it with --profiles-file "
            f"{result.fit.profile_path} --profile {fit_options.profile_name}"
        )
    return 0


def run_paired(args: argparse.Namespace) -> int:
    """``emoapp evaluate --pair M=SET ...``: label-matched tuples from unimodal sets; with
    ``--fit``, fusion parameters chosen on tuples from one half of every set and scored
    on tuples from the other half."""
    from emoapp.encoders.voice import VoiceConfig
    from emoapp.evaluation.datasets import filter_items, read_dataset
    from emoapp.evaluation.paired import (
        WholeFrameLocator,
        draw_pairs,
        fit_paired,
        fitted_setup,
        is_fer2013,
        materialise_fer2013,
        read_fer2013,
        score_pairs,
        shown_precision,
        split_sets,
    )
    from emoapp.evaluation.predict import PredictionCache, PredictionSettings, Predictor
    from emoapp.evaluation.report import write_paired_report
    from emoapp.evaluation.runner import CACHE_NAME
    from emoapp.evaluation.scoring import FusionSetup

    sets: dict[Modality, Path] = {}
    for modality, path in args.pair:
        if modality in sets:
            raise EmoappError(f"--pair {modality.value} given twice")
        sets[modality] = path
    if len(sets) < 2:
        raise EmoappError("a paired evaluation needs --pair for at least two modalities")
    datasets = {}
    fer_faces = False
    for modality, path in sets.items():
        if modality is Modality.FACE and is_fer2013(Path(path).expanduser()):
            dataset = read_fer2013(path)
            fer_faces = True
        else:
            dataset = read_dataset(path, "auto", None, None, args.seed)
        filter_items(dataset, [w for m, w in args.pair_where if m is modality])
        if not dataset.items:
            raise EmoappError(f"--pair {modality.value}={path}: no items left")
        datasets[modality] = dataset
    unknown = {m for m, _ in args.pair_where} - set(sets)
    if unknown:
        raise EmoappError(
            f"--pair-where names {', '.join(m.value for m in unknown)}: no such --pair"
        )
    if args.fit:
        fit_sets, held_sets = split_sets(datasets, args.seed)
        fit_pairs = draw_pairs(fit_sets, args.pairs, args.seed)
        pairs = draw_pairs(held_sets, args.pairs, args.seed + 1)
        every = [*fit_pairs, *pairs]
    else:
        fit_pairs = []
        pairs = draw_pairs(datasets, args.pairs, args.seed)
        every = pairs
    if fer_faces:
        materialise_fer2013([p.members[Modality.FACE] for p in every])
    defaults = VoiceConfig()
    voice = VoiceConfig(
        window_s=args.window or defaults.window_s,
        hop_s=args.hop or defaults.hop_s,
        vad=args.vad or defaults.vad,
    )
    loaded = load_encoders(model_options(args), set(sets), {Modality.VOICE: voice}, strict=True)
    missing = set(sets) - set(loaded.encoders)
    if missing:
        raise EmoappError(
            "no model for " + ", ".join(m.value for m in missing) + " (switched off?)"
        )
    if fer_faces and hasattr(loaded.encoders.get(Modality.FACE), "detector"):
        # FER2013 faces are already cropped: the whole image is the face.
        loaded.encoders[Modality.FACE].detector = WholeFrameLocator()  # type: ignore[attr-defined]
    settings = PredictionSettings(
        face_fps=args.face_fps,
        max_frames=max(1, args.max_frames),
        voice_window_s=voice.window_s,
        voice_hop_s=voice.hop_s,
    )
    cache_path = None if args.report is None else args.report / CACHE_NAME
    predictions = {}
    with PredictionCache(cache_path) as cache:
        for modality, encoder in loaded.encoders.items():
            members = {p.members[modality].id: p.members[modality] for p in every}
            if not args.quiet:
                print(
                    f"emoapp: {modality.value}: {len(members)} items of {datasets[modality].name}"
                    f" ({encoder.model_id})",
                    file=sys.stderr,
                )
            run = Predictor(
                {modality: encoder}, cache, settings, not args.quiet and sys.stderr.isatty()
            ).run(list(members.values()))
            predictions[modality] = run.predictions[modality]
    config = fusion_config(model_options(args), fusion_options(args))
    # A profile's temperatures (e.g. one --pair --fit wrote) recalibrate as in the app.
    setup = FusionSetup(config, dict(config.temperature))
    models = {m: e.model_id for m, e in loaded.encoders.items()}
    command = "emoapp " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["evaluate"] else ""
    result = score_pairs(pairs, predictions, setup, args.bootstrap, args.seed)
    result.sets = {m: d.name for m, d in datasets.items()}
    given = describe_priors(model_options(args), fusion_options(args), config, models)
    if not args.fit:
        print(write_paired_report(result, models, args.report, command, given))
        return 0
    from emoapp.evaluation.paired import paired_predictions

    fit_items, fit_predictions = paired_predictions(fit_pairs, predictions)
    chosen = fit_paired(fit_items, fit_predictions, setup, args.target_precision)
    after_setup = fitted_setup(setup, chosen)
    after = score_pairs(pairs, predictions, after_setup, args.bootstrap, args.seed)
    after.sets = result.sets
    held_items, held_predictions = paired_predictions(pairs, predictions)
    before_precision = shown_precision(held_items, held_predictions, setup, chosen.uncertain_below)
    after_precision = shown_precision(
        held_items, held_predictions, after_setup, chosen.uncertain_below
    )
    before_dir = None if args.report is None else args.report / "before"
    after_dir = None if args.report is None else args.report / "after"
    print("## Held-out tuples, fusion as given (before --fit)\n")
    print(write_paired_report(result, models, before_dir, command, given))
    print("## Held-out tuples, fusion as fitted\n")
    fitted = (
        f"Fusion: as fitted on the fit tuples (below): {after_setup.config.rule} pool, "
        f"certainty ** {chosen.confidence_power:g}; priors: "
        + "; ".join(f"{m.value} {v:g}" for m, v in chosen.reliability.items())
        + "."
    )
    print(write_paired_report(after, models, after_dir, command, fitted))
    lines = [
        "## What --fit chose (on tuples from the fit halves of the sets)",
        "",
        f"{len(fit_pairs)} fit tuples; {len(pairs)} held-out tuples share no item with them.",
        "",
        "| certainty power | best fused macro-F1 (fit tuples) | reliability |",
        "|---|---|---|",
    ]
    for row in chosen.table:
        rel = ", ".join(f"{m.value} {row[m.value]:g}" for m in fit_predictions)
        lines.append(f"| {row['power']:g} | {row['macro_f1']:.3f} | {rel} |")
    lines += [
        "",
        "Temperatures fitted on the fit tuples: "
        + (", ".join(f"{k} {v:.3g}" for k, v in chosen.temperatures.items()) or "none"),
        "",
        "Chosen: reliability "
        + ", ".join(f"{m.value}={v:g}" for m, v in chosen.reliability.items())
        + f"; confidence_power={chosen.confidence_power:g}; "
        f"uncertain_below={chosen.uncertain_below:.3f} (the lowest fused confidence at "
        f"which the shown label is right >= {chosen.target_precision:.0%} of the fit tuples: "
        f"{chosen.precision_shown:.3f}, {chosen.shown_share:.0%} shown).",
        "",
        f"Held-out tuples, all modalities fused, confidence >= {chosen.uncertain_below:.3f}: "
        f"as given: right {before_precision[0]:.3f} of {before_precision[1]:.0%} shown; "
        f"as fitted: right {after_precision[0]:.3f} of {after_precision[1]:.0%} shown.",
        "",
    ]
    profile_path = args.fit_profile or (None if args.report is None else args.report / PROFILE_FILE)
    if profile_path is not None:
        from emoapp.evaluation.fitting import write_profile
        from emoapp.evaluation.paired import paired_profile_toml

        source = "; ".join(f"{m.value}: {d.name}" for m, d in fit_sets.items())
        name = args.fit_name or "paired-fitted"
        write_profile(
            profile_path,
            paired_profile_toml(name, models, chosen, setup.config.rule, source),
        )
        lines += [
            f"Profile written to {profile_path}; use it with --profiles-file {profile_path} "
            f"--profile {name}",
            "",
        ]
    text = "\n".join(lines)
    print(text)
    if args.report is not None:
        args.report.mkdir(parents=True, exist_ok=True)
        (args.report / "FIT.md").write_text(text, encoding="utf-8")
    return 0
