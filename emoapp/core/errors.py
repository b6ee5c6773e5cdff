"""Domain exceptions. Each carries a message meant for a person: one line that names the
problem and, where there is one, what to do about it. The CLI prints ``str(error)``; the
UI shows it next to the part that failed."""

from __future__ import annotations

from typing import Any


class EmoappError(Exception):
    """Base class of every error emoapp reports to a person."""


class UnmappedLabelsError(EmoappError):
    """A model's labels cannot be mapped onto the canonical set."""

    def __init__(self, model_id: str, unmapped: list[str]) -> None:
        self.model_id = model_id
        self.unmapped = list(unmapped)
        super().__init__(
            f"model {model_id!r} has labels with no canonical mapping: {', '.join(unmapped)}; "
            "add them to the model's label overrides (label -> one of neutral, happy, sad, "
            "angry, fearful, disgusted, surprised, or 'ignore')"
        )


class ModelLoadError(EmoappError):
    """A model could not be found, downloaded, or loaded, or is of the wrong task."""


class MediaError(EmoappError):
    """A media or transcript file is missing, empty, truncated, or not decodable."""


class SourceError(EmoappError):
    """A capture source (camera, microphone, replay file) failed."""


class ConsentRequiredError(EmoappError):
    """A camera or microphone was about to open (or be probed) without consent.

    Raised by the device sources themselves (:mod:`emoapp.capture`) and by the consent
    gate (:mod:`emoapp.privacy.consent`); ``modality`` is the one refused."""

    def __init__(self, modality: Any, message: str) -> None:
        self.modality = modality
        super().__init__(message)


class MissingDependencyError(EmoappError):
    """An optional package is not installed."""

    def __init__(self, package: str, purpose: str, extra: str | None = None) -> None:
        how = f"pip install 'emoapp[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{purpose} needs the '{package}' package: {how}")
