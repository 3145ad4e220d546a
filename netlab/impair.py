"""Link impairments (`impair:` on an interface): delay, jitter, loss, duplication, corruption, reordering
and rate on the interface's egress, as the root qdisc netlab puts on it. One home for all of it: the YAML
options and their checks, the qdisc a topology's `impair` makes (netem, or tbf where rate is all it sets),
its netlink encoding (TCA_OPTIONS), how it reads back from a qdisc dump, and how a plan shows it. The
kernel adapter only sends and dumps (netlab/kernel/writer.py, reader.py).

Values are kept in the kernel's own units (state.Qdisc), so that what a topology asks for and what the
kernel reports compare exactly: times in ns, probabilities as fractions of 2^32 - 1 (as tc rounds them),
rates in bytes per second, tbf's bucket as the time it holds (ns, a multiple of the 64 ns tick the kernel
reports), sizes in bytes, netem's queue in packets. docs/design.md has the decisions.
"""

from __future__ import annotations

import functools
import math
import os
import re
import struct
import sys
from typing import TYPE_CHECKING, Any

from .errors import Problem
from .schema import Strict
from .state import QDISC_HANDLES, Qdisc

if TYPE_CHECKING:
    from .kinds.base import LinkSpec

U32_MAX = 0xFFFFFFFF
TICK_NS = 64  # the kernel's psched tick (PSCHED_SHIFT 6): tc_netem_qopt's and tc_tbf_qopt's times are in it
DISTRIBUTIONS = ("normal", "pareto", "paretonormal")
HANDLES = {made: major << 16 for major, made in QDISC_HANDLES.items()}
NETEM_FIELDS = ("delay", "jitter", "distribution", "loss", "duplicate", "corrupt", "reorder", "gap", "limit")
TBF_FIELDS = ("burst", "latency")
ASSUMED_LINE_RATE = 125_000_000  # bytes/s (1 gbit): what a derived netem queue holds without a `rate`
TBF_LATENCY_NS = 50_000_000  # how long tbf's queue may hold a packet unless `latency` says otherwise
HZ = 250  # tbf's bucket holds at least rate/HZ (Debian's kernels tick at 250 Hz)
ETHERNET_HEADER = 14

_TIME = {"ns": 1, "nsec": 1, "nsecs": 1, "us": 1_000, "usec": 1_000, "usecs": 1_000, "ms": 1_000_000,
         "msec": 1_000_000, "msecs": 1_000_000, "s": 1_000_000_000, "sec": 1_000_000_000, "secs": 1_000_000_000}
_RATE = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "tbit": 10**12, "kibit": 1 << 10, "mibit": 1 << 20,
         "gibit": 1 << 30, "tibit": 1 << 40, "bps": 8, "kbps": 8 * 10**3, "mbps": 8 * 10**6, "gbps": 8 * 10**9,
         "tbps": 8 * 10**12, "kibps": 8 << 10, "mibps": 8 << 20, "gibps": 8 << 30, "tibps": 8 << 40}
"""Bits per second per unit, as tc reads them: `mbps` is megabytes per second, `mbit` megabits."""
_SIZE = {"b": 1, "k": 1024, "kb": 1024, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30,
         "kbit": 1024 // 8, "mbit": (1 << 20) // 8, "gbit": (1 << 30) // 8}
"""Bytes per unit, as tc reads sizes (powers of 1024)."""
_NUMBER = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)([A-Za-z%]*)")


class ImpairSpec(Strict):
    """`impair:` as written; values are checked by `check` (units, ranges), which says what is wrong."""

    delay: Any = None
    jitter: Any = None
    distribution: Any = None
    loss: Any = None
    duplicate: Any = None
    corrupt: Any = None
    reorder: Any = None
    gap: Any = None
    rate: Any = None
    limit: Any = None
    burst: Any = None
    latency: Any = None


# --- reading the YAML ------------------------------------------------------------------------------------

