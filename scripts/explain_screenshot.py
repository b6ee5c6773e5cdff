"""Render the README screenshot of the window with its explanation views on: the face
overlay, the highlighted words and the voice band, over the replayed sample video.

    xvfb-run -a -s "-screen 0 1400x900x24" python scripts/explain_screenshot.py \
        --out docs/screenshot-explain.png

The window runs on the built-in (embedded) models with the bundled sample video as the
camera and its speech as the microphone; settings go to a temporary folder.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SENTENCE = "I am so glad you came, this is wonderful"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "screenshot-explain.png")
    parser.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args()

    from emoapp.cli import build_parser
    from emoapp.commands.gui import window_config
    from emoapp.core.messages import Modality
    from emoapp.ui.app import build_window, create_application

    app = create_application()
    samples = REPO / "resources" / "samples"
    with tempfile.TemporaryDirectory() as folder:
        argv = [
            "--face-model", "embedded/face-minixception",
            "--voice-model", "embedded/voice-multicorpus",
            "--text-model", "embedded/text-conversation",
            "--camera", str(samples / "face_speech.mp4"),
            "--mic", str(samples / "speech.wav"),
            "--settings-file", str(Path(folder) / "settings.ini"),
            "--loop",
        ]  # fmt: skip
        built = build_window(window_config(build_parser().parse_args(argv)))
        window = built.window
        window.resize(1360, 860)
        window.show()
        window.start({Modality.FACE, Modality.VOICE, Modality.TEXT})
        for panel in (window.camera_panel, window.voice_panel, window.text_panel):
            panel.explain_box.setChecked(True)

        def wait(condition, what: str, timeout: float = args.timeout) -> bool:
            deadline = time.monotonic() + timeout
            while not condition():
                if time.monotonic() > deadline:
                    print(f"timed out waiting for {what}", file=sys.stderr)
                    return False
                app.processEvents()
                time.sleep(0.02)
            return True

        try:
            ok = wait(lambda: window.fused_panel.estimate() is not None, "a first estimate")
            for _ in range(10):  # the text modality may still be starting: type again
                window.text_panel.entry.setText(SENTENCE)
                window.text_panel.submit()
                if wait(lambda: window.text_panel.words.explanation is not None, "words", 5.0):
                    break
            ok = ok and window.text_panel.words.explanation is not None
            ok = ok and wait(lambda: window.voice_panel.moments.explanation is not None, "voice")
            wait(lambda: False, "a moment to settle", 1.0)
            # an overlay for the faces now in view (not an earlier frame's extra detection)
            camera = window.camera_panel
            ok = ok and wait(
                lambda: len(camera.view.saliency()) == len(camera._faces) > 0, "face overlay"
            )
            if ok:
                window.grab().save(str(args.out))
                print(f"wrote {args.out}")
        finally:
            window.close()
            deadline = time.monotonic() + 15
            while window.controller.threads() and time.monotonic() < deadline:
                app.processEvents()
                time.sleep(0.05)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
