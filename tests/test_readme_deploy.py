"""The README's deployment block, run as written: broker directory with TLS, accounts, Mosquitto, the aggregator
over mqtts://, one camera agent over mqtts:// and a viewer with mosquitto_sub, on loopback. The viewer must
receive the venue's mood.

Only what cannot be the same on a test machine is changed: the broker directory lives in a temporary folder,
broker.example.org is 127.0.0.1, the ports are free ones, the passwords are those the add-* steps printed, the
device's ``ca.crt`` is copied into the devices' working folder as the README says, and the camera's
``--source 0`` becomes one crowd photo held in view, in short windows.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emo7ion.broker_config.runner import free_port

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MARK = "<!-- deploy-steps"
CROWD = ROOT.parent / "shared" / "data" / "crowd-sample" / "images"
CROWD_PHOTO = "0_Parade_marchingband_1_149.jpg"  # 24 faces, all at least 32 px high
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(shutil.which("mosquitto") is None or shutil.which("mosquitto_sub") is None,
                                reason="needs mosquitto and mosquitto_sub (apt-get install mosquitto-clients)")


def readme_steps() -> list[str]:
    """The commands of the README's deploy block: continuation lines joined, comments and blanks dropped."""
    text = README.read_text()
    assert MARK in text, f"{README} has lost its '{MARK}' block"
    block = text.split(MARK, 1)[1].split("```bash\n", 1)[1].split("\n```", 1)[0]
    joined = block.replace("\\\n", " ")
    return [line.strip() for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


def test_readme_block_has_every_step_and_flag():
    steps = readme_steps()
    programs = [" ".join(shlex.split(step, comments=True)[:3]) for step in steps]
    assert programs == ["emo7ion broker init", "emo7ion broker add-aggregator", "emo7ion broker add-camera",
                        "emo7ion broker add-viewer", "mosquitto -c /srv/emo7ion-broker/mosquitto.conf",
                        "emo7ion aggregator run", "emo7ion edge run", "mosquitto_sub -h broker.example.org"]
    aggregator, edge, viewer = steps[5], steps[6], steps[7]
    for flags, step in ((("--ca-file", "--username", "--password", "mqtts://"), aggregator),
                        (("--ca-file", "--username", "--password", "mqtts://"), edge),
                        (("--cafile", "-u", "-P", "emo7ion/v1/+/mood"), viewer)):
        assert all(flag in step for flag in flags), (flags, step)


def localise(step: str, folder: Path, ports: dict[str, int], passwords: dict[str, str]) -> list[str]:
    step = step.replace("/srv/emo7ion-broker", str(folder / "broker")).replace("broker.example.org", "127.0.0.1")
    for default, port in ports.items():
        step = step.replace(default, str(port))
    for placeholder, password in passwords.items():
        step = step.replace(placeholder, password)
    argv = shlex.split(step, comments=True)
    if argv[:3] == ["emo7ion", "edge", "run"]:
        # One crowd photo held in view (a camera sees the same people from frame to frame; a slideshow of
        # unrelated photos has no person in two frames, so the tracker rightly counts no one and every window
        # withholds its emotion figures), 8 frames a window so each face makes the 3 frames a person needs.
        still = folder / "still-crowd"
        still.mkdir(exist_ok=True)
        if not (still / CROWD_PHOTO).exists():
            (still / CROWD_PHOTO).symlink_to(CROWD / CROWD_PHOTO)
        at = argv.index("--source")
        argv[at + 1:at + 2] = [str(still), "--window", "4", "--fps", "2", "--duration", "120"]
    if argv[0] == "emo7ion":
        argv[0] = str(BIN / "emo7ion")
    return argv


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port} after {timeout_s:.0f} s")


def tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else "(no output)"


