"""emoapp: live multimodal emotion recognition (face, voice, text) with late fusion."""

__version__ = "0.1.0"
