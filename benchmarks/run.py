"""netlab against the scripts it replaces, side by side in one run. Needs root.

    sudo .venv/bin/python benchmarks/run.py [--sizes 10,100,1000] [--shapes star,chain] [--repeat 3]
                                            [--json benchmarks/results.json]

For each shape and N it generates the topology (shapes.py) and times, alternating the contenders within
each repeat:
- netlab: `netlab apply` cold, `netlab apply` again (no change), `netlab diff`, `netlab destroy`, each a
  fresh process, so start-up is counted; and its peak RSS;
- ip: one `ip` process per command (the tutorial's way);
- ip-batch: one `ip -batch` for the root namespace, one `ip -n NS -batch` per namespace;
- floor: the same kernel operations from one process with batched netlink and nothing else (floor.py);
- ip-read: reading the state with `ip -j` (one `ip -n NS -d -j addr show` per namespace: links, their
  details and addresses), what a script that diffs has to do.
A destroy is timed until the kernel has finished: until no namespace of the run is left in /run/netns
and no link of it in the root namespace. Each timed operation starts on a quiet machine (settle()).
Every create is checked before the next run is timed (names, masters, up, addresses in sample
namespaces, and a ping across the topology); every destroy is checked to have left nothing. It prints
medians and the ratios that issue 3 sets as targets, and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import string
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import shapes  # noqa: E402

NETLAB = shutil.which("netlab", path=os.path.dirname(sys.executable)) or "netlab"
CONTENDERS = ("netlab", "floor", "ip-batch", "ip")

# (description, numerator, denominator, bound, sizes)
TARGETS = [
    ("cold apply <= 0.35 x ip-batch", ("netlab", "create"), ("ip-batch", "create"), 0.35, {1000}),
    ("cold apply <= 1.3 x floor", ("netlab", "create"), ("floor", "create"), 1.3, {1000}),
    ("cold apply <= 0.5 x ip-batch", ("netlab", "create"), ("ip-batch", "create"), 0.5, {100}),
    ("cold apply <= 1.0 x ip", ("netlab", "create"), ("ip", "create"), 1.0, {10}),
    ("diff <= 0.1 x ip -j read", ("netlab", "diff"), ("ip-read", "read"), 0.1, {1000}),
    ("no-op apply <= 0.1 x ip -j read", ("netlab", "noop"), ("ip-read", "read"), 0.1, {1000}),
    ("destroy <= 1.1 x ip-batch", ("netlab", "destroy"), ("ip-batch", "destroy"), 1.1, {10, 100, 1000}),
]


def timed(argv: list[str], expect: int = 0, **kw) -> tuple[float, int]:
    """Run a command; return (wall seconds, peak RSS in KiB of the process)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code != expect:
        raise RuntimeError(f"{' '.join(argv[:4])}... exited {code}: {proc.stderr.read().decode()[-2000:]}")
    proc.stderr.close()
    return elapsed, usage.ru_maxrss


def leftovers(t: shapes.Topology, prefix: str) -> list[str]:
    netns = [n for n in os.listdir("/run/netns") if n.startswith(prefix)] if os.path.isdir("/run/netns") else []
    return netns + [name for name in os.listdir("/sys/class/net") if name.startswith(prefix)]


def wait_gone(t: shapes.Topology, prefix: str, start: float, timeout: float = 120) -> float:
    """Seconds from `start` until nothing of the run is left (the kernel deletes asynchronously)."""
    while leftovers(t, prefix):
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"destroy left {leftovers(t, prefix)[:5]}")
        time.sleep(0.002)
    return time.perf_counter() - start


def settle(quiet: float = 0.05, window: float = 0.25, timeout: float = 60.0) -> float:
    """Wait until the machine is quiet: less than `quiet` of its CPU time busy over `window` seconds. A
    bridge with a thousand IPv6 hosts floods their solicitations for seconds after it comes up; each
    timed run starts after that, so that it does not pay for the previous one's traffic."""
    def busy() -> tuple[int, int]:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return sum(fields) - fields[3] - fields[4], sum(fields)
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        b0, t0 = busy()
        time.sleep(window)
        b1, t1 = busy()
        if t1 > t0 and (b1 - b0) / (t1 - t0) < quiet:
            break
    return time.perf_counter() - start


