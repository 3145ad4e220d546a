"""loopback: every namespace's `lo`. The kernel makes it with the namespace; netlab brings it up and marks
a namespace it creates on it. Its addresses (127.0.0.1/8, ::1) are the kernel's: not managed, and `lo`
cannot be declared."""

from __future__ import annotations

from .base import Kind


class Loopback(Kind):
    name = "loopback"
