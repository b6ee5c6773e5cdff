"""Recorded media: one video or audio file (and its transcript) through the same encoders
and fusion as the live session, into a timeline file (:mod:`.analyze`, :mod:`.timeline`)
whose header record (:mod:`.runheader`) lets a run resume safely."""