def verify(t: shapes.Topology, prefix: str) -> None:
    """Check that the topology really exists: names, masters, up, sample namespaces, a ping."""
    netns = sorted(n for n in os.listdir("/run/netns") if n.startswith(prefix))
    assert netns == sorted(t.namespaces), f"namespaces: {len(netns)} of {len(t.namespaces)}"
    host = [(ns, name) for ns, name, _, _ in t.veths if ns == shapes.HOST] + \
           [(ns, name) for ns, name in t.bridges if ns == shapes.HOST]
    for _, name in host:
        with open(f"/sys/class/net/{name}/flags") as f:
            flags = int(f.read(), 16)
        assert flags & 1, f"{name} is down"
    for ns, port, bridge in t.masters:
        if ns == shapes.HOST:
            assert os.path.basename(os.readlink(f"/sys/class/net/{port}/master")) == bridge
    sample = {t.namespaces[0], t.namespaces[-1], random.choice(t.namespaces)}
    for ns in sample:
        out = json.loads(subprocess.run(["ip", "-n", ns, "-j", "addr"], capture_output=True, check=True).stdout)
        links = {lk["ifname"]: lk for lk in out}
        for where, link, address in t.addresses:
            if where == ns:
                have = {f"{a['local']}/{a['prefixlen']}" for a in links[link]["addr_info"]}
                assert address in have, f"{ns}/{link}: {address} not in {have}"
        for where, name in t.ups():
            if where == ns:
                assert "UP" in links[name]["flags"], f"{ns}/{name} is down"
    first, last = t.addresses[0], t.addresses[-1]
    ping = subprocess.run(["ip", "netns", "exec", first[0], "ping", "-c1", "-W5", last[2].split("/")[0]],
                          capture_output=True, check=False)
    assert ping.returncode == 0, f"no ping from {first[0]} to {last[2]}"


