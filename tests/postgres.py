"""Test helper: a throwaway PostgreSQL cluster on a free loopback port, for the scale-out tests.

``initdb`` into a fresh directory under /tmp, ``postgres`` listening on 127.0.0.1 only (its unix socket
inside the data directory), trust authentication, one database; ``stop`` ends the server with
``pg_ctl stop -m fast`` and removes the directory. PostgreSQL refuses to run as root, so as root the
programs run as the ``postgres`` system user (``runuser``), which owns the directory.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from emo7ion.broker_config.runner import free_port

PROGRAMS = ("initdb", "pg_ctl", "postgres")


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server binaries on this machine (the text says how to install them)."""


def find_bin_dir() -> Path:
    """Debian's /usr/lib/postgresql/<version>/bin (newest version first), else the PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(os.path.realpath(on_path)).parent))
    for folder in candidates:
        if all(os.access(Path(folder) / name, os.X_OK) for name in PROGRAMS):
            return Path(folder)
    raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found under "
                              "/usr/lib/postgresql/*/bin or on PATH (Debian/Ubuntu: apt-get install postgresql)")


def _version(folder: str) -> float:
    try:
        return float(Path(folder).parent.name)
    except ValueError:
        return 0.0


class ThrowawayPostgres:
    """One PostgreSQL server with one database; ``url`` is a ``postgresql://`` URL for psycopg."""

    def __init__(self, database: str = "emo7ion", settings: dict[str, str] | None = None):
        self.bin = find_bin_dir()
        self.database = database
        self.settings = settings or {}
        self.port = free_port()
        self.root: Path | None = None
        self.started = False

    @property
    def data(self) -> Path:
        if self.root is None:
            raise RuntimeError("ThrowawayPostgres.start() first")
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def _run(self, *argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        command = [str(self.bin / argv[0]), *argv[1:]]
        if os.geteuid() == 0:  # "root" execution of the PostgreSQL server is not permitted
            command = ["runuser", "-u", "postgres", "--", *command]
        result = subprocess.run(command, cwd=self.root, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            log = (self.root / "postgres.log") if self.root else None
            tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{' '.join(argv[:2])} failed ({result.returncode}): {result.stderr.strip()}"
                               f"{chr(10) + tail if tail else ''}")
        return result

    def start(self) -> ThrowawayPostgres:
        # Not pytest's tmp_path: its 0700 parents keep the postgres user out.
        self.root = Path(tempfile.mkdtemp(prefix="emo7ion-pg-", dir="/tmp"))
        os.chmod(self.root, 0o755)
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                self.stop()
                raise PostgresUnavailable("running as root needs the 'postgres' system user (the Debian "
                                          "postgresql package creates it)") from None
            os.chown(self.root, user.pw_uid, user.pw_gid)
        try:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8",
                      "--locale=C", "--no-sync")
            options = {"listen_addresses": "127.0.0.1", "port": str(self.port),
                       "unix_socket_directories": str(self.data), **self.settings}
            self._run("pg_ctl", "start", "-D", str(self.data), "-l", str(self.root / "postgres.log"), "-w",
                      "-t", "30", "-o", " ".join(f"-c {key}={value}" for key, value in options.items()))
            self.started = True
            self._create_database()
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self) -> None:
        """``pg_ctl restart -m fast``: every client connection is cut, as in a database fail-over."""
        self._run("pg_ctl", "restart", "-D", str(self.data), "-l", str(self.root / "postgres.log"), "-m", "fast",
                  "-w", "-t", "30")

    def _create_database(self) -> None:
        self.create_database(self.database)

    def create_database(self, name: str) -> str:
        """Another empty database on this server (one per test); its URL."""
        import psycopg

        if not name.replace("_", "").isalnum():
            raise ValueError(f"database name {name!r}: letters, digits and '_' only")
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.started:
            self.started = False
            try:
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "30")
            except (RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", "-t", "30")
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> ThrowawayPostgres:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
