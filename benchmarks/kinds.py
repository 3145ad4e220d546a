"""The link-kinds benchmark (issue 11): N children (macvlans, or VLANs in the guest) on one parent, built by
netlab and by the best `ip -batch` script doing the same kernel work. Needs root; on this machine run it
inside a throwaway network and mount namespace:

    /tmp/iso.sh .venv/bin/python benchmarks/kinds.py [--sizes 100,1000] [--repeat 5]   # CLI against ip
    /tmp/iso.sh .venv/bin/python benchmarks/kinds.py --phases 1000 [--profile]      # in process
    .venv/bin/python benchmarks/kinds.py --guest [--phases 1000 --repeat 3]          # VLANs, Debian 6.1

The lab: namespace A holds a veth `up0` (its peer, also `up0`, is in namespace B with 10.20.255.254/16)
and N children of up0 (macvlan mode bridge, or vlan id i+1), each with one address in 10.20.0.0/16, up.

CLI mode: each repeat runs the contenders in turn (the order rotates), every command a fresh process:
- netlab: `netlab apply` cold (create), `apply` again (no-op), `diff`, `destroy`;
- ip-batch: `ip -batch` (`netns add` A and B) then `ip -n A -batch` (the veth with its peer put in B,
  then per child `link add link up0 name mvI up type macvlan mode bridge`, `link set mvI alias
  netlab:TOPOLOGY` (the kernel ignores IFLA_IFALIAS in a create, so the mark costs a line) and `address
  add`; the fastest of three orders tried at N=1000, against add, address, `set alias up` per child,
  and all adds first, then addresses, then `set alias up`: medians of 5 alternating repeats 1.09 s,
  2.06 s, 1.47 s), then `ip -n B -batch` (the peer's address, up); destroy is one `ip -batch` of
  `netns del`;
- ip-batch-nomark: the same without the alias lines;
- ip-read: `ip -n NS -j -d link show` and `ip -n NS -j addr show` for A and B, what a script that diffs
  must read, timed on netlab's lab in the same repeat as netlab's diff (their order alternates).
Every create is checked before anything else is timed (with `ip -j -d`: N children of up0, their kind,
mode or VLAN id, up, their mark where there is one, every address; and, with arp_ignore=1 in A so that
only a child answers for its own address, pings from B to the first child and from the last child, bound
to it, to B); every destroy is checked to leave no namespace of the run.

--phases N: netlab's apply and diff in ONE process, phase by phase (load, desired state, read, plan,
execute, confirm; api.apply with nothing to do; api.diff, and its read and plan), against the same
kernel operations sent as `ip -batch` from that process, alternating; the repeat's pairs make the
ratios. --profile: cProfile of one cold apply (its in-process phases), top entries by own time.
--guest: the same --phases run for VLANs inside Debian's stock 6.1 kernel under QEMU (vng, as
.ci/stock-kernel boots it; one VM at a time), where a fresh netlab process pays 20 s or more of imports.
Each mode writes its part of the JSON file (--json) and keeps the others.
"""

from __future__ import annotations

import argparse
import cProfile
import errno
import gc
import json
import os
import platform
import pstats
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

import routes  # noqa: E402
from routes import ours, ratio, settle  # noqa: E402

from run import NETLAB, timed  # noqa: E402

PEER = "10.20.255.254/16"
CLI = ("netlab", "ip-batch", "ip-batch-nomark")
TARGETS = [  # (text, numerator, denominator, bound)
    ("cold apply <= 0.5 x ip-batch", "netlab/create", "ip-batch/create", 0.5),
    ("cold apply <= 0.5 x ip-batch-nomark", "netlab/create", "ip-batch-nomark/create", 0.5),
    ("diff <= 0.2 x ip -j read", "netlab/diff", "ip-read/read", 0.2),
]


