"""The impairments benchmark (issue 12): a star of N namespaces whose every `eth0` carries
`impair: {rate: 20mbit}` (a tbf root qdisc), built, read, changed and destroyed by netlab and by the best
`ip -batch` + `tc -batch` script doing the same kernel work; and what impairments cost the reading of a
topology that has none (HEAD against the commit before them). Needs root; on this machine run it inside a
throwaway network and mount namespace:

    /tmp/iso.sh .venv/bin/python benchmarks/impair.py [--n 1000] [--repeat 5]           # CLI against scripts
    /tmp/iso.sh .venv/bin/python benchmarks/impair.py --phases [--n 1000] [--repeat 5]  # in process
    git worktree add /tmp/bench-before f1f5f19~1
    /tmp/iso.sh .venv/bin/python benchmarks/impair.py --before /tmp/bench-before [--repeat 10]
    git worktree remove /tmp/bench-before

The lab is run.py's star (shapes.star): a bridge in the root namespace, N namespaces each with a veth
`eth0` (one address) whose other end is a port of the bridge; here each `eth0` also has `impair: {rate:
20mbit}`, which netlab makes a tbf (rate 2,500,000 bytes/s, burst max(MTU + 14, rate/250) = 10000 bytes,
byte limit burst + rate x 50 ms = 135000). The change sets every rate to 10mbit (burst 5000, limit 67500).

CLI mode: each repeat runs the contenders in turn (the order rotates), every command a fresh process:
- netlab: `netlab apply` cold (create), `apply` again (no-op), `diff`, `apply` of the 10mbit file
  (change), `destroy`;
- script: run.py's ip-batch script (one `ip -batch` in the root namespace: namespaces, veths, bridge
  ports; one `ip -n NS -batch` per namespace: address, up; the bridge up last), then one
  `tc -n NS -batch` per namespace of `qdisc add dev eth0 root tbf rate 20mbit burst 10000 limit 135000`
  (a namespace is a process for tc as for ip: neither takes a namespace per batch line; the qdisc cannot
  be added before the veth end is moved, a move drops it); the change is one `tc -n NS -batch` per
  namespace of `qdisc change dev eth0 root tbf rate 10mbit burst 5000 limit 67500`; destroy is one
  `ip -batch` of `netns del` (and the bridge's `link del`);
- script-read: what a script that diffs must read, on netlab's lab, in the same repeat as netlab's `diff`
  (their order alternates): run.py's `ip -d -j addr show` in the root namespace and in each namespace
  (links with their details, and addresses), and `tc -n NS -j qdisc show` in each namespace.
Every create and change is checked before anything else is timed: run.verify (namespaces, bridge ports,
up, addresses, a ping from the first namespace to the last) and, with `tc -j`, every namespace's eth0
root qdisc (tbf; rate, burst and latency as asked; netlab's handle 6e6c: where netlab made it). Every
destroy is checked to leave nothing of the run.

--phases: the same in ONE process, phase by phase as api._converge and api.diff call them (load, desired
state, read, plan, execute, confirm; api.apply with nothing to do; api.diff and its read and plan, the
qdisc dumps of the read timed apart; the change's phases; api.destroy), alternating with the script's
processes run from the same Python (ip and tc parts timed apart) and with netlab on the same star without
impair ("plain: "), so that what impairments add to each phase is measured in the same run.

--before DIR: a plain star (no impair) of N namespaces, built once by this tree's netlab; then two worker
processes, one importing netlab from this tree and one from DIR (a worktree of an earlier commit), take
turns: api.diff in process, then its read and its plan apart, each call after settle(). The ratio of
the medians says what this tree's reading costs a topology without impairments against DIR's.

Each mode writes its part of the JSON file (--json), with the machine, its load average at every repeat
and whether a QEMU guest was running, and the commit measured, and keeps the other parts.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from kinds import Clock, spread  # noqa: E402
from routes import ratio  # noqa: E402

import run  # noqa: E402
import shapes  # noqa: E402
from run import NETLAB, timed  # noqa: E402

RATE, RATE2 = "20mbit", "10mbit"
TBF = {  # tc's words for the tbf netlab derives (impair.desired): rate, burst, byte limit (50 ms of queue)
    RATE: (2_500_000, "rate 20mbit burst 10000 limit 135000"),
    RATE2: (1_250_000, "rate 10mbit burst 5000 limit 67500"),
}
NETLAB_TBF = "6e6c:"  # netlab's handle of a tbf it made


def settle() -> float:
    """run.settle bounded to 3 s: the machine is shared (two cores, other sessions' work), so instead of
    waiting for quiet the contenders alternate and every figure is a median of repeats."""
    return run.settle(quiet=0.10, window=0.2, timeout=3.0)


def commit() -> str:
    head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=False).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "netlab"], capture_output=True,
                           text=True, check=False).stdout.strip()
    return head + (" (netlab/ modified)" if dirty else "")


def qemu() -> bool:
    return subprocess.run(["pgrep", "-f", "qemu-system"], capture_output=True, check=False).returncode == 0


def machine() -> dict[str, Any]:
    return {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "loadavg": os.getloadavg(), "qemu_running": qemu(),
            "netlab_commit": commit()}


class Lab:
    """run.py's star of n namespaces under a prefix of its own; `impaired`: every eth0 has impair."""

    def __init__(self, n: int, work: str, impaired: bool = True):
        self.n, self.work, self.impaired = n, work, impaired
        self.prefix = "i" + "".join(random.choices(string.ascii_lowercase, k=3))
        self.t = shapes.star(n, self.prefix)
        self.topo = os.path.join(work, "topo.yaml")

    def file(self, name: str, text: str) -> str:
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def yaml(self, rate: str = RATE) -> str:
        text = shapes.netlab_yaml(self.t)
        if not self.impaired:
            return text
        out = text.replace("      eth0: {", f"      eth0: {{impair: {{rate: {rate}}}, ")
        assert out.count("impair:") == self.n, "every namespace's eth0 impaired"
        return out

    def write(self, rate: str = RATE) -> str:
        return self.file("topo.yaml", self.yaml(rate))

    # the script, one argv per process
    def ip_parts(self) -> tuple[list[list[str]], list[list[str]]]:
        """(run.py's ip-batch script before its last batch, the last batch: the bridge up)."""
        root, per_ns, last = shapes.ip_batch(self.t)
        head = [["ip", "-batch", self.file("root.batch", root)]]
        head += [["ip", "-n", ns, "-batch", self.file(f"ns{i}.batch", text)] for i, (ns, text) in
                 enumerate(per_ns.items())]
        return head, [["ip", "-batch", self.file("last.batch", last)]] if last else []

    def tc(self, rate: str, verb: str) -> list[list[str]]:
        path = self.file(f"tc-{verb}-{rate}.batch", f"qdisc {verb} dev eth0 root tbf {TBF[rate][1]}\n")
        return [["tc", "-n", ns, "-batch", path] for ns in self.t.namespaces]

    def reads(self) -> tuple[list[list[str]], list[list[str]]]:
        ip = [["ip", "-d", "-j", "addr", "show"]] + [["ip", "-n", ns, "-d", "-j", "addr", "show"]
                                                      for ns in self.t.namespaces]
        return ip, [["tc", "-n", ns, "-j", "qdisc", "show"] for ns in self.t.namespaces]

    def sh(self, name: str, argvs: list[list[str]], out: str = "") -> float:
        """The argvs as one shell script (set -e), timed as one process."""
        return timed(["sh", self.file(name, "set -e\n" + "".join(" ".join(a) + out + "\n" for a in argvs))])[0]

    def destroy_batch(self) -> list[str]:
        return ["ip", "-batch", self.file("destroy.batch", "".join(c + "\n" for _, c in
                                                                  shapes.destroy_commands(self.t)))]

    def netlab(self, command: str, expect: int = 0) -> float:
        return timed([NETLAB, command, self.topo], expect=expect)[0]

    def gone(self, start: float) -> float:
        return run.wait_gone(self.t, self.prefix, start)

    def clean(self) -> None:
        run._clean(self.t, self.prefix)

    def verify(self, rate: str | None, handle: str | None) -> None:
        """The star (run.verify), and every eth0's root qdisc: tbf at `rate` (None: none but the kernel's
        default), with `handle` where given."""
        run.verify(self.t, self.prefix)
        for ns in self.t.namespaces:
            got = json.loads(subprocess.run(["tc", "-n", ns, "-j", "qdisc", "show", "dev", "eth0"],
                                            capture_output=True, check=True).stdout)
            root = [q for q in got if q.get("root")]
            assert len(root) == 1, f"{ns}/eth0: root qdiscs {root}"
            q = root[0]
            if rate is None:
                assert q["kind"] == "noqueue" and q["handle"] == "0:", f"{ns}/eth0: {q}"
                continue
            want_rate, words = TBF[rate]
            burst = int(words.split()[3])
            o = q.get("options", {})
            assert q["kind"] == "tbf", f"{ns}/eth0: {q}"
            assert o.get("rate") == want_rate, f"{ns}/eth0: rate {o.get('rate')}, {want_rate} wanted"
            assert abs(o.get("burst", 0) - burst) <= 2, f"{ns}/eth0: burst {o.get('burst')}, {burst} wanted"
            assert o.get("lat") == 50_000, f"{ns}/eth0: latency {o.get('lat')} us, 50000 wanted"
            assert handle is None or q["handle"] == handle, f"{ns}/eth0: handle {q['handle']}"


# --- CLI: netlab's commands against the script -----------------------------------------------------------

CONTENDERS = ("netlab", "script")
TARGETS = [  # (text, numerator, denominator): no bound set by the issue; the ratios are reported
    ("cold apply / script (ip -batch + tc -batch)", "netlab/create", "script/create"),
    ("no-change diff / script's reads (ip -j + tc -j)", "netlab/diff", "script-read/read"),
    ("no-op apply / script's reads", "netlab/noop", "script-read/read"),
    ("rate change / tc -batch of qdisc change", "netlab/change", "script/change"),
    ("destroy / ip -batch netns del", "netlab/destroy", "script/destroy"),
]


def measure(n: int, repeat: int) -> dict[str, Any]:
    times: dict[str, list[float]] = {}
    loads: list[float] = []

    def record(key: str, seconds: float) -> None:
        times.setdefault(key, []).append(seconds)

    for r in range(repeat):
        loads.append(os.getloadavg()[0])
        for name in CONTENDERS[r % 2:] + CONTENDERS[:r % 2]:
            with tempfile.TemporaryDirectory(prefix="netlab-impair-") as work:
                lab = Lab(n, work)
                try:
                    if name == "netlab":
                        lab.write(RATE)
                        settle()
                        record("netlab/create", lab.netlab("apply"))
                        lab.verify(RATE, NETLAB_TBF)
                        settle()
                        record("netlab/noop", lab.netlab("apply"))
                        for what in ("diff", "read")[:: 1 if r % 2 == 0 else -1]:
                            settle()
                            if what == "diff":
                                record("netlab/diff", lab.netlab("diff"))
                            else:
                                ip, tc = lab.reads()
                                a = lab.sh("read-ip.sh", ip, " >/dev/null")
                                b = lab.sh("read-tc.sh", tc, " >/dev/null")
                                record("script-read/ip", a)
                                record("script-read/tc", b)
                                record("script-read/read", a + b)
                        lab.write(RATE2)
                        settle()
                        record("netlab/change", lab.netlab("apply"))
                        lab.verify(RATE2, NETLAB_TBF)
                        settle()
                        start = time.perf_counter()
                        lab.netlab("destroy")
                        record("netlab/destroy", lab.gone(start))
                    else:
                        head, last = lab.ip_parts()
                        settle()  # the tc part goes before the bridge comes up, as a script would
                        ip = lab.sh("create-ip.sh", head)
                        tc = lab.sh("create-tc.sh", lab.tc(RATE, "add"))
                        ip += lab.sh("create-last.sh", last) if last else 0.0
                        record("script/create-ip", ip)
                        record("script/create-tc", tc)
                        record("script/create", ip + tc)
                        lab.verify(RATE, None)
                        settle()
                        record("script/change", lab.sh("change.sh", lab.tc(RATE2, "change")))
                        lab.verify(RATE2, None)
                        settle()
                        start = time.perf_counter()
                        timed(lab.destroy_batch())
                        record("script/destroy", lab.gone(start))
                    assert not run.leftovers(lab.t, lab.prefix), run.leftovers(lab.t, lab.prefix)[:5]
                finally:
                    lab.clean()
        print(f"  impaired star N={n}: repeat {r + 1}/{repeat} done (load {loads[-1]:.2f})", file=sys.stderr,
              flush=True)
    res: dict[str, Any] = {"n": n, "repeat": repeat, "loadavg_1min_per_repeat": loads, "seconds": times,
                           "median": {k: statistics.median(v) for k, v in times.items()}}
    res["ratios"] = [{"what": text, **q} for text, a, b in TARGETS if (q := ratio(res, a, b))]
    return res


def table(res: dict[str, Any]) -> str:
    lines = [f"| impaired star N={res['n']} | wall s, median [min-max] |", "|---|---|"]
    lines += [f"| {k} | {spread(v)} |" for k, v in sorted(res["seconds"].items())]
    lines += ["", "| ratio | median ratio [pairs min-max] |", "|---|---|"]
    lines += [f"| {q['what']} | {q['ratio']:.2f} [{q['min']:.2f}-{q['max']:.2f}] |" for q in res["ratios"]]
    return "\n".join(lines)


# --- in process: netlab's phases, and the script's processes --------------------------------------------

class QdiscTimer:
    """Accumulates the wall time of the reader's qdisc dumps (Reader._qdiscs; called in turn, one
    namespace after another), so that a read can be split into them and the rest."""

    def __init__(self) -> None:
        from netlab.kernel import reader

        self.spent, self.calls = 0.0, 0
        original = reader.Reader._qdiscs

        def timed_qdiscs(this: Any, ns: str) -> Any:
            start = time.perf_counter()
            try:
                return original(this, ns)
            finally:
                self.spent += time.perf_counter() - start
                self.calls += 1

        reader.Reader._qdiscs = timed_qdiscs  # type: ignore[method-assign]

    def around(self, clock: Clock, name: str, f: Callable[..., Any], *args: Any) -> Any:
        spent, calls = self.spent, self.calls
        result = clock(name, f, *args)
        clock.add(f"{name}: of which qdisc dumps", self.spent - spent)
        clock.add(f"{name}: qdisc dumps (count)", float(self.calls - calls))
        return result


def netlab_in_process(lab: Lab, clock: Clock, qt: QdiscTimer) -> tuple[int, int]:
    """What `netlab apply`, `diff`, `apply` of the change and `destroy` do after their imports, phase by
    phase (as api._converge and api.diff call them; the lock left out). Returns the number of steps of
    the cold apply and of the change. A plain lab (no impair): the same under "plain: ", without the
    change."""
    from netlab import api, applier, model
    from netlab.adapter import Scope
    from netlab.planner import plan as make_plan

    tag = "" if lab.impaired else "plain: "
    rate = RATE if lab.impaired else None
    handle = NETLAB_TBF if lab.impaired else None

    def converge(what: str, rate: str) -> int:
        what = tag + what
        lab.write(rate)
        settle()
        start = time.perf_counter()
        topo = clock(f"{what}: load (YAML, schema, checks)", model.load, lab.topo)
        want = clock(f"{what}: desired state and scope", model.desired, topo)
        scope = Scope.of(topo, want)
        with api._adapter() as kernel:
            def observe() -> Any:
                return api._observe(kernel, scope)
            before = qt.around(clock, f"{what}: read the kernel", observe)
            plan = clock(f"{what}: plan", make_plan, want, before, topo.name)
            clock(f"{what}: execute", applier.run, plan, kernel, before, observe)
            after = qt.around(clock, f"{what}: read again to confirm", observe)
            assert clock(f"{what}: plan again (empty)", make_plan, want, after, topo.name).empty
        clock.add(f"{what}: all of the above", time.perf_counter() - start)
        return len(plan.steps)

    steps = converge("apply", RATE)
    lab.verify(rate, handle)
    topo = model.load(lab.topo)
    want = model.desired(topo)
    scope = Scope.of(topo, want)
    settle()
    assert clock(tag + "api.apply, nothing to do", api.apply, topo).empty
    settle()
    assert qt.around(clock, tag + "api.diff", api.diff, topo).empty
    settle()
    with api._adapter() as kernel:
        live = qt.around(clock, tag + "diff: read the kernel", api._observe, kernel, scope)
        assert clock(tag + "diff: plan", make_plan, want, live, topo.name).empty
    changed = 0
    if lab.impaired:
        changed = converge("change", RATE2)
        lab.verify(RATE2, NETLAB_TBF)
    settle()
    start = time.perf_counter()
    clock(tag + "api.destroy", api.destroy, model.load(lab.topo))
    clock.add(tag + "api.destroy until gone", lab.gone(start))
    return steps, changed


def script_in_process(lab: Lab, clock: Clock) -> None:
    """The script's processes, run from this process, each part timed."""
    def each(argvs: list[list[str]]) -> float:
        return sum(timed(a)[0] for a in argvs)

    head, last = lab.ip_parts()
    settle()
    ip = each(head)
    tc = each(lab.tc(RATE, "add"))
    ip += each(last)
    clock.add("script: ip -batch (namespaces, links, addresses, up)", ip)
    clock.add("script: tc -batch (the qdiscs)", tc)
    clock.add("script: all", ip + tc)
    lab.verify(RATE, None)
    settle()
    ips, tcs = lab.reads()
    a, b = each(ips), each(tcs)
    clock.add("script reads: ip -d -j addr show", a)
    clock.add("script reads: tc -j qdisc show", b)
    clock.add("script reads: all", a + b)
    settle()
    clock.add("script: tc -batch of qdisc change", each(lab.tc(RATE2, "change")))
    lab.verify(RATE2, None)
    settle()
    start = time.perf_counter()
    timed(lab.destroy_batch())
    clock.add("script: destroy until gone", lab.gone(start))


PHASE_RATIOS = [
    ("apply (in process) / script", "apply: all of the above", "script: all"),
    ("apply: execute / script", "apply: execute", "script: all"),
    ("api.diff / script's reads", "api.diff", "script reads: all"),
    ("diff: read the kernel / script's reads", "diff: read the kernel", "script reads: all"),
    ("change (in process) / tc change", "change: all of the above", "script: tc -batch of qdisc change"),
    ("change: execute / tc change", "change: execute", "script: tc -batch of qdisc change"),
    ("impaired / plain: apply (in process)", "apply: all of the above", "plain: apply: all of the above"),
    ("impaired / plain: apply: execute", "apply: execute", "plain: apply: execute"),
    ("impaired / plain: api.diff", "api.diff", "plain: api.diff"),
    ("impaired / plain: diff: read the kernel", "diff: read the kernel", "plain: diff: read the kernel"),
]


def phases(n: int, repeat: int) -> dict[str, Any]:
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)  # as the CLI sets them
    clock = Clock()
    qt = QdiscTimer()
    steps: tuple[int, int] = (0, 0)
    plain_steps = 0
    loads: list[float] = []
    for r in range(repeat):
        loads.append(os.getloadavg()[0])
        for i in [(r + j) % 3 for j in range(3)]:  # netlab, the script, netlab on the plain star
            with tempfile.TemporaryDirectory(prefix="netlab-impair-") as work:
                lab = Lab(n, work, impaired=i != 2)
                try:
                    if i == 0:
                        steps = netlab_in_process(lab, clock, qt)
                    elif i == 1:
                        script_in_process(lab, clock)
                    else:
                        plain_steps = netlab_in_process(lab, clock, qt)[0]
                    assert not run.leftovers(lab.t, lab.prefix), run.leftovers(lab.t, lab.prefix)[:5]
                finally:
                    lab.clean()
        print(f"  phases N={n}: repeat {r + 1}/{repeat} done (load {loads[-1]:.2f})", file=sys.stderr, flush=True)
    res: dict[str, Any] = {"n": n, "repeat": repeat,
                           "steps": {"apply": steps[0], "change": steps[1], "plain apply": plain_steps},
                           "loadavg_1min_per_repeat": loads, "seconds": clock.seconds, "cpu": clock.cpu,
                           "median": {k: statistics.median(v) for k, v in clock.seconds.items()}}
    res["ratios"] = [{"what": text, **q} for text, a, b in PHASE_RATIOS if (q := ratio(res, a, b))]
    return res


