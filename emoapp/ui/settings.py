"""What the window remembers between runs, kept with ``QSettings`` (organization
"emoapp", application "emoapp"): the chosen profile, camera and microphone, fusion
settings, privacy preview mode, which modalities were on, and the window layout.

Only choices are stored: never a frame, a sound, typed text or a result.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import QByteArray, QSettings

from emoapp.core.fusion import (
    DISPLAY_HYSTERESIS,
    DISPLAY_MIN_HOLD_S,
    DISPLAY_SMOOTHING_S,
    RULES,
    FusionConfig,
)
from emoapp.core.messages import Modality

ORGANIZATION = "emoapp"
APPLICATION = "emoapp"


def open_settings(path: Path | None = None) -> QSettings:
    """The user's settings (native location), or an INI file at ``path``."""
    if path is not None:
        return QSettings(str(path), QSettings.Format.IniFormat)
    return QSettings(ORGANIZATION, APPLICATION)


@dataclass
class FusionSettings:
    """The fusion choices the window offers, layered over the profile's own fusion
    settings (its fitted reliabilities and temperatures, and the registry's per-model
    priors). A modality's weight is "auto" (absent from ``weights``) until the person
    sets it; a weight set by hand replaces every prior for that modality."""

    rule: str = "weighted"
    weights: dict[Modality, float] = field(default_factory=dict)
    smoothing_s: float = DISPLAY_SMOOTHING_S
    hysteresis: float = DISPLAY_HYSTERESIS
    min_hold_s: float = DISPLAY_MIN_HOLD_S  # not remembered: the measured default
    disagreement_threshold: float = FusionConfig().disagreement_threshold

    def apply_to(
        self, base: FusionConfig, models: dict[Modality, str] | None = None
    ) -> FusionConfig:
        """``base`` (the profile's fusion config) with these choices on top; ``models``
        names each modality's model, whose registry prior a hand-set weight replaces."""
        config = dataclasses.replace(
            base,
            rule=self.rule,  # type: ignore[arg-type]  # checked by FusionConfig
            smoothing_s=self.smoothing_s,
            hysteresis=self.hysteresis,
            min_hold_s=self.min_hold_s,
            disagreement_threshold=self.disagreement_threshold,
            reliability=dict(base.reliability),
            model_reliability=dict(base.model_reliability),
            temperature=dict(base.temperature),
        )
        for m, weight in self.weights.items():
            config.reliability[m] = weight
            model = (models or {}).get(m)
            if model is not None:
                config.model_reliability.pop(model, None)
        return config


@dataclass
class UiSettings:
    """Everything the window persists. ``camera``/``microphone`` are source keys
    (see :mod:`emoapp.ui.controller`), None for "not chosen"."""

    profile: str = "auto"
    camera: str | None = None
    microphone: str | None = None
    fusion: FusionSettings = field(default_factory=FusionSettings)
    preview_mode: str = "picture"
    enabled: set[Modality] = field(default_factory=lambda: {Modality.TEXT})
    """Modalities on at the last close. Only text is switched on again at start: a
    camera or microphone opens only when the person (or the command line) asks."""
    analyse_while_typing: bool = False
    timeline_source: str = "fused"


def _float(value: object, default: float) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return default


def _str_or_none(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


def _bool(value: object, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return value.lower() in ("1", "true", "yes")
    return default


def load_settings(store: QSettings) -> UiSettings:
    """Read the settings; a missing or malformed value falls back to its default."""
    s = UiSettings()
    s.profile = str(store.value("models/profile", s.profile) or s.profile)
    s.camera = _str_or_none(store.value("sources/camera", None))
    s.microphone = _str_or_none(store.value("sources/microphone", None))
    rule = str(store.value("fusion/rule", s.fusion.rule))
    s.fusion.rule = rule if rule in RULES else s.fusion.rule
    for m in Modality:
        weight = _float(store.value(f"fusion/weight_{m.value}"), -1.0)
        if weight >= 0:  # absent, "auto" or malformed: automatic
            s.fusion.weights[m] = weight
    s.fusion.smoothing_s = max(0.0, _float(store.value("fusion/smoothing_s"), DISPLAY_SMOOTHING_S))
    s.fusion.hysteresis = min(
        0.9, max(0.0, _float(store.value("fusion/hysteresis"), DISPLAY_HYSTERESIS))
    )
    s.fusion.disagreement_threshold = min(
        1.0,
        max(
            0.0,
            _float(store.value("fusion/disagreement_threshold"), s.fusion.disagreement_threshold),
        ),
    )
    mode = str(store.value("privacy/preview_mode", s.preview_mode))
    s.preview_mode = mode if mode in ("picture", "blur", "scores") else s.preview_mode
    if store.contains("session/enabled"):
        enabled = store.value("session/enabled", "")
        names = enabled if isinstance(enabled, list) else str(enabled or "").split(",")
        s.enabled = {Modality(n) for n in names if n in {m.value for m in Modality}}
    s.analyse_while_typing = _bool(store.value("text/analyse_while_typing"), False)
    source = str(store.value("timeline/source", "fused"))
    s.timeline_source = source if source in ("fused", *(m.value for m in Modality)) else "fused"
    return s


def save_settings(store: QSettings, s: UiSettings) -> None:
    store.setValue("models/profile", s.profile)
    store.setValue("sources/camera", s.camera or "")
    store.setValue("sources/microphone", s.microphone or "")
    store.setValue("fusion/rule", s.fusion.rule)
    for m in Modality:
        weight = s.fusion.weights.get(m)
        store.setValue(f"fusion/weight_{m.value}", "auto" if weight is None else float(weight))
    store.setValue("fusion/smoothing_s", float(s.fusion.smoothing_s))
    store.setValue("fusion/hysteresis", float(s.fusion.hysteresis))
    store.setValue("fusion/disagreement_threshold", float(s.fusion.disagreement_threshold))
    store.setValue("privacy/preview_mode", s.preview_mode)
    store.setValue("session/enabled", ",".join(sorted(m.value for m in s.enabled)))
    store.setValue("text/analyse_while_typing", s.analyse_while_typing)
    store.setValue("timeline/source", s.timeline_source)


def save_layout(store: QSettings, geometry: QByteArray, state: QByteArray) -> None:
    store.setValue("window/geometry", geometry)
    store.setValue("window/state", state)


def load_layout(store: QSettings) -> tuple[QByteArray | None, QByteArray | None]:
    geometry = store.value("window/geometry")
    state = store.value("window/state")
    return (
        geometry if isinstance(geometry, QByteArray) else None,
        state if isinstance(state, QByteArray) else None,
    )
