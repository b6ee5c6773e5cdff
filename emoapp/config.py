"""The typed configuration of a run, and the one place that turns it into a pipeline.

The command line (``emoapp/commands``) and the window (``emoapp/ui``) sit side by side
above this module: each builds these dataclasses (the commands from their argparse
options, in :mod:`emoapp.commands.common`; the window from them plus its remembered
settings) and hands them to the functions here, which choose the models, load the
encoders, set up fusion and build the sources. Nothing here knows about argparse or Qt,
and nothing below (core, capture, encoders, privacy, runtime) imports this module.

- :class:`ModelOptions`: which models run, on what device, from where;
- :class:`FusionOptions`: how the modalities are combined;
- :class:`SourceOptions`: which camera, microphone and text feed (devices or files);
- :class:`ConsentOptions`: consent given for this run only (``--allow-*``);
- :class:`LiveOptions`: threads per worker and how often faces are detected, live;
- :class:`WindowConfig`: all of the above plus the window's own options.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from emoapp.core.errors import EmoappError
from emoapp.core.fusion import CERTAINTIES, RULE_ALIASES, FusionConfig
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

if TYPE_CHECKING:
    from emoapp.capture.base import ConsentCheck, Source

AUTO_PROFILE = "auto"


# --- the options ------------------------------------------------------------------------


@dataclass(frozen=True)
class ModelOptions:
    """Which model each modality runs, and how models load.

    ``profile``: a profile name, or ``auto`` (the default profile's models that are
    available locally, the built-in embedded models for the rest); None means "not given"
    (the window then uses the profile remembered from last time). ``models``: per-modality overrides
    (registry id, hub id[@revision], local folder, or ``none`` to switch it off)."""

    profile: str | None = AUTO_PROFILE
    profiles_file: Path | None = None
    models: Mapping[Modality, str | None] = field(default_factory=dict)
    device: str = "auto"
    dtype: str = "auto"
    models_dir: str | None = None
    download: bool = False

    def with_profile(self, profile: str) -> ModelOptions:
        return dataclasses.replace(self, profile=profile)

    def only(self, modalities: Iterable[Modality]) -> ModelOptions:
        """These options with every modality outside ``modalities`` switched off."""
        keep = set(modalities)
        models = {m: (self.models.get(m) if m in keep else "none") for m in Modality}
        return dataclasses.replace(self, models=models)

    def override(self, modality: Modality) -> str | None:
        return self.models.get(modality)


@dataclass(frozen=True)
class FusionOptions:
    """How the modalities are fused. ``rule`` (``weighted``/``linear`` or
    ``product``/``loglinear``) None means "not given" (the window then uses the rule
    remembered from last time); ``weights`` are reliability priors set by hand (None:
    none given); ``smoothing_s`` and ``hysteresis`` None: the caller's default."""

    rule: str | None = "weighted"
    weights: Mapping[Modality, float] | None = None
    smoothing_s: float | None = None
    hysteresis: float | None = None
    min_hold_s: float | None = None
    """The shown state stays at least this long (None: the caller's default)."""
    certainty: str | None = None
    """How a channel's certainty on an input is measured (``entropy`` or ``confidence``;
    None: ``entropy``)."""
    uncertain_below: float | None = None
    """Flag the fused estimate uncertain below this probability (None: the profile's
    ``uncertain_below``, else :data:`emoapp.core.fusion.UNCERTAIN_BELOW`)."""


@dataclass(frozen=True)
class SourceOptions:
    """Which camera, microphone and text feed to use, as devices or as files replayed
    in their place (see :func:`build_sources`)."""

    camera: str | None = None
    mic: str | None = None
    text_file: str | None = None
    text_interval: float | None = 3.0
    camera_size: str | None = None
    camera_fps: float | None = None
    replay_speed: float | None = 1.0
    loop: bool = False


@dataclass(frozen=True)
class ConsentOptions:
    """Consent given for this run only (not saved): ``--allow-camera``, ``--allow-mic``."""

    allow_camera: bool = False
    allow_mic: bool = False
    allow_camera_for: float | None = None
    """``--allow-camera-for``: seconds from the start (the consent then expires)."""
    allow_mic_for: float | None = None
    """``--allow-mic-for``: seconds from the start (the consent then expires)."""

    @property
    def allowed(self) -> list[Modality]:
        flags = ((Modality.FACE, self.allow_camera), (Modality.VOICE, self.allow_mic))
        return [modality for modality, given in flags if given]

    @property
    def limits(self) -> dict[Modality, float]:
        """The modalities allowed for a time only, and for how many seconds."""
        given = ((Modality.FACE, self.allow_camera_for), (Modality.VOICE, self.allow_mic_for))
        return {modality: seconds for modality, seconds in given if seconds is not None}


