"""One broker directory and how ``emo7ion broker init`` makes it: config, users, ACL, certificates,
data and log side by side with absolute paths, so ``mosquitto -c DIR/mosquitto.conf`` runs from anywhere."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import grp
import ipaddress
import json
import os
import pwd
import string
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import NamedTuple

from emo7ion.broker_config.certificates import make_certificates, subject_alt_names
from emo7ion.broker_config.runner import Mosquitto
from emo7ion.core.messages import MAX_PAYLOAD_BYTES

MANIFEST = "broker.json"
FORMAT = 1
MAX_PACKET_BYTES = MAX_PAYLOAD_BYTES + 1024
"""A whole MQTT packet: the largest payload plus topic, MQTT 5 properties and, for CONNECT, the will."""
TLS12_CIPHERS = ":".join(f"ECDHE-{key}-{suite}" for key in ("ECDSA", "RSA")
                         for suite in ("AES128-GCM-SHA256", "AES256-GCM-SHA384", "CHACHA20-POLY1305"))
"""TLS 1.2 suites the broker accepts: forward secrecy and AEAD only (our certificate is ECDSA; RSA for one
brought from elsewhere)."""
MAX_QUEUED_BYTES = 256 * 1024 * 1024
"""Per client, payload bytes the broker queues beyond those in flight: about 600,000 windows of ~430 bytes,
nearly six hours of a 300-camera venue at 10 s windows for an aggregator that is away (docs/security.md)."""
MAX_QUEUED_MESSAGES = 1_000_000
"""A count bound above the byte bound, so bytes decide (a 10,000 count once dropped a burst silently)."""


@dataclass(frozen=True)
class BrokerLayout:
    """Where everything of one broker lives, and the settings ``init_broker`` wrote into its config."""

    directory: Path
    port: int
    tls_port: int
    dev: bool = False
    tls_bind: str | None = None
    user: str = "root"
    hosts: tuple[str, ...] = field(default=())

    @property
    def conf(self) -> Path:
        return self.directory / "mosquitto.conf"

    @property
    def passwd(self) -> Path:
        return self.directory / "passwd"

    @property
    def acl(self) -> Path:
        return self.directory / "acl"

    @property
    def manifest(self) -> Path:
        return self.directory / MANIFEST

    @property
    def log(self) -> Path:
        return self.directory / "mosquitto.log"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def certs(self) -> Path:
        return self.directory / "certs"

    @property
    def ca_cert(self) -> Path:
        return self.certs / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.certs / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.certs / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.certs / "server.key"

    @classmethod
    def load(cls, directory: str | Path) -> BrokerLayout:
        """The layout ``init_broker`` recorded in ``DIR/broker.json``."""
        directory = Path(directory).expanduser().resolve()
        manifest = directory / MANIFEST
        if not manifest.is_file():
            raise FileNotFoundError(f"{directory} is not a broker directory (no {MANIFEST}); "
                                    f"make one with: emo7ion broker init {directory}")
        try:
            data = json.loads(manifest.read_text())
            if data.pop("format") != FORMAT:
                raise ValueError(f"format is not {FORMAT}")
            data.pop("created", None)
            return cls(directory=directory, hosts=tuple(data.pop("hosts")), **data)
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{manifest} is not a broker manifest this version reads: {error}") from error

    def mosquitto(self) -> Mosquitto:
        """A runner for this broker (``.start()``, ``.reload()`` after adding users, ``.stop()``)."""
        return Mosquitto(self.conf, self.port, log_file=self.log)

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Exclusive use of the password and ACL files against another ``emo7ion broker`` at the same time."""
        with self.manifest.open() as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield


class Account(NamedTuple):
    name: str
    uid: int
    gid: int


def _account(user: str | None) -> Account:
    """The account mosquitto runs as when started as root: ``user``, or whoever runs init."""
    euid = os.geteuid()
    try:
        me = pwd.getpwuid(euid)
        current = Account(me.pw_name, me.pw_uid, me.pw_gid)
    except KeyError:  # a container uid without a passwd entry; mosquitto ignores `user` when not root
        current = Account(str(euid), euid, os.getegid())
    if user is None or user == current.name:
        return current
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"user {user!r} does not exist on this machine") from None
    if euid != 0:
        raise ValueError(f"user {user!r}: only root can hand the broker's files to another account; "
                         f"run init as {user} or leave --user out")
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _check_reachable(directory: Path, account: Account) -> None:
    """Mosquitto, switched to ``account``, must be able to walk down to ``directory``."""
    groups = {account.gid} | {group.gr_gid for group in grp.getgrall() if account.name in group.gr_mem}
    for folder in reversed(directory.parents):
        info = folder.stat()
        bit = 0o100 if info.st_uid == account.uid else 0o010 if info.st_gid in groups else 0o001
        if not info.st_mode & bit:
            raise ValueError(f"user {account.name} cannot reach {directory}: {folder} (mode "
                             f"{info.st_mode & 0o777:o}) is closed to it; choose a directory it can reach, "
                             f"e.g. /var/lib/emo7ion-broker, or leave --user out")