def _amount(value: Any, units: dict[str, int], example: str) -> float:
    """A non-negative number with one of `units` ('40ms', '10mbit'), in the units' base."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"write it as tc does, e.g. {example}, not {type(value).__name__} {value!r}")
    m = _NUMBER.fullmatch(str(value).strip())
    if m is None:
        raise ValueError(f"{value!r} is not a number with a unit, e.g. {example}")
    number, unit = float(m.group(1)), m.group(2).lower()
    if not unit:
        raise ValueError(f"{value!r} has no unit: write it as tc does, e.g. {example}")
    if unit not in units:
        raise ValueError(f"unknown unit {m.group(2)!r} in {value!r} (units: {', '.join(units)})")
    if number < 0:
        raise ValueError(f"{value!r} is negative")
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a number")
    return number * units[unit]


def _time(value: Any) -> int:
    return round(_amount(value, _TIME, "40ms"))


def _percent(text: str) -> int:
    """'1%' as a fraction of 2^32 - 1, rounded as tc rounds it (so `tc` shows the same percentage)."""
    m = _NUMBER.fullmatch(text)
    if m is None or m.group(2) != "%":
        raise ValueError(f"{text!r} is not a percentage like 1% or 0.5%")
    number = float(m.group(1))
    if number < 0:
        raise ValueError(f"{text!r} is negative")
    if number > 100:
        raise ValueError(f"{text!r} is over 100%")
    return round(number / 100 * U32_MAX)


def _chance(value: Any, example: str = "1%") -> tuple[int, int]:
    """'1%' or '1% 25%' (a probability, then its correlation, as tc writes them)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"write it as tc does, e.g. {example} or '{example} 25%' (with a correlation), not "
                         f"{type(value).__name__} {value!r}")
    if not isinstance(value, str):
        raise ValueError(f"{value!r} has no unit: write a percentage, e.g. {example}")
    words = value.split()
    if not 1 <= len(words) <= 2:
        raise ValueError(f"{value!r} is a percentage and an optional correlation, e.g. '{example} 25%'")
    chance = _percent(words[0])
    return chance, _percent(words[1]) if len(words) == 2 else 0


def _jitter(value: Any) -> tuple[int, int]:
    """'5ms' or '5ms 25%' (the delay's correlation, as tc's `delay 40ms 5ms 25%`)."""
    words = value.split() if isinstance(value, str) else [value]
    if len(words) > 2:
        raise ValueError(f"{value!r} is a time and an optional correlation, e.g. '5ms 25%'")
    return _time(words[0]), _percent(words[1]) if len(words) == 2 else 0


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} is a whole number, not {type(value).__name__} {value!r}")
    if not 1 <= value <= U32_MAX:
        raise ValueError(f"{what} is from 1 to {U32_MAX}, not {value}")
    return value


def _rate(value: Any) -> int:
    """Bytes per second (the kernel's unit), from bits per second with a unit."""
    rate = int(_amount(value, _RATE, "10mbit")) // 8
    if rate == 0:
        raise ValueError(f"{value!r} is no rate: at least 8bit")
    if rate >= 1 << 64:
        raise ValueError(f"{value!r} is more than the kernel counts")
    return rate


def _size(value: Any) -> int:
    size = round(_amount(value, _SIZE, "32kb"))
    if not 1 <= size <= U32_MAX:
        raise ValueError(f"{value!r} is not from 1b to 4gb")
    return size


_PARSERS: dict[str, Any] = {
    "delay": _time, "jitter": _jitter, "loss": _chance, "duplicate": _chance, "corrupt": _chance,
    "reorder": _chance, "rate": _rate, "burst": _size, "latency": _time,
    "limit": lambda v: _count(v, "limit (packets)"), "gap": lambda v: _count(v, "gap (packets)"),
}