class Lab:
    """One parent up0 in namespace A, its peer in B, N children of `kind` on up0 in A."""

    def __init__(self, n: int, kind: str, work: str):
        self.n, self.kind, self.work = n, kind, work
        self.prefix = "k" + "".join(random.choices(string.ascii_lowercase, k=3))
        self.a, self.b = self.prefix + "a", self.prefix + "b"
        self.mark = "netlab:" + self.prefix
        self.topo = os.path.join(work, "topo.yaml")

    def child(self, i: int) -> str:
        return ("mv" if self.kind == "macvlan" else "vl") + str(i)

    @staticmethod
    def address(i: int) -> str:
        return f"10.20.{i // 250}.{i % 250 + 1}/16"

    def options(self, i: int) -> tuple[str, str]:
        """(netlab's fields, ip's `type ...`) of child i."""
        if self.kind == "macvlan":
            return "mode: bridge", "type macvlan mode bridge"
        return f"id: {i + 1}", f"type vlan id {i + 1}"

    def file(self, name: str, text: str) -> str:
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def yaml(self) -> str:
        kids = "".join(f"      {self.child(i)}: {{kind: {self.kind}, parent: up0, {self.options(i)[0]}, "
                       f"addresses: [{self.address(i)}]}}\n" for i in range(self.n))
        return (f"name: {self.prefix}\nnamespaces:\n  {self.a}:\n    interfaces:\n"
                f"      up0: {{kind: veth, peer: {self.b}/up0}}\n{kids}"
                f"  {self.b}:\n    interfaces:\n      up0: {{addresses: [{PEER}]}}\n")

    def batches(self, marked: bool) -> list[list[str]]:
        """The script: one argv per `ip` process."""
        lines = [f"link add up0 up type veth peer name up0 netns {self.b}"]
        for i in range(self.n):
            name, kind = self.child(i), self.options(i)[1]
            lines.append(f"link add link up0 name {name} up {kind}")
            if marked:
                lines.append(f"link set {name} alias {self.mark}")
            lines.append(f"address add {self.address(i)} dev {name}")
        peer = [f"address add {PEER} dev up0", "link set up0 up"]
        if marked:
            lines[0] = f"link add up0 up alias {self.mark} type veth peer name up0 netns {self.b}"
            lines.insert(1, f"link set up0 alias {self.mark}")
            peer.append(f"link set up0 alias {self.mark}")
        return [["ip", "-batch", self.file("root.batch", f"netns add {self.a}\nnetns add {self.b}\n")],
                ["ip", "-n", self.a, "-batch", self.file("a.batch", "\n".join(lines) + "\n")],
                ["ip", "-n", self.b, "-batch", self.file("b.batch", "\n".join(peer) + "\n")]]

    def reads(self) -> list[list[str]]:
        return [["ip", "-n", ns, "-j", *what] for ns in (self.a, self.b)
                for what in (["-d", "link", "show"], ["addr", "show"])]

    def netlab(self, command: str, expect: int = 0) -> float:
        return timed([NETLAB, command, self.topo], expect=expect)[0]

    def create(self, contender: str) -> float:
        if contender == "netlab":
            self.file("topo.yaml", self.yaml())
            return self.netlab("apply")
        script = "set -e\n" + "".join(" ".join(argv) + "\n" for argv in self.batches(contender == "ip-batch"))
        return timed(["sh", self.file("create.sh", script)])[0]

    def destroy(self, contender: str) -> float:
        start = time.perf_counter()
        if contender == "netlab":
            self.netlab("destroy")
        else:
            timed(["ip", "-batch", self.file("destroy.batch", f"netns del {self.a}\nnetns del {self.b}\n")])
        return routes.wait_gone(self.prefix, start)

    def read(self) -> float:
        return timed(["sh", self.file("read.sh", "".join(" ".join(a) + " >/dev/null\n" for a in self.reads()))])[0]

    def verify(self, marked: bool, ping: bool = True) -> None:
        """The children as the kernel has them (`ip -j -d`), their addresses, and traffic through them."""
        def ip(*argv: str) -> Any:
            return json.loads(subprocess.run(["ip", "-n", self.a, "-j", *argv], capture_output=True,
                                             check=True).stdout)
        assert sorted(ours(self.prefix)) == [self.a, self.b], f"namespaces: {ours(self.prefix)}"
        links = {lk["ifname"]: lk for lk in ip("-d", "link", "show", "type", self.kind)}
        assert len(links) == self.n, f"{len(links)} {self.kind} links of {self.n}"
        for i in range(self.n):
            lk = links[self.child(i)]
            data = lk["linkinfo"]["info_data"]
            assert lk.get("link") == "up0", f"{lk['ifname']}: parent {lk.get('link')}"
            assert (data["mode"] == "bridge") if self.kind == "macvlan" else (data["id"] == i + 1), data
            assert "UP" in lk["flags"], f"{lk['ifname']} is down"
            assert lk.get("ifalias") == (self.mark if marked else None), f"{lk['ifname']}: {lk.get('ifalias')}"
        have = {a["ifname"]: {f"{x['local']}/{x['prefixlen']}" for x in a["addr_info"] if x["family"] == "inet"}
                for a in ip("addr", "show")}
        wrong = [self.child(i) for i in range(self.n) if have.get(self.child(i)) != {self.address(i)}]
        assert not wrong, f"addresses of {wrong[:5]}: {[have.get(w) for w in wrong[:5]]}"
        if ping:  # only the child with the address answers ARP (the others would too, by default)
            subprocess.run(["ip", "netns", "exec", self.a, "sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1"],
                           check=True)
            last = self.child(self.n - 1)
            for ns, argv in ((self.b, [self.address(0).split("/")[0]]),
                             (self.a, ["-I", last, PEER.split("/")[0]])):
                deadline = time.monotonic() + 60  # ARP waits while the children's IPv6 multicast (each
                while True:  # delivered to every other child, in mode bridge) floods the parent's queue
                    done = subprocess.run(["ip", "netns", "exec", ns, "ping", "-c1", "-W2", *argv],
                                          capture_output=True, check=False)
                    if done.returncode == 0 or time.monotonic() > deadline:
                        break
                assert done.returncode == 0, f"no ping from {ns} {argv}: {done.stdout.decode()[-300:]}"


