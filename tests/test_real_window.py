"""The window the way a user meets it: a real X server (Xvfb) and Qt's xcb plugin, not the
offscreen platform the other GUI tests use. Skipped only where Xvfb is not installed
(`make test` installs it when run as root)."""

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import ROOT

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None,
                                reason="Xvfb is not installed (apt-get install xvfb)")


@pytest.fixture
def x_display():
    number = 90
    while Path(f"/tmp/.X11-unix/X{number}").exists() or Path(f"/tmp/.X{number}-lock").exists():
        number += 1
    server = subprocess.Popen(["Xvfb", f":{number}", "-screen", "0", "1280x800x24"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if Path(f"/tmp/.X11-unix/X{number}").exists():
            break
        time.sleep(0.05)
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from fmnist_app.export import export_frozen_graph
    from fmnist_app.models import create_model
    return export_frozen_graph(create_model("simple_model_1"),
                               tmp_path_factory.mktemp("model") / "frozen_inference_graph.pb")


def test_the_window_opens_on_a_real_x_server_and_shows_the_demo(x_display, tiny_model,
                                                                 tmp_path):
    shot = tmp_path / "window.png"
    env = {k: v for k, v in os.environ.items() if k != "QT_QPA_PLATFORM"}
    env.update(DISPLAY=x_display, QT_DEBUG_PLUGINS="0")
    result = subprocess.run(
        [sys.executable, "demo_program.py", "--demo-source", "--model", str(tiny_model),
         "--screenshot", str(shot), "--quit-after", "8"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    picture = cv2.imread(str(shot))
    assert picture is not None and picture.shape[1] >= 1000
    blue = (picture[..., 0] > 200) & (picture[..., 1] < 120) & (picture[..., 2] < 120)
    assert blue.sum() > 500                              # the blue guide box is drawn
    assert np.std(picture) > 20                          # a picture, not a blank window
