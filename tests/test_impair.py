"""netlab/impair.py without a kernel: `impair:` values read as tc reads them (units, percentages rounded as
tc rounds them, correlations), the qdisc a topology asks for (derived netem queue, tbf bucket and queue,
the bucket's time as the kernel computes and reports it), how plans show it, and TCA_OPTIONS both ways.
The expected values are computed here independently: tc's parsing from iproute2's sources (lib/utils.c,
lib/utils_math.c, tc/q_netem.c; rint from the C library), the kernel's arithmetic from
include/net/sch_generic.h and net/sched/sch_generic.c, sch_tbf.c, sch_netem.c."""

import ctypes
import ctypes.util
import math
import struct
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from netlab import impair
from netlab.impair import ImpairSpec
from netlab.netlink import rtnl
from netlab.state import Qdisc, qdisc_from_dict

U32_MAX = 0xFFFFFFFF
LIBM = ctypes.CDLL(ctypes.util.find_library("m"))
LIBM.rint.restype = ctypes.c_double
LIBM.rint.argtypes = [ctypes.c_double]
TC_LIB = Path("/usr/lib/x86_64-linux-gnu/tc")


def tc_percent(text: str) -> int:
    """tc's get_percent: parse_percent (strtod(str) / 100.), then rint(per * UINT32_MAX)."""
    return int(LIBM.rint((float(text.rstrip("%")) / 100.0) * U32_MAX))


# --- units, as tc reads them -----------------------------------------------------------------------------

@pytest.mark.parametrize("text, ns", [
    ("40ms", 40_000_000), ("40msec", 40_000_000), ("1s", 10**9), ("2sec", 2 * 10**9), ("3secs", 3 * 10**9),
    ("250us", 250_000), ("250usec", 250_000), ("64ns", 64), ("7nsec", 7), ("1.5ms", 1_500_000), ("0.5s", 5 * 10**8),
    ("40MS", 40_000_000), ("0ms", 0), (".25ms", 250_000), ("1e3us", 1_000_000),
])
def test_times_in_ns_as_tc_get_time64(text, ns):
    assert impair._time(text) == ns


@pytest.mark.parametrize("text, ns", [("40msecs", 40_000_000), ("5usecs", 5_000), ("9nsecs", 9)])
def test_plural_time_units_tc_takes(text, ns):
    assert impair._time(text) == ns


# tc's rate suffixes (lib/utils_math.c), case-insensitive, in bits per second; bytes/s = floor(bits / 8)
TC_RATES = {"bit": 1, "kibit": 1024, "kbit": 1000, "mibit": 1024**2, "mbit": 10**6, "gibit": 1024**3, "gbit": 10**9,
            "tibit": 1024**4, "tbit": 10**12, "bps": 8, "kibps": 8 * 1024, "kbps": 8000, "mibps": 8 * 1024**2,
            "mbps": 8 * 10**6, "gibps": 8 * 1024**3, "gbps": 8 * 10**9, "tibps": 8 * 1024**4, "tbps": 8 * 10**12}


@pytest.mark.parametrize("number", ["1", "10", "1.5", "0.3", "2.75", "100"])
@pytest.mark.parametrize("unit", sorted(TC_RATES))
def test_rates_in_bytes_per_second_as_tc_get_rate64(number, unit):
    bits = float(number) * TC_RATES[unit]
    expected = int(bits / 8)  # tc: bps /= 8, then the double is converted to u64 (truncated)
    if expected == 0:
        with pytest.raises(ValueError, match="no rate"):
            impair._rate(number + unit)
        return
    assert impair._rate(number + unit) == expected
    assert impair._rate(number + unit.upper()) == expected  # strcasecmp


def test_mbps_is_megabytes_and_mbit_megabits():
    assert impair._rate("10mbit") == 1_250_000
    assert impair._rate("10mbps") == 10_000_000
    assert impair._rate("1kbps") == 1000 and impair._rate("1kbit") == 125