def measure(n: int, repeat: int, contenders: tuple[str, ...], kind: str = "macvlan") -> dict[str, Any]:
    times: dict[str, list[float]] = {}

    def record(key: str, seconds: float) -> None:
        times.setdefault(key, []).append(seconds)

    for r in range(repeat):
        for name in contenders[r % len(contenders):] + contenders[:r % len(contenders)]:
            with tempfile.TemporaryDirectory(prefix="netlab-kinds-") as work:
                lab = Lab(n, kind, work)
                try:
                    settle()
                    record(f"{name}/create", lab.create(name))
                    try:
                        lab.verify(marked=name != "ip-batch-nomark")
                    except AssertionError as exc:
                        raise AssertionError(f"{name}, N={n}: {exc}") from None
                    if name == "netlab":
                        settle()
                        record("netlab/noop", lab.netlab("apply"))
                        for what in ("diff", "read")[:: 1 if r % 2 == 0 else -1]:
                            settle()
                            if what == "diff":
                                record("netlab/diff", lab.netlab("diff"))
                            else:
                                record("ip-read/read", lab.read())
                    settle()
                    record(f"{name}/destroy", lab.destroy(name))
                    assert not ours(lab.prefix), ours(lab.prefix)
                finally:
                    routes.clean(lab.prefix)
        print(f"  {kind} N={n}: repeat {r + 1}/{repeat} done", file=sys.stderr, flush=True)
    return {"n": n, "kind": kind, "repeat": repeat, "seconds": times,
            "median": {k: statistics.median(v) for k, v in times.items()}}


def checks(results: list[dict[str, Any]], targets: list[tuple[str, str, str, float]]) -> list[dict[str, Any]]:
    out = []
    for res in results:
        for text, a, b, bound in targets:
            q = ratio(res, a, b)
            if q is not None:
                out.append({"target": text, "n": res["n"], **q, "bound": bound, "met": q["ratio"] <= bound})
    return out


def spread(v: list[float]) -> str:
    return f"{statistics.median(v):.3f} [{min(v):.3f}-{max(v):.3f}]"


