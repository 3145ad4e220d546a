"""The route messages' hand-packed fast paths against the table codec they stand in for: `rtnl.route`
packs its requests by hand and must send the very bytes of `rtnl.route_by_table` (the ROUTE table's
encoding), for every case test_codec.py reads back with pyroute2 and a few more; `rtnl.decode_route`
walks the attributes by hand and must read what ROUTE.decode reads from the same bytes, kernel dumps
encoded by pyroute2 included."""

from __future__ import annotations

import itertools
import socket
from typing import Any

import pytest

from netlab.netlink import rtnl as nl
from netlab.netlink.codec import NLA_F_NESTED, attr

from test_codec import PROTO, ROUTES, V4, V6, dumped, framed, hop, ip

EXTRA: dict[str, tuple[Any, ...]] = {
    "v4-unicast-no-path": (V4, "10.5.0.0", 16, 254, 0, "unicast", [], None, None),
    "v4-gateway-no-ifindex": (V4, "10.6.0.0", 16, 254, 0, "unicast", [hop("10.0.0.2")], None, None),
    "v4-local-table-number": (V4, "10.7.0.0", 16, 255, 1, "unicast", [hop("10.0.0.2", 2)], None, None),
    "v4-table-0": (V4, "10.7.0.0", 16, 0, 0, "unicast", [hop("10.0.0.2", 2)], None, None),
    "v6-default-mtu-src": (V6, "::", 0, 254, 0, "unicast", [hop("2001:db8::1", 9)], "2001:db8::2", 9000),
    "v4-blackhole-mtu": (V4, "192.0.2.0", 24, 254, 0, "blackhole", [], None, 1280),
}
CASES = {**ROUTES, **EXTRA}


def args(case: tuple[Any, ...]) -> tuple[Any, ...]:
    family, dst, dst_len, table, metric, rtype, hops, prefsrc, mtu = case
    return family, ip(dst), dst_len, table, metric, PROTO, rtype, hops, ip(prefsrc) if prefsrc else None, mtu


@pytest.mark.parametrize("op", ["add", "replace", "delete"])
@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_route_request_is_byte_for_byte_the_table_encoding(op, case):
    fast, table = nl.route(op, *args(CASES[case])), nl.route_by_table(op, *args(CASES[case]))
    assert (fast.type, fast.flags) == (table.type, table.flags)
    assert fast.body == table.body


def test_route_request_hops_none_and_empty_are_the_same():
    for op in ("add", "delete"):
        a = nl.route(op, V4, ip("10.5.0.0"), 16, 254, 0, PROTO, "blackhole", None)
        assert a.body == nl.route_by_table(op, V4, ip("10.5.0.0"), 16, 254, 0, PROTO, "blackhole", []).body


def reference(data: bytes, offset: int = 16) -> nl.RouteInfo | None:
    """decode_route as it was written with the table codec (ROUTE.decode with only=)."""
    family, dst_len, _, _, table, protocol, _, rtype, flags = nl.RTMSG.unpack_from(data, offset)
    kind = nl.ROUTE_TYPE_NAMES.get(rtype)
    if kind is None or protocol in (nl.RTPROT_REDIRECT, nl.RTPROT_KERNEL, nl.RTPROT_RA) or \
            table == nl.RT_TABLE_LOCAL or flags & nl.RTM_F_CLONED:
        return None
    a = nl.ROUTE.decode(data, offset + nl.RTMSG.size, only=frozenset(
        {"dst", "oif", "gateway", "priority", "prefsrc", "metrics", "multipath", "table"}))
    hops: list[nl.Hop] = []
    if kind == "unicast":
        if "multipath" in a:
            hops = [{"gateway": h.get("gateway"), "ifindex": h["ifindex"], "weight": h["hops"] + 1,
                     "onlink": bool(h["flags"] & nl.RTNH_F_ONLINK)} for h in a["multipath"]]
        else:
            hops = [{"gateway": a.get("gateway"), "ifindex": a.get("oif", 0), "weight": 1,
                     "onlink": bool(flags & nl.RTNH_F_ONLINK)}]
    metrics = a.get("metrics")
    return {"family": family, "dst": a.get("dst"), "dst_len": dst_len, "table": a.get("table", table),
            "metric": a.get("priority", 0), "protocol": protocol, "type": kind, "hops": hops,
            "prefsrc": a.get("prefsrc"), "mtu": metrics.get("mtu") if metrics else None}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_decode_route_reads_what_the_table_decoder_reads(case):
    messages = [framed(nl.route(op, *args(CASES[case])).body) for op in ("add", "delete")]
    messages += [dumped(CASES[case]), dumped(CASES[case], rtm_table=252), dumped(CASES[case], protocol=4),
                 dumped(CASES[case], protocol=nl.RTPROT_KERNEL), dumped(CASES[case], rtm_flags=nl.RTM_F_CLONED)]
    for data in messages:
        got = nl.decode_route(data)
        assert got == reference(data)
    if CASES[case][3] != nl.RT_TABLE_LOCAL:  # the local table's routes are the kernel's: never read
        assert nl.decode_route(messages[2]) is not None
    assert nl.decode_route(messages[-1]) is None


