"""The HTTP Host check against DNS rebinding (issue 20 part 5).

A web page on ``evil.example`` whose name the attacker then points at 127.0.0.1 makes the browser send its
requests to the aggregator on loopback, where the default needs no token: the browser believes it talks to
``evil.example`` and lets the page read the answers. Such requests always carry ``Host: evil.example``, so answering
only the names the aggregator is really reached by closes it: localhost, 127.0.0.1, ::1 and ``host`` always, the
names in ``allowed_hosts``, and, for a wildcard bind (0.0.0.0, ::), any IP address (rebinding needs a name).
"""

from __future__ import annotations

import ipaddress

from starlette.responses import JSONResponse

from emo7ion.aggregator.config import AggregatorConfig, check_host_names

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARD_BINDS = ("0.0.0.0", "::", "")


def host_name(header: str) -> str:
    """The name in a Host header, without its port or an IPv6 address's brackets, lower-cased, no final dot."""
    if header.startswith("["):
        name = header[1:header.find("]")] if "]" in header else header[1:]
    elif header.count(":") == 1:
        name = header.partition(":")[0]
    else:
        name = header  # a bare name, or an IPv6 address without brackets
    return name.strip().lower().rstrip(".")


class AllowedHosts:
    def __init__(self, config: AggregatorConfig):
        names = {*LOCAL_NAMES, host_name(config.host)} | {host_name(n) for n in check_host_names(config.allowed_hosts)}
        self.everything = "*" in names
        self.suffixes = tuple(name[1:] for name in names if name.startswith("*."))  # "*.example.org": ".example.org"
        self.names = frozenset(name for name in names if not name.startswith("*"))
        self.any_address = config.host in WILDCARD_BINDS

    def allows(self, header: str) -> bool:
        name = host_name(header)
        if self.everything or name in self.names or (self.suffixes and name.endswith(self.suffixes)):
            return True
        if self.any_address:
            try:
                ipaddress.ip_address(name)
                return True
            except ValueError:
                return False
        return False


class HostCheck:
    """ASGI middleware: a request whose Host is not allowed is answered 400 before any route sees it. A request
    without a Host header (HTTP/1.0 tools) passes: a browser always sends one."""

    def __init__(self, app, hosts: AllowedHosts):
        self.app, self.hosts = app, hosts

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] in ("http", "websocket"):
            given = [value.decode("latin-1") for key, value in scope["headers"] if key == b"host"]
            if len(given) > 1 or (given and not self.hosts.allows(given[0])):
                shown = given[0][:80] if len(given) == 1 else f"{len(given)} Host headers"
                detail = (f"this aggregator does not answer to Host {shown!r}; if that is its name, add it to "
                          "allowed_hosts")
                await JSONResponse({"detail": detail}, status_code=400)(scope, receive, send)
                return
        await self.app(scope, receive, send)
