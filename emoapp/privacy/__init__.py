"""Privacy: consent before capture, a local audit log and a guarded export.

- :mod:`emoapp.privacy.consent`: the versioned consent text, the stored grants, the gate
  every camera and microphone opens through, and the ``--allow-camera`` /
  ``--allow-mic`` options;
- :mod:`emoapp.privacy.audit`: the append-only audit log (consent changes, exports);
- :mod:`emoapp.privacy.export`: timeline export, scores only unless asked, atomic;
- :mod:`emoapp.privacy.memory`: the timeline rows the window keeps (in memory only) for
  an export;
- :mod:`emoapp.privacy.modelcards`: what each loaded model was trained on, its licence,
  limits and label mapping;
- :mod:`emoapp.privacy.paths`: every place emoapp may write.

The tools that prove a run keeps and sends nothing (a network guard, a write recorder,
a guarded whole run) are test tooling and live in :mod:`emoapp.testing`.

Nothing here imports Qt, torch or transformers.
"""
