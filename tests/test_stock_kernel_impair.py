"""Link impairments (`impair:`, issue 12) with netem, on Debian's stock kernel: this machine's kernel has no
sch_netem, so these run in the guest lane (.ci/stock-kernel, under QEMU), netlab driven through its Python
API in this process (the CLI in process where its exit code is the point). Proven by traffic between two
namespaces (ping's round trips and losses, a bulk TCP transfer through in-process sockets), and read back
with iproute2 (`tc -j -d qdisc show`): every parameter netlab sets, in-place changes (the same qdisc: its
byte counter survives), drift repaired, replacements between kinds and distribution tables, rollback.

Emulation is slow (a guest process costs ~10x what it costs here), not imprecise: the kernel's timers run
on the host's clock, so a netem delay or rate is what it is; the bands below say what the guest adds."""

import ctypes
import json
import math
import os
import re
import socket
import subprocess
import threading
import time
from typing import Any

import pytest

from netlab import api
from netlab.kernel.namespaces import CLONE_NEWNET
from netlab.model import Topology, loads

from conftest import Lab

pytestmark = [pytest.mark.kernel, pytest.mark.stock_kernel("sch_netem")]

U32_MAX = 0xFFFFFFFF
PACKET = 1500 + 14  # a veth's MTU and the Ethernet header: what netem's derived queue counts in
_libc = ctypes.CDLL(None, use_errno=True)


def _text(a: str | None = None, b: str | None = None) -> str:
    """Two namespaces, a and b, joined by a veth (10.61.0.1 and .2), each end impaired as given (the text
    of a YAML flow mapping, e.g. '{delay: 50ms}') or not."""
    def impair(spec: str | None) -> str:
        return f", impair: {spec}" if spec else ""

    return f"""
name: "@"
namespaces:
  "@a":
    interfaces:
      eth0: {{kind: veth, peer: "@b/eth0", addresses: [10.61.0.1/24]{impair(a)}}}
  "@b":
    interfaces:
      eth0: {{addresses: [10.61.0.2/24]{impair(b)}}}
"""


def _load(lab: Lab, text: str) -> Topology:
    """The topology under the test's prefix, loaded from text (the lab's teardown destroys it)."""
    lab.topologies.add(lab.p)
    return loads(text.replace("@", lab.p))


def _tc(ns: str, *args: str) -> Any:
    out = subprocess.run(["tc", "-n", ns, "-j", *args], check=True, capture_output=True, text=True,
                         timeout=60).stdout
    return json.loads(out) if out.strip() else []


def _root(ns: str, dev: str = "eth0", *flags: str) -> dict[str, Any]:
    """The link's root qdisc as `tc -j -d [flags] qdisc show` gives it (flags: -s for the counters, -raw)."""
    qdiscs = _tc(ns, "-d", *flags, "qdisc", "show", "dev", dev)
    root: dict[str, Any] = next(q for q in qdiscs if q.get("root"))
    return root


def _pct(fraction: float) -> float:
    return round(100 * fraction, 3)


def _netem(qdisc: dict[str, Any]) -> dict[str, Any]:
    """A netem's parameters as tc reads them from the kernel, in the topology's units (ms, %, bytes/s);
    what tc does not print (a zero probability) as 0."""
    assert qdisc["kind"] == "netem", qdisc
    o = qdisc["options"]
    delay, loss, dup = o.get("delay", {}), o.get("loss-random", {}), o.get("duplicate", {})
    corrupt, reorder = o.get("corrupt", {}), o.get("reorder", {})
    return {
        "handle": qdisc["handle"], "limit": o["limit"],
        "delay": round(delay.get("delay", 0) * 1e3, 3), "jitter": round(delay.get("jitter", 0) * 1e3, 3),
        "delay_corr": _pct(delay.get("correlation", 0)),
        "loss": _pct(loss.get("loss", 0)), "loss_corr": _pct(loss.get("correlation", 0)),
        "duplicate": _pct(dup.get("duplicate", 0)), "dup_corr": _pct(dup.get("correlation", 0)),
        "corrupt": _pct(corrupt.get("corrupt", 0)), "corrupt_corr": _pct(corrupt.get("correlation", 0)),
        "reorder": _pct(reorder.get("reorder", 0)), "reorder_corr": _pct(reorder.get("correlation", 0)),
        "gap": o.get("gap", 0), "rate": o.get("rate", {}).get("rate", 0),
        "slot": "slot" in o, "ecn": bool(o.get("ecn")),
    }


