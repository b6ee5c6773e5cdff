"""Without a display, ``emoapp`` says so in one line, points to the headless commands,
and exits with status 2; Qt is never imported on the way (nor by ``emoapp --help``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from emoapp.commands.gui import display_problem, no_display_message

REPO = Path(__file__).resolve().parents[2]


def test_no_display_variables_is_a_problem():
    problem = display_problem({}, platform="linux")
    assert problem is not None and "DISPLAY" in problem


@pytest.mark.parametrize("platform_name", ["offscreen", "minimal", "offscreen:fontengine=x"])
def test_self_contained_qt_platforms_need_no_display(platform_name):
    assert display_problem({"QT_QPA_PLATFORM": platform_name}, platform="linux") is None


def test_unreachable_x_display_is_a_problem(tmp_path):
    # Display :987 has no socket on this machine.
    problem = display_problem({"DISPLAY": ":987"}, platform="linux")
    assert problem is not None and ":987" in problem


def test_xcb_requested_without_display_is_a_problem():
    problem = display_problem({"QT_QPA_PLATFORM": "xcb"}, platform="linux")
    assert problem is not None and "xcb" in problem


def test_windows_and_macos_have_a_display():
    assert display_problem({}, platform="win32") is None
    assert display_problem({}, platform="darwin") is None


def test_message_points_to_headless_commands():
    line = no_display_message("no display available")
    assert "\n" not in line
    assert "emoapp live --no-gui" in line and "emoapp analyze" in line


def test_emoapp_without_display_exits_2_without_importing_qt(tmp_path):
    code = (
        "import sys, emoapp.cli as cli\n"
        "rc = cli.main([])\n"
        "assert 'PySide6' not in sys.modules, 'Qt was imported'\n"
        "sys.exit(rc)\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "emoapp live --no-gui" in lines[0] and "emoapp analyze" in lines[0]


def test_gui_command_module_does_not_import_qt():
    code = "import sys, emoapp.commands.gui\nassert 'PySide6' not in sys.modules\n"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=60)
