"""dummy: a link that drops what it is sent; a stable place for an address (a router's loopback address,
a service address). No options of its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from .base import Kind, LinkSpec

if TYPE_CHECKING:
    from ..state import Link


class DummySpec(LinkSpec):
    kind: Literal["dummy"]


class Dummy(Kind):
    name = "dummy"
    spec = DummySpec
    module = "dummy"

    def probe(self, link: Link) -> bytes:
        return b""
