"""Which ``Host`` headers the server answers, and whether it may listen without a token.

DNS rebinding: a page on ``evil.example`` re-points its own name at this machine, so the browser
sends ``Host: evil.example`` *and* ``Origin: http://evil.example`` — same-origin as far as the
Origin check can tell. What gives it away is the name in ``Host``: only names this server knows
itself by are answered. An IP-literal ``Host`` cannot be a rebound name (the page's origin would
be that IP, where the attacker has no script), so a publicly bound server accepts any IP address;
names need to be the machine's own, the ``--listen`` address or listed with ``--allowed-hosts``.
A token protects regardless (the attacker's page cannot carry it); the allow-list applies anyway.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import Iterable

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
ANY_HOST = "*"  # --allowed-hosts '*': answer every Host (e.g. behind a proxy that checks names)


def host_name(value: str) -> str:
    """``Host``/netloc value (``name:port``, ``[v6]:port``) → the lower-case name without port."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") > 1:  # a bare IPv6 address
        return value
    return value.partition(":")[0].rstrip(".")


def _ip(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    """True for a --listen address (or Host name) that only this machine can reach."""
    name = host_name(host) if host else ""
    ip = _ip(name)
    return name == "localhost" or (ip is not None and ip.is_loopback)


def _machine_names() -> set[str]:
    """This machine's host name, its fully qualified name and its mDNS ``.local`` name."""
    names = set()
    for lookup in (socket.gethostname, socket.getfqdn):
        try:
            name = lookup().strip().lower().rstrip(".")
        except OSError:
            continue
        if name:
            names.add(name)
    names.update(f"{n.split('.')[0]}.local" for n in list(names) if n != "localhost")
    return names


@dataclass(frozen=True)
class HostAllowList:
    """The ``Host`` names a request may carry (``names``), plus every IP literal when ``any_ip``."""

    names: frozenset[str]
    any_ip: bool = False

    @classmethod
    def for_listen(cls, listen: str, extra: Iterable[str] = ()) -> "HostAllowList":
        """Defaults: loopback names when bound to loopback; when bound publicly also any IP address,
        the machine's names and the --listen address. ``extra`` (--allowed-hosts) adds names."""
        names = set(LOOPBACK_NAMES) | {host_name(e) for e in extra if e.strip()}
        if is_loopback(listen):
            return cls(frozenset(names))
        names |= _machine_names() | {host_name(listen)}
        return cls(frozenset(n for n in names if n), any_ip=True)

    def allows(self, host: str) -> bool:
        name = host_name(host)
        if ANY_HOST in self.names or name in self.names:
            return True
        ip = _ip(name)
        return ip is not None and (self.any_ip or ip.is_loopback)


def listen_refusal(host: str, token: str | None, allow_no_auth: bool) -> str | None:
    """Why the server must not start: a non-loopback bind with neither a token nor --allow-no-auth."""
    if is_loopback(host) or token or allow_no_auth:
        return None
    return (f"refusing to listen on {host} without --auth-token: anyone who can reach this port could "
            "run jobs, upload files and read your outputs. Pass --auth-token TOKEN, or --allow-no-auth "
            "if every machine on this network is trusted.")


def listen_warning(host: str, token: str | None) -> str | None:
    """The warning printed when binding beyond loopback (None for loopback addresses)."""
    if is_loopback(host):
        return None
    text = f"[latentgraph] WARNING: listening on {host}: the API is reachable from other machines"
    if token:
        return text
    bar = "[latentgraph] " + "!" * 72
    return "\n".join([bar, text + " and has NO authentication (--allow-no-auth):",
                      "[latentgraph] anyone on the network can run jobs, upload files and read outputs.",
                      "[latentgraph] Use --auth-token TOKEN unless every machine on this network is trusted.",
                      bar])
