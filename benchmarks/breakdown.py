"""Where netlab's time goes, beyond the kernel's: start-up costs of the libraries it stands on, the phases
of a `diff` in process, and netlab's netlink decoder against pyroute2's on the same replies. Needs root.

    sudo .venv/bin/python benchmarks/breakdown.py [--n 1000] [--repeat 7]

Start-up figures are medians of fresh processes (user + system CPU, and wall). The in-process phases are
measured on a star topology of N namespaces that this script applies and destroys (names under a random
prefix of its own).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import string
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import shapes  # noqa: E402
from run import settle  # noqa: E402

PY = sys.executable
TYPER_HELLO = """
import typer
app = typer.Typer(add_completion=False)
@app.command()
def apply(file: str):
    pass
app()
"""


def startup(repeat: int, seed: str) -> list[tuple[str, float, float]]:
    netlab = os.path.join(os.path.dirname(PY), "netlab")
    cases = [
        ("python -c pass", [PY, "-c", "pass"]),
        ("import yaml (LibYAML)", [PY, "-c", "import yaml"]),
        ("import pydantic, define a model", [PY, "-c", "import pydantic\nclass M(pydantic.BaseModel): x: int"]),
        ("import pyroute2", [PY, "-c", "import pyroute2"]),
        ("typer hello world, one command", [PY, "-c", TYPER_HELLO, "x"]),
        ("netlab --help", [netlab, "--help"]),
        ("netlab validate seed.yaml", [netlab, "validate", seed]),
        ("one `ip link show lo`", ["ip", "link", "show", "lo"]),
    ]
    out = []
    for name, argv in cases:
        walls, cpus = [], []
        for _ in range(repeat):
            before = os.times()
            start = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            walls.append(time.perf_counter() - start)
            after = os.times()
            cpus.append(after.children_user + after.children_system - before.children_user - before.children_system)
        out.append((name, statistics.median(walls), statistics.median(cpus)))
    return out


def phases(n: int) -> dict[str, float]:
    from netlab import api
    from netlab.model import desired, load
    from netlab.planner import plan

    prefix = "x" + "".join(random.choices(string.ascii_lowercase, k=3))
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "star.yaml")
        with open(path, "w") as f:
            f.write(shapes.netlab_yaml(shapes.star(n, prefix)))
        api.apply(load(path))
        settle()  # the bridge's IPv6 flood after it comes up would be measured too
        try:
            times: dict[str, float] = {}
            t = time.perf_counter()
            topo = load(path)
            times["load (YAML, schema, checks)"] = time.perf_counter() - t
            t = time.perf_counter()
            want = desired(topo)
            times["desired state"] = time.perf_counter() - t
            with api._adapter() as kernel:
                t = time.perf_counter()
                live = api._observe(kernel, api.Scope.of(topo))
                times["observe (read the kernel)"] = time.perf_counter() - t
                t = time.perf_counter()
                assert plan(want, live, topo.name).empty
                times["plan"] = time.perf_counter() - t
                times.update(decoders(kernel))
        finally:
            api.destroy(topo)
    return times


def decoders(kernel) -> dict[str, float]:
    """Decode the root namespace's link dump (N+ links) with netlab's decoder and with pyroute2's."""
    from netlab.netlink import rtnl as nl
    from netlab.state import HOST

    try:
        from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg
    except ImportError:
        return {}
    replies = kernel.namespaces.sock(HOST).dump(nl.RTM_GETLINK, nl.link_dump_request())
    t = time.perf_counter()
    for _, data in replies:
        nl.decode_link(data)
    ours = time.perf_counter() - t
    t = time.perf_counter()
    for _, data in replies:
        m = ifinfmsg(data)
        m.decode()
    theirs = time.perf_counter() - t
    return {f"decode {len(replies)} root links: netlab": ours, f"decode {len(replies)} root links: pyroute2": theirs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    seed = os.path.join(HERE, "..", "topologies", "seed.yaml")
    print("| start-up, fresh process | wall s | CPU s |\n|---|---|---|")
    for name, wall, cpu in startup(args.repeat, seed):
        print(f"| {name} | {wall:.3f} | {cpu:.3f} |")
    print(f"\n| in process, star N={args.n}, in sync | s |\n|---|---|")
    for name, seconds in phases(args.n).items():
        print(f"| {name} | {seconds:.3f} |")


if __name__ == "__main__":
    main()
