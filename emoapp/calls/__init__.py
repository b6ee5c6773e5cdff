"""Calls: a recorded conversation analysed per speaker, one per channel or diarized
from one channel, per step or per utterance (:mod:`.analysis`)."""
