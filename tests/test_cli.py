"""The command line: exit codes, privileges, read-only commands. Uses the real kernel where it must."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import ROOT, netns_names

SEED = (ROOT / "topologies" / "seed.yaml").read_text()


def netlab(*args, prefix=(), cwd=ROOT):
    return subprocess.run([*prefix, sys.executable, "-m", "netlab", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=60)


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


UNPRIVILEGED = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")


@UNPRIVILEGED
def test_without_root_validate_works_and_apply_names_the_missing_capability(public_file):
    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    proc = netlab("validate", public_file, prefix=nobody, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert netlab("diff", "--help", prefix=nobody, cwd="/").returncode == 0
    for command in ("apply", "diff", "destroy"):
        proc = netlab(command, public_file, prefix=nobody, cwd="/")
        assert proc.returncode == 1
        assert "PERMISSION" in proc.stderr and "CAP_NET_ADMIN and CAP_SYS_ADMIN" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not [n for n in netns_names() if n.startswith("tclins")]


@UNPRIVILEGED
def test_root_without_cap_net_admin_is_refused_before_any_change(public_file):
    drop = ["setpriv", "--bounding-set=-net_admin", "--inh-caps=-net_admin"]
    proc = netlab("apply", public_file, prefix=drop)
    assert proc.returncode == 1
    assert "missing capability CAP_NET_ADMIN:" in proc.stderr
    assert not [n for n in netns_names() if n.startswith("tclins")]