def table(results: list[dict[str, Any]], found: list[dict[str, Any]]) -> str:
    keys = sorted({k for res in results for k in res["seconds"]})
    lines = ["| N | " + " | ".join(keys) + " |", "|" + "---|" * (len(keys) + 1)]
    lines += [f"| {res['n']} | " + " | ".join(spread(res["seconds"][k]) if k in res["seconds"] else ""
                                              for k in keys) + " |" for res in results]
    lines += ["", "| target | N | ratio [spread] | met |", "|---|---|---|---|"]
    lines += [f"| {c['target']} | {c['n']} | {c['ratio']:.2f} [{c['min']:.2f}-{c['max']:.2f}] | "
              f"{'yes' if c['met'] else 'NO'} |" for c in found]
    return "\n".join(lines)


# --- in one process: netlab's phases, and the same kernel operations from ip -batch --------------------

class Clock:
    """Times calls into `seconds[name]` (wall) and `cpu[name]`, one list entry per call."""

    def __init__(self) -> None:
        self.seconds: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}
        self.failures: list[str] = []

    def __call__(self, name: str, f: Callable[..., Any], *args: Any) -> Any:
        w0, c0 = time.perf_counter(), time.process_time()
        result = f(*args)
        self.seconds.setdefault(name, []).append(time.perf_counter() - w0)
        self.cpu.setdefault(name, []).append(time.process_time() - c0)
        return result

    def add(self, name: str, seconds: float) -> None:
        self.seconds.setdefault(name, []).append(seconds)


def netlab_in_process(lab: Lab, clock: Clock, prof: cProfile.Profile | None = None) -> int:
    """What `netlab apply` and `netlab diff` do after their imports, phase by phase (as api._converge and
    api.diff call them; the lock is left out), then api.apply with nothing to do, api.diff whole, and
    api.destroy. `prof` profiles the cold apply's phases. Returns the number of steps of the cold apply."""
    from netlab import api, applier, model
    from netlab.adapter import Scope
    from netlab.netlink.transport import NetlinkError
    from netlab.planner import plan as make_plan

    lab.file("topo.yaml", lab.yaml())
    if prof:
        prof.enable()
    start = time.perf_counter()
    topo = clock("load (YAML, schema, checks)", model.load, lab.topo)
    want = clock("desired state and scope", model.desired, topo)
    scope = Scope.of(topo, want)
    with api._adapter() as kernel:
        def observe() -> Any:
            return api._observe(kernel, scope)
        before = clock("apply: read the kernel", observe)
        plan = clock("apply: plan", make_plan, want, before, topo.name)
        clock("apply: execute", applier.run, plan, kernel, before, observe)
        after = clock("apply: read again to confirm", observe)
        assert clock("apply: plan again (empty)", make_plan, want, after, topo.name).empty
    clock.add("apply: all of the above", time.perf_counter() - start)
    if prof:
        prof.disable()
    lab.verify(marked=True, ping=lab.kind == "macvlan")

    def diff_in_parts() -> None:
        with api._adapter() as kernel:
            live = clock("diff: read the kernel", api._observe, kernel, scope)
            assert clock("diff: plan", make_plan, want, live, topo.name).empty

    def destroy() -> None:
        start = time.perf_counter()
        clock("api.destroy", api.destroy, topo)
        clock.add("api.destroy until gone", routes.wait_gone(lab.prefix, start))

    rest: list[tuple[str, Callable[[], Any]]] = [("api.apply, nothing to do", lambda: api.apply(topo)),
                                                 ("api.diff", lambda: api.diff(topo)),
                                                 ("", diff_in_parts), ("", destroy)]
    for name, f in rest:
        for attempt in (1, 2):  # a dump the kernel kept changing: counted, and tried once more
            settle()
            try:
                result = clock(name, f) if name else f()
                assert not name or result.empty
                break
            except NetlinkError as exc:
                if exc.errno != errno.EAGAIN or attempt == 2:
                    raise
                clock.failures.append(f"{name or f.__name__}: {exc}")
    return len(plan.steps)


