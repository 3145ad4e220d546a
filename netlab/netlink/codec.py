"""Netlink attributes: type-length-value records, 4-byte aligned, nested by packing one inside another.

Nothing here knows about links or addresses: `rtnl.py` declares the messages netlab uses on top of this.
"""

from __future__ import annotations

import struct

ATTR = struct.Struct("=HH")  # nlattr: length, type
NLA_F_NESTED = 0x8000
NLA_TYPE_MASK = 0x3FFF


def attr(kind: int, data: bytes) -> bytes:
    n = 4 + len(data)
    return ATTR.pack(n, kind) + data + b"\0" * (-n & 3)


def string(kind: int, text: str) -> bytes:
    return attr(kind, text.encode() + b"\0")


def u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def attributes(data: bytes, offset: int, end: int) -> dict[int, bytes]:
    """The top-level attributes in data[offset:end], by type (nested ones stay packed)."""
    found = {}
    while offset + 4 <= end:
        length, kind = ATTR.unpack_from(data, offset)
        if length < 4:
            break
        found[kind & NLA_TYPE_MASK] = data[offset + 4:offset + length]
        offset += (length + 3) & ~3
    return found


def text(value: bytes | None) -> str | None:
    return None if value is None else value.rstrip(b"\0").decode(errors="replace")
