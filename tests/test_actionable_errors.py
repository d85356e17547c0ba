"""Errors a person can act on, through the real command: a refused password or a camera library that is not
installed stops with one line and exit status 2; an unreachable or untrusted broker is named (host:port and
cause) and retried; a busy port is one line; a stop with dashboards open prints no traceback."""

from __future__ import annotations

import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
from mqtt_helpers import start_plain_broker

from emo7ion.broker_config import add_aggregator, add_camera, init_broker
from emo7ion.broker_config.runner import free_port
from emo7ion.cli import main
from helpers import SHARED

EXE = Path(sys.executable).parent / "emo7ion"
CROWD = SHARED / "data" / "crowd-sample" / "images"


def emo7ion(*args, cwd: Path, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(EXE), *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def one_line_error(result: subprocess.CompletedProcess, command: str) -> str:
    """The last stderr line, checked to be the CLI's one-line error and no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"emo7ion {command}: error: "), result.stderr
    return last


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A production-profile broker: password accounts on a plain port, TLS on another."""
    directory = tmp_path_factory.mktemp("broker") / "broker"
    layout = init_broker(directory, free_port(), free_port(), tls_bind="127.0.0.1")
    users = {"camera": add_camera(directory, "lobby", "cam1"), "aggregator": add_aggregator(directory, "central")}
    mosquitto = layout.mosquitto().start()
    yield layout, users
    mosquitto.stop()


def agent_args(*args, cwd: Path) -> list:
    return ["edge", "run", "--venue", "lobby", "--camera", "cam1", "--outbox", cwd / "outbox.sqlite", "--window", "2",
            *args]


def agent(*args, cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return emo7ion(*agent_args(*args, cwd=cwd), cwd=cwd, timeout=timeout)


@pytest.mark.skipif(not CROWD.is_dir(), reason="crowd photos not found")
def test_a_refused_password_stops_agent_and_aggregator_with_one_line(broker, tmp_path):
    layout, users = broker
    user = users["camera"][0]
    began = time.monotonic()
    result = agent("--source", CROWD, "--broker", f"mqtt://127.0.0.1:{layout.port}", "--username", user,
                   "--password", "wrong", "--duration", "90", cwd=tmp_path)
    assert time.monotonic() - began < 80  # stopped by the refusal, not by --duration
    line = one_line_error(result, "edge")
    assert f"broker 127.0.0.1:{layout.port} refused user '{user}'" in line and "password" in line

    result = emo7ion("aggregator", "run", "--broker", f"mqtt://127.0.0.1:{layout.port}", "--username",
                     users["aggregator"][0], "--password", "wrong", "--port", "0", "--db", tmp_path / "agg.sqlite",
                     "--duration", "90", cwd=tmp_path)
    line = one_line_error(result, "aggregator")
    assert f"broker 127.0.0.1:{layout.port} refused user '{users['aggregator'][0]}'" in line


@pytest.mark.skipif(not CROWD.is_dir(), reason="crowd photos not found")
def test_untrusted_and_absent_brokers_are_named_and_retried(broker, tmp_path):
    layout, users = broker
    nobody = free_port()
    runs = []
    for url, cause in ((f"mqtts://127.0.0.1:{layout.tls_port}",  # no --ca-file: the system CAs do not know ours
                        f"TLS verification of broker 127.0.0.1:{layout.tls_port} failed"),
                       (f"mqtt://127.0.0.1:{nobody}", f"broker 127.0.0.1:{nobody} refused the connection")):
        # Both agents at once, each with its own working folder and outbox: they mostly wait on their backoff.
        cwd = tmp_path / f"run-{len(runs)}"
        cwd.mkdir()
        argv = agent_args("--source", CROWD, "--broker", url, "--username", users["camera"][0], "--password",
                          users["camera"][1], "--duration", "4", cwd=cwd)
        runs.append((cause, subprocess.Popen([str(EXE), *map(str, argv)], cwd=cwd, stdout=subprocess.PIPE,
                                             stderr=subprocess.PIPE, text=True)))
    try:
        for cause, process in runs:
            stdout, stderr = process.communicate(timeout=120)
            result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
            assert result.returncode == 0, result.stderr  # an outage is retried, not fatal
            assert cause in result.stderr and "retrying with backoff" in result.stderr, result.stderr
            assert "Client is not connected" not in result.stderr  # paho's cause-less line is gone
            assert "window(s) stay in the outbox" in result.stderr
    finally:
        for _, process in runs:
            if process.poll() is None:
                process.kill()
                process.communicate()


@pytest.mark.skipif(sys.modules.get("picamera2") is not None or os.path.exists("/usr/lib/python3/dist-packages/"
                                                                                 "picamera2"),
                    reason="Picamera2 is installed here")
def test_picamera2_without_picamera2_is_one_line(broker, tmp_path):
    layout, _ = broker
    result = agent("--source", "picamera2", "--broker", f"mqtt://127.0.0.1:{layout.port}", "--duration", "60",
                   cwd=tmp_path)
    assert "Picamera2 is not installed" in one_line_error(result, "edge")


def test_a_busy_port_is_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = emo7ion("aggregator", "run", "--broker", "mqtt://127.0.0.1:1", "--port", port, "--db",
                         tmp_path / "agg.sqlite", "--duration", "30", cwd=tmp_path)
        assert f"port {port} on 127.0.0.1 is already in use" in one_line_error(result, "aggregator")
        result = emo7ion("demo", "--port", port, "--duration", "30", "--workdir", tmp_path / "demo", cwd=tmp_path)
        assert f"port {port} on 127.0.0.1 is already in use" in one_line_error(result, "demo")


def test_a_stop_with_dashboards_open_is_clean_and_sqlite_stays_out_of_the_working_directory(tmp_path):
    broker = start_plain_broker(tmp_path / "broker")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data")}
    env.pop("EMO7ION_DATA_DIR", None)
    process = subprocess.Popen([str(EXE), "aggregator", "run", "--broker", f"mqtt://127.0.0.1:{broker.port}",
                                "--port", "0"], cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        url = re.search(r"dashboard: (http://\S+)/ ", process.stdout.readline()).group(1)
        opened = []

        def watch() -> None:  # a dashboard's live stream, held open until the server ends it
            with urllib.request.urlopen(f"{url}/api/stream?venue=lobby", timeout=60) as stream:
                opened.append(True)
                while stream.read(1):
                    pass

        viewers = [threading.Thread(target=watch, daemon=True) for _ in range(2)]
        for viewer in viewers:
            viewer.start()
        deadline = time.monotonic() + 30
        while len(opened) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(opened) == 2
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        broker.stop()
    assert process.returncode == 0, err
    assert "Traceback" not in err and "CancelledError" not in err, err
    for viewer in viewers:
        viewer.join(timeout=10)
        assert not viewer.is_alive()  # the server ended the streams itself
    assert list(work.iterdir()) == []  # no SQLite file dropped where the command was started
    assert (tmp_path / "data" / "emo7ion" / "aggregator.sqlite").is_file()


def test_smaller_errors_read_as_written_for_people(tmp_path, capsys, caplog):
    from emo7ion.core.runtime import EmotionClassifier, ModelError
    from emo7ion.edge.detect import weights

    (tmp_path / "broker").mkdir()
    (tmp_path / "broker" / "something").write_text("x")
    assert main(["broker", "init", str(tmp_path / "broker")]) == 2
    error = capsys.readouterr().err
    assert "--force" in error and "force=True" not in error

    corrupt = tmp_path / "corrupt.tflite"
    corrupt.write_bytes(b"not a model at all" * 100)
    with caplog.at_level(logging.WARNING), pytest.raises(ModelError, match="not a valid TFLite model"):
        EmotionClassifier(corrupt)
    assert "provenance" not in caplog.text  # the error alone, not a warning before it

    with pytest.raises(ModelError) as wrong:  # a real TFLite file of another shape (BlazeFace's detector)
        EmotionClassifier(weights.path(weights.BLAZEFACE["short"]))
    assert "takes input (128, 128, 3)" in str(wrong.value) and "np.int32" not in str(wrong.value)


@pytest.mark.skipif(not CROWD.is_dir(), reason="crowd photos not found")
def test_edge_check_names_the_broker_and_the_cause(broker, tmp_path, capsys):
    layout, users = broker
    where = ["--source", str(CROWD), "--venue", "lobby", "--camera", "cam1", "--outbox", str(tmp_path / "o.sqlite")]
    assert main(["edge", "check", *where, "--broker", f"mqtt://127.0.0.1:{layout.port}", "--username",
                 users["camera"][0], "--password", "wrong"]) == 1
    out = capsys.readouterr().out
    assert f"FAIL broker: broker 127.0.0.1:{layout.port} refused user '{users['camera'][0]}'" in out, out
    assert main(["edge", "check", *where, "--broker", f"mqtts://127.0.0.1:{layout.tls_port}", "--username",
                 users["camera"][0], "--password", users["camera"][1]]) == 1
    out = capsys.readouterr().out
    assert f"FAIL broker: TLS verification of broker 127.0.0.1:{layout.tls_port} failed" in out, out


def test_truncated_detector_weights_end_edge_run_with_one_line_naming_the_file(tmp_path):
    """Issue 20, must show 5: weights cut short (a half-copied SD card) are the user's to fix, not a traceback."""
    from emo7ion.edge.detect import weights

    for kind, source in (("centerface", "centerface.onnx"), ("centerface-int8", "centerface_int8.onnx")):
        truncated = tmp_path / f"cut-{source}"
        truncated.write_bytes(weights.path(source).read_bytes()[:100_000])
        config = tmp_path / f"{kind}.toml"
        config.write_text(f'venue = "lobby"\ncamera = "cam1"\n[detector]\ntype = "{kind}"\n'
                          f'model_path = "{truncated}"\n[source]\nkind = "images"\npath = "{tmp_path}"\n')
        result = emo7ion("edge", "run", "--config", config, "--out", tmp_path / "windows.jsonl", cwd=tmp_path)
        line = one_line_error(result, "edge")
        assert str(truncated) in line and "100,000 bytes" in line, line