def phase_table(res: dict[str, Any]) -> str:
    lines = [f"| impaired star N={res['n']}, {res['steps']} steps | wall s, median [min-max] | CPU s, median |",
             "|---|---|---|"]
    for name, v in res["seconds"].items():
        cpu = res["cpu"].get(name)
        if name.endswith("(count)"):
            lines.append(f"| {name} | {statistics.median(v):.0f} | |")
        else:
            lines.append(f"| {name} | {spread(v)} | {statistics.median(cpu):.3f} |" if cpu else
                         f"| {name} | {spread(v)} | |")
    lines += ["", "| ratio (in process) | median ratio [pairs min-max] |", "|---|---|"]
    lines += [f"| {q['what']} | {q['ratio']:.2f} [{q['min']:.2f}-{q['max']:.2f}] |" for q in res["ratios"]]
    return "\n".join(lines)


# --- a topology without impairments: this tree's reading against an earlier commit's -------------------

def worker(path: str, expect: str) -> None:
    """--worker: import netlab (from PYTHONPATH), load `path`, then per line on stdin, `diff` (api.diff
    whole) or `parts` (its read and plan apart), answering with one JSON line of times."""
    import netlab
    from netlab import api, model
    from netlab.adapter import Scope
    from netlab.planner import plan as make_plan

    where = os.path.dirname(os.path.dirname(os.path.abspath(netlab.__file__)))
    assert where == os.path.abspath(expect), f"netlab imported from {where}, not {expect}"
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)  # as the CLI sets them
    topo = model.load(path)
    print(json.dumps({"ready": where}), flush=True)
    for line in sys.stdin:
        w0, c0 = time.perf_counter(), time.process_time()
        if line.strip() == "diff":
            assert api.diff(topo).empty
            out = {"api.diff": time.perf_counter() - w0, "api.diff (CPU)": time.process_time() - c0}
        else:
            want = model.desired(topo)
            scope = Scope.of(topo, want)
            with api._adapter() as kernel:
                w0 = time.perf_counter()
                live = api._observe(kernel, scope)
                w1 = time.perf_counter()
                assert make_plan(want, live, topo.name).empty
                out = {"diff: read the kernel": w1 - w0, "diff: plan": time.perf_counter() - w1}
        print(json.dumps(out), flush=True)


