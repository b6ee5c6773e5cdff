"""The core: messages, the canonical taxonomy and label maps, fusion, the clock.

Imports neither Qt nor torch nor transformers (a test enforces it)."""
