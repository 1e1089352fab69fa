"""Outbound HTTP that a curator's URL may not turn against the server's own network.

Every address a host resolves to must be a public one (not loopback, private, link-local,
multicast, reserved or unspecified), unless an operator allowed that host by name
(``DISTILLERY_TEACHER_HOSTS``). The check runs when the socket connects, on the addresses
actually dialled, so a DNS answer that changes between registration and use (rebinding) is
caught too. Redirects are never followed and proxies from the environment are ignored: the
request goes where the check looked and nowhere else.

Hand-written because the maintained HTTP clients have no such guard built in and the one
library that had (``advocate``, on top of requests) is unmaintained; this is ~100 lines on the
standard library, which the teacher client already uses. No Django here.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import socket
import urllib.request
from collections.abc import Iterable
from urllib.parse import urlsplit


class OutboundRefused(Exception):
    """A URL points where the server must not send requests; the message is meant for the user."""


def _host_allowed(host: str, port: int, allowed: Iterable[str]) -> bool:
    """Entries are ``host`` (any port) or ``host:port``; IPv6 in brackets (``[::1]:8000``)."""
    host = host.lower().strip("[]")
    for entry in allowed:
        name, port_text = entry.strip().lower(), ""
        if name.startswith("["):
            name, _, rest = name[1:].partition("]")
            port_text = rest.lstrip(":")
        elif name.count(":") == 1:
            name, port_text = name.split(":")
        if name and name == host and (not port_text or port_text == str(port)):
            return True
    return False


def address_is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def url_parts(url: str) -> tuple[str, str, int]:
    """Scheme, host and port of an http(s) URL, or ``OutboundRefused``."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise OutboundRefused("The URL is not valid.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OutboundRefused("Give an http:// or https:// URL with a host name.")
    if parts.username or parts.password:
        raise OutboundRefused("Credentials inside the URL are not accepted; keys go in a registered variable.")
    return parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80)


def resolve_checked(host: str, port: int, allowed: Iterable[str]) -> list[tuple]:
    """The addresses to dial for host:port, all of them public unless the host is allowed."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise OutboundRefused(f"The host {host} cannot be resolved.") from None
    if not _host_allowed(host, port, allowed):
        for info in infos:
            if not address_is_public(info[4][0]):
                raise OutboundRefused(
                    f"The host {host} resolves to a loopback, private, link-local or multicast address; "
                    "only an operator can allow such a host (DISTILLERY_TEACHER_HOSTS)."
                )
    return infos


def check_url(url: str, allowed: Iterable[str]) -> None:
    """Refuse a URL whose host the server must not reach (resolved now, and again at every connect).

    A host the operator allowed is not resolved here: a service name such as ``vllm`` may resolve
    only where the worker runs.
    """
    _, host, port = url_parts(url)
    if not _host_allowed(host, port, allowed):
        resolve_checked(host, port, allowed)


def _connect(host: str, port: int, timeout, allowed: tuple[str, ...]) -> socket.socket:
    last: OSError | None = None
    for family, kind, proto, _, address in resolve_checked(host, port, allowed):
        sock = socket.socket(family, kind, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:  # type: ignore[attr-defined]
                sock.settimeout(timeout)
            sock.connect(address)
            return sock
        except OSError as error:
            sock.close()
            last = error
    raise last or OSError("no address to connect to")


class _GuardedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, allowed: tuple[str, ...] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._allowed = allowed

    def connect(self) -> None:
        self.sock = _connect(self.host, self.port, self.timeout, self._allowed)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _GuardedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, allowed: tuple[str, ...] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._allowed = allowed

    def connect(self) -> None:
        sock = _connect(self.host, self.port, self.timeout, self._allowed)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001, PLR0913
        return None  # urllib then raises HTTPError with the 3xx status


class _GuardedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__()
        self._allowed = allowed

    def http_open(self, req):  # noqa: ANN001
        return self.do_open(functools.partial(_GuardedHTTPConnection, allowed=self._allowed), req)


class _GuardedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, allowed: tuple[str, ...]) -> None:
        super().__init__()
        self._allowed = allowed

    def https_open(self, req):  # noqa: ANN001
        return self.do_open(functools.partial(_GuardedHTTPSConnection, allowed=self._allowed), req,
                            context=self._context)


def guarded_opener(allowed: Iterable[str] = ()) -> urllib.request.OpenerDirector:
    """An opener that dials only permitted addresses, follows no redirect and uses no proxy."""
    allowed = tuple(allowed)
    return urllib.request.build_opener(
        urllib.request.ProxyHandler({}), _NoRedirect(), _GuardedHTTPHandler(allowed), _GuardedHTTPSHandler(allowed)
    )
