"""Why an MQTT connection failed, in one line a person can act on: the broker's host:port and the cause
(unreachable, refused, TLS verification, not authorised), shared by the edge agent and the aggregator.

paho retries failed connections by itself and keeps the cause to itself; :func:`describe_failure` reads it
while paho handles it (its ``on_connect_fail`` runs inside the ``except`` that caught it).
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import sys

from emo7ion.core.service.errors import UserError

PERMANENT_REASONS = {0x85: "the client id is not valid", 0x86: "bad user name or password",
                     0x87: "not authorised", 0x8A: "banned", 0x8C: "bad authentication method"}
"""CONNACK reason codes (MQTT 5; paho maps the v3.1.1 ones onto them) that retrying cannot fix."""


class BrokerRefusedError(UserError):
    """The broker refused these credentials: a retry would be refused again, so the process stops."""


class _NoSocketNoise(logging.Filter):
    """paho logs "Client is not connected ... MQTT_CS_CONNECTING" at ERROR on every retry without the cause;
    ``on_connect_fail`` reports the cause instead, so that line is demoted to DEBUG."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and str(record.msg).startswith("Client is not connected"):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def paho_logger() -> logging.Logger:
    """The logger to hand ``client.enable_logger``: paho's own, without its cause-less retry errors."""
    logger = logging.getLogger("paho")
    if not any(isinstance(f, _NoSocketNoise) for f in logger.filters):
        logger.addFilter(_NoSocketNoise())
    return logger


def address(host: str, port: int) -> str:
    return f"{host}:{port}"


def is_permanent(reason_code) -> bool:
    return getattr(reason_code, "value", None) in PERMANENT_REASONS


def describe_refusal(host: str, port: int, reason_code, username: str | None) -> str:
    """The broker answered and said no (CONNACK with a failure code)."""
    who = f"user {username!r}" if username else "an anonymous client (no --username)"
    value = getattr(reason_code, "value", None)
    if value in (0x86, 0x87):
        return (f"broker {address(host, port)} refused {who}: {PERMANENT_REASONS[value]} (check the user name and "
                "password, and that the broker has loaded the account: mosquitto reloads its password file on SIGHUP)")
    if value in PERMANENT_REASONS:
        return f"broker {address(host, port)} refused {who}: {PERMANENT_REASONS[value]}"
    return f"broker {address(host, port)} refused the connection: {reason_code}"


def describe_error(host: str, port: int, error: BaseException | None, tls: bool = False) -> str:
    """A socket or TLS error met while connecting, named by its cause."""
    where = address(host, port)
    if error is None:
        return f"cannot connect to broker {where}"
    if isinstance(error, ssl.SSLCertVerificationError):
        return (f"TLS verification of broker {where} failed: {error.verify_message or error.reason} (is --ca-file "
                "the CA that signed the broker's certificate, and the host name the one in it?)")
    if isinstance(error, ssl.SSLError):
        return f"TLS handshake with broker {where} failed: {error.reason or error} (is it a TLS listener?)"
    if isinstance(error, ConnectionRefusedError):
        return f"broker {where} refused the connection (nothing listens there: is the broker running, the port right?)"
    if isinstance(error, socket.gaierror):
        return f"broker host {host!r} not found ({error.strerror or error})"
    if isinstance(error, TimeoutError | socket.timeout):
        return f"broker {where} did not answer (timed out: a firewall, or the wrong host?)"
    if isinstance(error, ConnectionResetError) and tls is False:
        return f"broker {where} closed the connection at once (a TLS listener? then use mqtts://)"
    if isinstance(error, OSError) and error.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH):
        return f"broker {where} is unreachable ({error.strerror})"
    return f"cannot connect to broker {where}: {error}"


def describe_failure(host: str, port: int, tls: bool = False) -> str:
    """:func:`describe_error` for the exception being handled now (inside paho's ``on_connect_fail``)."""
    return describe_error(host, port, sys.exc_info()[1], tls)
