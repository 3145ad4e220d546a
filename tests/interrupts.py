"""What the crash and interrupt suites share: a 40-namespace topology, and moments spread over the span in
which `netlab apply` or `netlab destroy` writes."""

import os
import random
import time

from conftest import netns_names
from test_kernel_reconcile import HOST_BRIDGE, SEED


def star(lab, n: int) -> str:
    """The seed topology plus a star of n namespaces on a root-namespace bridge (about 8n+40 steps)."""
    ports = "".join(f"      \"@v{i}\": {{kind: veth, peer: \"@s{i}/eth0\", master: \"@sbr\"}}\n" for i in range(n))
    host = "\n".join(HOST_BRIDGE.split("\n")[3:]).replace(
        '      "@h2"', '      "@sbr": {kind: bridge}\n' + ports + '      "@h2"')
    text = SEED + host.rstrip("\n") + "\n"
    text += "".join(f"  \"@s{i}\":\n    interfaces:\n      eth0: {{addresses: [10.9.0.{i + 1}/24]}}\n" for i in range(n))
    return lab.write(text)


def ours(lab) -> list[str]:
    """Namespaces and root-namespace links with the test's prefix, the user's canaries (`<p>u...`) left out."""
    mine = lambda name: name.startswith(lab.p) and not name.startswith(f"{lab.p}u")  # noqa: E731
    return [n for n in netns_names() if mine(n)] + [n for n in lab.links() if mine(n)]


def _timed(lab, *args, check: int) -> float:
    start = time.perf_counter()
    lab.netlab(*args, check=check)
    return time.perf_counter() - start


def spread(lab, command: str, points: int, seed: int) -> tuple[str, list[float]]:
    """(topology file, `points` offsets in seconds from the start of `netlab <command>`, apply or
    destroy). The offsets cover the span from about when reading ends (a `diff` takes that long) to the
    end of a whole run of the command; with CI set they are the same on every run."""
    path = star(lab, 30)
    first_write = _timed(lab, "diff", path, check=2)
    full = _timed(lab, "apply", path, check=0)
    if command == "destroy":
        full = _timed(lab, "destroy", path, check=0)
    else:
        lab.netlab("destroy", path, check=0)
    rng = random.Random(seed if "CI" in os.environ else None)
    start = first_write * 0.9
    return path, [start + (full - start) * (i + rng.random()) / points for i in range(points)]
