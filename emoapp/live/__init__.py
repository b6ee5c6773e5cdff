"""The live session: what runs while a camera, a microphone or the keyboard feeds emoapp.

One worker per modality pulls from a latest-wins slot (:mod:`.slots`, :mod:`.workers`),
the supervisor restarts and reports (:mod:`.supervisor`, :mod:`.runs`), the fusion loop
turns predictions into estimates (:mod:`.fusion_loop`), and speech recognition and
explanations run beside them (:mod:`.transcriber`, :mod:`.explaining`), all under one
thread plan (:mod:`.threads`). :mod:`.session` wires them; :mod:`.headless` is
``emoapp live --no-gui``.
"""
