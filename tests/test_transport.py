"""The request path's HTTP (``backends/transport.py``) against real sockets on 127.0.0.1:
the fake server, a forwarding proxy and a server that closes idle connections."""

from __future__ import annotations

import http.server
import json
import socket
import socketserver
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from mkdocs_aigen.backends.transport import Transport, TransportError
from tests.fake_server import FakeOpenAI

BODY = json.dumps(
    {"model": "m", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 20}
).encode()


def test_answers_over_one_kept_alive_connection_per_thread() -> None:
    with FakeOpenAI() as server:
        transport = Transport(server.base_url + "/chat/completions", {})
        try:
            replies = [transport.post(BODY, {}, 10) for _ in range(3)]
            assert len(transport._open) == 1
            workers = [
                threading.Thread(target=transport.post, args=(BODY, {}, 10)) for _ in range(4)
            ]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            assert len(transport._open) == 5
        finally:
            transport.close()
        assert len(transport._open) == 0
    assert [reply.status for reply in replies] == [200, 200, 200]
    assert json.loads(replies[0].body)["choices"][0]["message"]["content"]
    assert replies[0].headers["content-type"].startswith("application/json")
    assert len(server.log) == 7


class _OneAnswerThenClose(socketserver.BaseRequestHandler):
    """Answers one request per connection, keep-alive by its headers, then closes: the
    next request on that connection would meet a dead socket."""

    connections = 0

    def handle(self) -> None:
        type(self).connections += 1
        data = b""
        while b"\r\n\r\n" not in data:
            data += self.request.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        while len(rest) < length:
            rest += self.request.recv(65536)
        answer = b'{"ok": true}'
        self.request.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: keep-alive\r\n\r\n%s" % (len(answer), answer)
        )


def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), _OneAnswerThenClose) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.server_address[1]
        transport = Transport(f"http://127.0.0.1:{port}/v1/chat/completions", {})
        try:
            for _ in range(3):
                assert transport.post(BODY, {}, 10).body == b'{"ok": true}'
                # Let the server's close reach this side before the next request.
                threading.Event().wait(0.05)
        finally:
            transport.close()
            server.shutdown()
    assert _OneAnswerThenClose.connections == 3


def test_a_timeout_and_a_refused_connection_are_told_apart() -> None:
    with FakeOpenAI(latency=2.0) as server:
        transport = Transport(server.base_url + "/chat/completions", {})
        with pytest.raises(TransportError) as slow:
            transport.post(BODY, {}, 0.3)
        transport.close()
    assert slow.value.timed_out
    with socket.socket() as spare:
        spare.bind(("127.0.0.1", 0))
        port = spare.getsockname()[1]  # bound but not listening: refused
        transport = Transport(f"http://127.0.0.1:{port}/v1/chat/completions", {})
        with pytest.raises(TransportError) as refused:
            transport.post(BODY, {}, 5)
    assert not refused.value.timed_out
    assert "refused" in str(refused.value)


@contextmanager
def forwarding_proxy(target: str) -> Iterator[tuple[int, list[dict[str, Any]]]]:
    """A plain HTTP proxy that forwards every request to ``target`` (the fake server's
    root URL) and records what it was asked; yields its port and the records."""
    seen: list[dict[str, Any]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append({"line": self.requestline, "headers": dict(self.headers)})
            path = "/" + self.path.split("://", 1)[1].split("/", 1)[1]
            forward = urllib.request.Request(
                target + path, data=body, headers={"Content-Type": "application/json"}
            )
            opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
            with opener.open(forward, timeout=10) as answer:
                content = answer.read()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        yield proxy.server_address[1], seen
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_environment_proxy_with_credentials_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTP_PROXY", "no_proxy", "NO_PROXY", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    with FakeOpenAI() as server, forwarding_proxy(server.root_url.rstrip("/")) as proxy:
        proxy_port, seen = proxy
        monkeypatch.setenv("HTTP_PROXY", f"http://user:p%40ss@127.0.0.1:{proxy_port}")
        url = "http://api.example.test/v1/chat/completions"  # resolved by the proxy only
        transport = Transport(url, {})
        try:
            assert transport.post(BODY, {}, 10).status == 200
        finally:
            transport.close()
        assert seen[0]["line"].startswith(f"POST {url} ")
        assert seen[0]["headers"]["Proxy-Authorization"] == "Basic dXNlcjpwQHNz"  # user:p@ss
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        direct = Transport(server.base_url + "/chat/completions", {})
        try:
            assert direct.post(BODY, {}, 10).status == 200
        finally:
            direct.close()
        assert len(seen) == 1  # NO_PROXY: straight to the server
    assert len(server.log) == 2
