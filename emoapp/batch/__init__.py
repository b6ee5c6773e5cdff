"""Batch: many recordings through the recorded-media pipeline (:mod:`.jobs`: discovery,
the journal, the index), in a local process pool or on Ray (:mod:`.engines`), resumable."""