def _parsed(spec: ImpairSpec) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The declared fields' values, and (field, problem) for those that are not valid."""
    values: dict[str, Any] = {}
    problems: list[tuple[str, str]] = []
    for field, parse in _PARSERS.items():
        raw = getattr(spec, field)
        if raw is None:
            continue
        try:
            values[field] = parse(raw)
        except ValueError as exc:
            problems.append((field, str(exc)))
    if spec.distribution is not None:
        if spec.distribution not in DISTRIBUTIONS:
            problems.append(("distribution", (f"unknown distribution {spec.distribution!r} (supported: "
                                              f"{', '.join(DISTRIBUTIONS)}; without one, jitter is uniform)")))
        else:
            values["distribution"] = spec.distribution
    return values, problems


def check(ns: str, name: str, spec: LinkSpec, problems: list[Problem]) -> None:
    """An `impair:`'s own rules: units and ranges, what needs what (jitter a delay, a distribution a jitter,
    reorder a delay, gap a reorder), tbf's options only where rate is all there is, not on lo."""
    impair = spec.impair
    if impair is None:
        return
    at = ("namespaces", ns, "interfaces", name, "impair")
    if name == "lo":
        problems.append(Problem(at, "lo cannot be impaired: netlab impairs the links it makes (impair both ends "
                                    "of a veth for a symmetric link)"))
        return
    values, found = _parsed(impair)
    problems.extend(Problem(at + (field,), message) for field, message in found)
    declared = {f for f in ImpairSpec.model_fields if getattr(impair, f) is not None}
    if not declared:
        problems.append(Problem(at, "an impairment with nothing in it: give delay, loss, rate... or leave "
                                    "impair out"))
        return
    delay = values.get("delay", 0)
    needs = (("jitter", "delay", "jitter varies a delay: give a delay too"),
             ("distribution", "jitter", "a distribution shapes the jitter: give a jitter too"),
             ("reorder", "delay", "reordering sends some packets ahead of the others' delay: give a delay"),
             ("gap", "reorder", "gap is reorder's (every gap-th packet is sent at once): give a reorder"))
    for field, needed, message in needs:
        if field in declared and (needed not in declared or (needed == "delay" and "delay" in values
                                                              and not delay)):
            problems.append(Problem(at + (field,), message))
    if values.get("jitter", (0, 0))[0] > 0x7FFFFFFF:
        problems.append(Problem(at + ("jitter",), "the kernel's jitter is at most 2.147s"))
    if "distribution" in values and _table_path(values["distribution"]) is None:
        problems.append(Problem(at + ("distribution",),
                                f"no {values['distribution']}.dist found (iproute2's distribution tables, looked "
                                f"in {', '.join(_table_dirs())}): install iproute2, or set TC_LIB_DIR"))
    netem = declared & set(NETEM_FIELDS)
    for field in sorted(declared & set(TBF_FIELDS)):
        if netem:
            problems.append(Problem(at + (field,), f"{field} is tbf's, which netlab uses when rate is the only "
                                                   f"impairment; with {', '.join(sorted(netem))} the rate is "
                                                   "netem's, which has no " + field))
        elif "rate" not in declared:
            problems.append(Problem(at + (field,), f"{field} shapes a rate: give a rate too"))
    if not netem and "rate" in values and not found:
        rate, buffer = (dict(desired(impair, spec.mtu).params)[k] for k in ("rate", "buffer"))
        if buffer > U32_MAX:  # sch_tbf.c: buffer = min_t(u64, PSCHED_TICKS2NS(qopt->buffer), ~0U)
            burst = burst_of(rate, buffer)
            least = -(-burst * 10**9 // U32_MAX) * 8
            problems.append(Problem(at + ("burst" if "burst" in values else "rate",),
                                    f"at {_bits(rate * 8)} a bucket of {burst} bytes takes {buffer / 1e9:.3g} s to "
                                    f"fill, more than the kernel's tbf holds (4.29 s): give a rate of at least "
                                    f"{_bits_up(least)}" + (" or a smaller burst" if "burst" in values else
                                                         " (or make it netem's: add a delay)")))


# --- the qdisc a topology asks for ------------------------------------------------------------------------

def desired(spec: ImpairSpec, mtu: int | None) -> Qdisc:
    """The root qdisc `impair` makes on a link whose MTU is `mtu` (None: 1500): netem with every
    parameter (those not declared as the kernel's zeros; the queue derived unless given), or tbf when
    `rate` is all there is (its bucket and queue derived unless given). Only for a checked spec."""
    values, _ = _parsed(spec)
    packet = (mtu or 1500) + ETHERNET_HEADER
    rate = values.get("rate", 0)
    if not {f for f in NETEM_FIELDS if getattr(spec, f) is not None}:
        burst = values.get("burst") or max(packet, -(-rate // HZ))
        limit = burst + rate * values.get("latency", TBF_LATENCY_NS) // 10**9
        return Qdisc("tbf", HANDLES[("tbf", None)], (
            ("rate", rate), ("buffer", _buffer(rate, burst)), ("limit", min(limit, U32_MAX)), ("other", ())))
    delay = values.get("delay", 0)
    jitter = values.get("jitter", (0, 0))
    limit = values.get("limit")
    if limit is None:
        held = (rate or ASSUMED_LINE_RATE) * (delay + jitter[0]) / 10**9  # bytes in flight
        limit = min(max(1000, math.ceil(2 * held / packet)), U32_MAX)
    reorder = values.get("reorder", (0, 0))
    gap = values.get("gap", 1 if reorder[0] else 0)
    return Qdisc("netem", HANDLES[("netem", values.get("distribution"))], (
        ("delay", delay), ("jitter", jitter), ("loss", values.get("loss", (0, 0))),
        ("duplicate", values.get("duplicate", (0, 0))), ("corrupt", values.get("corrupt", (0, 0))),
        ("reorder", reorder), ("gap", gap), ("rate", rate), ("limit", limit), ("other", ())))


def _ratecfg(rate: int) -> tuple[int, int]:
    """(mult, shift) of the kernel's psched_ratecfg_precompute: a length's time at `rate` is
    (len * mult) >> shift ns."""
    factor, shift = 10**9, 0
    while True:
        mult = factor // rate
        if mult & (1 << 31) or factor & (1 << 63):
            return mult & U32_MAX, shift
        factor <<= 1
        shift += 1


def _buffer(rate: int, burst: int) -> int:
    """The time (ns, whole ticks) tbf's bucket of `burst` bytes holds at `rate`, as the kernel stores and
    reports it (psched_l2t_ns, then PSCHED_NS2TICKS)."""
    mult, shift = _ratecfg(rate)
    return ((burst * mult) >> shift) // TICK_NS * TICK_NS


def burst_of(rate: int, buffer: int) -> int:
    """The bucket's size in bytes, as the kernel computes it from its time (psched_ns_t2l)."""
    return buffer * rate // 10**9


# --- netlink ----------------------------------------------------------------------------------------------

def options(qdisc: Qdisc) -> bytes:
    """TCA_OPTIONS of an RTM_NEWQDISC that makes `qdisc` (or changes one of its kind into it). Every
    parameter is sent, zeros included: netem keeps an optional parameter a change leaves out (a
    correlation, a rate, a slot, ECN), and takes a rate above 2^32 - 1 bytes/s (TCA_NETEM_RATE64) only as
    the larger of the old and the new."""
    from .netlink import rtnl

    p = dict(qdisc.params)
    if qdisc.kind == "tbf":
        rate = p["rate"]
        return rtnl.TBF.encode({"parms": {"linklayer": rtnl.TC_LINKLAYER_ETHERNET, "rate": min(rate, U32_MAX),
                                          "limit": p["limit"], "buffer": p["buffer"] // TICK_NS},
                                "rate64": rate if rate > U32_MAX else None})
    delay, (jitter, delay_corr) = p["delay"], p["jitter"]
    rate = p["rate"]
    dist = qdisc.distribution
    return rtnl.NETEM_OPTIONS.encode({
        "latency": min(delay // TICK_NS, U32_MAX), "limit": p["limit"], "loss": p["loss"][0], "gap": p["gap"],
        "duplicate": p["duplicate"][0], "jitter": min(jitter // TICK_NS, U32_MAX),
        "corr": {"delay_corr": delay_corr, "loss_corr": p["loss"][1], "dup_corr": p["duplicate"][1]},
        "delay_dist": table(dist) if dist else None,
        "reorder": {"probability": p["reorder"][0], "correlation": p["reorder"][1]},
        "corrupt": {"probability": p["corrupt"][0], "correlation": p["corrupt"][1]},
        "rate": {"rate": min(rate, U32_MAX)}, "rate64": rate if rate > U32_MAX else None,
        "latency64": delay, "jitter64": jitter, "ecn": 0, "slot": {}})


def read(kind: str, handle: int, data: bytes | None) -> Qdisc:
    """A root qdisc from a dump: netlab's with its parameters (as `desired` makes them, what netlab does
    not set under `other`); anybody else's with its kind and handle only."""
    from .netlink import rtnl

    qdisc = Qdisc(kind, handle)
    if not qdisc.ours or data is None:
        return qdisc
    if kind == "tbf":
        t = rtnl.TBF.decode(data)
        parms = t.get("parms", {})
        rate = t.get("rate64") or parms.get("rate", 0)
        other = tuple(name for name, there in (("peakrate", parms.get("peak_rate")),
                                               ("overhead", parms.get("overhead") or parms.get("mpu"))) if there)
        return qdisc._replace(params=(("rate", rate), ("buffer", parms.get("buffer", 0) * TICK_NS),
                                      ("limit", parms.get("limit", 0)), ("other", other)))
    n = rtnl.NETEM_OPTIONS.decode(data)
    corr = n.get("corr", {})
    reorder, corrupt, rate = n.get("reorder", {}), n.get("corrupt", {}), n.get("rate", {})
    other = tuple(name for name, there in (
        ("ecn", n.get("ecn")), ("slot", any(n.get("slot", {}).values())), ("loss model", "loss_model" in n),
        ("rate overhead", rate.get("packet_overhead") or rate.get("cell_size") or rate.get("cell_overhead")))
        if there)
    latency = n.get("latency64", n.get("latency", 0) * TICK_NS)
    return qdisc._replace(params=(
        ("delay", latency), ("jitter", (n.get("jitter64", n.get("jitter", 0) * TICK_NS), corr.get("delay_corr", 0))),
        ("loss", (n.get("loss", 0), corr.get("loss_corr", 0))),
        ("duplicate", (n.get("duplicate", 0), corr.get("dup_corr", 0))),
        ("corrupt", (corrupt.get("probability", 0), corrupt.get("correlation", 0))),
        ("reorder", (reorder.get("probability", 0), reorder.get("correlation", 0))),
        ("gap", n.get("gap", 0)), ("rate", n.get("rate64") or rate.get("rate", 0)),
        ("limit", n.get("limit", 0)), ("other", other)))


def _table_dirs() -> list[str]:
    """Where tc looks for distribution tables: $TC_LIB_DIR, else its library directory (which a
    distribution sets at build time: Debian's is multiarch)."""
    if os.environ.get("TC_LIB_DIR"):
        return [os.environ["TC_LIB_DIR"]]
    arch = getattr(sys.implementation, "_multiarch", "")
    return [d for d in (f"/usr/lib/{arch}/tc" if arch else "", "/usr/lib64/tc", "/usr/lib/tc", "/usr/local/lib/tc")
            if d]


def _table_path(name: str) -> str | None:
    return next((path for d in _table_dirs() if os.path.isfile(path := os.path.join(d, f"{name}.dist"))), None)


@functools.cache
def table(name: str) -> bytes:
    """The delay distribution table `name` as TCA_NETEM_DELAY_DIST carries it (s16 values), read from
    iproute2's `.dist` file as tc reads it: numbers after comment lines."""
    path = _table_path(name)
    if path is None:
        raise FileNotFoundError(f"{name}.dist (iproute2's distribution table) in {', '.join(_table_dirs())}")
    values: list[int] = []
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                continue
            values += [int(word, 0) for word in line.split()]
    if not 0 < len(values) <= 16384:
        raise ValueError(f"{path}: {len(values)} values (the kernel takes 1 to 16384)")
    return struct.pack(f"={len(values)}h", *values)


# --- how a plan shows it ----------------------------------------------------------------------------------

def summary(qdisc: Qdisc) -> str:
    """'netem delay 40ms, jitter 5ms, loss 1%, limit 1000'; 'tbf rate 20mbit, burst 10000b, limit 135000b';
    somebody else's: 'htb 1:'."""
    if not qdisc.ours:
        return f"{qdisc.kind} {qdisc.handle >> 16:x}:"
    p = dict(qdisc.params)
    shown = [f"{'burst' if name == 'buffer' else name} {text}" for name, value in qdisc.params
             if (text := show(qdisc, name, value, p)) is not None]
    if qdisc.distribution:
        shown.insert(2 if p.get("jitter", (0,))[0] else 1, f"distribution {qdisc.distribution}")
    return f"{qdisc.kind} {', '.join(shown)}"


def show(qdisc: Qdisc, name: str, value: Any, params: dict[str, Any], always: bool = False) -> str | None:
    """A parameter's value as a plan shows it, or None where it is the kernel's zero (unless `always`)."""
    if name == "other":
        return ", ".join(value) if value else ("none" if always else None)
    if name == "buffer":
        return _bytes(burst_of(params["rate"], value))
    if name == "limit":
        return _bytes(value) if qdisc.kind == "tbf" else str(value)
    if name == "gap":
        return str(value) if always or (value and value != 1) else None
    if not value or (isinstance(value, tuple) and not value[0] and not always):
        return "0" if always else None
    if name == "delay":
        return _duration(value)
    if name == "jitter":
        return _duration(value[0]) + (f" {_share(value[1])}" if value[1] else "")
    if name == "rate":
        return _bits(value * 8)
    if isinstance(value, tuple):
        return _share(value[0]) + (f" {_share(value[1])}" if value[1] else "")
    return str(value)


def changes(have: Qdisc, want: Qdisc) -> list[str]:
    """What a change in place does, parameter by parameter: 'delay 40ms -> 80ms'. The bucket is shown as
    tc calls it, burst."""
    old, new = dict(have.params), dict(want.params)
    out = []
    for name, value in want.params:
        if old.get(name) != value:
            label = "burst" if name == "buffer" else name
            out.append(f"{label} {show(have, name, old.get(name), old, True)} -> {show(want, name, value, new, True)}")
    return out


def _duration(ns: int) -> str:
    for unit, size in (("s", 10**9), ("ms", 10**6), ("us", 10**3)):
        if ns >= size and ns * 1000 % size == 0:
            return f"{ns / size:g}{unit}"
    return f"{ns}ns" if ns else "0ms"


def _share(fraction: int) -> str:
    return f"{100 * fraction / U32_MAX:g}%"


def _bits(bits: int) -> str:
    for unit, size in (("tbit", 10**12), ("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)):
        if bits >= size and bits * 1000 % size == 0:
            return f"{bits / size:g}{unit}"
    return f"{bits}bit"


def _bits_up(bits: int) -> str:
    """A rate in its largest unit, rounded up to three decimals: '2.824kbit'."""
    unit, size = next(((u, n) for u, n in (("gbit", 10**9), ("mbit", 10**6), ("kbit", 10**3)) if bits >= n), ("bit", 1))
    return f"{math.ceil(bits * 1000 / size) / 1000:g}{unit}"


def _bytes(size: int) -> str:
    for unit, scale in (("mb", 1 << 20), ("kb", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}b"