def check_reclassify_after(seconds: float) -> None:
    """``--face-reclassify-after``: 0 or more seconds, finite (raises EmoappError)."""
    if not (seconds >= 0 and seconds < float("inf")):
        raise EmoappError(
            f"--face-reclassify-after {seconds:g}: give 0 or more seconds (0: classify every frame)"
        )


@dataclass(frozen=True)
class LiveOptions:
    """How a live session uses this computer: ``threads`` per model worker (None:
    ``EMOAPP_THREADS`` or chosen from the cores, :mod:`emoapp.live.threads`), and
    ``face_detect_every``: faces are detected on one frame in this many and tracked in
    between (1: detected on every frame); ``face_reclassify_after``: a tracked face that
    neither moved nor changed keeps its classification for up to this many seconds (0:
    classified on every frame)."""

    threads: int | None = None
    face_detect_every: int = 5
    face_reclassify_after: float = 1.0

    def __post_init__(self) -> None:
        if self.threads is not None and self.threads < 1:
            raise EmoappError(f"--threads {self.threads}: give 1 or more")
        if self.face_detect_every < 1:
            raise EmoappError(f"--face-detect-every {self.face_detect_every}: give 1 or more")
        check_reclassify_after(self.face_reclassify_after)


@dataclass(frozen=True)
class WindowConfig:
    """Everything the window is started with."""

    models: ModelOptions = field(default_factory=lambda: ModelOptions(profile=None))
    fusion: FusionOptions = field(default_factory=lambda: FusionOptions(rule=None))
    sources: SourceOptions = field(default_factory=SourceOptions)
    consent: ConsentOptions = field(default_factory=ConsentOptions)
    live: LiveOptions = field(default_factory=LiveOptions)
    settings_file: Path | None = None
    quit_after: float | None = None


# --- models -----------------------------------------------------------------------------


@dataclass
class ModelChoice:
    """What each modality will run, and notes for the person (fallbacks, missing models)."""

    specs: dict[Modality, ModelSpec | None]
    notes_by_modality: dict[Modality, str] = field(default_factory=dict)

    @property
    def notes(self) -> list[str]:
        return list(self.notes_by_modality.values())


def runtime_options(options: ModelOptions) -> RuntimeOptions:
    return RuntimeOptions(
        device=options.device,
        dtype=options.dtype,
        allow_download=options.download,
        models_dir=options.models_dir,
    )


def choose_models(options: ModelOptions) -> ModelChoice:
    """Resolve the profile and the per-modality overrides into model specs."""
    overrides = {m: options.override(m) for m in Modality}
    runtime = runtime_options(options)
    profile = AUTO_PROFILE if options.profile is None else options.profile
    if profile != AUTO_PROFILE:
        return ModelChoice(resolve_profile(profile, overrides, options.profiles_file))
    wanted = resolve_profile("default", overrides, options.profiles_file)
    fallback = resolve_profile("embedded", {}, options.profiles_file)
    rules = resolve_profile("baseline", {}, options.profiles_file)
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
            or runtime.allow_download
            or is_available_locally(spec, RuntimeOptions(models_dir=runtime.models_dir))
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


@dataclass
class LoadedEncoders:
    encoders: dict[Modality, Encoder]
    failures: dict[Modality, str]
    choice: ModelChoice


def load_encoder(spec: ModelSpec, options: ModelOptions, modality_config: object = None) -> Encoder:
    """Build and load the encoder of one model spec. With ``download`` a model that is
    not on this computer goes through the model store (task check, checksums, manifest)."""
    runtime = runtime_options(options)
    if runtime.allow_download and not spec.bundled and not spec.is_local_dir:
        from emoapp.modelstore import pull

        pull(spec, runtime.models_dir, progress=sys.stderr.isatty())
    encoder = build_encoder(
        spec, dataclasses.replace(runtime, allow_download=False), modality_config
    )
    encoder.load()
    return encoder


def load_encoders(
    options: ModelOptions,
    modalities: set[Modality] | None = None,
    modality_configs: dict[Modality, object] | None = None,
    strict: bool = False,
) -> LoadedEncoders:
    """Build and load an encoder per wanted modality. A modality whose model fails to load
    is reported in ``failures`` (and on stderr) while the others go on; with ``strict`` the
    first failure raises instead."""
    choice = choose_models(options)
    for modality, note in choice.notes_by_modality.items():
        if modalities is None or modality in modalities:
            print(f"emoapp: {note}", file=sys.stderr)
    encoders: dict[Modality, Encoder] = {}
    failures: dict[Modality, str] = {}
    for modality, spec in choice.specs.items():
        if spec is None or (modalities is not None and modality not in modalities):
            continue
        try:
            encoder = load_encoder(spec, options, (modality_configs or {}).get(modality))
        except EmoappError as exc:
            if strict:
                raise
            failures[modality] = str(exc)
            print(f"emoapp: {modality.value} disabled: {exc}", file=sys.stderr)
            continue
        encoders[modality] = encoder
    return LoadedEncoders(encoders, failures, choice)


