"""Sysctls under net.: how a topology names them, which of them are an interface's, and which ones the
kernel makes rewrite others when they are written. Pure functions and the schema's checks; the kernel
adapter reads and writes them (netlab/kernel/sysctl.py).

A key is kept as its path under /proc/sys ('net/ipv4/ip_forward'): the dotted form is ambiguous when an
interface name has a dot (eth0.10), so a topology may write either form and both become the path.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from .errors import Problem
from .state import HOST

Path = tuple[str | int, ...]

FORWARDING = {"net/ipv4/ip_forward": "ipv4", "net/ipv6/conf/all/forwarding": "ipv6"}
"""The `forwarding:` shorthand's keys, with the family whose interfaces they set."""

CLOBBERS = {"net/ipv4/ip_forward": "net/ipv4/conf/*/forwarding",
            "net/ipv4/conf/all/forwarding": "net/ipv4/conf/*/forwarding",
            "net/ipv6/conf/all/forwarding": "net/ipv6/conf/*/forwarding"}
"""Keys whose write the kernel copies into every interface's (and `default`'s) value: the pattern of the
keys it rewrites. Their undo restores those too, and they are written before per-interface keys."""

def rewritten(path: str, keys: Iterable[str]) -> list[str]:
    """Of `keys`, those the kernel rewrites (to the same value) when `path` is written: every interface's
    forwarding for the keys in CLOBBERS; and ip_forward and conf/all/forwarding are one setting."""
    pattern = CLOBBERS.get(path)
    if pattern is None:
        return []
    head, tail = pattern.split("*")
    return [k for k in keys if k != path and ((k.startswith(head) and k.endswith(tail))
                                             or (k == "net/ipv4/ip_forward" and head == "net/ipv4/conf/"))]


_PER_INTERFACE = re.compile(r"net/ipv[46]/(conf|neigh)/([^/]+)/[^/]+")
_PART = re.compile(r"[A-Za-z0-9_.:@+-]+")


def path_of(key: str) -> str:
    """The key as its path under /proc/sys: 'net.ipv4.ip_forward' -> 'net/ipv4/ip_forward'; a key already
    in the slash form is kept."""
    return key if "/" in key else key.replace(".", "/")


def interface_of(path: str) -> str | None:
    """The interface a per-interface key belongs to ('net/ipv4/conf/eth0/rp_filter' -> 'eth0'); None for
    a namespace-wide key (the `all` and `default` entries are namespace-wide)."""
    m = _PER_INTERFACE.fullmatch(path)
    if m is None or m.group(2) in ("all", "default"):
        return None
    return m.group(2)


def write_order(path: str) -> tuple[int, str]:
    """Keys are written in this order: those that rewrite others first, then namespace-wide keys, then
    per-interface ones (which the first would overwrite)."""
    return (0 if path in CLOBBERS else 1 if interface_of(path) is None else 2), path


def normalize(value: Any) -> str:
    """A value as the kernel prints it back, runs of whitespace made one space ('4096 87380 6291456')."""
    return " ".join(str(value).split())


def desired(namespace: str, spec: Any) -> dict[str, str]:
    """The sysctls a namespace declares (its `sysctls:` and `forwarding:`), by path."""
    out = {path_of(k): normalize(v) for k, v in spec.sysctls.items()}
    if spec.forwarding is not None:
        for path in FORWARDING:
            out.setdefault(path, "1" if spec.forwarding else "0")
    return out


def check(namespace: str, spec: Any, problems: list[Problem]) -> None:
    """The sysctls' own rules: under net., a number or a string, an interface the namespace declares,
    never in the root namespace."""
    at: Path = ("namespaces", namespace, "sysctls")
    if namespace == HOST and (spec.sysctls or spec.forwarding is not None):
        where = at if spec.sysctls else ("namespaces", namespace, "forwarding")
        problems.append(Problem(where, "the root namespace's sysctls are refused: changing (and later "
                                       "restoring) the host's forwarding or filtering can break the container "
                                       "engines and hypervisors that share it; set them by hand if you must"))
        return
    seen: dict[str, str] = {}
    for key, value in spec.sysctls.items():
        here = at + (key,)
        path = path_of(key)
        parts = path.split("/")
        if parts[0] != "net":
            problems.append(Problem(here, f"{key!r} is not a network sysctl: netlab sets only keys under net. "
                                          "(per network namespace), e.g. net.ipv4.ip_forward"))
            continue
        if len(parts) < 3 or any(not _PART.fullmatch(p) or p in (".", "..") for p in parts):
            problems.append(Problem(here, f"{key!r} is not a sysctl name like net.ipv4.ip_forward (or, where an "
                                          "interface name has a dot, net/ipv4/conf/eth0.10/rp_filter)"))
            continue
        same = "net/ipv4/ip_forward" if path == "net/ipv4/conf/all/forwarding" else path  # one value, two names
        if same in seen:
            problems.append(Problem(here, f"{key!r} is {seen[same]!r} again"))
            continue
        seen[same] = key
        if isinstance(value, bool) or not isinstance(value, (int, str)) or (isinstance(value, str) and (
                not value.strip() or "\n" in value)):
            shown = f"{type(value).__name__} {value!r}" if value is not None else "nothing"
            problems.append(Problem(here, f"a sysctl's value is a number or a string, not {shown}"
                                    + (" (write 1 or 0)" if isinstance(value, bool) else "")))
            continue
        iface = interface_of(path)
        if iface is not None and iface != "lo" and iface not in spec.interfaces:
            problems.append(Problem(here, f"{key!r} is a setting of interface {iface!r}, which namespace "
                                          f"{namespace!r} does not declare"))
        if spec.forwarding is not None and same in FORWARDING and normalize(value) != ("1" if spec.forwarding
                                                                                          else "0"):
            problems.append(Problem(here, f"{key!r} says {value!r} but forwarding: {str(spec.forwarding).lower()} "
                                          "says otherwise"))
