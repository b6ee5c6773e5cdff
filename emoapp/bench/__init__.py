"""``emoapp bench``: what the pipeline costs on this machine, measured in one run.

- :mod:`emoapp.bench.common`: the run's settings, timing helpers, the machine record, the
  random-weight benchmark models (built once into a cache folder) and the media they run on;
- :mod:`emoapp.bench.encoders`: encoder cost per modality, device and dtype, the pipeline's
  overhead over the bare model forward (and where it goes), and scaling with faces per
  frame, audio window length and text length;
- :mod:`emoapp.bench.live`: a sustained live session on replayed media (estimate age,
  drops, CPU use, resident memory);
- :mod:`emoapp.bench.startup`: ``emoapp --help`` time (and that it imports no torch) and
  time to the first fused estimate;
- :mod:`emoapp.bench.peers`: the same video through a peer package (``fer``), where one
  can run;
- :mod:`emoapp.bench.report`: the whole run, the printed table and the JSON file.

torch and transformers are imported inside functions only, so ``emoapp --help`` stays fast.
"""
