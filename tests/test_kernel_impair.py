"""Impairments (issue 12) on this machine's kernel, which has tbf and htb but no sch_netem: a rate-only
`impair` (tbf) through the CLI as users run it, read back with iproute2 (`tc -r -j -d qdisc show`, and
`tc -s -j` for the qdisc's counters), never only through netlab's own reader; a rate proven by a bulk TCP
transfer between two namespaces; drift by hand (`tc qdisc change`, `tc qdisc del`) repaired, in place
where the kind stays (the qdisc's sent-bytes counter survives: a delete and add would reset it); a change
in the file made in place; removal giving the kernel's default back; a foreign root qdisc refused as a
CONFLICT where the link is impaired and left alone where it is not; a netem impairment on a kernel without
sch_netem failing with the module's name before anything is made (or, where the kernel has netem, made);
and rollback at every step of a create, a change and a destroy with impairments in the plan.

The expected tbf parameters are computed here from the documented rules (docs/design.md, issue 12), not
with netlab.impair: rate in bytes/s = bits/8; burst = max(MTU + 14, rate / 250) unless given; byte limit =
burst + rate x latency (50 ms unless given). The kernel keeps the bucket as time, in 64 ns ticks (what
`tc -r` prints as burst_raw, in hex): the burst it holds is that time at the rate.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import socket
import subprocess
import threading
import time
from functools import partial
from typing import Any

import pytest

from netlab import api
from netlab.model import Topology, load

from conftest import Lab, kernel_lacks, netns_names
from test_kernel_rollback import run_every_k

pytestmark = pytest.mark.kernel

TICK_NS = 64  # the kernel's psched tick, the unit of tbf's bucket as tc_tbf_qopt carries it
MTU = 1500

# One veth between two namespaces; IMPAIR is what the test puts in a/eth0's `impair` (the whole
# `, impair: IMPAIR` removed: no impairment).
PAIR = """
name: "@"
namespaces:
  "@a":
    interfaces:
      eth0: {peer: "@b/eth0", addresses: [10.66.0.1/24], impair: IMPAIR}
  "@b":
    interfaces:
      eth0: {addresses: [10.66.0.2/24]}
