"""The rules for the names netlab passes to the kernel. Each function returns None for a valid name, or the
rule the name breaks, in words a user can act on. Pure functions: used by the schema, never by the kernel
adapter, so that a bad name is rejected at load time and never reaches the kernel."""

from __future__ import annotations

import re

IFNAMSIZ = 16  # the kernel's buffer, NUL included: names are at most 15 bytes
NAME_MAX = 255
TOPOLOGY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _bad_char(name: str, forbidden: str) -> str | None:
    for ch in name:
        if ch in forbidden:
            return repr(ch)
        if ch.isspace():
            return "whitespace"
        if ord(ch) < 0x20 or ord(ch) == 0x7F:
            return "a control character"
    return None


def interface_name_problem(name: str) -> str | None:
    """The kernel's dev_valid_name(), plus '%' (the kernel reads it as a template such as 'eth%d')."""
    size = len(name.encode("utf-8", "surrogateescape"))
    if size == 0:
        return "an interface name must not be empty"
    if size >= IFNAMSIZ:
        return f"an interface name is at most {IFNAMSIZ - 1} bytes; {name!r} has {size}"
    if name in (".", ".."):
        return f"an interface name must not be {name!r}"
    bad = _bad_char(name, "/:%")
    if bad:
        return f"an interface name must not contain {bad} (forbidden: '/', ':', '%', whitespace)"
    return None


def namespace_name_problem(name: str) -> str | None:
    """A namespace name is a file name under /run/netns; all-digit names would read as PIDs to `ip`."""
    size = len(name.encode("utf-8", "surrogateescape"))
    if size == 0:
        return "a namespace name must not be empty"
    if size > NAME_MAX:
        return f"a namespace name is at most {NAME_MAX} bytes; this one has {size}"
    if name in (".", ".."):
        return f"a namespace name must not be {name!r}"
    if name.isdigit():
        return f"a namespace name must not be only digits ({name!r} would read as a process id)"
    bad = _bad_char(name, "/")
    if bad:
        return f"a namespace name must not contain {bad} (forbidden: '/', whitespace)"
    return None


def topology_name_problem(name: str) -> str | None:
    if not TOPOLOGY_NAME.fullmatch(name):
        return ("a topology name is 1-64 characters of letters, digits, '_', '.', '-', starting with a "
                "letter or digit (it is written into the kernel as the mark 'netlab:<name>')")
    return None
