"""Tests of the model registry, profiles, the model store and ``emoapp models``."""
