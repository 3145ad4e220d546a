"""netlab as an unprivileged user in a user namespace, end to end: a 300-namespace star applied, found in
sync by diff, destroyed, nothing left.

There, SO_RCVBUFFORCE is refused and a socket's receive buffer is capped by net.core.rmem_max, so the
acks of a large batch overflowed it (apply failed with ENOBUFS from recv before the transport sized its
batches to the buffer). Everything runs as nobody in `unshare -r -m -n`, with a tmpfs on /run (netlab's
/run/netns and lock) and a fresh sysfs: the namespaces, links and mounts die with that process, so the
test cannot leave any behind. nobody cannot read the venv's interpreter (under /root), so netlab, and its
runtime dependencies copied from the venv, run under the system's Python of the same version.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import pytest

from netlab.netlink.transport import RCVBUF

from conftest import ROOT, _require_root

pytestmark = pytest.mark.kernel

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "unshare", "-r", "-m", "-n"]
N = 300

# Runs netlab's CLI with the transport's receive buffer set first ("default": as shipped), and before that
# prints what a socket gets.
LAUNCHER = """\
import sys
from netlab.netlink import transport
if sys.argv[1] != "default":
    transport.RCVBUF = int(sys.argv[1])
if sys.argv[2] == "rcvbuf":
    print(transport.Socket().rcvbuf)
    sys.exit(0)
from netlab.cli import main
sys.argv = ["netlab", *sys.argv[2:]]
main()
"""

SCRIPT = """\
mount -t tmpfs tmpfs /run && mount -t sysfs sysfs /sys || exit 99
cd "$1"
export PYTHONPATH="$1/src:$1/site" PYTHONDONTWRITEBYTECODE=1
echo "RCVBUF $("$2" launch.py "$3" rcvbuf)"
for cmd in apply diff destroy; do
  t0=$(date +%s%N)
  "$2" launch.py "$3" $cmd topo.yaml > "out.$cmd" 2>&1
  echo "RESULT $cmd $? $(( ($(date +%s%N) - t0) / 1000000 ))"
done
echo "LEFT $(ls /run/netns | wc -l) $(ip -o link | wc -l)"
"""


def star(n: int) -> str:
    """A bridge in namespace hub with a veth to each of n namespaces, one address at each end."""
    lines = ["name: ustar", "namespaces:", "  hub:", "    interfaces:",
             "      br0: {kind: bridge, addresses: [10.0.0.1/16]}"]
    lines += [f"      h{i}: {{kind: veth, peer: n{i}/eth0, master: br0}}" for i in range(n)]
    for i in range(n):
        lines += [f"  n{i}:", "    interfaces:", f"      eth0: {{addresses: [10.0.{(i + 2) >> 8}.{(i + 2) & 255}/16]}}"]
    return "\n".join(lines) + "\n"


def runtime_distributions() -> list[metadata.Distribution]:
    """netlab's runtime dependencies and theirs, as installed (extras left out)."""
    found: dict[str, metadata.Distribution] = {}
    todo = [r for r in metadata.requires("netlab") or [] if "extra ==" not in r]
    while todo:
        match = re.match(r"[A-Za-z0-9._-]+", todo.pop())
        assert match is not None, "a requirement starts with its distribution's name"
        name = match.group(0)
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in found:
            continue
        try:
            found[key] = dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # a dependency for another platform or Python
        todo += [r for r in dist.requires or [] if "extra ==" not in r]
    return list(found.values())


def system_python() -> str:
    """The system's interpreter of this Python's version, if nobody can run it."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    path = shutil.which(name, path="/usr/local/bin:/usr/bin:/bin")
    if path is None:
        pytest.skip(f"no {name} outside the venv for nobody to run")
    probe = subprocess.run([*AS_NOBODY, path, "-c", "pass"], check=False, capture_output=True, text=True)
    if probe.returncode:
        pytest.skip(f"nobody cannot run {path} in a user namespace: {probe.stderr.strip()}")
    return path


@pytest.fixture
def copy() -> Iterator[Path]:
    """netlab's source and runtime dependencies, a star topology and the launcher, in a directory of
    /tmp that nobody owns (pytest's tmp_path is root's alone)."""
    _require_root()
    top = Path(tempfile.mkdtemp(prefix="netlab-unpriv-", dir="/tmp"))
    try:
        shutil.copytree(ROOT / "netlab", top / "src" / "netlab", ignore=shutil.ignore_patterns("__pycache__"))
        for dist in runtime_distributions():
            for file in dist.files or []:
                source = Path(str(dist.locate_file(file)))
                if "__pycache__" not in file.parts and file.parts[0] != ".." and source.is_file():
                    (top / "site" / file).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(source, top / "site" / file)
        (top / "topo.yaml").write_text(star(N))
        (top / "launch.py").write_text(LAUNCHER)
        (top / "run.sh").write_text(SCRIPT)
        for path in [top, *top.rglob("*")]:
            os.lchown(path, NOBODY, NOBODY)
        yield top
    finally:
        shutil.rmtree(top)


def rmem_max() -> int:
    return int(Path("/proc/sys/net/core/rmem_max").read_text())


@pytest.mark.parametrize("rcvbuf", ["default", "16384"])
def test_star_of_300_namespaces_as_an_unprivileged_user(copy, rcvbuf):
    python = system_python()
    proc = subprocess.run([*AS_NOBODY, "sh", str(copy / "run.sh"), str(copy), python, rcvbuf],
                          check=False, capture_output=True, text=True, timeout=600)
    marks: dict[str, list[list[str]]] = {}
    for line in proc.stdout.splitlines():
        word, *rest = line.split() or [""]
        marks.setdefault(word, []).append(rest)
    outputs = {cmd: (copy / f"out.{cmd}").read_text() if (copy / f"out.{cmd}").exists() else ""
               for cmd in ("apply", "diff", "destroy")}
    report = f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}\n" + "\n".join(
        f"--- {cmd}\n{text[-3000:]}" for cmd, text in outputs.items())
    assert proc.returncode == 0 and "RCVBUF" in marks and "LEFT" in marks, report
    # No CAP_NET_ADMIN over the initial namespace: SO_RCVBUF, capped by rmem_max, doubled by the kernel.
    asked = RCVBUF if rcvbuf == "default" else int(rcvbuf)
    assert int(marks["RCVBUF"][0][0]) == 2 * min(asked, rmem_max()), report
    results = {cmd: (int(code), int(ms)) for cmd, code, ms in marks.get("RESULT", [])}
    assert {cmd: code for cmd, (code, _) in results.items()} == {"apply": 0, "diff": 0, "destroy": 0}, report
    assert marks["LEFT"][0] == ["0", "1"], report  # no namespace mounted, only lo
    print(f"unprivileged star of {N}, rcvbuf {rcvbuf}: " + ", ".join(
        f"{cmd} {ms / 1000:.2f} s" for cmd, (_, ms) in results.items()))
