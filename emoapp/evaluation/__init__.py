"""The evaluation harness behind ``emoapp evaluate``: dataset readers
(:mod:`~emoapp.evaluation.datasets`), encoders run over items with a resumable cache
(:mod:`~emoapp.evaluation.predict`), metrics (:mod:`~emoapp.evaluation.metrics`),
systems and fusion (:mod:`~emoapp.evaluation.scoring`), calibration and fitted fusion
weights (:mod:`~emoapp.evaluation.calibration`, :mod:`~emoapp.evaluation.fitting`), and
the report (:mod:`~emoapp.evaluation.report`, :mod:`~emoapp.evaluation.plots`);
:mod:`~emoapp.evaluation.runner` ties them together.

Nothing heavy is imported here: torch, transformers and cv2 load only when a model runs
or a figure is drawn.
"""
