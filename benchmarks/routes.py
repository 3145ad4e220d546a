"""The routes benchmark (issue 10): a chain of N routers, each with a static route to every link subnet it
is not on (N(N-3)+2 routes in all: 89,102 at N=300), built by netlab and by the best `ip -batch` script
with the same routes, side by side in one run. Needs root; run it inside a throwaway network and mount
namespace so nothing reaches the host:

    /tmp/iso.sh .venv/bin/python benchmarks/routes.py [--sizes 10,100,300] [--repeat 5]
                                                      [--json benchmarks/results-routes.json]
    /tmp/iso.sh .venv/bin/python benchmarks/routes.py --phases 300   # where netlab's time goes, in process

For each N, each repeat runs the contenders in turn (the order rotates with the repeat), every command a
fresh process so that start-up counts:
- netlab: `netlab apply` cold (create), `apply` again (no-op), `diff`, `destroy`; its peak RSS;
- ip-batch: one `ip -batch` in the root namespace that makes the namespaces and every veth with both
  ends already in their namespaces, then per namespace one `nsenter --net=... sh -c 'echo 1 >
  /proc/sys/net/ipv4/ip_forward; exec ip -batch FILE'` (addresses, links up, one `route add` per route);
  destroy is one `ip -batch` of `netns del`;
- ip-read: one `ip -n NS -j route` per namespace, what a script that diffs routes has to read, timed
  on netlab's topology in the same repeat as netlab's `diff` (their order alternates too).
netlab's file is compact (one route entry per direction, its destinations listed in `to:`); each
destination is still one kernel route, as in the script. Both mark their routes with protocol 201.

A destroy is timed until no namespace of the run is left in /run/netns. Every create is checked before
anything else is timed: the namespaces, IPv4 forwarding, the number of protocol-201 routes in every
namespace (read with `ip -j`), and pings that cross the whole chain in segments of at most 60 routers
(IPv4's TTL, 64 by default and 255 at most, cannot cross a 300-router chain in one ping; each segment's
echo and reply use the routes of every router on it, in both directions). Every destroy is checked to
leave nothing. Medians, ratios and the spread (min-max over the repeats) are printed and written as JSON.
"""

from __future__ import annotations

import argparse
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402
import shapes  # noqa: E402
from run import NETLAB, timed  # noqa: E402

NETLABS = ("netlab", "before")
BEFORE = ""  # --before: a directory holding an earlier netlab package, the "before" contender
SEGMENT = 60  # routers crossed by one verifying ping (the TTL is 64)
TARGETS = [  # (text, (contender, op), (contender, op), bound, sizes)
    ("cold apply <= 0.6 x ip-batch", ("netlab", "create"), ("ip-batch", "create"), 0.6, {300}),
    ("diff <= 0.2 x ip -j route", ("netlab", "diff"), ("ip-read", "read"), 0.2, {300}),
]


def settle() -> float:
    """run.settle, bounded to 5 s: other work shares this machine, so the contenders alternate within each
    repeat instead of waiting for it to be quiet."""
    return run.settle(quiet=0.10, window=0.2, timeout=5.0)


def ours(prefix: str) -> list[str]:
    return [n for n in os.listdir("/run/netns") if n.startswith(prefix)] if os.path.isdir("/run/netns") else []


def wait_gone(prefix: str, start: float, timeout: float = 120) -> float:
    while ours(prefix):
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"destroy left {ours(prefix)[:5]}")
        time.sleep(0.002)
    return time.perf_counter() - start