@pytest.mark.parametrize("text, size", [
    ("32kb", 32 * 1024), ("32k", 32 * 1024), ("1mb", 1 << 20), ("2m", 2 << 20), ("1gb", 1 << 30), ("1g", 1 << 30),
    ("1kbit", 128), ("1mbit", (1 << 20) // 8), ("1gbit", (1 << 30) // 8), ("1514b", 1514), ("1.5kb", 1536),
    ("10KB", 10240),
])
def test_sizes_in_bytes_as_tc_get_size(text, size):
    assert impair._size(text) == size


@pytest.mark.parametrize("text", ["0%", "1%", "0.1%", "0.5%", "25%", "33.3333%", "50%", "99.9999%", "100%",
                                  "0.0001%", "12.5%", "2.5%", "66.6%", "1e-3%"])
def test_percentages_rounded_as_tc_rounds_them(text):
    assert impair._percent(text) == tc_percent(text)


def test_percentages_at_the_ends():
    assert impair._percent("100%") == U32_MAX and impair._percent("0%") == 0
    # rint rounds half to even: 50% of 2^32 - 1 is 2147483647.5
    assert impair._percent("50%") == tc_percent("50%") == 2147483648


@pytest.mark.parametrize("text, expected", [
    ("1%", ("1%", None)), ("1% 25%", ("1%", "25%")), (" 0.5%   100% ", ("0.5%", "100%")), ("100% 0%", ("100%", "0%")),
])
def test_a_chance_and_its_correlation(text, expected):
    chance, corr = expected
    assert impair._chance(text) == (tc_percent(chance), tc_percent(corr) if corr else 0)


@pytest.mark.parametrize("text, expected", [
    ("5ms", (5_000_000, 0)), ("5ms 25%", (5_000_000, tc_percent("25%"))), ("100us 0.5%", (100_000, tc_percent("0.5%"))),
])
def test_jitter_and_its_correlation(text, expected):
    assert impair._jitter(text) == expected


@pytest.mark.parametrize("parse, value, message", [
    (impair._time, "40", "has no unit"),
    (impair._time, 40, "has no unit"),
    (impair._time, "-1ms", "negative"),
    (impair._time, "40 ms", "not a number with a unit"),
    (impair._time, "40mins", "unknown unit"),
    (impair._time, True, "write it as tc does"),
    (impair._time, "infms", "not a number"),
    (impair._rate, "10", "has no unit"),
    (impair._rate, "0mbit", "no rate"),
    (impair._rate, "7bit", "no rate"),
    (impair._rate, "10mb", "unknown unit"),
    (impair._rate, "-1mbit", "negative"),
    (impair._rate, "20000000tbps", "more than the kernel counts"),
    (impair._size, "32", "has no unit"),
    (impair._size, "0kb", "not from 1b"),
    (impair._size, "5gb", "not from 1b"),
    (impair._chance, "1", "not a percentage like 1%"),
    (impair._chance, 1, "has no unit"),
    (impair._chance, "101%", "over 100%"),
    (impair._chance, "-1%", "negative"),
    (impair._chance, "1% 25% 3%", "an optional correlation"),
    (impair._chance, "1% 25", "not a percentage"),
    (impair._chance, "1%%", "not a percentage"),
    (impair._chance, ["1%"], "write it as tc does"),
    (impair._jitter, "5ms 25% 1%", "an optional correlation"),
    (impair._jitter, "5ms 125%", "over 100%"),
])
def test_bad_values_say_what_is_wrong(parse, value, message):
    with pytest.raises(ValueError, match=message):
        parse(value)


# --- the qdisc a topology asks for: netem ---------------------------------------------------------------

def netem_limit(rate: int, delay: int, jitter: int, mtu: int = 1500) -> int:
    """The derived netem queue, exactly: twice what the link holds in flight (at `rate`, or 1 gbit/s without
    one, over delay + jitter) in packets of MTU + 14 bytes, at least 1000 (netem's default)."""
    held = Fraction(rate or 125_000_000) * (delay + jitter) / 10**9
    return max(1000, math.ceil(2 * held / (mtu + 14)))


@pytest.mark.parametrize("fields, mtu", [
    ({"delay": "40ms"}, None),
    ({"delay": "40ms", "jitter": "10ms"}, None),
    ({"delay": "1ms"}, None),  # below the floor
    ({"delay": "100ms", "rate": "10mbit"}, None),
    ({"delay": "100ms", "rate": "10gbit"}, None),
    ({"delay": "2s", "jitter": "1s"}, 9000),
    ({"delay": "250ms", "rate": "40gbit"}, 1400),
    ({"loss": "1%"}, None),  # no delay: nothing in flight
])
def test_netem_limit_derived(fields, mtu):
    q = impair.desired(ImpairSpec(**fields), mtu)
    p = dict(q.params)
    assert q.kind == "netem"
    assert p["limit"] == netem_limit(p["rate"], p["delay"], p["jitter"][0], mtu or 1500)


def test_netem_limit_given_is_kept():
    assert dict(impair.desired(ImpairSpec(delay="2s", limit=50), None).params)["limit"] == 50


def test_netem_every_parameter_in_the_kernels_units():
    spec = ImpairSpec(delay="40ms", jitter="5ms 25%", distribution="normal", loss="1% 25%", duplicate="2% 10%",
                      corrupt="0.1% 5%", reorder="25% 50%", gap=5, rate="10mbit", limit=3000)
    q = impair.desired(spec, None)
    assert (q.kind, q.handle, q.distribution, q.ours) == ("netem", 0x6E6E << 16, "normal", True)
    assert q.params == (
        ("delay", 40_000_000), ("jitter", (5_000_000, tc_percent("25%"))),
        ("loss", (tc_percent("1%"), tc_percent("25%"))), ("duplicate", (tc_percent("2%"), tc_percent("10%"))),
        ("corrupt", (tc_percent("0.1%"), tc_percent("5%"))), ("reorder", (tc_percent("25%"), tc_percent("50%"))),
        ("gap", 5), ("rate", 1_250_000), ("limit", 3000), ("other", ()))


def test_netem_zeros_for_what_is_not_declared_and_gap_1_with_a_reorder():
    assert dict(impair.desired(ImpairSpec(delay="1ms"), None).params) == {
        "delay": 1_000_000, "jitter": (0, 0), "loss": (0, 0), "duplicate": (0, 0), "corrupt": (0, 0),
        "reorder": (0, 0), "gap": 0, "rate": 0, "limit": 1000, "other": ()}
    # tc's q_netem.c: a reorder without a gap gets gap 1 (every packet may be sent at once)
    assert dict(impair.desired(ImpairSpec(delay="1ms", reorder="10%"), None).params)["gap"] == 1


@pytest.mark.parametrize("distribution, major", [(None, 0x6E6D), ("normal", 0x6E6E), ("pareto", 0x6E6F),
                                                 ("paretonormal", 0x6E70)])
def test_netem_handle_marks_its_table(distribution, major):
    spec = ImpairSpec(delay="10ms", jitter="1ms", distribution=distribution)
    q = impair.desired(spec, None)
    assert q.handle == major << 16 and q.distribution == distribution and q.ours
    assert Qdisc("tbf", major << 16).ours is False  # a handle marks a kind
    assert Qdisc("netem", (major << 16) | 1).ours is False  # a root qdisc's minor is 0


def test_netem_rate_with_other_fields_is_netems_not_tbfs():
    q = impair.desired(ImpairSpec(rate="10mbit", loss="1%"), None)
    assert q.kind == "netem" and dict(q.params)["rate"] == 1_250_000


# --- the qdisc a topology asks for: tbf, and the kernel's bucket arithmetic ----------------------------

def precompute(rate: int) -> tuple[int, int]:
    """psched_ratecfg_precompute__ (net/sched/sch_generic.c): mult is a u32 (the u64 quotient truncated on
    assignment), shift a u8; factor is a u64."""
    if rate <= 0:
        return 1, 0
    factor, shift = 10**9, 0
    while True:
        mult = (factor // rate) & 0xFFFFFFFF
        if mult & (1 << 31) or factor & (1 << 63):
            return mult, shift
        factor = (factor << 1) & (2**64 - 1)
        shift += 1


def l2t_ns(rate: int, length: int) -> int:
    """psched_l2t_ns (include/net/sch_generic.h), overhead 0 and linklayer ethernet: ((u64)len * mult) >> shift."""
    mult, shift = precompute(rate)
    return ((length * mult) & (2**64 - 1)) >> shift


def ns2ticks(ns: int) -> int:
    return ns >> 6  # PSCHED_NS2TICKS: PSCHED_SHIFT 6


@pytest.mark.parametrize("rate", [1, 3, 125, 1000, 1_250_000, 2_500_000, 12_345_678, 125_000_000, 10**9, U32_MAX,
                                  5 * 10**9, 1 << 40, 2**63 + 12345])
def test_ratecfg_is_the_kernels(rate):
    mult, shift = impair._ratecfg(rate)
    assert (mult, shift) == precompute(rate)
    assert 1 << 31 <= mult < 1 << 32 or shift == 0 or (10**9 << shift) & (1 << 63)


@pytest.mark.parametrize("fields, mtu", [
    ({"rate": "10mbit"}, None), ({"rate": "20mbit"}, None), ({"rate": "100kbit"}, None), ({"rate": "1gbit"}, None),
    ({"rate": "1mbit", "burst": "32kb"}, None), ({"rate": "1mbit", "latency": "200ms"}, None),
    ({"rate": "3kbit"}, 9000), ({"rate": "40gbit"}, None),
    ({"rate": "12.345mbit", "burst": "1514b", "latency": "1s"}, 1500),
    ({"rate": "7mbit"}, 1280),
])
def test_tbf_bucket_and_queue(fields, mtu):
    q = impair.desired(ImpairSpec(**fields), mtu)
    p = dict(q.params)
    rate = int(Fraction(fields["rate"].rstrip("abcdefghijklmnopqrstuvwxyz")) * TC_RATES[
        fields["rate"].lstrip("0123456789.")]) // 8
    packet = (mtu or 1500) + 14
    burst = impair._size(fields["burst"]) if "burst" in fields else max(packet, math.ceil(Fraction(rate, 250)))
    latency = impair._time(fields.get("latency", "50ms"))
    assert (q.kind, q.handle, q.ours) == ("tbf", 0x6E6C << 16, True)
    assert p["rate"] == rate
    assert p["limit"] == burst + rate * latency // 10**9
    # the bucket as the kernel keeps it: the time `burst` bytes take at `rate`, whole ticks, as it dumps them
    assert p["buffer"] == ns2ticks(l2t_ns(rate, burst)) << 6
    assert p["buffer"] % 64 == 0 and p["other"] == ()
    # what the kernel makes of that time (psched_ns_t2l): the burst again, less what the tick it was rounded
    # down to holds (and a byte the divisions lose)
    assert burst - math.ceil(Fraction(rate * 64, 10**9)) - 1 <= impair.burst_of(rate, p["buffer"]) <= burst


def test_tbf_buffer_against_hand_figures():
    # 10mbit: 1,250,000 B/s, burst 5000 B (rate/250): 4 ms exactly
    assert dict(impair.desired(ImpairSpec(rate="10mbit"), None).params)["buffer"] == 4_000_000
    # 1mbit: 125,000 B/s, burst 1514 B (an MTU and its header): 12.112 ms, 189250 ticks
    assert dict(impair.desired(ImpairSpec(rate="1mbit"), None).params)["buffer"] == 12_112_000


def test_a_tbf_too_slow_for_its_bucket_is_refused_when_loaded():
    from netlab.errors import ValidationError
    from netlab.model import loads

    with pytest.raises(ValidationError, match="rate"):
        loads("name: t\nnamespaces:\n  a:\n    interfaces:\n      e0: {kind: veth, peer: a/e1, impair: {rate: 8bit}}\n"
              "      e1: {}\n")


def test_a_tbf_bucket_the_kernel_cannot_hold_is_refused_with_the_least_rate():
    """sch_tbf.c caps the bucket's time at ~0U ns (4.29 s) when it computes the largest packet from
    tc_tbf_qopt.buffer: below about 2.8 kbit a 1514-byte bucket would pass no full-size packet (seen on 6.18
    at 1kbit: 1000-byte pings dropped). Refused when loaded, naming the least rate that holds it."""
    from netlab.errors import ValidationError
    from netlab.model import loads

    with pytest.raises(ValidationError, match=r"impair\.rate: at 1kbit a bucket of 1514 bytes .* at least 2\.824kbit"):
        loads("name: t\nnamespaces:\n  a:\n    interfaces:\n      e0: {kind: veth, peer: a/e1, impair: {rate: 1kbit}}\n"
              "      e1: {}\n")
    loads("name: t\nnamespaces:\n  a:\n    interfaces:\n      e0: {kind: veth, peer: a/e1, impair: {rate: 2825bit}}\n"
          "      e1: {}\n")


# --- how a plan shows it --------------------------------------------------------------------------------

def test_summary():
    netem = impair.desired(ImpairSpec(delay="40ms", jitter="5ms 25%", distribution="pareto", loss="1% 25%",
                                      duplicate="2%", corrupt="0.1%", reorder="10% 50%", gap=3, rate="20mbit"), None)
    assert impair.summary(netem) == ("netem delay 40ms, jitter 5ms 25%, distribution pareto, loss 1% 25%, duplicate "
                                     "2%, corrupt 0.1%, reorder 10% 50%, gap 3, rate 20mbit, limit 1000")
    assert impair.summary(impair.desired(ImpairSpec(loss="0.5%"), None)) == "netem loss 0.5%, limit 1000"
    assert impair.summary(impair.desired(ImpairSpec(delay="10ms", reorder="5%"), None)) == \
        "netem delay 10ms, reorder 5%, limit 1652"  # gap 1, netem's own, not shown
    tbf = impair.desired(ImpairSpec(rate="20mbit"), None)
    assert impair.summary(tbf) == "tbf rate 20mbit, burst 10000b, limit 135000b"
    assert impair.summary(impair.desired(ImpairSpec(rate="1.5mbit", burst="32kb"), None)) == \
        "tbf rate 1.5mbit, burst 32767b, limit 42143b"  # the bucket as the kernel keeps it: whole ticks
    assert impair.summary(Qdisc("htb", 1 << 16)) == "htb 1:"
    assert impair.summary(Qdisc("fq_codel", 0x8001 << 16)) == "fq_codel 8001:"


@pytest.mark.parametrize("before, after, expected", [
    ({"delay": "40ms"}, {"delay": "80ms"}, ["delay 40ms -> 80ms", "limit 6606 -> 13211"]),
    ({"delay": "40ms", "limit": 2000}, {"delay": "80ms", "limit": 2000}, ["delay 40ms -> 80ms"]),
    ({"delay": "1ms", "loss": "1% 25%"}, {"delay": "1ms", "loss": "1%"}, ["loss 1% 25% -> 1%"]),
    ({"delay": "1ms", "loss": "1%"}, {"delay": "1ms"}, ["loss 1% -> 0%"]),
    ({"delay": "1ms", "jitter": "500us"}, {"delay": "1ms", "jitter": "500us 10%"}, ["jitter 500us -> 500us 10%"]),
    ({"delay": "1ms", "reorder": "5%"}, {"delay": "1ms", "reorder": "5%", "gap": 4}, ["gap 1 -> 4"]),
    ({"delay": "1ms"}, {"delay": "1ms", "rate": "1gbit"}, ["rate 0 -> 1gbit"]),
    ({"rate": "10mbit"}, {"rate": "10mbit", "burst": "10kb"},
     ["burst 5000b -> 10kb", "limit 67500b -> 72740b"]),
    ({"rate": "10mbit"}, {"rate": "10mbit", "latency": "100ms"}, ["limit 67500b -> 130000b"]),
])
def test_changes_parameter_by_parameter(before, after, expected):
    have, want = impair.desired(ImpairSpec(**before), None), impair.desired(ImpairSpec(**after), None)
    assert impair.changes(have, want) == expected


# --- TCA_OPTIONS both ways ------------------------------------------------------------------------------

NETEMS: list[dict[str, Any]] = [
    {"delay": "40ms"},
    {"delay": "40ms", "jitter": "5ms 25%", "distribution": "normal", "loss": "1% 25%"},
    {"delay": "3s", "jitter": "2s", "distribution": "pareto"},
    {"delay": "10ms", "reorder": "25% 50%", "gap": 5, "corrupt": "0.1% 5%", "duplicate": "100% 100%", "limit": 1},
    {"loss": "100%", "rate": "40gbit"},  # rate64: 5e9 B/s, past 2^32 - 1
    {"delay": "1ns", "jitter": "2.147s", "distribution": "paretonormal", "rate": "8bit", "limit": U32_MAX},
    {"delay": "300s"},  # 300 s in ticks is past 2^32 - 1: latency64 carries it
]
TBFS: list[dict[str, Any]] = [
    {"rate": "10mbit"}, {"rate": "1mbit", "burst": "32kb", "latency": "1s"}, {"rate": "40gbit"}, {"rate": "34.36gbit"},
    {"rate": "100tbit", "burst": "1kb"},
]


def netem_dump(request: bytes) -> bytes:
    """What the kernel dumps of a netem made from `request` (sch_netem.c: netem_change keeps the values, and
    an older tick field only where there is no 64-bit one; netem_dump reports the qopt with the ticks capped
    at UINT_MAX, LATENCY64, JITTER64, CORR, REORDER, CORRUPT, RATE (RATE64 from 2^32 B/s up, the 32-bit
    rate then ~0U), ECN only if set, SLOT only if its delays or jitter are; never the table)."""
    n = rtnl.NETEM_OPTIONS.decode(request)
    latency = n["latency64"] if "latency64" in n else n["latency"] * 64
    jitter = n["jitter64"] if "jitter64" in n else n["jitter"] * 64
    rate = max(n.get("rate", {}).get("rate", 0), n.get("rate64", 0))
    slot = n.get("slot", {})
    return rtnl.NETEM_OPTIONS.encode({
        "latency": min(latency >> 6, U32_MAX), "jitter": min(jitter >> 6, U32_MAX), "limit": n["limit"],
        "loss": n["loss"], "gap": n["gap"], "duplicate": n["duplicate"], "latency64": latency, "jitter64": jitter,
        "corr": n.get("corr", {}), "reorder": n.get("reorder", {}), "corrupt": n.get("corrupt", {}),
        "rate": {**n.get("rate", {}), "rate": min(rate, U32_MAX)}, "rate64": rate if rate >= 1 << 32 else None,
        "ecn": n.get("ecn") or None,
        "slot": slot if slot.get("min_delay") or slot.get("max_delay") or slot.get("dist_jitter") else None})


def tbf_dump(request: bytes) -> bytes:
    """What the kernel dumps of a tbf made from `request` without TCA_TBF_BURST (sch_tbf.c: q->buffer is
    PSCHED_TICKS2NS(qopt->buffer), dumped as PSCHED_NS2TICKS; the rate as psched_ratecfg_getrate, RATE64
    from 2^32 B/s up)."""
    t = rtnl.TBF.decode(request)
    parms = t["parms"]
    rate = max(parms["rate"], t.get("rate64", 0))
    return rtnl.TBF.encode({"parms": {"linklayer": parms["linklayer"] & 0x0F, "rate": min(rate, U32_MAX),
                                      "limit": parms["limit"], "buffer": (parms["buffer"] << 6) >> 6},
                            "rate64": rate if rate >= 1 << 32 else None})


@pytest.mark.parametrize("fields", NETEMS + TBFS, ids=[str(f) for f in NETEMS + TBFS])
def test_options_read_back_from_the_kernels_dump_as_desired(fields):
    q = impair.desired(ImpairSpec(**fields), None)
    data = impair.options(q)
    dump = (netem_dump if q.kind == "netem" else tbf_dump)(data)
    assert impair.read(q.kind, q.handle, dump) == q
    if q.kind == "tbf":
        t = rtnl.TBF.decode(data)
        rate = dict(q.params)["rate"]
        assert t["parms"]["linklayer"] == rtnl.TC_LINKLAYER_ETHERNET  # no rate table needed (sch_tbf.c)
        assert t["parms"]["rate"] == min(rate, U32_MAX) and t.get("rate64") == (rate if rate > U32_MAX else None)
        assert t["parms"]["buffer"] * 64 == dict(q.params)["buffer"]
        return
    n = rtnl.NETEM_OPTIONS.decode(data)
    p = dict(q.params)
    # the 32-bit tick fields as the kernel reads them when there are no 64-bit ones, capped
    assert n["latency"] == min(p["delay"] // 64, U32_MAX) and n["latency64"] == p["delay"]
    assert n["jitter"] == min(p["jitter"][0] // 64, U32_MAX) and n["jitter64"] == p["jitter"][0]
    # every optional parameter sent, zeros included (netem keeps what a change leaves out)
    assert {"corr", "reorder", "corrupt", "rate", "ecn", "slot"} <= set(n)
    assert n["ecn"] == 0 and not any(n["slot"].values())
    assert n["rate"]["rate"] == min(p["rate"], U32_MAX) and n.get("rate64") == (p["rate"] if p["rate"] > U32_MAX
                                                                                else None)
    # the table goes with the request, and is the file's
    if q.distribution:
        assert n["delay_dist"] == impair.table(q.distribution) == dist_table(q.distribution)
    else:
        assert "delay_dist" not in n


@pytest.mark.parametrize("fields", NETEMS[:2], ids=[str(f) for f in NETEMS[:2]])
def test_options_read_back_as_desired(fields):
    q = impair.desired(ImpairSpec(**fields), None)
    assert impair.read(q.kind, q.handle, impair.options(q)) == q


def test_tbf_options_read_back_as_desired():
    for fields in TBFS:
        q = impair.desired(ImpairSpec(**fields), None)
        assert impair.read(q.kind, q.handle, impair.options(q)) == q


def test_rate64_above_2_to_the_32_bytes_per_second():
    for fields in ({"rate": "40gbit"}, {"rate": "40gbit", "delay": "1ms"}):
        q = impair.desired(ImpairSpec(**fields), None)
        assert dict(q.params)["rate"] == 5 * 10**9 > U32_MAX
        dump = (netem_dump if q.kind == "netem" else tbf_dump)(impair.options(q))
        assert dict(impair.read(q.kind, q.handle, dump).params)["rate"] == 5 * 10**9


def test_read_of_a_kernel_dump_without_64_bit_times_and_with_what_netlab_does_not_set():
    # a dump from an older kernel: ticks only, no LATENCY64/JITTER64; ECN and a slot set by hand
    data = rtnl.NETEM_OPTIONS.encode({"latency": 625000, "limit": 1000, "loss": 5, "gap": 0, "duplicate": 0,
                                      "jitter": 15625, "corr": {"delay_corr": 7, "loss_corr": 8, "dup_corr": 0},
                                      "ecn": 1, "slot": {"min_delay": 1}})
    q = impair.read("netem", 0x6E6D << 16, data)
    p = dict(q.params)
    assert p["delay"] == 40_000_000 and p["jitter"] == (1_000_000, 7) and p["loss"] == (5, 8)
    assert p["other"] == ("ecn", "slot")
    assert "ecn" in impair.summary(q) or "slot" in impair.summary(q)


def test_read_of_somebody_elses_root_qdisc_is_its_kind_and_handle():
    assert impair.read("htb", 1 << 16, b"\x01\x02") == Qdisc("htb", 1 << 16)
    assert impair.read("netem", 0x8001 << 16, impair.options(impair.desired(ImpairSpec(delay="1ms"), None))) == \
        Qdisc("netem", 0x8001 << 16)  # a netem, but not under one of netlab's handles
    assert impair.read("tbf", 0x6E6D << 16, None) == Qdisc("tbf", 0x6E6D << 16)  # netem's handle on a tbf


def test_qdisc_to_dict_round_trip():
    for fields in NETEMS + TBFS:
        q = impair.desired(ImpairSpec(**fields), None)
        assert qdisc_from_dict(q.to_dict()) == q


# --- distribution tables --------------------------------------------------------------------------------

def dist_table(name: str) -> bytes:
    """A .dist file read as tc's get_distribution does: lines that start with '#' or are empty skipped, then
    every number (strtol), as native s16."""
    values: list[int] = []
    for line in (TC_LIB / f"{name}.dist").read_text().splitlines():
        if not line or line.startswith("#"):
            continue
        values.extend(int(word) for word in line.split())
    return struct.pack(f"@{len(values)}h", *values)


@pytest.mark.skipif(not (TC_LIB / "normal.dist").exists(), reason="iproute2's tables are not installed")
@pytest.mark.parametrize("name", impair.DISTRIBUTIONS)
def test_distribution_tables_read_like_tc(name):
    data = impair.table(name)
    assert data == dist_table(name)
    assert len(data) == 2 * 4096  # iproute2's tables: 4096 values (TABLESIZE 16384 in the kernel at most)
    if name == "normal":
        first = struct.unpack_from("@8h", data)
        assert first == (-32768, -28307, -26871, -25967, -25298, -24765, -24320, -23937)


def test_table_dir_from_tc_lib_dir(tmp_path, monkeypatch):
    (tmp_path / "normal.dist").write_text("# a table\n1 2 -3\n\n0x10 -0x2\n")
    monkeypatch.setenv("TC_LIB_DIR", str(tmp_path))
    impair.table.cache_clear()
    try:
        assert impair.table("normal") == struct.pack("@5h", 1, 2, -3, 16, -2)
        with pytest.raises(FileNotFoundError, match=r"pareto\.dist"):
            impair.table("pareto")
    finally:
        impair.table.cache_clear()