def ip_in_process(lab: Lab, clock: Clock, marked: bool) -> None:
    """The same kernel operations from `ip -batch` (three processes: namespaces, A, B), each process timed."""
    name = "ip-batch" if marked else "ip-batch-nomark"
    parts = [timed(argv)[0] for argv in lab.batches(marked)]
    clock.add(f"{name}: all", sum(parts))
    clock.add(f"{name}: ip -n A -batch (veth and children)", parts[1])
    lab.verify(marked=marked, ping=lab.kind == "macvlan")
    if marked:
        settle()
        clock.add("ip-read: ip -j reads of A and B", sum(timed(argv)[0] for argv in lab.reads()))
    settle()
    start = time.perf_counter()
    timed(["ip", "-batch", lab.file("destroy.batch", f"netns del {lab.a}\nnetns del {lab.b}\n")])
    clock.add(f"{name}: destroy until gone", routes.wait_gone(lab.prefix, start))


PHASE_TARGETS = [
    ("apply (in process) <= 0.5 x ip-batch", "apply: all of the above", "ip-batch: all", 0.5),
    ("apply (in process) <= 0.5 x ip-batch-nomark", "apply: all of the above", "ip-batch-nomark: all", 0.5),
    ("api.diff <= 0.2 x ip -j read", "api.diff", "ip-read: ip -j reads of A and B", 0.2),
]


def phases(n: int, kind: str, repeat: int) -> dict[str, Any]:
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)  # as the CLI sets them
    clock = Clock()
    steps = 0
    runs: list[Callable[[Lab], Any]] = [lambda lab: netlab_in_process(lab, clock),
                                        lambda lab: ip_in_process(lab, clock, True),
                                        lambda lab: ip_in_process(lab, clock, False)]
    for r in range(repeat):
        for i in [(r + j) % len(runs) for j in range(len(runs))]:
            with tempfile.TemporaryDirectory(prefix="netlab-kinds-") as work:
                lab = Lab(n, kind, work)
                try:
                    settle()
                    steps = runs[i](lab) or steps
                    assert not ours(lab.prefix), ours(lab.prefix)
                finally:
                    routes.clean(lab.prefix)
        print(f"  phases {kind} N={n}: repeat {r + 1}/{repeat} done", file=sys.stderr, flush=True)
    res = {"n": n, "kind": kind, "repeat": repeat, "steps": steps, "seconds": clock.seconds, "cpu": clock.cpu,
           "failures": clock.failures,
           "median": {k: statistics.median(v) for k, v in clock.seconds.items()}}
    res["checks"] = checks([res], PHASE_TARGETS)
    return res


def phase_table(res: dict[str, Any]) -> str:
    lines = [f"| {res['kind']} N={res['n']}, {res['steps']} steps | wall s, median [min-max] | CPU s, median |",
             "|---|---|---|"]
    for name, v in res["seconds"].items():
        cpu = res["cpu"].get(name)
        lines.append(f"| {name} | {spread(v)} | {statistics.median(cpu):.3f} |" if cpu else
                     f"| {name} | {spread(v)} | |")
    lines += ["", "| target (in process) | ratio [spread] | met |", "|---|---|---|"]
    lines += [f"| {c['target']} | {c['ratio']:.2f} [{c['min']:.2f}-{c['max']:.2f}] | {'yes' if c['met'] else 'NO'} |"
              for c in res["checks"]]
    lines += [f"retried after EAGAIN: {f}" for f in res.get("failures", [])]
    return "\n".join(lines)


def profile(n: int, kind: str, top: int = 25) -> list[str]:
    """cProfile of one cold apply's in-process phases, its top entries by own time."""
    with tempfile.TemporaryDirectory(prefix="netlab-kinds-") as work:
        lab = Lab(n, kind, work)
        prof = cProfile.Profile()
        try:
            settle()
            netlab_in_process(lab, Clock(), prof)
        finally:
            routes.clean(lab.prefix)
    out = []
    stats = pstats.Stats(prof)
    width = len(ROOT) + 1
    for (file, line, func), (_, calls, own, cum, _) in sorted(stats.stats.items(),  # type: ignore[attr-defined]
                                                              key=lambda kv: -kv[1][2])[:top]:
        out.append(f"{own:7.3f} own {cum:7.3f} cum {calls:8d} calls  {file[width:] if file.startswith(ROOT) else file}"
                   f":{line}({func})")
    return out


