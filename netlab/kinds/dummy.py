"""dummy: a link that drops what it is sent; a stable place for an address (a router's loopback address,
a service address). No options of its own."""

from __future__ import annotations

from typing import Literal

from .base import Kind, LinkSpec


class DummySpec(LinkSpec):
    kind: Literal["dummy"]


class Dummy(Kind):
    name = "dummy"
    spec = DummySpec
    module = "dummy"
