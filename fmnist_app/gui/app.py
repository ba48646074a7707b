"""Start the window: check there is a display, make the QApplication, run it."""

import os
import socket
import sys
import time
from pathlib import Path

SCREENSHOT_PATIENCE_SECONDS = 60
NO_DISPLAY_HINT = ("run `demo_program.py --no-gui --predictions out.csv ...` instead, "
                   "or start it under `xvfb-run -a`")


def display_problem():
    """Why no window can open here, or None. Qt itself would abort the process instead.

    Only the common Linux cases are checked: no DISPLAY / WAYLAND_DISPLAY at all, or a local
    X display whose socket is gone. An explicit QT_QPA_PLATFORM (offscreen, ...) is trusted.
    """
    if os.environ.get("QT_QPA_PLATFORM") or not sys.platform.startswith("linux"):
        return None
    if os.environ.get("WAYLAND_DISPLAY"):
        return None
    display = os.environ.get("DISPLAY", "")
    if not display:
        return "no display to open a window on (DISPLAY is not set)"
    if display.startswith(":"):
        number = display[1:].split(".")[0]
        if number.isdigit() and not Path(f"/tmp/.X11-unix/X{number}").exists():
            return f"no X server answers on DISPLAY={display}"
    else:
        host, _, rest = display.rpartition(":")
        number = rest.split(".")[0]
        if host and number.isdigit() and not tcp_answers(host, 6000 + int(number)):
            return f"no X server answers on DISPLAY={display}"
    return None


def tcp_answers(host, port, seconds=1.0):
    """Does anything accept a connection there? (An X server on host:N listens on 6000+N.)"""
    try:
        with socket.create_connection((host, port), timeout=seconds):
            return True
    except OSError:
        return False


def run_gui(options, screenshot=None, quit_after=None):
    """Show the window until it is closed; returns the exit code.

    screenshot / quit_after (seconds): grab the window into a PNG and quit, for the README
    picture and for smoke tests.
    """
    problem = display_problem()
    if problem:
        raise SystemExit(f"error: {problem}; {NO_DISPLAY_HINT}")
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from fmnist_app.gui.main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    window = MainWindow(options)
    window.resize(1180, 720)
    window.show()

    deadline = time.monotonic() + (quit_after or 0) + SCREENSHOT_PATIENCE_SECONDS

    def grab_and_quit():
        # A screenshot of a window still loading its model shows nothing: on a busy machine
        # wait (up to SCREENSHOT_PATIENCE_SECONDS more) for the first picture.
        if screenshot and window.results_shown == 0 and time.monotonic() < deadline:
            QTimer.singleShot(250, grab_and_quit)
            return
        if screenshot:
            Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
            if window.grab().save(str(screenshot)):
                print(f"saved screenshot {screenshot}")
            else:
                print(f"error: cannot write screenshot {screenshot}", file=sys.stderr)
        window.close()

    if quit_after is not None:
        QTimer.singleShot(round(1000 * quit_after), grab_and_quit)
    return app.exec()
