"""The command line: exit codes, privileges, read-only commands. Uses the real kernel where it must."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, _require_root

SEED = (ROOT / "topologies" / "seed.yaml").read_text()


def netlab(*args, prefix=(), cwd=ROOT):
    return subprocess.run([*prefix, sys.executable, "-m", "netlab", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60, check=False)


@pytest.fixture
def public_file():
    """A topology file that an unprivileged user can read."""
    d = tempfile.mkdtemp()
    os.chmod(d, 0o755)
    path = Path(d) / "topo.yaml"
    path.write_text(SEED.replace("name: seed", "name: tcli").replace("ns", "tclins"))
    path.chmod(0o644)
    yield str(path)
    path.unlink()
    os.rmdir(d)


def test_validate_ok_and_json(public_file):
    proc = netlab("validate", public_file)
    assert proc.returncode == 0 and "valid topology 'tcli'" in proc.stdout
    proc = netlab("validate", "-o", "json", public_file)
    assert proc.returncode == 0 and '"valid": true' in proc.stdout


def test_invalid_file_exits_1_with_one_message_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nnamespaces:\n  ns0:\n    interfaces:\n      br0: {kind: brige}\n")
    for command in ("validate", "diff", "apply", "destroy"):
        proc = netlab(command, str(bad))
        assert proc.returncode == 1, command
        assert f"{bad}:5 namespaces.ns0.interfaces.br0.kind: unknown kind 'brige'" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_usage_errors_exit_1_not_2():
    assert netlab("frobnicate").returncode == 1
    assert netlab("apply").returncode == 1
    assert netlab("diff", "--help").returncode == 0


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def without(cap: str) -> list[str]:
    return ["setpriv", f"--bounding-set=-{cap}", f"--inh-caps=-{cap}"]


@pytest.mark.kernel  # setpriv can drop privileges only from root; reads /run/netns and the host's links
@pytest.mark.parametrize("prefix,missing", [
    (NOBODY, "CAP_NET_ADMIN and CAP_SYS_ADMIN"),
    (without("net_admin"), "CAP_NET_ADMIN"),
    (without("sys_admin"), "CAP_SYS_ADMIN"),
], ids=["non-root", "root-without-net_admin", "root-without-sys_admin"])
def test_without_a_capability_validate_works_and_the_rest_name_it_and_write_nothing(public_file, prefix,
                                                                                    missing):
    _require_root()
    before = (sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else [],
              sorted(os.listdir("/sys/class/net")))
    proc = netlab("validate", public_file, prefix=prefix, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert netlab("diff", "--help", prefix=prefix, cwd="/").returncode == 0
    for command in ("apply", "diff", "destroy", "show"):
        proc = netlab(command, public_file, prefix=prefix, cwd="/")
        assert proc.returncode == 1, proc.stderr
        assert f"error: PERMISSION: missing capability {missing}:" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert (sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else [],
            sorted(os.listdir("/sys/class/net"))) == before
