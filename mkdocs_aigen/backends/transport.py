"""HTTP for the request path, from the standard library: one kept-alive connection per
worker thread, one POST at a time on it.

Why not ``httpx2`` (the openai SDK's own HTTP library, installed anyway)? Measured on a
2-core machine, importing it and building its client costs 0.1-0.2 s of CPU (its pool
loads ``anyio``, and ``trio`` where installed, for async code a build never runs) before
the first request can leave, and its pool costs more CPU a request than the request
itself. A worker thread of the engine sends one request at a time, so a connection of
its own is the whole pool ``http.client`` needs. What httpx would add is kept:

- environment proxies (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``, through
  ``urllib.request``), an ``https://`` endpoint through a ``CONNECT`` tunnel;
- certificates from ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``, else certifi's bundle (what
  httpx and the SDK trust), else the system's;
- a connection the server closed while idle is noticed before it is reused, so a request
  is never sent into a dead socket (and never sent twice).
"""

from __future__ import annotations

import base64
import http.client
import os
import select
import socket
import ssl
import threading
import urllib.request
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


@dataclass(frozen=True)
class Reply:
    """One HTTP response, read whole."""

    status: int
    reason: str
    #: Header names in lower case.
    headers: dict[str, str]
    body: bytes


class TransportError(Exception):
    """The request got no HTTP response: ``timed_out`` tells a timeout from the rest."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class Transport:
    """POSTs to one URL, from any number of threads, each on its own connection."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = dict(headers)
        self._proxy = _proxy_for(url, self._host)
        if self._proxy is not None and not self._https:
            # A plain-HTTP request through a proxy names the whole URL.
            self._path = url
            self._headers.update(self._proxy.authorization)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._open: set[http.client.HTTPConnection] = set()
        self._context: ssl.SSLContext | None = None

    def post(self, body: bytes, headers: dict[str, str], timeout: float) -> Reply:
        """Send one POST and read the whole answer; :class:`TransportError` when no HTTP
        answer came (refused, dropped, timed out)."""
        connection = self._connection(timeout)
        try:
            connection.request("POST", self._path, body, {**self._headers, **headers})
            response = connection.getresponse()
            content = response.read()
        except TimeoutError:
            self._discard(connection)
            raise TransportError("the request timed out", timed_out=True) from None
        except (OSError, http.client.HTTPException) as error:
            self._discard(connection)
            raise TransportError(_describe(error)) from None
        if response.will_close:
            self._discard(connection)
        return Reply(
            status=response.status,
            reason=response.reason,
            headers={name.lower(): value for name, value in response.getheaders()},
            body=content,
        )

    def close(self) -> None:
        """Close every connection of every thread."""
        with self._lock:
            connections, self._open = self._open, set()
        for connection in connections:
            connection.close()

    # -- connections -----------------------------------------------------------------

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        connection: http.client.HTTPConnection | None = getattr(self._local, "connection", None)
        if connection is not None and _closed_by_peer(connection):
            self._discard(connection)
            connection = None
        if connection is None:
            connection = self._connect(timeout)
            self._local.connection = connection
            with self._lock:
                self._open.add(connection)
        elif connection.sock is not None:
            connection.sock.settimeout(timeout)
        connection.timeout = timeout
        return connection

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        proxy = self._proxy
        host, port = (proxy.host, proxy.port) if proxy is not None else (self._host, self._port)
        if not self._https:
            return http.client.HTTPConnection(host, port, timeout=timeout)
        connection = http.client.HTTPSConnection(
            host, port, timeout=timeout, context=self._tls_context()
        )
        if proxy is not None:
            connection.set_tunnel(self._host, self._port, headers=proxy.authorization)
        return connection

    def _discard(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        with self._lock:
            self._open.discard(connection)
        if getattr(self._local, "connection", None) is connection:
            self._local.connection = None

    def _tls_context(self) -> ssl.SSLContext:
        # Built once, on the first https connection: loading a bundle costs ~50 ms.
        with self._lock:
            if self._context is None:
                self._context = _tls_context()
            return self._context


@dataclass(frozen=True)
class _Proxy:
    host: str
    port: int
    #: ``Proxy-Authorization`` when the proxy URL carries credentials.
    authorization: dict[str, str]


def _proxy_for(url: str, host: str) -> _Proxy | None:
    """The environment's proxy for ``url``, if any and ``NO_PROXY`` does not exempt it."""
    scheme = urlsplit(url).scheme
    proxy_url = urllib.request.getproxies().get(scheme)
    if not proxy_url or urllib.request.proxy_bypass(host):
        return None
    if "://" not in proxy_url:
        proxy_url = f"http://{proxy_url}"
    parts = urlsplit(proxy_url)
    if not parts.hostname:
        return None
    authorization = {}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        token = base64.b64encode(pair.encode("utf-8")).decode("ascii")
        authorization["Proxy-Authorization"] = f"Basic {token}"
    return _Proxy(parts.hostname, parts.port or 80, authorization)


def _tls_context() -> ssl.SSLContext:
    cafile = os.environ.get("SSL_CERT_FILE") or None
    capath = os.environ.get("SSL_CERT_DIR") or None
    if cafile is None and capath is None:
        try:
            import certifi  # installed with the openai SDK

            cafile = certifi.where()
        except ImportError:
            pass  # the system's store
    return ssl.create_default_context(cafile=cafile, capath=capath)


def _closed_by_peer(connection: http.client.HTTPConnection) -> bool:
    """Whether an idle kept-alive connection has been closed (or written to) by the
    server: readable with nothing asked means end of file or garbage."""
    sock = connection.sock
    if sock is None:
        return False
    try:
        if hasattr(select, "poll"):  # select() cannot watch descriptors past 1023
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            return bool(poller.poll(0))
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _describe(error: BaseException) -> str:
    if isinstance(error, http.client.RemoteDisconnected):
        return "the server closed the connection without answering"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.gaierror):
        return f"cannot resolve the host: {error.strerror or error}"
    if isinstance(error, ssl.SSLError):
        return f"TLS failed: {error.reason or error}"
    return f"{type(error).__name__}: {error}"
