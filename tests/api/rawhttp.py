"""Raw sockets for the server-limit tests: half-sent requests, trickled bytes, clients that never read."""

from __future__ import annotations

import socket
import time

HALF_REQUEST = b"GET /livez HTTP/1.1\r\nHost: api\r\n"  # the blank line that ends the head never comes


def connect(port: int, payload: bytes = b"", *, receive_buffer: int | None = None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    if payload:
        sock.sendall(payload)
    return sock


def closed_by_server(sock: socket.socket, within: float) -> bytes | None:
    """What the server sent before closing, or None if it kept the connection open for `within` s."""
    received = b""
    deadline = time.monotonic() + within
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return None
        except (ConnectionResetError, BrokenPipeError):
            return received
        if not chunk:
            return received
        received += chunk
    return None


def trickle(sock: socket.socket, data: bytes, interval: float) -> bool:
    """Send `data` a byte at a time; False as soon as the server has closed the connection."""
    for byte in data:
        try:
            sock.sendall(bytes([byte]))
        except OSError:
            return False
        time.sleep(interval)
    return True


def read_response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body), however the server split its writes."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body