def _check_port(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
        raise ValueError(f"{what} must be a TCP port 1-65535, got {value!r}")
    return value


def _render(template: str, **values: object) -> str:
    text = resources.files(__package__).joinpath("templates", template).read_text()
    return string.Template(text).substitute({key: str(value) for key, value in values.items()})


def _write(path: Path, text: str, mode: int) -> None:
    """A fresh file with ``mode`` from its first byte (no moment readable by others)."""
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "w") as handle:
        handle.write(text)
    path.chmod(mode)  # the umask may have taken bits away


def render_config(layout: BrokerLayout, created: str) -> str:
    """The text of ``mosquitto.conf`` for ``layout`` (production, or development with ``layout.dev``)."""
    tls_listener = f"{layout.tls_port} {layout.tls_bind}" if layout.tls_bind else str(layout.tls_port)
    return _render("mosquitto-dev.conf.in" if layout.dev else "mosquitto.conf.in", created=created,
                   conf=layout.conf, dir=layout.directory, passwd=layout.passwd, acl=layout.acl, user=layout.user,
                   port=layout.port, tls_listener=tls_listener, server_cert=layout.server_cert,
                   server_key=layout.server_key, ca_cert=layout.ca_cert, data=layout.data, log=layout.log,
                   max_payload=MAX_PAYLOAD_BYTES, max_packet=MAX_PACKET_BYTES, ciphers=TLS12_CIPHERS,
                   max_queued_messages=MAX_QUEUED_MESSAGES, max_queued_bytes=MAX_QUEUED_BYTES)


def init_broker(directory: str | Path, port: int = 1883, tls_port: int = 8883, dev: bool = False, *,
                tls_bind: str | None = None, hosts: Iterable[str] = (), user: str | None = None,
                force: bool = False) -> BrokerLayout:
    """Write a ready-to-run broker directory with no users yet; add them with ``accounts.add_*``.

    ``port`` is plain MQTT on 127.0.0.1; ``tls_port`` is TLS on every interface (``tls_bind`` picks one
    address; ``dev`` binds it to 127.0.0.1 and keeps nothing on disk). ``hosts`` are extra names and
    addresses for the server certificate. ``user`` is the account a root-started mosquitto switches to
    (default: whoever calls this); as root, the files mosquitto opens are handed to it. ``force`` starts
    an existing broker directory over: new certificates, no users, no saved messages."""
    directory = Path(directory).expanduser().resolve()
    if any(char in str(directory) for char in "\n\r#"):
        raise ValueError(f"broker directory {directory!r} may not contain a line break or '#' (mosquitto.conf)")
    _check_port(port, "port")
    _check_port(tls_port, "TLS port")
    if port == tls_port:
        raise ValueError(f"port and TLS port must differ, both are {port}")
    if dev and tls_bind is None:
        tls_bind = "127.0.0.1"
    if tls_bind is not None:
        try:
            tls_bind = str(ipaddress.ip_address(tls_bind))
        except ValueError:
            raise ValueError(f"TLS bind address {tls_bind!r} is not an IP address") from None
    hosts = tuple(hosts)
    subject_alt_names(hosts)  # a bad name fails before anything is written
    account = _account(user)
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{directory} exists and is not a directory")
    if directory.is_dir() and any(directory.iterdir()) and not force:
        what = "is already a broker directory" if (directory / MANIFEST).exists() else "exists and is not empty"
        raise FileExistsError(f"{directory} {what}; add --force to start it over, "
                              f"which replaces its certificates and removes its users")
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o755)  # nothing secret is readable: keys and password file are 0600
    if account.uid != os.geteuid():
        _check_reachable(directory, account)

    layout = BrokerLayout(directory=directory, port=port, tls_port=tls_port, dev=dev, tls_bind=tls_bind,
                          user=account.name, hosts=hosts)
    created = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    make_certificates(layout.certs, hosts)
    layout.certs.chmod(0o755)
    layout.data.mkdir(exist_ok=True)
    layout.data.chmod(0o700)
    (layout.data / "mosquitto.db").unlink(missing_ok=True)
    _write(layout.passwd, "", 0o600)
    _write(layout.acl, _render("acl.in", created=created), 0o644)
    _write(layout.conf, render_config(layout, created), 0o644)
    if not layout.log.exists():
        _write(layout.log, "", 0o640)
    manifest = {"format": FORMAT, "created": created,
                **{key: value for key, value in asdict(layout).items() if key != "directory"}}
    manifest["hosts"] = list(hosts)
    _write(layout.manifest, json.dumps(manifest, indent=2) + "\n", 0o644)
    if account.uid != os.geteuid():
        # What mosquitto opens after switching user. The CA key stays with whoever ran init.
        for path in (layout.passwd, layout.acl, layout.server_key, layout.data, layout.log):
            os.chown(path, account.uid, account.gid)
    return layout