def _expected(handle: str, limit: int, **given: Any) -> dict[str, Any]:
    """What _netem() reads for a netem with the given parameters, the others the kernel's zeros."""
    zeros = dict.fromkeys(("delay", "jitter", "delay_corr", "loss", "loss_corr", "duplicate", "dup_corr",
                           "corrupt", "corrupt_corr", "reorder", "reorder_corr", "gap", "rate"), 0)
    return {"handle": handle, "limit": limit, **zeros, "slot": False, "ecn": False, **given}


def _limit(rate: int, delay_ms: float, jitter_ms: float = 0) -> int:
    """netem's queue as netlab derives it (docs, issue 12): max(1000, 2 x rate x (delay + jitter) / (MTU +
    14)) packets, rate in bytes/s (1 gbit/s where none is set), rounded up; computed here independently."""
    held_ns = (rate or 125_000_000) * round((delay_ms + jitter_ms) * 10**6)  # bytes x 10^9
    return max(1000, -(-2 * held_ns // (10**9 * PACKET)))


def _ping(ns: str, address: str, count: int, interval: str) -> tuple[int, int, tuple[float, float] | None]:
    """ping's own count: (sent, received, (min, avg) RTT in ms or None when nothing came back). -W 1: the
    wait for the last replies is a second, so a lost packet costs no more."""
    proc = subprocess.run(["ip", "netns", "exec", ns, "ping", "-q", "-n", "-c", str(count), "-i", interval, "-W",
                           "1", address], capture_output=True, text=True, timeout=120, check=False)
    counts = re.search(r"(\d+) packets transmitted, (\d+) received", proc.stdout)
    assert counts, proc.stdout + proc.stderr
    rtt = re.search(r"= ([\d.]+)/([\d.]+)/", proc.stdout)
    return int(counts[1]), int(counts[2]), (float(rtt[1]), float(rtt[2])) if rtt else None


def _rtt(ns: str, address: str) -> tuple[float, float]:
    """(min, avg) of 10 pings 50 ms apart, all answered."""
    sent, received, rtt = _ping(ns, address, 10, "0.05")
    assert received == sent == 10 and rtt is not None, (sent, received)
    return rtt


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"setns into {what}")


def _socket_in(ns: str) -> socket.socket:
    """A TCP socket in namespace `ns`: a socket belongs to the network namespace of the thread that makes
    it, so this thread enters `ns`, makes it and comes back (as netlab's own netlink sockets are made)."""
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY | os.O_CLOEXEC)
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd, ns)
        try:
            return socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        finally:
            _setns(home, "the namespace it came from")
    finally:
        os.close(fd)
        os.close(home)


