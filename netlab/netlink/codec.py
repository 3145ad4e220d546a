"""Netlink attributes as tables: a Table maps attribute types to (field name, codec), and encodes a dict of
fields into type-length-value records or decodes records back into a dict, like pyroute2's nla_map but
selective (`only=`) and with one tight loop, because a 1000-namespace link dump is decoded with it.

The shapes the kernel uses: scalars, strings, raw bytes, MAC addresses, nested tables, an attribute type
that repeats, fixed C structs, a struct followed by attributes (tc netem options, a veth peer) and an
array of length-prefixed structs with attributes (route nexthops).

Nothing here knows about links or addresses: `rtnl.py` declares the messages netlab uses with these.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

ATTR = struct.Struct("=HH")  # nlattr: length, type
NLA_F_NESTED = 0x8000
NLA_F_NET_BYTEORDER = 0x4000
NLA_TYPE_MASK = 0x3FFF


def attr(kind: int, data: bytes) -> bytes:
    """One attribute: its length counts the header and the data, not the padding to 4 bytes after it."""
    n = 4 + len(data)
    return ATTR.pack(n, kind) + data + b"\0" * (-n & 3)


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) & 3)


class Codec(Protocol):
    """An attribute's payload: `nested` says whether its type carries NLA_F_NESTED when encoded."""

    nested: bool

    def encode(self, value: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...


class Scalar:
    """A number packed with a `struct` format (byte order included)."""

    nested = False
    encode: Callable[[int], bytes]
    decode: Callable[[bytes], int]

    def __init__(self, fmt: str):
        packer = struct.Struct(fmt)
        unpack = packer.unpack
        self.encode = packer.pack
        self.decode = lambda data: unpack(data)[0]  # a closure: half the cost of a method, on the hot path


class Flag:
    """Present means True; no payload. False or None in a Table's values leaves the attribute out."""

    nested = False

    def encode(self, value: bool) -> bytes:
        return b""

    def decode(self, data: bytes) -> bool:
        return True


class String:
    """Text. `terminated`: sent with its NUL (most string attributes); the NUL is stripped on decode."""

    nested = False

    def __init__(self, terminated: bool = True):
        self._end = b"\0" if terminated else b""

    def encode(self, value: str) -> bytes:
        return value.encode() + self._end

    def decode(self, data: bytes) -> str:
        return data.rstrip(b"\0").decode(errors="replace")


class Bytes:
    """Raw payload: an address in network order, or attributes that another table decodes."""

    nested = False

    def encode(self, value: bytes) -> bytes:
        return bytes(value)

    def decode(self, data: bytes) -> bytes:
        return data


class Mac:
    """A link-layer address: bytes on the wire, "aa:bb:cc:dd:ee:ff" (lower case) in a dict."""

    nested = False

    def encode(self, value: str) -> bytes:
        return bytes.fromhex(value.replace(":", ""))

    def decode(self, data: bytes) -> str:
        return data.hex(":")


U8, U16, U32, U64 = Scalar("=B"), Scalar("=H"), Scalar("=I"), Scalar("=Q")
S32, S64 = Scalar("=i"), Scalar("=q")
BE16, BE32 = Scalar(">H"), Scalar(">I")  # network byte order: ports, VNIs
FLAG, STRING, BYTES, MAC = Flag(), String(), Bytes(), Mac()


class Repeated:
    """An attribute type that occurs several times in one table, each time with `codec`'s payload; the
    Table collects them into a list, in wire order (and encodes a list into one attribute per item)."""

    def __init__(self, codec: Codec):
        self.codec = codec
        self.nested = codec.nested

    def encode(self, value: Any) -> bytes:
        return self.codec.encode(value)

    def decode(self, data: bytes) -> Any:
        return self.codec.decode(data)


# What Table.decode keeps per attribute type: field name, payload decoder, whether the type repeats.
_Decoder = tuple[str, Callable[[bytes], Any], bool]


class Table:
    """Attributes by type: `{attr_type: (field_name, codec)}`, encoded in this order."""

    def __init__(self, name: str, attrs: dict[int, tuple[str, Codec]]):
        self.name = name
        self.attrs = attrs
        self.fields = frozenset(field for field, _ in attrs.values())
        if len(self.fields) != len(attrs):
            raise ValueError(f"{name}: a field name is used twice")
        self._all = self._decoders(self.fields)
        self._only: dict[frozenset[str], dict[int, _Decoder]] = {}

    def _decoders(self, fields: frozenset[str]) -> dict[int, _Decoder]:
        # Every flag combination of a type is a key of its own, so the decode loop needs no mask.
        found: dict[int, _Decoder] = {}
        for kind, (field, codec) in self.attrs.items():
            if field in fields:
                repeated = isinstance(codec, Repeated)
                inner = codec.codec if isinstance(codec, Repeated) else codec
                decode = inner.table.decode if isinstance(inner, Nested) else inner.decode  # one call less
                for flags in (0, NLA_F_NESTED, NLA_F_NET_BYTEORDER, NLA_F_NESTED | NLA_F_NET_BYTEORDER):
                    found[kind | flags] = (field, decode, repeated)
        return found

    def encode(self, values: Mapping[str, Any]) -> bytes:
        """The attributes of the fields present and not None (a FLAG also not False), in table order."""
        unknown = values.keys() - self.fields
        if unknown:
            raise KeyError(f"{self.name} has no field {', '.join(sorted(unknown))}")
        out = []
        for kind, (field, codec) in self.attrs.items():
            value = values.get(field)
            if value is None or (value is False and isinstance(codec, Flag)):
                continue
            if codec.nested:
                kind |= NLA_F_NESTED
            if isinstance(codec, Repeated):
                out += [attr(kind, codec.encode(item)) for item in value]
            else:
                out.append(attr(kind, codec.encode(value)))
        return b"".join(out)

    def decode(self, data: bytes, offset: int = 0, end: int | None = None,
               only: frozenset[str] | None = None) -> dict[str, Any]:
        """The fields in data[offset:end] (all, or `only` these); unknown types are skipped, and the
        walk stops at a record whose length does not fit."""
        if only is None:
            decoders = self._all
        else:
            decoders = self._only.get(only) or self._select(only)
        if end is None:
            end = len(data)
        out: dict[str, Any] = {}
        unpack = ATTR.unpack_from
        # Most types are skipped: `in` costs less than a .get() call, and a length is checked against
        # `end` only where the payload is read.
        while offset + 4 <= end:
            length, kind = unpack(data, offset)
            if length < 4:
                break
            if kind in decoders:
                if offset + length > end:
                    break
                field, decode, repeated = decoders[kind]
                value = decode(data[offset + 4:offset + length])
                if repeated:
                    out.setdefault(field, []).append(value)
                else:
                    out[field] = value
            offset += (length + 3) & ~3
        return out

    def _select(self, only: frozenset[str]) -> dict[int, _Decoder]:
        if only - self.fields:
            raise KeyError(f"{self.name} has no field {', '.join(sorted(only - self.fields))}")
        self._only[only] = decoders = self._decoders(only)
        return decoders


class Nested:
    """A table inside one attribute (value: a dict), sent with NLA_F_NESTED."""

    nested = True

    def __init__(self, table: Table):
        self.table = table

    def encode(self, value: Mapping[str, Any]) -> bytes:
        return self.table.encode(value)

    def decode(self, data: bytes) -> dict[str, Any]:
        return self.table.decode(data)


class Struct:
    """A fixed C struct (value: a dict; fields missing or None are 0). A field named None is not the
    caller's: it is sent as 0 and not decoded (Array fills in a length there)."""

    nested = False

    def __init__(self, name: str, fmt: str, fields: tuple[str | None, ...]):
        self.name = name
        self._struct = struct.Struct(fmt)
        self.size = self._struct.size
        self.fields = fields
        self.names = frozenset(f for f in fields if f is not None)
        # The values as a tuple in `fields` order, without building a dict: for a hot path.
        self.unpack_from = self._struct.unpack_from

    def encode(self, value: Mapping[str, Any]) -> bytes:
        unknown = value.keys() - self.names
        if unknown:
            raise KeyError(f"{self.name} has no field {', '.join(sorted(unknown))}")
        return self._struct.pack(*[0 if f is None else value.get(f) or 0 for f in self.fields])

    def decode(self, data: bytes, offset: int = 0) -> dict[str, Any]:
        """The fields of the struct at `offset` (a longer payload, from a newer kernel, is fine)."""
        return {f: v for f, v in zip(self.fields, self._struct.unpack_from(data, offset), strict=True) if f is not None}


class StructThen:
    """A fixed struct, then attributes from the next 4-byte boundary, in one attribute that is not flagged
    nested: tc netem's options, a veth peer. Value: one dict with the fields of both."""

    nested = False

    def __init__(self, head: Struct, table: Table):
        if head.names & table.fields:
            raise ValueError(f"{head.name} and {table.name} share {sorted(head.names & table.fields)}")
        self.head, self.table = head, table
        self._start = (head.size + 3) & ~3

    def encode(self, value: Mapping[str, Any]) -> bytes:
        head = {k: v for k, v in value.items() if k in self.head.names}
        rest = {k: v for k, v in value.items() if k not in self.head.names}
        return _pad(self.head.encode(head)) + self.table.encode(rest)

    def decode(self, data: bytes) -> dict[str, Any]:
        out = self.head.decode(data)
        out.update(self.table.decode(data, self._start))
        return out


_LENGTH = struct.Struct("=H")


class Array:
    """Entries one after another, each starting with a u16 length that covers the whole entry (its
    attributes too), each 4-byte aligned: RTA_MULTIPATH's rtnexthops. The element's struct declares that
    length as a field named None; Array fills it in. Value: a list of dicts."""

    nested = False

    def __init__(self, element: Struct | StructThen):
        head = element.head if isinstance(element, StructThen) else element
        if not head.fields or head.fields[0] is not None or head.size < 2:
            raise ValueError(f"{head.name}: an Array element starts with its length, a field named None")
        self.element = element
        self._min = head.size

    def encode(self, value: Sequence[Mapping[str, Any]]) -> bytes:
        out = []
        for item in value:
            entry = self.element.encode(item)
            out.append(_pad(_LENGTH.pack(len(entry)) + entry[2:]))
        return b"".join(out)

    def decode(self, data: bytes) -> list[dict[str, Any]]:
        items, pos = [], 0
        while pos + 2 <= len(data):
            (length,) = _LENGTH.unpack_from(data, pos)
            if length < self._min or pos + length > len(data):
                break
            items.append(self.element.decode(data[pos:pos + length]))
            pos += (length + 3) & ~3
        return items


def message(header: Struct, header_values: Mapping[str, Any], table: Table, values: Mapping[str, Any]) -> bytes:
    """A message body: the fixed header, padded to 4 bytes, then the attributes (the nlmsghdr in front
    of it is transport.py's)."""
    return _pad(header.encode(header_values)) + table.encode(values)
