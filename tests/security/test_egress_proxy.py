"""The egress proxy on its own, spoken to over raw sockets as Chromium (or anything else) would.

The escape tests show it holds against a real page through the MCP door; these pin the
protocol edges a page cannot easily reach: what a gate answers to each kind of request, that
a refusal never opens an upstream connection, that asset requests are served on a kept-alive
connection, that a second request on one connection is judged again, and that malformed or
oversized heads are refused without taking the gate down.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.assets import AssetServer
from engine.egress import EgressGuard
from engine.egress_proxy import EgressProxy, Gate

from security.harness import RecordingServer

ASSET_ORIGIN = ""  # set by the fixture: the asset server's origin, answered by the proxy itself


World = tuple[EgressProxy, Gate, list[tuple[str, str]], RecordingServer, RecordingServer]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    """A proxy with one gate that allows the asset origin and `allowed`, and a `sink` it must not reach."""
    global ASSET_ORIGIN
    (tmp_path / "page.html").write_text("<p>asset</p>")
    assets = AssetServer().start()
    assets.mount("/", tmp_path)
    ASSET_ORIGIN = assets.origin
    allowed, sink = RecordingServer(), RecordingServer()
    refused: list[tuple[str, str]] = []
    proxy = EgressProxy("test-egress-proxy", ASSET_ORIGIN, assets.mounts.resolve)
    guard = EgressGuard([ASSET_ORIGIN, allowed.origin], lambda url, kind, page: refused.append((url, kind)))
    gate = proxy.open_gate(guard)
    try:
        yield proxy, gate, refused, allowed, sink
    finally:
        proxy.close_gate(gate)
        proxy.stop()
        assets.stop()
        allowed.stop()
        sink.stop()


def exchange(gate: Gate, data: bytes, *, read_until_close: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", gate.port), timeout=5) as conn:
        conn.sendall(data)
        if not read_until_close:
            return conn.recv(65536)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
        return b"".join(chunks)


def test_an_undeclared_origin_is_refused_without_a_connection(world):
    proxy, gate, refused, _allowed, sink = world
    answer = exchange(gate, f"GET {sink.origin}/x HTTP/1.1\r\nHost: a\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.1 403")
    navigation = exchange(gate, f"GET {sink.origin}/nav HTTP/1.1\r\nSec-Fetch-Mode: navigate\r\n\r\n".encode())
    assert navigation.startswith(b"HTTP/1.1 204"), "a refused navigation leaves the page where it was"
    tunnel = exchange(gate, f"CONNECT 127.0.0.1:{sink.port} HTTP/1.1\r\n\r\n".encode())
    assert tunnel.startswith(b"HTTP/1.1 403")
    prefetch = exchange(gate, f"GET {sink.origin}/p HTTP/1.1\r\nSec-Purpose: prefetch\r\n\r\n".encode())
    assert prefetch.startswith(b"HTTP/1.1 403")
    assert sink.connections == 0 and sink.hits == []
    assert refused == [(f"{sink.origin}/x", "request"), (f"{sink.origin}/nav", "navigation"),
                       (f"127.0.0.1:{sink.port}", "connect"), (f"{sink.origin}/p", "prefetch")]


def test_an_allowed_origin_is_forwarded_one_request_per_connection(world):
    _proxy, gate, refused, allowed, sink = world
    answer = exchange(gate, f"GET {allowed.origin}/ok?q=1 HTTP/1.1\r\nProxy-Connection: keep-alive\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.0 200") and b"Connection: close" in answer and answer.endswith(b"</p>")
    assert [hit.path for hit in allowed.hits] == ["/ok?q=1"]
    assert "Proxy-Connection" not in allowed.hits[0].headers
    # A second request pipelined on the same connection, for an undeclared origin, never leaves.
    both = (f"GET {allowed.origin}/one HTTP/1.1\r\n\r\n" f"GET {sink.origin}/two HTTP/1.1\r\n\r\n").encode()
    exchange(gate, both)
    assert sink.connections == 0 and refused == []


def test_a_redirect_hop_to_an_undeclared_origin_is_a_new_request_and_refused(world):
    _proxy, gate, refused, allowed, sink = world
    allowed.redirect_to = sink.origin
    first = exchange(gate, f"GET {allowed.origin}/hop HTTP/1.1\r\n\r\n".encode())
    assert first.startswith(b"HTTP/1.0 302") and f"Location: {sink.origin}/hop".encode() in first
    second = exchange(gate, f"GET {sink.origin}/hop HTTP/1.1\r\nUpgrade-Insecure-Requests: 1\r\n\r\n".encode())
    assert second.startswith(b"HTTP/1.1 204")
    assert refused == [(f"{sink.origin}/hop", "navigation")] and sink.connections == 0


def test_a_tunnel_to_an_allowed_endpoint_carries_bytes_both_ways(world):
    _proxy, gate, _refused, allowed, _sink = world
    with socket.create_connection(("127.0.0.1", gate.port), timeout=5) as conn:
        conn.sendall(f"CONNECT 127.0.0.1:{allowed.port} HTTP/1.1\r\n\r\n".encode())
        assert conn.recv(1024).startswith(b"HTTP/1.1 200")
        conn.sendall(b"GET /tunnelled HTTP/1.0\r\n\r\n")
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
    assert reply.startswith(b"HTTP/1.0 200") and [hit.path for hit in allowed.hits] == ["/tunnelled"]


def test_assets_are_served_by_the_proxy_on_a_kept_alive_connection(world):
    _proxy, gate, refused, _allowed, _sink = world
    with socket.create_connection(("127.0.0.1", gate.port), timeout=5) as conn:
        for _ in range(3):
            conn.sendall(f"GET {ASSET_ORIGIN}/page.html HTTP/1.1\r\n\r\n".encode())
            reply = conn.recv(65536)
            while not reply.endswith(b"</p>") and (more := conn.recv(65536)):
                reply += more
            assert reply.startswith(b"HTTP/1.1 200") and reply.endswith(b"<p>asset</p>"), reply
            assert b"Content-Type: text/html" in reply and b"Connection: keep-alive" in reply
        conn.sendall(f"GET {ASSET_ORIGIN}/missing.html HTTP/1.1\r\n\r\n".encode())
        assert conn.recv(65536).startswith(b"HTTP/1.1 404")
        conn.sendall(f"HEAD {ASSET_ORIGIN}/../etc/passwd HTTP/1.1\r\n\r\n".encode())
        assert conn.recv(65536).startswith(b"HTTP/1.1 404")
    assert refused == []


@pytest.mark.parametrize("head", [
    b"GARBAGE\r\n\r\n",
    b"GET /relative HTTP/1.1\r\n\r\n",
    b"GET https://127.0.0.1/ HTTP/1.1\r\n\r\n",
    b"CONNECT nowhere HTTP/1.1\r\n\r\n",
    b"GET http://127.0.0.1:9/ HTTP/1.1\r\nno colon here\r\n\r\n",
    b"GET http://127.0.0.1:9/ HTTP/1.1\r\n: empty name\r\n\r\n",
])
def test_malformed_heads_are_refused_and_the_gate_keeps_serving(world, head):
    _proxy, gate, refused, _allowed, sink = world
    assert exchange(gate, head).startswith(b"HTTP/1.1 400")
    assert exchange(gate, f"GET {ASSET_ORIGIN}/page.html HTTP/1.1\r\n\r\n".encode(),
                    read_until_close=False).startswith(b"HTTP/1.1 200")
    assert sink.connections == 0 and refused == []


def test_an_oversized_head_is_dropped(world):
    _proxy, gate, refused, _allowed, sink = world
    try:
        answer = exchange(gate, f"GET {sink.origin}/ HTTP/1.1\r\nX: ".encode() + b"a" * 200_000 + b"\r\n\r\n")
    except ConnectionError:
        answer = b""
    assert answer == b""
    assert sink.connections == 0 and refused == []


def test_a_closed_gate_accepts_nothing(world):
    proxy, gate, _refused, _allowed, _sink = world
    proxy.close_gate(gate)
    proxy.sync()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", gate.port), timeout=2).close()
