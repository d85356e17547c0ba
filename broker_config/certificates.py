"""A private CA and the broker's TLS certificate, made with the system ``openssl``: cameras trust the CA
file alone, so no public certificate authority is involved."""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from emo7ion.broker_config.runner import BrokerError, find_tool

DEFAULT_HOSTS = ("localhost", "127.0.0.1", "::1")
CA_DAYS = 3650
SERVER_DAYS = 825  # the longest lifetime Apple and browsers accept for a server certificate
CURVE = "prime256v1"  # EC P-256: fast to make, supported by every TLS stack a camera runs

_HOSTNAME = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$")

_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no

[dn]

[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
subjectAltName = {san}
"""


class CertificateError(BrokerError):
    """openssl failed; the text carries its own message."""


@dataclass(frozen=True)
class CertificatePaths:
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path


def subject_alt_names(hosts: Iterable[str]) -> list[str]:
    """``DNS:``/``IP:`` entries for the server certificate: localhost, 127.0.0.1 and ::1, then ``hosts``."""
    names: list[str] = []
    for host in (*DEFAULT_HOSTS, *hosts):
        try:
            entry = f"IP:{ipaddress.ip_address(host)}"
        except ValueError:
            if not _HOSTNAME.match(host) or len(host) > 253:
                raise ValueError(f"host {host!r} is neither an IP address nor a DNS name") from None
            entry = f"DNS:{host.lower()}"
        if entry not in names:
            names.append(entry)
    return names


def _private_file(path: Path) -> None:
    """An empty file only the owner can read, for openssl to write a key into (no readable moment)."""
    path.unlink(missing_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


def _openssl(*args: str) -> None:
    command = [find_tool("openssl", package="openssl"), *args]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise CertificateError(f"openssl {args[0]} failed ({result.returncode}): {result.stderr.strip()[-1000:]}")


def make_certificates(folder: str | Path, hosts: Iterable[str] = (), organisation: str = "Emo7ion") \
        -> CertificatePaths:
    """Write ``ca.crt``/``ca.key`` and ``server.crt``/``server.key`` (keys 0600) into ``folder``; the server
    certificate names localhost, 127.0.0.1, ::1 and ``hosts`` (names or addresses clients connect to)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    san = subject_alt_names(hosts)
    paths = CertificatePaths(folder / "ca.crt", folder / "ca.key", folder / "server.crt", folder / "server.key")
    named = [name.split(":", 1)[1] for name in san if name.startswith("DNS:") and "*" not in name]
    common_name = next((name for name in named if name != "localhost"), "localhost")
    for key in (paths.ca_key, paths.server_key):
        _private_file(key)
    with tempfile.TemporaryDirectory(prefix="emo7ion-certs-") as scratch:
        config = Path(scratch) / "openssl.cnf"
        config.write_text(_OPENSSL_CONFIG.format(san=", ".join(san)))
        request = Path(scratch) / "server.csr"
        new_key = ("-newkey", "ec", "-pkeyopt", f"ec_paramgen_curve:{CURVE}", "-nodes")
        _openssl("req", "-x509", *new_key, "-config", str(config), "-extensions", "ca",
                 "-subj", f"/O={organisation}/CN={organisation} broker CA", "-days", str(CA_DAYS),
                 "-keyout", str(paths.ca_key), "-out", str(paths.ca_cert))
        _openssl("req", "-new", *new_key, "-config", str(config), "-subj", f"/O={organisation}/CN={common_name}",
                 "-keyout", str(paths.server_key), "-out", str(request))
        _openssl("x509", "-req", "-in", str(request), "-CA", str(paths.ca_cert), "-CAkey", str(paths.ca_key),
                 "-set_serial", f"0x{secrets.token_hex(16)}", "-days", str(SERVER_DAYS),
                 "-extfile", str(config), "-extensions", "server", "-out", str(paths.server_cert))
    for key in (paths.ca_key, paths.server_key):
        key.chmod(0o600)
    for cert in (paths.ca_cert, paths.server_cert):
        cert.chmod(0o644)
    return paths