def clean(prefix: str) -> None:
    for ns in ours(prefix):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def verify(t: shapes.Routed, prefix: str) -> int:
    """Check the chain: namespaces, forwarding, every router's route count, pings along the whole chain.
    Returns the number of routes counted."""
    assert sorted(ours(prefix)) == sorted(t.routers), f"namespaces: {len(ours(prefix))} of {len(t.routers)}"
    total = 0
    for i, ns in enumerate(t.routers):
        got = json.loads(subprocess.run(["ip", "-n", ns, "-j", "route", "show", "proto", "201"],
                                        capture_output=True, check=True).stdout)
        assert len(got) == t.route_count(i), f"{ns}: {len(got)} routes, {t.route_count(i)} wanted"
        total += len(got)
    for ns in {t.routers[0], t.routers[len(t.routers) // 2], t.routers[-1]}:
        forwarding = subprocess.run(["ip", "netns", "exec", ns, "cat", "/proc/sys/net/ipv4/ip_forward"],
                                    capture_output=True, text=True, check=True).stdout.strip()
        assert forwarding == "1", f"{ns}: ip_forward {forwarding}"
    n = len(t.routers)
    for start in range(0, n - 1, SEGMENT):
        end = min(start + SEGMENT, n - 1)
        target = t.address(end - 1, 2)  # router end's `left`
        ping = subprocess.run(["ip", "netns", "exec", t.routers[start], "ping", "-c1", "-W5", target],
                              capture_output=True, check=False)
        assert ping.returncode == 0, f"no ping from {t.routers[start]} to {target} ({t.routers[end]})"
    return total


class Chain:
    def __init__(self, n: int, work: str):
        self.prefix = "b" + "".join(random.choices(string.ascii_lowercase, k=3))
        self.t = shapes.routed_chain(n, self.prefix)
        self.work = work

    def path(self, name: str, text: str | None = None) -> str:
        path = os.path.join(self.work, name)
        if text is not None:
            with open(path, "w") as f:
                f.write(text)
        return path

    def netlab(self, command: str, expect: int = 0, contender: str = "netlab") -> tuple[float, int]:
        if contender == "before":  # the netlab package in BEFORE (--before), run by this venv's Python; from
            # there, since `python -m` puts the working directory ahead of PYTHONPATH
            return timed([sys.executable, "-m", "netlab", command, self.path("topo.yaml")], expect=expect,
                         env={**os.environ, "PYTHONPATH": BEFORE}, cwd=BEFORE)
        return timed([NETLAB, command, self.path("topo.yaml")], expect=expect)

    def create(self, contender: str) -> tuple[float, int]:
        if contender in NETLABS:
            self.path("topo.yaml", shapes.routed_yaml(self.t))
            return self.netlab("apply", contender=contender)
        root, per_ns = shapes.routed_ip_batch(self.t)
        lines = ["set -e", f"ip -batch {self.path('root.batch', root)}"]
        for i, (ns, text) in enumerate(per_ns.items()):
            batch = self.path(f"ns{i}.batch", text)
            lines.append(f"nsenter --net=/run/netns/{ns} sh -c "
                         f"'echo 1 >/proc/sys/net/ipv4/ip_forward && exec ip -batch {batch}'")
        return timed(["sh", self.path("create.sh", "\n".join(lines) + "\n")])

    def destroy(self, contender: str) -> tuple[float, int]:
        start = time.perf_counter()
        if contender in NETLABS:
            _, rss = self.netlab("destroy", contender=contender)
        else:
            _, rss = timed(["ip", "-batch", self.path("destroy.batch",
                                                      "".join(f"netns del {ns}\n" for ns in self.t.routers))])
        return wait_gone(self.prefix, start), rss

    def read(self) -> float:
        script = "".join(f"ip -n {ns} -j route >/dev/null\n" for ns in self.t.routers)
        return timed(["sh", self.path("read.sh", script)])[0]


def measure(n: int, repeat: int, contenders: tuple[str, ...] = ("netlab", "ip-batch")) -> dict:
    times: dict[str, list[float]] = {}
    rss: list[int] = []

    def record(key: str, seconds: float) -> None:
        times.setdefault(key, []).append(seconds)

    routes = 0
    for r in range(repeat):
        order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
        for name in order:
            with tempfile.TemporaryDirectory(prefix="netlab-routes-") as work:
                c = Chain(n, work)
                try:
                    settle()
                    seconds, peak = c.create(name)
                    record(f"{name}/create", seconds)
                    routes = verify(c.t, c.prefix)
                    if name in NETLABS:
                        rss.append(peak)
                        settle()
                        seconds, peak = c.netlab("apply", contender=name)
                        record(f"{name}/noop", seconds)
                        rss.append(peak)
                        reads = ("diff", "read") if name == "netlab" else ("diff",)
                        for what in (reads if r % 2 == 0 else reads[::-1]):
                            settle()
                            if what == "diff":
                                seconds, peak = c.netlab("diff", contender=name)
                                record(f"{name}/diff", seconds)
                                rss.append(peak)
                            else:
                                record("ip-read/read", c.read())
                    settle()
                    seconds, peak = c.destroy(name)
                    record(f"{name}/destroy", seconds)
                    assert not ours(c.prefix)
                finally:
                    clean(c.prefix)
        print(f"  routes N={n}: repeat {r + 1}/{repeat} done", file=sys.stderr, flush=True)
    return {"n": n, "routes": routes, "repeat": repeat, "seconds": times,
            "median": {k: statistics.median(v) for k, v in times.items()},
            "netlab_peak_rss_mib": max(rss) / 1024 if rss else None}


def ratio(res: dict, a: str, b: str) -> dict | None:
    """The ratio of the medians, and its spread: the ratios of the repeats' own pairs (min-max)."""
    num, den = res["seconds"].get(a), res["seconds"].get(b)
    if not num or not den:
        return None
    pairs = [x / y for x, y in zip(num, den, strict=False)]
    return {"ratio": statistics.median(num) / statistics.median(den), "min": min(pairs), "max": max(pairs)}


ROWS = [("create (cold apply)", "netlab/create", "ip-batch/create"),
        ("create: netlab vs before", "netlab/create", "before/create"),
        ("no-op apply: netlab vs before", "netlab/noop", "before/noop"),
        ("diff: netlab vs before", "netlab/diff", "before/diff"),
        ("destroy: netlab vs before", "netlab/destroy", "before/destroy"),
        ("no-op apply", "netlab/noop", "ip-batch/create"),
        ("destroy", "netlab/destroy", "ip-batch/destroy"),
        ("diff vs ip -j route", "netlab/diff", "ip-read/read"),
        ("no-op apply vs ip -j route", "netlab/noop", "ip-read/read")]


def report(results: list[dict]) -> str:
    def spread(v: list[float]) -> str:
        return f"{statistics.median(v):.3f} [{min(v):.3f}-{max(v):.3f}]"

    keys = [k for k in ["netlab/create", "netlab/noop", "netlab/diff", "netlab/destroy", "before/create",
                        "before/noop", "before/diff", "before/destroy", "ip-batch/create", "ip-batch/destroy",
                        "ip-read/read"] if any(k in res["seconds"] for res in results)]
    lines = ["| N | routes | " + " | ".join(keys) + " | netlab RSS MiB |", "|" + "---|" * (len(keys) + 3)]
    for res in results:
        cells = [spread(res["seconds"][k]) if k in res["seconds"] else "" for k in keys]
        rss = f"{res['netlab_peak_rss_mib']:.0f}" if res["netlab_peak_rss_mib"] else ""
        lines.append(f"| {res['n']} | {res['routes']} | " + " | ".join(cells) + f" | {rss} |")
    rows = [row for row in ROWS if any(ratio(res, row[1], row[2]) for res in results)]
    lines += ["", "| N | " + " | ".join(r[0] for r in rows) + " |", "|" + "---|" * (len(rows) + 1)]
    for res in results:
        cells = []
        for _, a, b in rows:
            q = ratio(res, a, b)
            cells.append("" if q is None else f"{q['ratio']:.2f} [{q['min']:.2f}-{q['max']:.2f}]")
        lines.append(f"| {res['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def checks(results: list[dict]) -> list[dict]:
    out = []
    for text, (a, op_a), (b, op_b), bound, sizes in TARGETS:
        for res in results:
            q = ratio(res, f"{a}/{op_a}", f"{b}/{op_b}") if res["n"] in sizes else None
            if q is not None:
                out.append({"target": text, "n": res["n"], **q, "bound": bound, "met": q["ratio"] <= bound})
    return out


# --- where netlab's time goes ---------------------------------------------------------------------------

def phases(n: int) -> dict[str, float]:
    """netlab's cold apply and its diff at size N, phase by phase, in this process (start-up excluded):
    the same calls api.apply and api.diff make, timed one by one (CPU seconds of this process, and wall)."""
    import gc

    from netlab import api, applier, model
    from netlab.planner import plan as make_plan

    gc.freeze()
    gc.set_threshold(20_000, 20, 20)  # as the CLI does
    out: dict[str, float] = {}

    def timed_phase(name: str, f, *args, **kw):  # type: ignore[no-untyped-def]
        wall, cpu = time.perf_counter(), time.process_time()
        result = f(*args, **kw)
        out[f"{name} (wall)"] = time.perf_counter() - wall
        out[f"{name} (cpu)"] = time.process_time() - cpu
        return result

    with tempfile.TemporaryDirectory(prefix="netlab-routes-") as work:
        c = Chain(n, work)
        text = shapes.routed_yaml(c.t)
        try:
            doc = timed_phase("load: YAML and line numbers", model._parse, text, "topo.yaml")
            topo = timed_phase("load: schema (pydantic)", model.Topology.model_validate, doc.data)
            timed_phase("load: cross-checks (routes included)", model.check, topo)
            want = timed_phase("desired state", model.desired, topo)
            scope = api.Scope.of(topo, want)
            with api._adapter() as kernel:
                before = timed_phase("apply: read the kernel", api._observe, kernel, scope)
                plan = timed_phase("apply: plan", make_plan, want, before, topo.name)
                timed_phase("apply: execute the steps", applier.run, plan, kernel, before,
                            lambda: api._observe(kernel, scope))
                after = timed_phase("apply: read again to confirm", api._observe, kernel, scope)
                assert timed_phase("apply: plan again (empty)", make_plan, want, after, topo.name).empty
                timed_phase("apply: render the plan (text)", plan.render)
            out["steps"] = len(plan.steps)
            with api._adapter() as kernel:
                live = timed_phase("diff: read the kernel", api._observe, kernel, scope)
                assert timed_phase("diff: plan", make_plan, want, live, topo.name).empty
            routes = verify(c.t, c.prefix)
            out["routes"] = routes
        finally:
            clean(c.prefix)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100,300")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--contenders", default="netlab,ip-batch")
    parser.add_argument("--json", default=os.path.join(HERE, "results-routes.json"))
    parser.add_argument("--before", metavar="DIR", help="add the netlab package in DIR as contender 'before' "
                        "(e.g. git archive COMMIT netlab | tar -x -C DIR)")
    parser.add_argument("--phases", type=int, metavar="N", help="time netlab's phases in process at size N")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the benchmark creates namespaces: run it as root, inside /tmp/iso.sh or alike")
    global BEFORE
    BEFORE = os.path.abspath(args.before) if args.before else ""
    if args.phases:
        for name, value in phases(args.phases).items():
            print(f"| {name} | {value:.3f} |" if isinstance(value, float) else f"| {name} | {value} |")
        return
    results = [measure(int(n), args.repeat, tuple(args.contenders.split(","))) for n in args.sizes.split(",")]
    found = checks(results)
    machine = {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version(),
               "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "loadavg": os.getloadavg()}
    with open(args.json, "w") as f:
        json.dump({"machine": machine, "results": results, "checks": found}, f, indent=2)
    print(report(results))
    print("\n| target | N | ratio [spread] | met |\n|---|---|---|---|")
    for c in found:
        print(f"| {c['target']} | {c['n']} | {c['ratio']:.2f} [{c['min']:.2f}-{c['max']:.2f}] | "
              f"{'yes' if c['met'] else 'NO'} |")
    print(f"\n{machine}\nwritten to {args.json}")


if __name__ == "__main__":
    main()