def before_after(n: int, repeat: int, before: str) -> dict[str, Any]:
    trees = {"head": ROOT, "before": os.path.abspath(before)}
    rev = subprocess.run(["git", "-C", trees["before"], "rev-parse", "--short", "HEAD"], capture_output=True,
                         text=True, check=True).stdout.strip()
    times: dict[str, list[float]] = {}
    loads: list[float] = []
    with tempfile.TemporaryDirectory(prefix="netlab-impair-") as work:
        lab = Lab(n, work, impaired=False)
        workers: dict[str, subprocess.Popen[str]] = {}
        try:
            lab.write()
            lab.netlab("apply")
            lab.verify(None, None)
            for name, tree in trees.items():  # from the tree, as routes.py's "before": `python` puts the
                # script's directory first, then PYTHONPATH, ahead of the venv's editable netlab
                workers[name] = subprocess.Popen(
                    [sys.executable, os.path.join(HERE, "impair.py"), "--worker", lab.topo, "--tree", tree],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=tree,
                    env={**os.environ, "PYTHONPATH": tree})
                assert workers[name].stdout is not None
                ready = json.loads(workers[name].stdout.readline())
                print(f"  {name}: netlab from {ready['ready']}", file=sys.stderr)

            def ask(name: str, what: str) -> None:
                w = workers[name]
                assert w.stdin is not None and w.stdout is not None
                w.stdin.write(what + "\n")
                w.stdin.flush()
                answer = w.stdout.readline()
                if not answer:
                    raise RuntimeError(f"the {name} worker ended (exit {w.wait()})")
                for key, seconds in json.loads(answer).items():
                    times.setdefault(f"{name}/{key}", []).append(seconds)

            for name in trees:  # one untimed call each: the first read pays for opening 1000 namespaces' files
                ask(name, "diff")
                times.clear()
            for r in range(repeat):
                loads.append(os.getloadavg()[0])
                order = list(trees)[r % 2:] + list(trees)[:r % 2]
                for what in ("diff", "parts"):
                    for name in order:
                        settle()
                        ask(name, what)
                print(f"  before/after N={n}: repeat {r + 1}/{repeat} done (load {loads[-1]:.2f})",
                      file=sys.stderr, flush=True)
        finally:
            for w in workers.values():
                if w.stdin:
                    w.stdin.close()
                w.wait()
            start = time.perf_counter()
            try:
                lab.netlab("destroy")
                lab.gone(start)
            finally:
                lab.clean()
    res: dict[str, Any] = {"n": n, "repeat": repeat, "before_commit": rev, "head_commit": commit(),
                           "loadavg_1min_per_repeat": loads, "seconds": times,
                           "median": {k: statistics.median(v) for k, v in times.items()}}
    res["ratios"] = [{"what": f"{key}: head / before", **q} for key in
                     ("api.diff", "api.diff (CPU)", "diff: read the kernel", "diff: plan")
                     if (q := ratio(res, f"head/{key}", f"before/{key}"))]
    return res