# --- the guest: Debian's 6.1 under QEMU -----------------------------------------------------------------

def guest(n: int, repeat: int) -> dict[str, Any]:
    """Boot Debian's stock kernel as .ci/stock-kernel does and run `--phases N --kind vlan` there."""
    if subprocess.run(["pgrep", "-f", "qemu-system"], capture_output=True, check=False).returncode == 0:
        sys.exit("a QEMU virtual machine is running already: one at a time on this machine")
    version = subprocess.run(["dpkg-query", "-W", "-f", "${Depends}", "linux-image-amd64"], capture_output=True,
                             text=True, check=True).stdout
    version = next(w for w in version.replace(",", " ").split() if w.startswith("linux-image-"))
    kernel = "/boot/vmlinuz-" + version.removeprefix("linux-image-")
    out = os.path.join(ROOT, "build", "kinds-guest")
    os.makedirs(out, exist_ok=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "netlab", "benchmarks"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    result = os.path.join(out, "phases.json")
    if os.path.exists(result):
        os.remove(result)
    command = (f"modprobe 8021q; cd {ROOT} && PYTHONDONTWRITEBYTECODE=1 .venv/bin/python benchmarks/kinds.py "
               f"--phases {n} --kind vlan --repeat {repeat} --json {result} >{out}/log 2>&1")
    start = time.perf_counter()
    vng = subprocess.run(["timeout", "--kill-after=30", "3000", "vng", "--disable-kvm", "--cpus", "2",
                          "--memory", "2G", "--run", kernel, "--user", "root", "--rwdir", out, "--exec", command],
                         stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
                         env={**os.environ, "PATH": os.path.dirname(sys.executable) + ":" + os.environ["PATH"]})
    if not os.path.exists(result):
        try:
            with open(os.path.join(out, "log")) as f:
                log = f.read()[-3000:]
        except OSError:
            log = ""
        sys.exit(f"the guest wrote no result (vng exited {vng.returncode}):\n{log}\n{vng.stdout[-2000:]}")
    with open(result) as f:
        res: dict[str, Any] = json.load(f)["phases-vlan"]
    res["vm_seconds"] = time.perf_counter() - start
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--contenders", default=",".join(CLI))
    parser.add_argument("--kind", default="macvlan", choices=("macvlan", "vlan"))
    parser.add_argument("--phases", type=int, metavar="N", help="netlab's phases in process at size N")
    parser.add_argument("--profile", action="store_true", help="with --phases: cProfile one cold apply")
    parser.add_argument("--guest", action="store_true", help="run --phases for VLANs in Debian's 6.1 (vng)")
    parser.add_argument("--json", default=os.path.join(HERE, "results-kinds.json"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the benchmark creates namespaces: run it as root, inside /tmp/iso.sh or alike")
    try:
        with open(args.json) as f:
            doc = json.load(f)
    except (OSError, ValueError):
        doc = {}
    machine = {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version(),
               "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "loadavg": os.getloadavg()}
    if args.guest:
        res = guest(args.phases or 1000, args.repeat)
        doc["guest"] = res
        print(phase_table(res))
    elif args.phases:
        res = phases(args.phases, args.kind, args.repeat)
        res["machine"] = machine
        if args.profile:
            res["profile"] = profile(args.phases, args.kind)
        doc["phases" if args.kind == "macvlan" else "phases-vlan"] = res
        print(phase_table(res))
        print("\n".join(res.get("profile", [])))
    else:
        results = [measure(int(n), args.repeat, tuple(args.contenders.split(",")), args.kind)
                   for n in args.sizes.split(",")]
        found = checks(results, TARGETS)
        doc.update({"machine": machine, "results": results, "checks": found})
        print(table(results, found))
    with open(args.json, "w") as f:
        json.dump(doc, f, indent=2)
    print(f"\n{machine}\nwritten to {args.json}")


if __name__ == "__main__":
    main()
