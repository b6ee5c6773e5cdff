"""Render the guide's screenshots of "Calibrate to me": the Modalities menu over the
voice panel with a calibration in use, and the dialog.

    xvfb-run -a -s "-screen 0 1280x800x24" python scripts/calibration_screenshot.py

The window runs on the built-in (embedded) models, with consent and a calibration made
from ``--reading`` (the bundled sample speech by default) in a temporary config folder;
the microphone is chosen but not opened. Writes ``docs/calibrate-menu.png`` and
``docs/calibrate-dialog.png`` (cropped, 64 colours).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reading", type=Path, default=REPO / "resources/samples/speech.wav")
    parser.add_argument("--out", type=Path, default=REPO / "docs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder)
        os.environ["EMOAPP_CONFIG_DIR"] = str(config)
        return render(args.reading, args.out, config)


def render(reading: Path, out: Path, config: Path) -> int:
    from PIL import Image

    from emoapp.cli import build_parser
    from emoapp.commands.gui import window_config
    from emoapp.core.messages import Modality
    from emoapp.privacy.consent import ConsentStore
    from emoapp.privacy.voice_calibration import calibrate_from_file
    from emoapp.ui.app import build_window, create_application

    store = ConsentStore(config)
    store.grant(Modality.VOICE, via="calibration_screenshot.py")
    calibrate_from_file(reading, "embedded/voice-multicorpus", store, store.audit)
    app = create_application()
    argv = ["--profile", "embedded", "--settings-file", str(config / "settings.ini")]
    built = build_window(window_config(build_parser().parse_args(argv)), consent_store=store)
    window = built.window
    window.resize(1280, 800)
    window.move(0, 0)
    window.show()
    window.start({Modality.TEXT})
    ready: list[str] = []
    window.controller.models_ready.connect(ready.append)

    def wait(seconds: float, until: Any = None) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not (until and until()):
            app.processEvents()
            time.sleep(0.02)

    def grab(name: str) -> Path:
        path = config / f"{name}.png"
        app.primaryScreen().grabWindow(0).save(str(path))
        return path

    wait(90, lambda: ready)
    wait(1.5)
    bar = window.menuBar()
    where = bar.actionGeometry(window.modality_menu.menuAction()).bottomLeft()
    window.modality_menu.popup(bar.mapToGlobal(where))
    window.modality_menu.setActiveAction(window.voice_calibration.action)
    wait(0.8)
    shots = {"menu": grab("menu")}
    window.modality_menu.hide()
    dialog = window.voice_calibration.open_dialog()
    dialog.move(360, 140)
    wait(0.8)
    shots["dialog"] = grab("dialog")
    dialog.close()
    panel = window.voice_panel.calibration.text()
    closed: list[bool] = []
    window.closed.connect(lambda: closed.append(True))
    window.close()
    wait(15, lambda: closed)
    for name, box in (("menu", (0, 0, 750, 440)), ("dialog", (360, 140, 1088, 392))):
        image = Image.open(shots[name]).crop(box).convert("P", palette=Image.ADAPTIVE, colors=64)
        image.save(out / f"calibrate-{name}.png", optimize=True)
        print(out / f"calibrate-{name}.png")
    print("voice panel:", panel)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