class Contender:
    def __init__(self, name: str, shape: str, n: int, prefix: str, work: str):
        self.name, self.shape, self.n, self.prefix, self.work = name, shape, n, prefix, work
        self.t = shapes.SHAPES[shape](n, prefix)

    def write(self, name: str, text: str) -> str:
        path = os.path.join(self.work, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def create(self) -> tuple[float, int]:
        t = self.t
        if self.name == "netlab":
            return timed([NETLAB, "apply", self.write("topo.yaml", shapes.netlab_yaml(t))])
        if self.name == "floor":
            return timed([sys.executable, os.path.join(HERE, "floor.py"), "create", self.shape, str(self.n),
                          self.prefix])
        if self.name == "ip":
            return timed(["bash", self.write("create.sh", shapes.ip_script(t))])
        root, per_ns, last = shapes.ip_batch(t)
        lines = [f"ip -batch {self.write('root.batch', root)}"]
        for i, (ns, text) in enumerate(per_ns.items()):
            lines.append(f"ip -n {ns} -batch {self.write(f'ns{i}.batch', text)}")
        if last:
            lines.append(f"ip -batch {self.write('last.batch', last)}")
        return timed(["bash", self.write("batch.sh", "set -e\n" + "\n".join(lines) + "\n")])

    def destroy(self) -> tuple[float, int]:
        start = time.perf_counter()
        if self.name == "netlab":
            _, rss = timed([NETLAB, "destroy", os.path.join(self.work, "topo.yaml")])
        elif self.name == "floor":
            _, rss = timed([sys.executable, os.path.join(HERE, "floor.py"), "destroy", self.shape, str(self.n),
                            self.prefix])
        elif self.name == "ip":
            script = "".join(f"ip {cmd}\n" for _, cmd in shapes.destroy_commands(self.t))
            _, rss = timed(["bash", self.write("destroy.sh", script)])
        else:
            batch = "".join(cmd + "\n" for _, cmd in shapes.destroy_commands(self.t))
            _, rss = timed(["ip", "-batch", self.write("destroy.batch", batch)])
        return wait_gone(self.t, self.prefix, start), rss


def read_with_ip(t: shapes.Topology, work: str) -> float:
    """One `ip -d -j addr show` per namespace (links with their details and addresses), and the root's."""
    lines = ["ip -d -j addr show >/dev/null"]
    lines += [f"ip -n {ns} -d -j addr show >/dev/null" for ns in t.namespaces]
    path = os.path.join(work, "read.sh")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return timed(["bash", path])[0]


def measure(shape: str, n: int, repeat: int, contenders: tuple[str, ...] = CONTENDERS) -> dict:
    times: dict[tuple[str, str], list[float]] = {}
    rss: list[int] = []
    for r in range(repeat):
        order = contenders[r % len(contenders):] + contenders[:r % len(contenders)]
        for name in order:
            prefix = "b" + "".join(random.choices(string.ascii_lowercase, k=3))
            with tempfile.TemporaryDirectory(prefix="netlab-bench-") as work:
                c = Contender(name, shape, n, prefix, work)
                t = c.t
                try:
                    settle()
                    seconds, peak = c.create()
                    times.setdefault((name, "create"), []).append(seconds)
                    verify(t, prefix)
                    if name == "netlab":
                        rss.append(peak)
                        yaml = os.path.join(work, "topo.yaml")
                        settle()
                        seconds, peak = timed([NETLAB, "apply", yaml])
                        times.setdefault((name, "noop"), []).append(seconds)
                        settle()
                        seconds, peak2 = timed([NETLAB, "diff", yaml], expect=0)
                        times.setdefault((name, "diff"), []).append(seconds)
                        rss += [peak, peak2]
                        settle()
                        times.setdefault(("ip-read", "read"), []).append(read_with_ip(t, work))
                    settle()
                    seconds, peak = c.destroy()
                    times.setdefault((name, "destroy"), []).append(seconds)
                    if name == "netlab":
                        rss.append(peak)
                finally:
                    _clean(t, prefix)
        print(f"  {shape} N={n}: repeat {r + 1}/{repeat} done", file=sys.stderr)
    return {"shape": shape, "n": n, "repeat": repeat,
            "seconds": {f"{c}/{op}": v for (c, op), v in times.items()},
            "median": {f"{c}/{op}": statistics.median(v) for (c, op), v in times.items()},
            "netlab_peak_rss_mib": max(rss) / 1024 if rss else None}


def _clean(t: shapes.Topology, prefix: str) -> None:
    """Remove whatever a failed run left behind; nothing outside the run's prefix."""
    for ns in [n for n in os.listdir("/run/netns") if n.startswith(prefix)] if os.path.isdir("/run/netns") else []:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
    for link in [name for name in os.listdir("/sys/class/net") if name.startswith(prefix)]:
        subprocess.run(["ip", "link", "del", link], capture_output=True, check=False)


def ratios(results: list[dict]) -> list[dict]:
    out = []
    for text, (a, op_a), (b, op_b), bound, sizes in TARGETS:
        for res in results:
            if res["n"] not in sizes:
                continue
            num, den = res["median"].get(f"{a}/{op_a}"), res["median"].get(f"{b}/{op_b}")
            if num is None or den is None:
                continue
            out.append({"target": text, "shape": res["shape"], "n": res["n"], "ratio": num / den,
                        "bound": bound, "met": num / den <= bound})
    return out


def report(results: list[dict], checks: list[dict]) -> str:
    lines = []
    cols = [("netlab", "create"), ("netlab", "noop"), ("netlab", "diff"), ("netlab", "destroy"),
            ("floor", "create"), ("floor", "destroy"), ("ip-batch", "create"), ("ip-batch", "destroy"),
            ("ip", "create"), ("ip", "destroy"), ("ip-read", "read")]
    header = ["shape", "N"] + [f"{c} {op}" for c, op in cols] + ["netlab RSS MiB"]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for res in results:
        row = [res["shape"], str(res["n"])]
        for c, op in cols:
            v = res["median"].get(f"{c}/{op}")
            row.append("" if v is None else f"{v:.3f}")
        row.append(f"{res['netlab_peak_rss_mib']:.0f}" if res["netlab_peak_rss_mib"] else "")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    lines.append("| target | shape | N | ratio | met |")
    lines.append("|---|---|---|---|---|")
    for c in checks:
        lines.append(f"| {c['target']} | {c['shape']} | {c['n']} | {c['ratio']:.2f} | {'yes' if c['met'] else 'NO'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--shapes", default="star,chain")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--contenders", default=",".join(CONTENDERS))
    parser.add_argument("--json", default=os.path.join(HERE, "results.json"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the benchmark creates namespaces: run it as root")
    results = []
    for shape in args.shapes.split(","):
        for n in (int(x) for x in args.sizes.split(",")):
            results.append(measure(shape, n, args.repeat, tuple(args.contenders.split(","))))
    checks = ratios(results)
    for shape in {r["shape"] for r in results}:
        by_n = {r["n"]: r["median"] for r in results if r["shape"] == shape}
        if 100 in by_n and 1000 in by_n:
            for op in ("create", "diff", "noop"):
                if f"netlab/{op}" not in by_n[1000] or f"netlab/{op}" not in by_n[100]:
                    continue
                g = by_n[1000][f"netlab/{op}"] / by_n[100][f"netlab/{op}"]
                checks.append({"target": f"growth {op} N=1000/N=100 <= 12", "shape": shape, "n": 1000,
                               "ratio": g, "bound": 12, "met": g <= 12})
    for r in results:
        if r["n"] == 1000 and r["netlab_peak_rss_mib"]:
            checks.append({"target": "peak RSS <= 150 MiB", "shape": r["shape"], "n": 1000,
                           "ratio": r["netlab_peak_rss_mib"], "bound": 150,
                           "met": r["netlab_peak_rss_mib"] <= 150})
    machine = {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version(),
               "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    with open(args.json, "w") as f:
        json.dump({"machine": machine, "results": results, "checks": checks}, f, indent=2)
    print(report(results, checks))
    print(f"\n{machine}\nwritten to {args.json}")


if __name__ == "__main__":
    main()