# --- fusion -----------------------------------------------------------------------------


def load_batch_encoders(
    options: ModelOptions, configs: dict[Modality, object]
) -> dict[Modality, Encoder]:
    """Load every configured model (in a worker: once, for all its items)."""
    return load_encoders(options, None, configs, strict=True).encoders


def parse_weights(text: str) -> dict[Modality, float]:
    """``face=1,voice=0.5`` -> {face: 1.0, voice: 0.5}; EmoappError for anything else."""
    weights: dict[Modality, float] = {}
    for part in text.split(","):
        name, _, value = part.partition("=")
        try:
            weights[Modality(name.strip())] = float(value)
        except ValueError as exc:
            raise EmoappError(
                f"--weights: {part!r} is not MODALITY=NUMBER (modality: face, voice, text)"
            ) from exc
    return weights


def fusion_config(
    models: ModelOptions,
    fusion: FusionOptions,
    default_smoothing: float = 0.0,
    default_hysteresis: float = 0.0,
    default_min_hold: float = 0.0,
) -> FusionConfig:
    """The fusion settings for a run. Reliability per modality comes, in order of
    precedence, from the hand-set weights, the profile's fitted ``[fusion]`` table, the
    registry's prior for the chosen model, and the built-in defaults; temperatures from
    the profile; observation models from the registry, then the profile's fitted ones."""
    rule = fusion.rule or "weighted"
    config = FusionConfig(
        rule=RULE_ALIASES.get(rule, rule),  # type: ignore[arg-type]  # checked by FusionConfig
        smoothing_s=default_smoothing if fusion.smoothing_s is None else fusion.smoothing_s,
        hysteresis=(default_hysteresis if fusion.hysteresis is None else float(fusion.hysteresis)),
        min_hold_s=default_min_hold if fusion.min_hold_s is None else float(fusion.min_hold_s),
    )
    fitted = _profile_fusion(models)
    set_by_hand: set[Modality] = set()
    for name, value in dict(fitted.get("reliability", {})).items():
        config.reliability[Modality(name)] = float(value)
        set_by_hand.add(Modality(name))
    config.temperature = {str(k): float(v) for k, v in dict(fitted.get("temperature", {})).items()}
    try:
        if "confidence_power" in fitted:
            config.confidence_power = float(fitted["confidence_power"])
        if "uncertain_below" in fitted:
            config.uncertain_below = float(fitted["uncertain_below"])
    except (TypeError, ValueError) as exc:
        raise EmoappError(f"the profile's fusion table: {exc}") from exc
    if fusion.uncertain_below is not None:
        config.uncertain_below = float(fusion.uncertain_below)
    if fusion.certainty is not None:
        if fusion.certainty not in CERTAINTIES:
            raise EmoappError(f"--certainty: choose one of {', '.join(CERTAINTIES)}")
        config.certainty = fusion.certainty  # checked above
    if not (config.confidence_power >= 0 and 0.0 <= config.uncertain_below <= 1.0):
        raise EmoappError(
            "fusion: confidence_power must be >= 0 and uncertain_below between 0 and 1"
        )
    for modality, weight in (fusion.weights or {}).items():
        config.reliability[modality] = weight
        set_by_hand.add(modality)
    for modality, spec in choose_models(models).specs.items():
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


def describe_priors(
    models: ModelOptions,
    fusion: FusionOptions,
    config: FusionConfig,
    model_ids: Mapping[Modality, str],
) -> str:
    """In words, the reliability prior each modality's model fuses with and where it came
    from (the precedence of :func:`fusion_config`), e.g. ``voice 0.3 (registry prior of
    embedded/voice-multicorpus, whose recipe built /tmp/voice-1-14)``; with the certainty
    power and the pool, for reports that must say what they measured."""
    fitted = dict(_profile_fusion(models).get("reliability", {}))
    specs = choose_models(models).specs
    parts = []
    for modality, model_id in model_ids.items():
        spec = specs.get(modality)
        if model_id in config.model_reliability:
            value = config.model_reliability[model_id]
            if spec is not None and spec.recipe is not None:
                where = f"registry prior of {spec.recipe}, whose recipe built this folder"
            else:
                where = "registry"
        else:
            value = config.reliability[modality]
            if modality in (fusion.weights or {}):
                where = "--weights"
            elif modality.value in fitted:
                where = "the profile's [fusion] table"
            else:
                where = "built-in default: the registry does not know this model"
        parts.append(f"{modality.value} {value:g} ({where})")
    extra = ""
    if config.temperature:
        extra = "; temperatures on top of each model's own: " + ", ".join(
            f"{k} {v:g}" for k, v in sorted(config.temperature.items())
        )
    return (
        f"Fusion: {config.rule} pool, weight = prior x certainty ({config.certainty}) ** "
        f"{config.confidence_power:g}; priors: " + "; ".join(parts) + extra + "."
    )


