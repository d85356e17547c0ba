"""Starts and stops the system ``mosquitto`` binary on a config file: for the demo and the tests."""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from pathlib import Path

from emo7ion.core.service.errors import UserError

log = logging.getLogger(__name__)

SEARCH_PATH = ("/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin")


class BrokerError(UserError, RuntimeError):
    """Mosquitto is missing, or did not start on its config."""


def find_tool(name: str, package: str = "mosquitto") -> str:
    """Path of a broker program (mosquitto, mosquitto_passwd, openssl), also where sbin is not on PATH."""
    found = shutil.which(name) or next(
        (str(Path(d) / name) for d in SEARCH_PATH if (Path(d) / name).is_file()), None)
    if not found:
        raise BrokerError(f"{name} is not installed (Debian/Ubuntu: apt-get install {package})")
    return found


def find_mosquitto() -> str:
    return find_tool("mosquitto")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the kernel's choice), for a broker or web server in tests."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 10.0, process=None) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.02
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise BrokerError(f"mosquitto exited with code {process.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(delay)
            delay = min(delay * 2, 0.25)
    raise BrokerError(f"nothing listens on {host}:{port} after {timeout:.0f} s")


class Mosquitto:
    """One mosquitto process; ``start`` waits until ``port`` accepts connections, ``stop`` ends it."""

    def __init__(self, config: str | Path, port: int, log_file: str | Path | None = None):
        self.config = Path(config)
        self.port = port
        self.log_file = Path(log_file) if log_file else self.config.with_suffix(".log")
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 10.0) -> Mosquitto:
        binary = find_mosquitto()
        handle = open(self.log_file, "ab")
        self.process = subprocess.Popen([binary, "-c", str(self.config)], stdout=handle, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        handle.close()
        try:
            wait_for_port(self.port, timeout=timeout, process=self.process)
        except BrokerError as error:
            self.stop()
            tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else ""
            raise BrokerError(f"{error}; mosquitto log:\n{tail}") from error
        log.info("mosquitto pid %d listening on %d (%s)", self.process.pid, self.port, self.config)
        return self

    def stop(self, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if kill:
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def reload(self) -> None:
        """SIGHUP: mosquitto re-reads its password and ACL files without dropping clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(1)

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def __enter__(self) -> Mosquitto:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