def _throughput(src: str, dst: str, address: str, size: int) -> float:
    """Goodput (bits/s) of one TCP transfer of `size` bytes from namespace src to `address` in dst, by
    Python sockets in this process; measured by the receiver from when a fifth of it had come to the last
    byte, so that TCP's start and a token bucket's first burst are left out. Bounded: every socket
    operation times out after 60 s."""
    server, client = _socket_in(dst), _socket_in(src)
    marks: list[tuple[float, int]] = []  # (when, bytes so far), per recv
    failed: list[BaseException] = []

    def receive() -> None:
        try:
            conn, _ = server.accept()
            with conn:
                conn.settimeout(60)
                buf, got = bytearray(1 << 16), 0
                while n := conn.recv_into(buf):
                    got += n
                    marks.append((time.monotonic(), got))
        except OSError as exc:
            failed.append(exc)

    with server, client:
        server.settimeout(60)
        server.bind((address, 0))
        server.listen(1)
        thread = threading.Thread(target=receive, daemon=True)
        thread.start()
        client.settimeout(60)
        client.connect((address, server.getsockname()[1]))
        block, sent = bytes(1 << 16), 0
        while sent < size:
            client.sendall(block)
            sent += len(block)
        client.shutdown(socket.SHUT_WR)
        thread.join(120)
    assert not thread.is_alive() and not failed and marks and marks[-1][1] == sent, (failed, marks[-1:], sent)
    t0, b0 = next(m for m in marks if m[1] >= sent // 5)
    t1, b1 = marks[-1]
    assert t1 > t0, marks
    return (b1 - b0) * 8 / (t1 - t0)


# ---------------------------------------------------------------------------------------------------------
# By traffic: delay and loss (ping), rate (a bulk TCP transfer), netem's and tbf's.

def test_delay_and_loss_measured_by_ping_and_gone_when_removed(lab):
    """Delay: 10 pings 50 ms apart, a's end delayed 50 ms: every round trip (the minimum) is at least 50 ms,
    and the average at most 20 ms above the 50 ms plus the baseline average measured in the same test; with
    the impair removed, the minimum and the average are back within 20 ms of the baseline's (the band:
    what a scheduling hiccup of the guest can add to 10 pings' average, far under the 50 ms removed).

    Loss: 20% on a's end, 500 pings 2 ms apart (-W 1 bounds the wait for the last). The number lost is
    binomial, n = 500, p = 0.2: mean 100, sd = sqrt(500 x 0.2 x 0.8) = 8.9 packets; the band is about
    +-4.5 sd, 60 to 140 lost (12% to 28%), which a correct netem leaves once in ~150,000 runs, and which a
    netem dropping nothing, or twice as much, cannot enter. a's neighbour entry for b is made before the
    loss (so the measurement is of echo requests only)."""
    p = lab.p
    a, b = f"{p}a", f"{p}b"
    plain = _load(lab, _text())
    api.apply(plain)
    assert _ping(a, "10.61.0.2", 1, "0.2")[1] == 1  # the neighbour entry, and a first answer
    base_min, base_avg = _rtt(a, "10.61.0.2")

    delayed_text = _text(a="{delay: 50ms}")
    delayed = _load(lab, delayed_text)
    plan = api.apply(delayed)
    limit = _limit(0, 50)
    assert f"+   impair {a}/eth0: netem delay 50ms, limit {limit}" in plan.render(), plan.render()
    assert _netem(_root(a)) == _expected("6e6d:", limit, delay=50.0)
    assert _root(b)["kind"] == "noqueue"  # the other end is not impaired
    d_min, d_avg = _rtt(a, "10.61.0.2")
    assert d_min >= 50.0 and d_avg <= base_avg + 50.0 + 20.0, (d_min, d_avg, base_avg)
    assert api.diff(delayed).empty
    lab.netlab("diff", lab.write(delayed_text), check=0)

    plan = api.apply(plain)  # the impair removed from the file
    assert f"-   impair {a}/eth0: netem delay 50ms, limit {limit}" in plan.render(), plan.render()
    assert plan.summary() == {"add": 0, "change": 0, "destroy": 1}, plan.render()
    assert _root(a)["kind"] == "noqueue" and _root(a)["handle"] == "0:"  # the kernel's default is back
    r_min, r_avg = _rtt(a, "10.61.0.2")
    assert r_min <= base_min + 20.0 and r_avg <= base_avg + 20.0, (r_min, r_avg, base_min, base_avg)

    lossy = _load(lab, _text(a="{loss: 20%}"))
    api.apply(lossy)
    assert _netem(_root(a)) == _expected("6e6d:", 1000, loss=20.0)
    sent, received, _ = _ping(a, "10.61.0.2", 500, "0.002")
    lost = sent - received
    assert sent == 500 and 60 <= lost <= 140, f"{lost} of {sent} lost, outside 60..140 (20% +- 4.5 sd)"
    assert api.diff(lossy).empty


RATE = 5_000_000  # bits/s (5mbit): the guest's unimpaired TCP over a veth did 27 to 378 mbit/s (measured)
SIZE = 1_500_000  # bytes: 2.4 s at RATE


def test_rate_measured_by_a_tcp_transfer_netem_and_tbf_and_replaced_between_them(lab):
    """A 1.5 MB TCP transfer a -> b. The rate is 5mbit, not the issue's 20mbit: under QEMU's software
    emulation the guest's unimpaired TCP over a veth did 378 mbit/s on an idle host but only 27 mbit/s
    while the host was busy (the guest's CPU copying, not the link), where a 20 mbit/s limit would be
    measured against the CPU. Unimpaired it must be at least 3x the rate, checked first (the test says
    so rather than pass or fail by chance). With `rate: 5mbit` on a's end,
    as netem's (with `delay: 1ms`) and as tbf's (rate alone), the goodput is within +-20% of 5 mbit/s
    (TCP/IP and Ethernet headers take ~4.5% of what the qdisc counts). tbf is given a 32kb bucket: its
    derived one, rate/HZ (4 ms of tokens, 2500 bytes), loses the tokens of every timer that fires late,
    and the emulated guest's timers do (a derived-bucket tbf measured 80% to 92% of 5mbit on an idle
    host, 42% on a busy one; netem, which schedules each packet from the last one's time, 96% on both).
    Switching between the two is a replacement (`-/+ impair ... # netem -> tbf`), read back with the
    queue derived from the given bucket."""
    p = lab.p
    a, b = f"{p}a", f"{p}b"
    api.apply(_load(lab, _text()))
    baseline = _throughput(a, b, "10.61.0.2", SIZE)
    assert baseline >= 3 * RATE, f"unimpaired {baseline / 1e6:.1f} mbit/s: too slow to measure a 5 mbit/s rate"

    netem = _load(lab, _text(a="{delay: 1ms, rate: 5mbit}"))
    api.apply(netem)
    assert _netem(_root(a)) == _expected("6e6d:", 1000, delay=1.0, rate=RATE // 8)
    measured = _throughput(a, b, "10.61.0.2", SIZE)
    assert 0.8 * RATE <= measured <= 1.2 * RATE, f"netem rate 5mbit: {measured / 1e6:.2f} mbit/s"

    tbf = _load(lab, _text(a="{rate: 5mbit, burst: 32kb}"))
    plan = api.apply(tbf)
    text = plan.render()
    assert f"-/+ impair {a}/eth0: tbf rate 5mbit, burst 32kb, limit 64018b  # netem -> tbf" in text, text
    assert [s.op for s in plan.steps] == ["replace_qdisc"], text
    q = _root(a, "eth0", "-raw")
    # the queue: the bucket + rate x 50 ms = 32768 + 31250 bytes; tc shows the bucket as bytes ("burst"),
    # the queue as the latency it adds (us) and, with -raw, itself
    assert (q["kind"], q["handle"], q["options"]["rate"], q["options"]["limit"]) == \
        ("tbf", "6e6c:", RATE // 8, 64018), q
    assert q["options"]["burst"].startswith("32Kb") and abs(q["options"]["lat"] - 50000) <= 1, q
    measured = _throughput(a, b, "10.61.0.2", SIZE)
    assert 0.8 * RATE <= measured <= 1.2 * RATE, f"tbf rate 5mbit: {measured / 1e6:.2f} mbit/s"
    assert api.diff(tbf).empty


# ---------------------------------------------------------------------------------------------------------
# Read back with tc: every parameter; changed in place; drift; replaced.

FULL_A = ('{delay: 40ms, jitter: "5ms 25%", distribution: normal, loss: "1% 25%", duplicate: "2% 10%", '
          'corrupt: "0.5% 5%", reorder: "10% 50%", gap: 3, rate: 40gbit}')
CHANGED_A = ('{delay: 80ms, jitter: 5ms, distribution: normal, loss: 1%, duplicate: "2% 10%", '
             'corrupt: "0.5% 5%", reorder: 10%, gap: 3, rate: 36gbit}')
FULL_B = "{delay: 1ms, rate: 20mbit, limit: 2000}"
B_RATE = 20 * 10**6 // 8  # bytes/s


def _bytes(ns: str) -> int:
    """The bytes the link's root qdisc has sent (`tc -s`): a new qdisc starts from 0."""
    sent: int = _root(ns, "eth0", "-s")["bytes"]
    return sent


def test_every_parameter_reads_back_changes_in_place_and_drift_is_repaired(lab):
    """Every netem parameter netlab sets, read back with `tc -j -d`: delay, jitter and its correlation,
    the normal distribution (handle 6e6e:, the kernel never reports the table), loss, duplicate, corrupt
    and reorder with their correlations, gap, a rate above 2^32 - 1 bytes/s (40gbit: TCA_NETEM_RATE64),
    the derived queue (computed here: 2 x 5e9 B/s x 45 ms / 1514 B) and a given one (b's 2000).

    In place (the qdisc's sent bytes survive; a new qdisc would count from 0): delay 40 -> 80 ms, the
    correlations taken out of the file read back 0 (netem keeps what a change leaves out: netlab sends the
    zeros), and 40gbit lowered to 36gbit, both above 2^32 - 1 bytes/s (the kernel takes RATE64 as the
    larger of the old and the new rate unless TCA_NETEM_RATE resets it first).

    Drift: `tc qdisc change ... netem delay 10ms slot 10ms 20ms` on b -> diff exit 2 naming the delay and
    the slot (netlab's `other`); apply repairs it in place and tc shows no slot."""
    p = lab.p
    a, b = f"{p}a", f"{p}b"
    full = _load(lab, _text(a=FULL_A, b=FULL_B))
    plan = api.apply(full)
    assert [s.op for s in plan.steps if "qdisc" in s.op] == ["add_qdisc", "add_qdisc"], plan.render()
    big = 40 * 10**9 // 8
    assert big > U32_MAX
    limit = _limit(big, 40, 5)
    assert limit == math.ceil(2 * 5e9 * 0.045 / 1514) == 297226
    assert _netem(_root(a)) == _expected(
        "6e6e:", limit, delay=40.0, jitter=5.0, delay_corr=25.0, loss=1.0, loss_corr=25.0, duplicate=2.0,
        dup_corr=10.0, corrupt=0.5, corrupt_corr=5.0, reorder=10.0, reorder_corr=50.0, gap=3, rate=big)
    assert _netem(_root(b)) == _expected("6e6d:", 2000, delay=1.0, rate=B_RATE)
    assert api.diff(full).empty

    assert _ping(a, "10.61.0.2", 3, "0.01")[0] == 3 and _ping(b, "10.61.0.1", 3, "0.01")[0] == 3
    sent_a, sent_b = _bytes(a), _bytes(b)
    assert sent_a > 0 and sent_b > 0
    changed = _load(lab, _text(a=CHANGED_A, b=FULL_B))
    lower, new_limit = 36 * 10**9 // 8, _limit(36 * 10**9 // 8, 80, 5)
    text = api.diff(changed).render()
    assert (f"~   impair {a}/eth0: delay 40ms -> 80ms, jitter 5ms 25% -> 5ms, loss 1% 25% -> 1%, "
            f"reorder 10% 50% -> 10%, rate 40gbit -> 36gbit, limit {limit} -> {new_limit}") in text, text
    plan = api.apply(changed)
    assert [s.op for s in plan.steps] == ["change_qdisc"], plan.render()
    assert _netem(_root(a)) == _expected(
        "6e6e:", new_limit, delay=80.0, jitter=5.0, loss=1.0, duplicate=2.0, dup_corr=10.0, corrupt=0.5,
        corrupt_corr=5.0, reorder=10.0, gap=3, rate=lower)
    assert _bytes(a) >= sent_a, "a's qdisc was replaced, not changed in place"
    assert api.diff(changed).empty

    changed_text = lab.write(_text(a=CHANGED_A, b=FULL_B))
    subprocess.run(["tc", "-n", b, "qdisc", "change", "dev", "eth0", "root", "handle", "6e6d:", "netem", "delay",
                    "10ms", "slot", "10ms", "20ms"], check=True)
    drifted = _netem(_root(b))
    assert drifted["slot"] and drifted["delay"] == 10.0 and drifted["rate"] == B_RATE, drifted
    out = lab.netlab("diff", changed_text, check=2).stdout
    assert f"~   impair {b}/eth0: delay 10ms -> 1ms, limit 1000 -> 2000, other slot -> none" in out, out
    plan = api.apply(changed)
    assert [s.op for s in plan.steps] == ["change_qdisc"], plan.render()
    q = _root(b)
    assert "slot" not in q["options"] and _netem(q) == _expected("6e6d:", 2000, delay=1.0, rate=B_RATE), q
    assert _bytes(b) >= sent_b, "b's qdisc was replaced, not changed in place"
    assert api.diff(changed).empty
    lab.netlab("diff", changed_text, check=0)


def test_replacing_between_kinds_distributions_and_a_duplicating_netem(lab):
    """From a tbf with its derived bucket and queue (read back): tbf -> netem and netem -> pareto (handle
    6e6d: -> 6e6f:) are one graft each (`-/+ impair`); netem with duplicate -> netem with a distribution
    is a delete and an add (the kernel refuses a duplicating netem beside another netem in one tree, the
    one a graft replaces included), and the other way too. Each read back with tc, and b still answers
    through each."""
    p = lab.p
    a = f"{p}a"
    api.apply(_load(lab, _text(a="{rate: 20mbit}")))
    q = _root(a, "eth0", "-raw")  # tbf's derived bucket, rate/HZ = 10000 bytes, and queue, + rate x 50 ms
    assert (q["kind"], q["handle"], q["options"]["rate"], q["options"]["limit"]) == \
        ("tbf", "6e6c:", B_RATE, 135000), q
    assert q["options"]["burst"].startswith("10000b") and q["options"]["lat"] == 50000, q
    steps = [
        ("{delay: 10ms, jitter: 2ms}", ["replace_qdisc"], "tbf -> netem",
         _expected("6e6d:", _limit(0, 10, 2), delay=10.0, jitter=2.0)),
        ("{delay: 10ms, jitter: 2ms, distribution: pareto}", ["replace_qdisc"], "distribution none -> pareto",
         _expected("6e6f:", _limit(0, 10, 2), delay=10.0, jitter=2.0)),
        ("{delay: 10ms, duplicate: 5%}", ["delete_qdisc", "add_qdisc"], "distribution pareto -> none",
         _expected("6e6d:", _limit(0, 10), delay=10.0, duplicate=5.0)),
        ("{delay: 10ms, jitter: 2ms, distribution: paretonormal}", ["delete_qdisc", "add_qdisc"],
         "distribution none -> paretonormal", _expected("6e70:", _limit(0, 10, 2), delay=10.0, jitter=2.0)),
    ]
    for impair, ops, why, want in steps:
        topo = _load(lab, _text(a=impair))
        plan = api.apply(topo)
        text = plan.render()
        assert [s.op for s in plan.steps] == ops and f"-/+ impair {a}/eth0: netem " in text, text
        assert f"  # {why}" in text and plan.summary() == {"add": 1, "change": 0, "destroy": 1}, text
        assert _netem(_root(a)) == want, impair
        assert _ping(a, "10.61.0.2", 1, "0.2")[1] == 1, impair
        assert api.diff(topo).empty, impair


# ---------------------------------------------------------------------------------------------------------
# Rollback: a failure at a step of a plan that changes netem parameters, replaces a tbf and adds a netem.

ROLL = """
name: "@"
namespaces:
  "@a":
    interfaces:
      eth0: {kind: veth, peer: "@b/eth0", addresses: [10.62.0.1/24],
             impair: {delay: 40ms, jitter: "5ms 25%", loss: "1% 25%", reorder: "10% 50%", gap: 2, rate: 40gbit}}
      eth1: {kind: veth, peer: "@b/eth1", addresses: [10.63.0.1/24]}
  "@b":
    interfaces:
      eth0: {addresses: [10.62.0.2/24], impair: {rate: 20mbit}}
      eth1: {addresses: [10.63.0.2/24]}
"""
ROLL_CHANGED = """
name: "@"
namespaces:
  "@a":
    interfaces:
      eth0: {kind: veth, peer: "@b/eth0", addresses: [10.62.0.1/24, 10.62.0.11/24],
             impair: {delay: 80ms, jitter: 5ms, loss: 1%, reorder: 10%, gap: 2, rate: 36gbit}}
      eth1: {kind: veth, peer: "@b/eth1", addresses: [10.63.0.1/24],
             impair: {delay: 5ms, jitter: 1ms, distribution: pareto}}
  "@b":
    interfaces:
      eth0: {addresses: [10.62.0.2/24], impair: {delay: 1ms, rate: 20mbit}}
      eth1: {addresses: [10.63.0.2/24]}
"""


def _qdiscs(lab: Lab) -> dict[str, Any]:
    """Every qdisc in the test's namespaces as `tc -j -d qdisc show` gives it (kinds, handles, all their
    options: correlations, rates, queues)."""
    out = subprocess.run(["ip", "netns", "list"], check=True, capture_output=True, text=True).stdout
    names = sorted(line.split()[0] for line in out.splitlines() if line.startswith(lab.p))
    return {ns: _tc(ns, "-d", "qdisc", "show") for ns in names}


def test_a_failure_in_a_plan_of_impairments_rolls_back(lab):
    """Faults injected (tests/faults.py) at three steps of an apply that adds an address, changes a's
    netem in place (80 ms, correlations out, 40gbit -> 36gbit), adds a netem with the pareto table and
    grafts a netem over b's tbf: at the change itself, at the add (the change undone) and at the graft,
    the last step (everything before it undone). Each time the kernel is as before: lab.snapshot() and
    every qdisc as tc reads it, correlations and the rate above 2^32 - 1 bytes/s included."""
    import errno
    from functools import partial

    from netlab.errors import RolledBack

    from faults import Faulty

    p = lab.p
    topo, changed = _load(lab, ROLL), _load(lab, ROLL_CHANGED)
    api.apply(topo)
    before, qdiscs = lab.snapshot(), _qdiscs(lab)
    rolled = _netem(next(q for q in qdiscs[f"{p}a"] if q["kind"] == "netem"))
    assert (rolled["delay_corr"], rolled["loss_corr"], rolled["reorder_corr"], rolled["rate"]) == \
        (25.0, 25.0, 50.0, 5 * 10**9), rolled
    steps = api.diff(changed).steps
    ops = [s.op for s in steps]
    assert {"add_address", "change_qdisc", "replace_qdisc", "add_qdisc"} <= set(ops), ops
    at = [ops.index("change_qdisc") + 1, ops.index("add_qdisc") + 1, ops.index("replace_qdisc") + 1]
    assert at[0] < at[1] < at[2] == len(steps), ops
    for k in at:
        code = (errno.EBUSY, errno.EINVAL)[k % 2]
        with pytest.raises(RolledBack) as info, api.using(partial(Faulty, {k}, code)):
            api.apply(changed)
        step = steps[k - 1]
        assert f"step {k}/{len(steps)} failed: {step.op} {step.describe()}: " in str(info.value), str(info.value)
        assert lab.snapshot() == before, f"k={k} ({step.op} {step.where})"
        assert _qdiscs(lab) == qdiscs, f"k={k} ({step.op} {step.where}): the qdiscs are not as they were"
    api.apply(changed)  # and without a fault it converges
    assert _netem(_root(f"{p}a")) == _expected(
        "6e6d:", _limit(36 * 10**9 // 8, 80, 5), delay=80.0, jitter=5.0, loss=1.0, reorder=10.0, gap=2,
        rate=36 * 10**9 // 8)
    assert _root(f"{p}a", "eth1")["handle"] == "6e6f:" and _root(f"{p}b")["kind"] == "netem"
    assert api.diff(changed).empty