"""


def namespaces(lab: Lab) -> list[str]:
    """The test's namespaces (the canaries' user namespace, '<prefix>user', aside)."""
    return [n for n in netns_names() if n.startswith(lab.p) and not n.startswith(f"{lab.p}u")]


def pair(lab: Lab, impair: str | None) -> str:
    text = PAIR.replace(", impair: IMPAIR", "") if impair is None else PAIR.replace("IMPAIR", impair)
    return lab.write(text)


# --- what the documented rules give -----------------------------------------------------------------------

def expected_tbf(rate_bits: int, burst: int | None = None, latency_ms: int = 50) -> dict[str, int]:
    """tbf's rate (bytes/s), bucket (bytes) and queue (bytes) for an `impair: {rate: ...}` on a link of
    MTU 1500, by the rules of issue 12 and docs/design.md."""
    rate = rate_bits // 8
    bucket = burst if burst is not None else max(MTU + 14, math.ceil(rate / 250))
    return {"rate": rate, "burst": bucket, "limit": bucket + rate * latency_ms // 1000}


# --- iproute2's view --------------------------------------------------------------------------------------

def tc_json(ns: str, *args: str) -> list[dict[str, Any]]:
    out = subprocess.run(["tc", "-n", ns, *args], check=True, capture_output=True, text=True, timeout=30).stdout
    return json.loads(out) if out.strip() else []


def roots(ns: str) -> dict[str, dict[str, Any]]:
    """Each link's root qdisc in `ns` as `tc -r -j -d qdisc show` prints it (raw: with tbf's limit and its
    bucket in ticks), without the reference count (the kernel's bookkeeping) and htb's count of packets
    sent past its classes (traffic, which the kernel's IPv6 neighbour discovery makes by itself)."""
    out = {}
    for q in tc_json(ns, "-r", "-j", "-d", "qdisc", "show"):
        if q.get("root"):
            options = {k: v for k, v in q.get("options", {}).items() if k != "direct_packets_stat"}
            out[q["dev"]] = {**{k: v for k, v in q.items() if k != "refcnt"}, "options": options}
    return out


def root(ns: str, dev: str) -> dict[str, Any]:
    return roots(ns)[dev]


def sent_bytes(ns: str, dev: str) -> int:
    """The root qdisc's sent-bytes counter (`tc -s -j qdisc show`)."""
    found = [q for q in tc_json(ns, "-s", "-j", "qdisc", "show", "dev", dev) if q.get("root")]
    assert len(found) == 1, found
    return int(found[0]["bytes"])


def assert_tbf(q: dict[str, Any], want: dict[str, int]) -> None:
    """A root qdisc is netlab's tbf (handle 6e6c:) with the rate, bucket and queue of `want`. The bucket
    comes back as time in ticks (burst_raw, hex): at the rate it holds `burst` bytes, less than a tick's
    worth (the kernel rounds the time down to whole ticks)."""
    assert q["kind"] == "tbf" and q["handle"] == "6e6c:", q
    opts = q["options"]
    assert opts["rate"] == want["rate"], q
    assert opts["limit"] == want["limit"], q
    held = int(opts["burst_raw"], 16) * TICK_NS * want["rate"] / 1e9
    tick = TICK_NS * want["rate"] / 1e9
    assert want["burst"] - tick - 1e-6 <= held <= want["burst"] + 1e-6, (held, q)
    # tc's "lat": how long the queue beyond the bucket holds, in us: limit/rate - the bucket's time
    assert abs(opts["lat"] - (want["limit"] - want["burst"]) * 1e6 / want["rate"]) <= 1, q


def ping_through(lab: Lab, ns: str, address: str, count: int = 5) -> None:
    """Traffic out of `ns` (ICMP echo of 1400 bytes), so that its qdisc's counters move."""
    proc = lab.run_in(ns, "ping", "-c", str(count), "-i", "0.05", "-s", "1400", "-W", "2", address, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- traffic: a TCP transfer between namespaces, in this process --------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWNET = 0x40000000


def socket_in(ns: str) -> socket.socket:
    """A TCP socket made in namespace `ns` (a socket lives in the namespace it was made in, wherever it
    is used from): made by a thread that enters `ns` with setns(2), which moves that thread alone."""
    made: list[Any] = []

    def run() -> None:
        try:
            fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    code = ctypes.get_errno()
                    raise OSError(code, f"setns {ns}: {os.strerror(code)}")
            finally:
                os.close(fd)
            made.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        except BaseException as exc:  # noqa: BLE001 (handed to the caller)
            made.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    result = made[0]
    if isinstance(result, BaseException):
        raise result
    assert isinstance(result, socket.socket)
    return result


def transfer(src: str, dst: str, address: str, size: int = 5_000_000, limit_s: float = 8.0) -> tuple[float, int]:
    """Send `size` bytes over TCP from namespace `src` to `address` in namespace `dst` (at most `limit_s`
    seconds): the goodput the receiver measured (bits/s, from its first to its last byte, the first read
    left out) and the bytes it received."""
    server, client = socket_in(dst), socket_in(src)
    conn: socket.socket | None = None
    sender: threading.Thread | None = None
    try:
        server.settimeout(5)
        server.bind((address, 0))
        server.listen(1)
        client.settimeout(limit_s)
        client.connect(server.getsockname())
        conn, _ = server.accept()
        conn.settimeout(limit_s)

        def send() -> None:
            try:
                client.sendall(bytes(size))
            except OSError:
                pass  # the receiver gave up (and says so)

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        buf = bytearray(1 << 16)
        got = first_read = 0
        first = last = 0.0
        deadline = time.monotonic() + limit_s
        while got < size and time.monotonic() < deadline:
            n = conn.recv_into(buf)
            if not n:
                break
            now = time.monotonic()
            if not got:
                first, first_read = now, n
            got += n
            last = now
        assert got == size, f"{got} of {size} bytes in {limit_s} s"
        return (got - first_read) * 8 / (last - first), got
    finally:
        for s in (conn, client, server):
            if s is not None:
                s.close()
        if sender is not None:
            sender.join(timeout=5)


# --- 1, 9: a rate-only impairment is tbf with the derived bucket and queue; destroy removes all -----------

def test_a_rate_only_impair_is_tbf_with_the_derived_burst_and_limit(lab):
    p = lab.p
    path = pair(lab, "{rate: 20mbit}")
    want = expected_tbf(20_000_000)
    assert want == {"rate": 2_500_000, "burst": 10_000, "limit": 135_000}  # rate/250 is above MTU + 14
    out = lab.netlab("apply", path, check=0).stdout
    assert f"+   impair {p}a/eth0: tbf rate 20mbit, burst 10000b, limit 135000b" in out, out
    assert_tbf(root(f"{p}a", "eth0"), want)
    assert {k: v["kind"] for k, v in roots(f"{p}b").items()} == {"lo": "noqueue", "eth0": "noqueue"}
    assert root(f"{p}b", "eth0")["handle"] == "0:"  # the other end: the kernel's default, untouched
    lab.netlab("diff", path, check=0)
    shown = lab.netlab("show", path, check=0).stdout
    assert "  impair eth0: tbf rate 20mbit, burst 10000b, limit 135000b" in shown.split(f"{p}b  ")[0], shown
    assert shown.count("impair") == 1, shown

    out = lab.netlab("destroy", path, check=0).stdout
    assert "Destroy complete" in out, out
    assert not namespaces(lab)


def test_a_small_rates_bucket_is_a_packet_and_a_given_burst_and_latency_are_used(lab):
    """Below 250 x (MTU + 14) bytes/s (3.028 mbit) the bucket is one packet; `burst` and `latency` given
    replace the derived ones."""
    p = lab.p
    path = pair(lab, "{rate: 1mbit}")
    lab.netlab("apply", path, check=0)
    want = expected_tbf(1_000_000)
    assert want == {"rate": 125_000, "burst": 1514, "limit": 1514 + 6250}
    assert_tbf(root(f"{p}a", "eth0"), want)
    path = pair(lab, "{rate: 40mbit, burst: 64kb, latency: 10ms}")
    out = lab.netlab("apply", path, check=0).stdout
    assert f"~   impair {p}a/eth0: rate 1mbit -> 40mbit" in out, out
    assert_tbf(root(f"{p}a", "eth0"), expected_tbf(40_000_000, burst=65536, latency_ms=10))
    lab.netlab("diff", path, check=0)


# --- 2: the rate, by traffic --------------------------------------------------------------------------------

def test_a_rate_holds_a_bulk_tcp_transfer_to_it(lab):
    """5 MB over TCP from a to b through a/eth0's tbf at 20mbit: the receiver's goodput is within 20% of
    20 mbit/s (TCP/IP and Ethernet headers take about 4% of what tbf counts: 1448 payload bytes of 1514),
    and all of it went through the qdisc (its sent-bytes counter grew by at least the bytes received).
    Without the qdisc the same transfer runs at Gbit/s on a veth: a tbf that did not shape fails here."""
    p = lab.p
    lab.netlab("apply", pair(lab, "{rate: 20mbit}"), check=0)
    assert lab.ping(f"{p}a", "10.66.0.2")
    before = sent_bytes(f"{p}a", "eth0")
    goodput, got = transfer(f"{p}a", f"{p}b", "10.66.0.2")
    through = sent_bytes(f"{p}a", "eth0") - before
    print(f"goodput {goodput / 1e6:.2f} mbit/s over {got} bytes; the qdisc sent {through} bytes")
    assert through >= got
    assert 16e6 <= goodput <= 24e6, f"{goodput / 1e6:.2f} mbit/s, not within 20% of 20 mbit/s"


# --- 3: drift by hand -------------------------------------------------------------------------------------

def test_a_change_by_hand_is_drift_repaired_in_place_and_a_deleted_qdisc_is_added_back(lab):
    p, ns = lab.p, f"{lab.p}a"
    path = pair(lab, "{rate: 20mbit}")
    want = expected_tbf(20_000_000)
    lab.netlab("apply", path, check=0)
    ping_through(lab, ns, "10.66.0.2")
    counted = sent_bytes(ns, "eth0")
    assert counted >= 5 * 1400

    subprocess.run(["tc", "-n", ns, "qdisc", "change", "dev", "eth0", "root", "handle", "6e6c:", "tbf", "rate",
                    "5mbit", "burst", "10kb", "latency", "50ms"], check=True)
    assert root(ns, "eth0")["options"]["rate"] == 625_000
    out = lab.netlab("diff", path, check=2).stdout
    assert f"~   impair {p}a/eth0: rate 5mbit -> 20mbit" in out, out
    out = lab.netlab("apply", path, check=0).stdout
    assert f"~   impair {p}a/eth0: rate 5mbit -> 20mbit" in out and "0 added, 1 changed, 0 destroyed" in out, out
    assert_tbf(root(ns, "eth0"), want)
    assert sent_bytes(ns, "eth0") >= counted, "the counter went back: the qdisc was made again, not changed"
    lab.netlab("diff", path, check=0)

    subprocess.run(["tc", "-n", ns, "qdisc", "del", "dev", "eth0", "root"], check=True)
    assert root(ns, "eth0")["kind"] == "noqueue"
    out = lab.netlab("diff", path, check=2).stdout
    assert f"+   impair {p}a/eth0: tbf rate 20mbit, burst 10000b, limit 135000b" in out, out
    lab.netlab("apply", path, check=0)
    assert_tbf(root(ns, "eth0"), want)
    lab.netlab("diff", path, check=0)


# --- 4, 5: a change in the file, in place; removal ----------------------------------------------------------

def test_a_change_in_the_file_is_made_in_place_and_removing_impair_gives_the_default_back(lab):
    p, ns = lab.p, f"{lab.p}a"
    lab.netlab("apply", pair(lab, "{rate: 20mbit}"), check=0)
    ping_through(lab, ns, "10.66.0.2")
    counted = sent_bytes(ns, "eth0")
    assert counted >= 5 * 1400

    path = pair(lab, "{rate: 10mbit, burst: 32kb}")
    want = expected_tbf(10_000_000, burst=32 * 1024)
    assert want == {"rate": 1_250_000, "burst": 32768, "limit": 95268}
    out = lab.netlab("apply", path, check=0).stdout
    assert f"~   impair {p}a/eth0: rate 20mbit -> 10mbit, burst 10000b -> 32kb, limit 135000b -> 95268b" in out, out
    assert "0 added, 1 changed, 0 destroyed" in out, out
    assert_tbf(root(ns, "eth0"), want)
    assert sent_bytes(ns, "eth0") >= counted, "the counter went back: the qdisc was made again, not changed"
    lab.netlab("diff", path, check=0)

    path = pair(lab, None)
    out = lab.netlab("apply", path, check=0).stdout
    assert f"-   impair {p}a/eth0: tbf rate 10mbit, burst 32kb, limit 95268b" in out, out
    assert "0 added, 0 changed, 1 destroyed" in out, out
    q = root(ns, "eth0")
    assert (q["kind"], q["handle"]) == ("noqueue", "0:"), q  # a veth's default
    lab.netlab("diff", path, check=0)
    assert lab.ping(ns, "10.66.0.2")


# --- 6: somebody else's root qdisc ----------------------------------------------------------------------------

def test_a_foreign_root_qdisc_is_a_conflict_where_impaired_and_left_alone_elsewhere(lab):
    p, a, b = lab.p, f"{lab.p}a", f"{lab.p}b"
    path = pair(lab, "{rate: 20mbit}")
    lab.netlab("apply", path, check=0)
    subprocess.run(["tc", "-n", a, "qdisc", "replace", "dev", "eth0", "root", "handle", "1:", "htb"], check=True)
    before = roots(a), roots(b)
    assert before[0]["eth0"]["kind"] == "htb"
    for command in ("apply", "diff"):
        proc = lab.netlab(command, path, check=1)
        text = proc.stdout + proc.stderr
        assert "CONFLICT" in text and f"qdisc htb 1: is link {p}a/eth0's root qdisc" in text, text
        assert "nothing was changed" in text and "Traceback" not in text, text
        assert (roots(a), roots(b)) == before, command

    # the same htb on a link whose topology does not impair it: not netlab's business
    subprocess.run(["tc", "-n", a, "qdisc", "del", "dev", "eth0", "root"], check=True)
    lab.netlab("apply", path, check=0)
    subprocess.run(["tc", "-n", b, "qdisc", "replace", "dev", "eth0", "root", "handle", "1:", "htb"], check=True)
    theirs = roots(b)
    lab.netlab("diff", path, check=0)
    out = lab.netlab("apply", path, check=0).stdout
    assert "No changes" in out or "0 added, 0 changed, 0 destroyed" in out, out
    assert roots(b) == theirs and theirs["eth0"]["kind"] == "htb"
    assert_tbf(root(a, "eth0"), expected_tbf(20_000_000))
    lab.netlab("destroy", path, check=0)
    assert not namespaces(lab)


# --- 7: netem, on a kernel with or without it -----------------------------------------------------------------

def test_a_netem_impairment_names_the_missing_module_or_is_made(lab):
    """Where the kernel has no sch_netem (this machine's), `apply` of a delay fails before it changes
    anything: exit 1, the module named with how to load it, no traceback, no namespace made. Where it has
    one (probed in a scratch namespace, as conftest does for the guest lane), the same file is applied and
    tc shows netem with the delay."""
    p = lab.p
    path = pair(lab, "{delay: 40ms}")
    lacking = kernel_lacks("sch_netem")
    if lacking is not None:
        proc = lab.netlab("apply", path, check=1)
        text = proc.stdout + proc.stderr
        assert "sch_netem" in text and "modprobe sch_netem" in text, text
        assert "Traceback" not in text, text
        # refused by the probe before the first step ran (not made, then rolled back)
        assert "nothing was changed (no step had been done)" in text, text
        assert not namespaces(lab), "a namespace was made"
        assert not [n for n in lab.links() if n.startswith(p)]
    else:
        lab.netlab("apply", path, check=0)
        q = root(f"{p}a", "eth0")
        assert q["kind"] == "netem" and q["handle"] == "6e6d:", q
        assert abs(q["options"]["delay"]["delay"] - 0.040) < 1e-6, q
        lab.netlab("diff", path, check=0)


# --- 8: rollback at every step ------------------------------------------------------------------------------

TWO = """
name: "@"
namespaces:
  "@a":
    interfaces:
      eth0: {peer: "@b/eth0", addresses: [10.67.0.1/24], impair: {rate: 20mbit}}
      eth1: {peer: "@c/eth0", addresses: [10.67.1.1/24], impair: {rate: 50mbit, burst: 16kb, latency: 20ms}}
  "@b":
    interfaces:
      eth0: {addresses: [10.67.0.2/24]}
  "@c":
    interfaces:
      eth0: {addresses: [10.67.1.2/24]}
"""
# a/eth0's rate changed (in place), a/eth1's impair removed, c/eth0 impaired
TWO_CHANGED = TWO.replace("impair: {rate: 20mbit}", "impair: {rate: 10mbit}") \
    .replace(", impair: {rate: 50mbit, burst: 16kb, latency: 20ms}", "") \
    .replace("eth0: {addresses: [10.67.1.2/24]}", "eth0: {addresses: [10.67.1.2/24], impair: {rate: 5mbit}}")


def impaired_snapshot(lab: Lab, topo: Topology) -> dict[str, dict[str, Any]]:
    """Lab.snapshot (links, addresses, routes as iproute2 sees them), and beside it every root qdisc of
    the test's namespaces as tc prints them (raw: tbf's queue and bucket), and the root qdiscs netlab's
    reader finds on the topology's links."""
    snap = lab.snapshot()
    for ns in namespaces(lab):
        snap[ns]["<qdiscs>"] = roots(ns)
    state = api.show(topo)
    snap["<netlab's reader>"] = {f"{ns}/{name}": link.qdisc for ns, body in state.namespaces.items()
                                 for name, link in body.links.items() if link.qdisc is not None}
    return snap


def test_failure_at_every_step_of_an_impaired_create_rolls_back(lab, canaries, figures):
    topo = load(lab.write(TWO))
    ops = [s.op for s in api.diff(topo).steps]
    assert ops.count("add_qdisc") == 2, ops
    run_every_k(lab, canaries, figures, "apply", topo, minimum=18, snapshot=partial(impaired_snapshot, topo=topo))
    assert not namespaces(lab)
    api.apply(topo)
    assert api.diff(topo).empty
    assert_tbf(root(f"{lab.p}a", "eth1"), expected_tbf(50_000_000, burst=16 * 1024, latency_ms=20))


def test_failure_at_every_step_of_an_impaired_change_rolls_back_with_the_parameters(lab, canaries, figures):
    p = lab.p
    original = load(lab.write(TWO))
    api.apply(original)
    applied = impaired_snapshot(lab, original)
    assert_tbf(applied[f"{p}a"]["<qdiscs>"]["eth0"], expected_tbf(20_000_000))
    assert_tbf(applied[f"{p}a"]["<qdiscs>"]["eth1"], expected_tbf(50_000_000, burst=16 * 1024, latency_ms=20))
    topo = load(lab.write(TWO_CHANGED, "changed.yaml"))
    steps = api.diff(topo).steps
    assert sorted(s.op for s in steps) == ["add_qdisc", "change_qdisc", "delete_qdisc"], steps
    run_every_k(lab, canaries, figures, "apply", topo, minimum=3, snapshot=partial(impaired_snapshot, topo=topo))
    assert impaired_snapshot(lab, original) == applied  # the parameters put back by every undo of the change
    assert api.diff(original).empty
    api.apply(topo)
    assert api.diff(topo).empty
    assert_tbf(root(f"{p}a", "eth0"), expected_tbf(10_000_000))
    assert root(f"{p}a", "eth1")["kind"] == "noqueue"
    assert_tbf(root(f"{p}c", "eth0"), expected_tbf(5_000_000))


def test_failure_at_every_step_of_an_impaired_destroy_rolls_back_with_the_qdiscs(lab, canaries, figures):
    """A destroy deletes the namespaces (the qdiscs go with their links); each undo rebuilds them, with
    their root qdiscs re-added as they were."""
    p = lab.p
    topo = load(lab.write(TWO))
    api.apply(topo)
    applied = impaired_snapshot(lab, topo)
    run_every_k(lab, canaries, figures, "destroy", topo, minimum=3, snapshot=partial(impaired_snapshot, topo=topo))
    assert impaired_snapshot(lab, topo) == applied
    assert_tbf(root(f"{p}a", "eth1"), expected_tbf(50_000_000, burst=16 * 1024, latency_ms=20))
    assert api.diff(topo).empty
    api.destroy(topo)
    assert not namespaces(lab)