def test_decode_route_attribute_flags_order_repeats_and_truncation():
    """Attributes flagged NLA_F_NESTED / NLA_F_NET_BYTEORDER, in any order, repeated (the last counts),
    types netlab does not read, and a message cut inside an attribute: both decoders agree."""
    head = nl.RTMSG.encode({"family": V4, "dst_len": 24, "table": 254, "protocol": PROTO, "type": nl.RTN_UNICAST})
    parts = [attr(nl.RTA_DST, ip("10.1.2.0")), attr(nl.RTA_GATEWAY | 0x4000, ip("10.0.0.1")),
             attr(nl.RTA_OIF, (7).to_bytes(4, "little")), attr(nl.RTA_PRIORITY, (5).to_bytes(4, "little")),
             attr(nl.RTA_METRICS | NLA_F_NESTED, attr(nl.RTAX_MTU, (1400).to_bytes(4, "little"))),
             attr(12, b"\1\2\3\4"), attr(nl.RTA_TABLE, (1000).to_bytes(4, "little")),
             attr(nl.RTA_GATEWAY, ip("10.0.0.9"))]
    seen = 0
    for order in itertools.islice(itertools.permutations(parts), 0, None, 97):
        body = head + b"".join(order)
        for cut in (len(body), len(body) - 2, len(body) - 9):
            data = framed(body[:cut])
            got = nl.decode_route(data)
            assert got == reference(data), (order, cut)
            seen += 1
    assert seen > 1000
    full = nl.decode_route(framed(head + b"".join(parts)))
    assert full is not None and full["hops"][0]["gateway"] == socket.inet_aton("10.0.0.9") and full["mtu"] == 1400


# --- routes.py: an entry's destinations share one check of what does not depend on them ------------------

def _routes_of(entries: list[dict[str, Any]], namespace: str = "n1") -> tuple[dict[Any, Any], list[Any]]:
    from netlab.model import NamespaceSpec
    from netlab.routes import routes

    spec = NamespaceSpec.model_validate({"interfaces": {
        "e0": {"kind": "veth", "peer": "n1/e1", "addresses": ["10.0.0.1/24", "2001:db8:1::2/64"]},
        "e1": {"addresses": ["192.0.2.1/24"]}}, "routes": entries})
    problems: list[Any] = []
    return routes(namespace, spec, problems, owner="t"), problems


@pytest.mark.parametrize("entry", [
    {"via": "10.0.0.2", "metric": 5},
    {"via": "10.0.0.2", "src": "10.0.0.1", "table": 7, "mtu": 1400},
    {"dev": "e1"},
    {"type": "blackhole"},
    {"nexthops": [{"via": "10.0.0.2", "weight": 2}, {"via": "192.0.2.9"}]},
    {"via": "10.9.9.9"},  # unreachable gateway: a problem for each destination
    {"via": "2001:db8:1::1", "src": "10.0.0.1"},  # a v6 gateway: wrong for the v4 destinations only
    {"type": "prohibit", "via": "10.0.0.2"},
    {"table": 255, "nexthops": [{"via": "10.0.0.2"}]},
    {},
], ids=lambda e: ",".join(e) or "nothing")
def test_a_list_of_destinations_is_checked_as_each_destination_alone(entry):
    tos = ["10.1.0.0/16", "default", "10.2.0.0/16", "2001:db8:9::/48", "10.0.0.0/24", "10.1.0.1/16", "::/0"]
    listed, listed_problems = _routes_of([{**entry, "to": tos}])
    alone: dict[Any, Any] = {}
    alone_problems: list[Any] = []
    for j, to in enumerate(tos):
        routes, problems = _routes_of([{**entry, "to": [to]}])
        alone.update(routes)
        # the same problems, at destination j of the one entry instead of destination 0
        alone_problems += [type(p)(p.path[:5] + (j,) + p.path[6:] if p.path[4:6] == ("to", 0) else p.path, p.message)
                           for p in problems]
    assert listed == alone
    assert [(p.path, p.message) for p in listed_problems] == [(p.path, p.message) for p in alone_problems]
    assert listed or listed_problems