def _profile_fusion(options: ModelOptions) -> dict:
    name = "default" if options.profile in (None, AUTO_PROFILE) else options.profile
    available = profiles(options.profiles_file)
    return dict(available[name].fusion) if name in available else {}


# --- sources ----------------------------------------------------------------------------

_MEDIA_SUFFIXES = {
    ".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a", ".aac", ".webm", ".mp4", ".mkv",
    ".mov", ".avi", ".ts", ".wma",
}  # fmt: skip


def _camera_size(value: str | None) -> tuple[int | None, int | None]:
    if not value:
        return None, None
    width, sep, height = value.lower().partition("x")
    try:
        w, h = int(width), int(height)
    except ValueError:
        w = h = 0
    if not sep or w <= 0 or h <= 0:
        raise EmoappError(f"--camera-size {value!r}: give WIDTHxHEIGHT, e.g. 1280x720")
    return w, h


def _device_index(value: str) -> int | None:
    """An int when ``value`` is a device index (digits only)."""
    text = value.strip()
    return int(text) if text.isdigit() else None


def _existing_file(option: str, value: str) -> Path:
    path = Path(value).expanduser()
    if not path.exists():
        raise EmoappError(f"{option} {value}: no such file (nor a device index)")
    if path.is_dir():
        raise EmoappError(f"{option} {value}: is a folder, not a file")
    return path


def _looks_like_file(value: str) -> bool:
    path = Path(value).expanduser()
    return path.exists() or path.suffix.lower() in _MEDIA_SUFFIXES or "/" in value


def build_sources(
    options: SourceOptions, consent: ConsentCheck | None = None
) -> dict[Modality, Source]:
    """The sources the options ask for (unopened). Raises EmoappError for bad options
    and for files that do not exist; a device that is absent fails when opened.
    ``consent`` (the run's consent gate) goes with each camera and microphone, which ask
    it when they open: without it they refuse to open."""
    from emoapp.capture.camera import CameraSource
    from emoapp.capture.microphone import MicrophoneSource
    from emoapp.capture.replay import AudioReplaySource, TextReplaySource, VideoReplaySource

    speed = 1.0 if options.replay_speed is None else options.replay_speed
    if speed <= 0:
        raise EmoappError(f"--replay-speed {speed:g}: must be positive")
    loop = bool(options.loop)
    sources: dict[Modality, Source] = {}

    camera = options.camera
    if camera is not None and camera != "":
        index = _device_index(camera)
        if index is not None:
            width, height = _camera_size(options.camera_size)
            fps = options.camera_fps
            if fps is not None and fps <= 0:
                raise EmoappError(f"--camera-fps {fps:g}: must be positive")
            sources[Modality.FACE] = CameraSource(index, width, height, fps, consent=consent)
        else:
            path = _existing_file("--camera", camera)
            sources[Modality.FACE] = VideoReplaySource(path, speed=speed, loop=loop)

    mic = options.mic
    if mic is not None and mic != "":
        index = _device_index(mic)
        if index is not None:
            sources[Modality.VOICE] = MicrophoneSource(index, consent=consent)
        elif mic.strip().lower() == "default":
            sources[Modality.VOICE] = MicrophoneSource(None, consent=consent)
        elif _looks_like_file(mic):
            path = _existing_file("--mic", mic)
            sources[Modality.VOICE] = AudioReplaySource(path, speed=speed, loop=loop)
        else:
            sources[Modality.VOICE] = MicrophoneSource(mic, consent=consent)

    text_file = options.text_file
    if text_file:
        interval = options.text_interval
        if interval is None or interval <= 0:
            raise EmoappError("--text-interval must be positive")
        path = _existing_file("--text-file", text_file)
        sources[Modality.TEXT] = TextReplaySource(
            path, interval_s=interval, first_s=min(1.0, interval), speed=speed, loop=loop
        )
    return sources
