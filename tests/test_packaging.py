"""Packaging: the desktop entry, AppStream metadata and icon are valid, the app starts and reports its version,
and (with --bundle) the PyInstaller one-folder bundle builds and runs."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import slm_studio

REPO = Path(__file__).resolve().parent.parent
APP_ID = "org.slmstudio.SlmStudio"
STARTED = f"SLM Studio {slm_studio.__version__} started"


def _offscreen_env() -> dict:
    return {**os.environ, "QT_QPA_PLATFORM": "offscreen", "SLM_STUDIO_QUIT_AFTER_START": "1"}


@pytest.mark.parametrize("tool, file", [("desktop-file-validate", f"{APP_ID}.desktop"),
                                        ("appstreamcli", f"{APP_ID}.metainfo.xml")])
def test_desktop_entry_and_metainfo_are_valid(tool, file):
    if shutil.which(tool) is None:
        pytest.skip(f"{tool} is not installed (apt-get install desktop-file-utils appstream)")
    argv = [tool, str(REPO / "packaging" / file)] if tool != "appstreamcli" else \
        [tool, "validate", "--no-net", str(REPO / "packaging" / file)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_icon_is_a_square_png_drawn_from_the_svg():
    from PySide6.QtGui import QImage
    from PySide6.QtSvg import QSvgRenderer

    assert QSvgRenderer(str(REPO / "resources" / "slm-studio.svg")).isValid()
    image = QImage(str(REPO / "resources" / "slm-studio.png"))
    assert (image.width(), image.height()) == (256, 256) and image.hasAlphaChannel()


def test_installed_app_starts_offscreen_and_reports_its_version():
    done = subprocess.run([sys.executable, "-m", "slm_studio"], env=_offscreen_env(), capture_output=True, check=False,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert STARTED in done.stdout


@pytest.mark.slow
@pytest.mark.bundle
def test_pyinstaller_bundle_builds_and_runs(tmp_path, tiny_teacher):
    """Builds packaging/slm-studio.spec from scratch (several minutes on 2 cores), then runs the bundle: version,
    the app offscreen, the bundled teacher, and a tiny distill -> export -> chat."""
    started = time.perf_counter()
    build = subprocess.run([sys.executable, "-m", "PyInstaller", str(REPO / "packaging" / "slm-studio.spec"),
                            "--noconfirm", "--distpath", str(tmp_path / "dist"), "--workpath", str(tmp_path / "work")],
                           cwd=REPO, capture_output=True, text=True, check=False, timeout=1800)
    assert build.returncode == 0, build.stderr[-3000:]
    print(f"bundle built in {time.perf_counter() - started:.0f} s")
    exe = tmp_path / "dist" / "slm-studio" / "slm-studio"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, check=False, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == f"slm-studio {slm_studio.__version__}"
    app = subprocess.run([str(exe)], env=_offscreen_env(), capture_output=True, text=True, check=False, timeout=300)
    assert app.returncode == 0, app.stderr[-3000:]
    assert STARTED in app.stdout
    models = subprocess.run([str(exe), "models"], capture_output=True, text=True, check=False, timeout=120)
    assert models.returncode == 0 and "SmolLM2-135M-Instruct" in models.stdout, models.stderr[-3000:]
    run = tmp_path / "run"
    for argv in (["distill", "--teacher", tiny_teacher, "--student-layers", "2", "--steps", "2", "--batch-size", "2",
                  "--seq-len", "32", "--out", run],
                 ["export", run, "--quant", "Q8_0"],
                 ["chat", run, "--prompt", "Hello!", "--max-tokens", "4"]):
        done = subprocess.run([str(exe), *map(str, argv)], capture_output=True, text=True, check=False, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
    assert (run / "gguf" / "student-Q8_0.gguf").exists() and "tokens/s" in done.stdout
