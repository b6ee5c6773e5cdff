"""Wiring that runs the pipeline: the headless analysis of recorded media, timeline rows."""
