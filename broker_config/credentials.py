"""Usernames and passwords in Mosquitto's password file, hashed by Mosquitto's own ``mosquitto_passwd``
so the broker reads exactly the format it writes; a password exists in clear only once, when it is made."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path
from typing import NamedTuple

from emo7ion.broker_config.runner import BrokerError, find_tool

PASSWORD_BYTES = 24
"""Random bytes in a new password: 192 bits, 32 URL-safe characters (no quoting trouble in a TOML file)."""


class Credentials(NamedTuple):
    username: str
    password: str


def new_password() -> str:
    """A random password that is safe to paste after ``--password``: one starting with '-' (one in 64 of
    ``token_urlsafe``'s) reads as an option to argparse and to most shells' tools."""
    while True:
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        if not password.startswith("-"):
            return password


def usernames(password_file: str | Path) -> set[str]:
    """The users a password file holds (``user:hash`` lines)."""
    path = Path(password_file)
    if not path.is_file():
        raise FileNotFoundError(f"password file {path} does not exist")
    return {line.split(":", 1)[0] for line in path.read_text().splitlines() if ":" in line and line[0] != "#"}


def set_password(password_file: str | Path, username: str, password: str) -> None:
    """Add ``username`` to the file, or replace its password; the file keeps its owner and mode.

    The password travels on mosquitto_passwd's standard input (its prompt mode), not as an argument
    like ``mosquitto_passwd -b``, so it never shows in another user's process list."""
    path = Path(password_file)
    if not path.is_file():
        raise FileNotFoundError(f"password file {path} does not exist")
    if ":" in username or not username.isprintable():
        raise ValueError(f"username {username!r} may not contain ':' or control characters")
    result = subprocess.run([find_tool("mosquitto_passwd"), str(path), username], input=f"{password}\n{password}\n",
                            capture_output=True, text=True, timeout=30)
    if result.returncode != 0 or username not in usernames(path):
        message = (result.stderr or result.stdout).strip()
        raise BrokerError(f"mosquitto_passwd could not set {username!r} in {path} ({result.returncode}): {message}")
