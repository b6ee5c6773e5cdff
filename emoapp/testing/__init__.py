"""Test tooling, not used by the app itself.

- :mod:`emoapp.bench.tinymodels`: tiny real transformers models built offline (tests
  and benchmarks);
- :mod:`emoapp.testing.netguard`: fails a run on any network use;
- :mod:`emoapp.testing.filewatch`: records the files a run writes, in isolated folders;
- :mod:`emoapp.testing.guardedrun`: one whole ``emoapp`` command under both, in a fresh
  process (``python -m emoapp.testing.guardedrun``).
"""