def before_table(res: dict[str, Any]) -> str:
    lines = [(f"| plain star N={res['n']} (no impair) | head {res['head_commit']} | before {res['before_commit']} "
             f"| head / before [pairs min-max] |"), "|---|---|---|---|"]
    for q in res["ratios"]:
        key = q["what"].split(": head")[0]
        lines.append(f"| {key} | {spread(res['seconds'][f'head/{key}'])} | "
                     f"{spread(res['seconds'][f'before/{key}'])} | {q['ratio']:.3f} [{q['min']:.2f}-{q['max']:.2f}] |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--phases", action="store_true", help="netlab's phases in process")
    parser.add_argument("--before", metavar="DIR", help="a plain star's diff: this tree against DIR's netlab")
    parser.add_argument("--worker", metavar="TOPOLOGY", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--json", default=os.path.join(HERE, "results-impair.json"))
    args = parser.parse_args()
    if args.worker:
        worker(args.worker, args.tree)
        return
    if os.geteuid() != 0:
        sys.exit("the benchmark creates namespaces: run it as root, inside /tmp/iso.sh or alike")
    try:
        with open(args.json) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        doc = {}
    at_start = machine()
    if args.before:
        res = before_after(args.n, args.repeat, args.before)
        key, text = "before-after", before_table(res)
    elif args.phases:
        res = phases(args.n, args.repeat)
        key, text = "phases", phase_table(res)
    else:
        res = measure(args.n, args.repeat)
        key, text = "cli", table(res)
    res["machine"] = at_start
    res["loadavg_at_end"] = os.getloadavg()
    doc[key] = res
    print(text)
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=2)
    print(f"\n{at_start}\nwritten to {args.json}")


if __name__ == "__main__":
    main()
