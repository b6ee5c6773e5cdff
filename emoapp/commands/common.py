"""Options shared by the commands that run models (analyze, live, the window, evaluate,
bench), and the one place that turns them into encoders and a fusion config."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emoapp.core.errors import EmoappError
from emoapp.core.fusion import RULE_ALIASES, FusionConfig
from emoapp.core.messages import Modality
from emoapp.core.observation import ObservationModel
from emoapp.encoders.base import Encoder
from emoapp.encoders.factory import (
    RuntimeOptions,
    build_encoder,
    embedded_present,
    is_available_locally,
)
from emoapp.registry import ModelSpec, profiles, resolve_profile

AUTO_PROFILE = "auto"


def add_model_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("models")
    group.add_argument(
        "--profile",
        default=AUTO_PROFILE,
        help="model profile: default, cpu, embedded, baseline, or one from your profile file "
        "(default: auto = the default profile's models that are available locally, the "
        "baseline for the rest)",
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
        "--dtype", default="auto", help="auto (float16 on CUDA), float32, float16, bfloat16"
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


def fusion_config(
    args: argparse.Namespace, default_smoothing: float = 0.0, default_hysteresis: float = 0.0
) -> FusionConfig:
    """The fusion settings for a run. Reliability per modality comes, in order of
    precedence, from --weights, the profile's fitted ``[fusion]`` table, the registry's
    prior for the chosen model, and the built-in defaults; temperatures from the profile."""
    config = FusionConfig(
        rule=args.fusion_rule,
        smoothing_s=default_smoothing if args.smoothing is None else args.smoothing,
        hysteresis=(
            default_hysteresis
            if getattr(args, "hysteresis", None) is None
            else float(args.hysteresis)
        ),
    )
    fitted = _profile_fusion(args)
    set_by_hand: set[Modality] = set()
    for name, value in dict(fitted.get("reliability", {})).items():
        config.reliability[Modality(name)] = float(value)
        set_by_hand.add(Modality(name))
    config.temperature = {str(k): float(v) for k, v in dict(fitted.get("temperature", {})).items()}
    if args.weights:
        for part in args.weights.split(","):
            name, _, value = part.partition("=")
            try:
                modality = Modality(name.strip())
                config.reliability[modality] = float(value)
            except ValueError as exc:
                raise EmoappError(
                    f"--weights: {part!r} is not MODALITY=NUMBER (modality: face, voice, text)"
                ) from exc
            set_by_hand.add(modality)
    for modality, spec in choose_models(args).specs.items():
        if spec is not None and spec.reliability is not None and modality not in set_by_hand:
            config.model_reliability[spec.model] = spec.reliability
        if spec is not None and spec.entry is not None and spec.entry.observation:
            config.observation[spec.model] = ObservationModel(
                covers=spec.entry.observation, source="registry"
            )
    for model_id, rows in dict(fitted.get("observation", {})).items():
        try:
            config.observation[str(model_id)] = ObservationModel(
                matrix=np.asarray(rows, dtype=float), source="fitted"
            )
        except ValueError as exc:
            raise EmoappError(f"the profile's observation model for {model_id}: {exc}") from exc
    return config


def _profile_fusion(args: argparse.Namespace) -> dict:
    name = "default" if args.profile == AUTO_PROFILE else args.profile
    available = profiles(getattr(args, "profiles_file", None))
    return dict(available[name].fusion) if name in available else {}


@dataclass
class ModelChoice:
    """What each modality will run, and notes for the person (fallbacks, missing models)."""

    specs: dict[Modality, ModelSpec | None]
    notes_by_modality: dict[Modality, str] = field(default_factory=dict)

    @property
    def notes(self) -> list[str]:
        return list(self.notes_by_modality.values())


def choose_models(args: argparse.Namespace) -> ModelChoice:
    """Resolve --profile and the per-modality options into model specs."""
    overrides = {m: getattr(args, f"{m.value}_model", None) for m in Modality}
    options = runtime_options(args)
    if args.profile != AUTO_PROFILE:
        return ModelChoice(resolve_profile(args.profile, overrides, args.profiles_file))
    wanted = resolve_profile("default", overrides, args.profiles_file)
    fallback = resolve_profile("embedded", {}, args.profiles_file)
    rules = resolve_profile("baseline", {}, args.profiles_file)
    for modality, spec in fallback.items():
        # An embedded model whose artefact is missing (a broken install) falls back to
        # the rule baseline rather than failing.
        if spec is not None and spec.backend == "embedded" and not embedded_present(spec):
            fallback[modality] = rules[modality]
    choice = ModelChoice({})
    for modality, spec in wanted.items():
        if spec is None:
            choice.specs[modality] = None
        elif (
            overrides[modality] is not None
            or options.allow_download
            or is_available_locally(spec, RuntimeOptions(models_dir=options.models_dir))
        ):
            choice.specs[modality] = spec
        else:
            baseline = fallback[modality]
            choice.specs[modality] = baseline
            kind = baseline.backend if baseline else "fallback"
            choice.notes_by_modality[modality] = (
                f"{modality.value}: {spec.model} is not downloaded; using the built-in "
                f"{kind} model ({baseline.model if baseline else 'off'}). "
                "Get the full models with `emoapp models pull`."
            )
    return choice


def runtime_options(args: argparse.Namespace) -> RuntimeOptions:

    return RuntimeOptions(
        device=args.device,
        dtype=args.dtype,
        allow_download=args.download,
        models_dir=args.models_dir,
    )


@dataclass
class LoadedEncoders:
    encoders: dict[Modality, Encoder]
    failures: dict[Modality, str]
    choice: ModelChoice


def load_encoders(
    args: argparse.Namespace,
    modalities: set[Modality] | None = None,
    modality_configs: dict[Modality, object] | None = None,
    strict: bool = False,
) -> LoadedEncoders:
    """Build and load an encoder per wanted modality. A modality whose model fails to load
    is reported in ``failures`` (and on stderr) while the others go on; with ``strict`` the
    first failure raises instead."""
    choice = choose_models(args)
    for modality, note in choice.notes_by_modality.items():
        if modalities is None or modality in modalities:
            print(f"emoapp: {note}", file=sys.stderr)
    options = runtime_options(args)
    encoders: dict[Modality, Encoder] = {}
    failures: dict[Modality, str] = {}
    for modality, spec in choice.specs.items():
        if spec is None or (modalities is not None and modality not in modalities):
            continue
        try:
            if options.allow_download and not spec.bundled and not spec.is_local_dir:
                # Downloads go through the model store: task check, checksums, manifest.
                from emoapp.modelstore import pull

                pull(spec, options.models_dir, progress=sys.stderr.isatty())
            encoder = build_encoder(
                spec,
                dataclasses.replace(options, allow_download=False),
                (modality_configs or {}).get(modality),
            )
            encoder.load()
        except EmoappError as exc:
            if strict:
                raise
            failures[modality] = str(exc)
            print(f"emoapp: {modality.value} disabled: {exc}", file=sys.stderr)
            continue
        encoders[modality] = encoder
    return LoadedEncoders(encoders, failures, choice)