@pytest.mark.skipif(not CROWD.is_dir(), reason=f"crowd photos not found at {CROWD}")
def test_readme_deployment_steps_deliver_mood_to_a_viewer(tmp_path):
    steps = readme_steps()
    device = tmp_path / "device"
    device.mkdir()
    env = {**os.environ, "HOME": str(tmp_path / "home")}  # default database and outbox paths land here
    env.pop("EMO7ION_AGG__PASSWORD", None)
    env.pop("EMO7ION_EDGE__BROKER__PASSWORD", None)
    ports = {"1883": free_port(), "8883": free_port(), "8080": free_port()}
    passwords: dict[str, str] = {}
    running: list[tuple[str, subprocess.Popen, Path]] = []

    def start(name: str, argv: list[str]) -> tuple[subprocess.Popen, Path]:
        log = tmp_path / f"{name}.log"
        process = subprocess.Popen(argv, cwd=device, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
        running.append((name, process, log))
        return process, log

    def diagnostics() -> str:
        parts = [f"--- {name} (exit {process.poll()}):\n{tail(log)}" for name, process, log in running]
        return "\n".join(parts + [f"--- mosquitto.log:\n{tail(tmp_path / 'broker' / 'mosquitto.log')}"])

    try:
        for step in steps:
            argv = localise(step, tmp_path, ports, passwords)
            if argv[0] == "mosquitto":
                start("mosquitto", argv)
                wait_port(ports["8883"])
            elif argv[1:3] == ["aggregator", "run"]:
                start("aggregator", argv)
            elif argv[1:3] == ["edge", "run"]:
                shutil.copyfile(tmp_path / "broker" / "certs" / "ca.crt", device / "ca.crt")  # "copy ca.crt first"
                start("edge", argv)
            elif argv[0] == "mosquitto_sub":
                viewer, viewer_log = start("viewer", argv)
            else:  # emo7ion broker init / add-*: run to the end, keep the password each prints
                done = subprocess.run(argv, cwd=device, env=env, capture_output=True, text=True, timeout=60)
                assert done.returncode == 0, f"{step}\n{done.stdout}{done.stderr}"
                fields = dict(line.split(None, 1) for line in done.stdout.splitlines()
                              if line.startswith("  ") and len(line.split(None, 1)) == 2)
                if argv[2].startswith("add-"):
                    passwords[f"<{argv[2][4:]} password>"] = fields["password"].strip()

        deadline = time.monotonic() + 180  # a cap for a loaded machine; on an idle one the mood comes in seconds
        mood = None
        while mood is None:
            for line in viewer_log.read_text().splitlines():
                topic, _, payload = line.partition(" ")
                if topic == "emo7ion/v1/concert-hall/mood" and json.loads(payload)["faces"] > 0:
                    mood = json.loads(payload)
            assert mood is not None or time.monotonic() < deadline, "the viewer got no mood\n" + diagnostics()
            ended = [name for name, process, _ in running if process.poll() is not None]
            assert not ended, f"{', '.join(ended)} ended before the viewer got a mood\n" + diagnostics()
            time.sleep(0.25)
        assert mood["venue"] == "concert-hall" and mood["dominant"] is not None and mood["cameras_online"] == 1
        assert sum(mood["shares"].values()) == pytest.approx(1.0, abs=0.01)
        viewer.terminate()
        viewer.wait(10)

        # "Adding accounts later": a viewer for Home Assistant, added to the running broker and applied by SIGHUP.
        # A viewer account may read what Home Assistant needs: discovery configs, availability, mood.
        added = subprocess.run([str(BIN / "emo7ion"), "broker", "add-viewer", str(tmp_path / "broker"),
                                "home-assistant", "--json"], env=env, capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stderr
        broker = next(process for name, process, _ in running if name == "mosquitto")
        broker_log = tmp_path / "broker" / "mosquitto.log"
        reloads = broker_log.read_text(errors="replace").count("Reloading config")
        broker.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 15  # the new account's ACL only holds once the broker has reloaded
        while broker_log.read_text(errors="replace").count("Reloading config") == reloads:
            assert time.monotonic() < deadline, "the broker did not reload on SIGHUP\n" + diagnostics()
            time.sleep(0.05)
        # 9 retained messages: 7 sensors (4, and 3 for people), the aggregator's status, the venue's mood.
        ha = subprocess.run(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(ports["8883"]), "--cafile", "ca.crt",
                             "-u", "viewer.home-assistant", "-P", json.loads(added.stdout)["password"], "-v",
                             "-C", "9", "-W", "20", "-t", "homeassistant/#", "-t", "emo7ion/aggregator/+/status",
                             "-t", "emo7ion/v1/+/mood"],
                            cwd=device, env=env, capture_output=True, text=True, timeout=40)
        topics = [line.split(" ", 1)[0] for line in ha.stdout.splitlines()]
        assert "emo7ion/aggregator/aggregator.central/status" in topics, ha.stdout + ha.stderr + diagnostics()
        assert "emo7ion/v1/concert-hall/mood" in topics, ha.stdout
        assert any(t.startswith("homeassistant/sensor/emo7ion_concert-hall/") for t in topics), ha.stdout
    finally:
        for _, process, _ in reversed(running):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired:
                    process.kill()
