"""Hostile input: generated and mutated topology files, binary junk, alias bombs, huge files and names at
and past every limit. Loading any of them either gives a valid Topology or a ValidationError naming what
is wrong: never another exception, never more than a bounded time and memory, never a change to the
kernel. A sample also goes through the `netlab` command, which must exit 0 or 1 without a traceback.

NETLAB_FUZZ_EXAMPLES sets the number of examples per property (default 1000; a soak run may use 20000).
"""

import os
import string
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

from netlab.errors import ValidationError
from netlab.model import MAX_FILE_BYTES, Topology, load, loads

from conftest import _require_root, count

EXAMPLES = int(os.environ.get("NETLAB_FUZZ_EXAMPLES", "1000"))
FUZZ = settings(max_examples=EXAMPLES, deadline=2000, suppress_health_check=[HealthCheck.too_slow],
                derandomize="CI" in os.environ)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
with open(os.path.join(ROOT, "topologies", "seed.yaml")) as f:
    SEED = f.read()

NASTY = ["", ".", "..", "/", "a/b", "%d", "eth%d", "a:b", "a b", "a\nb", "a\tb", "$(reboot)", "`id`", ";rm -rf /",
         "ä", "名前", "\u202e", "\x00", "-", "host", "lo", "x" * 15, "x" * 16, "y" * 255, "y" * 256, "../../etc"]
names = st.one_of(st.sampled_from(NASTY), st.text(min_size=0, max_size=20),
                  st.text(alphabet=string.ascii_lowercase + string.digits + "-_.", min_size=1, max_size=17))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=True), names,
                    st.sampled_from(["10.0.0.1/24", "fd00::1/64", "10.0.0.0/24", "fe80::1/64", "300.1.1.1/8",
                                     "10.0.0.1", "02:00:00:00:00:01", "01:00:00:00:00:00", "bridge", "veth"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(names, inner, max_size=4)), max_leaves=12)
interface = st.dictionaries(st.sampled_from(["kind", "peer", "master", "addresses", "mtu", "mac", "up", "extra"]),
                            values, max_size=5)
topology = st.fixed_dictionaries(
    {"name": st.one_of(names, values)},
    optional={"namespaces": st.one_of(values, st.dictionaries(
        names, st.one_of(values, st.fixed_dictionaries({}, optional={"interfaces": st.dictionaries(
            names, interface, max_size=4)})), max_size=4)), "extra": values})


def kernel_view() -> tuple[list[str], list[str]]:
    netns = sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []
    return netns, sorted(os.listdir("/sys/class/net"))


LOADED = {"valid": 0, "refused": 0}


@pytest.fixture(scope="module", autouse=True)
def kernel_untouched(figures):
    before = kernel_view()
    yield
    assert kernel_view() == before, "loading topology files changed the kernel"
    count(figures, "fuzz: files loaded, valid", LOADED["valid"])
    count(figures, "fuzz: files loaded, refused with a ValidationError", LOADED["refused"])


def load_text(tmp_path: Path, data: bytes) -> Topology | None:
    path = tmp_path / "t.yaml"
    path.write_bytes(data)
    try:
        topo = load(str(path))
        LOADED["valid"] += 1
        return topo
    except ValidationError as exc:
        assert exc.problems and all(p.message for p in exc.problems)
        LOADED["refused"] += 1
        return None


@FUZZ
@given(doc=topology)
def test_generated_documents(tmp_path_factory, doc):
    text = yaml.safe_dump(doc, allow_unicode=True)
    load_text(tmp_path_factory.mktemp("g"), text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(edits=st.lists(st.tuples(st.integers(0, len(SEED)), st.integers(0, 8),
                                st.sampled_from(["", ":", " ", "\n", "-", "!!python/object:os.system", "&a", "*a",
                                                 "{", "}", "[", "]", "'", '"', "\t", "name: x\n", "\\x00", "ä",
                                                 "  ns0:\n", "<<: *a", "!!binary", "%YAML 1.1\n", "---\n"])),
                      min_size=1, max_size=6))
def test_mutated_seed(tmp_path_factory, edits):
    text = SEED
    for at, cut, insert in edits:
        at = min(at, len(text))
        text = text[:at] + insert + text[at + cut:]
    load_text(tmp_path_factory.mktemp("m"), text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(junk=st.binary(max_size=4096))
def test_binary_junk(tmp_path_factory, junk):
    load_text(tmp_path_factory.mktemp("b"), junk)


@pytest.mark.parametrize("text", [
    # The billion laughs: refused at the first alias, before anything is expanded.
    "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)) + "name: t\n",
    "name: !!python/object/apply:os.system [echo pwned]\n",
    "name: t\nname: u\n",
    "name: t\nnamespaces: {" + ", ".join(f"n{i}: {{interfaces: {{e: {{peer: n{i}/e}}}}}}" for i in range(9000)) + "}\n",
])
def test_bombs_are_refused_in_bounded_memory(text):
    tracemalloc.start()
    try:
        with pytest.raises(ValidationError):
            loads(text)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 256 << 20


def test_the_largest_valid_file_loads_in_bounded_memory():
    """The worst case per byte: a file near the limit of nothing but namespaces (330,000 of them), loaded
    in a process of its own whose peak RSS is measured (tracemalloc would make it four times slower)."""
    code = """if True:
        import resource, sys
        from netlab.model import MAX_FILE_BYTES, loads
        text = "name: t\\nnamespaces: {" + ", ".join(f"n{i}: {{}}" for i in range(330000)) + "}\\n"
        assert MAX_FILE_BYTES * 0.85 < len(text) < MAX_FILE_BYTES, len(text)
        assert len(loads(text).namespaces) == 330000
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
    """
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(done.stdout) < 1 << 20  # KiB: 1 GiB (measured: 387 MiB)


def test_a_file_over_the_limit_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_bytes(b"name: t\n#" + b"x" * MAX_FILE_BYTES)
    with pytest.raises(ValidationError, match="larger than"):
        load(str(path))


COMMAND = settings(max_examples=max(10, EXAMPLES // 50), deadline=None, derandomize="CI" in os.environ)


def run_command(tmp_path_factory: pytest.TempPathFactory, command: str, doc: Any) -> subprocess.CompletedProcess[str]:
    path = tmp_path_factory.mktemp("c") / "t.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8", errors="surrogatepass")
    proc = subprocess.run([sys.executable, "-m", "netlab", command, str(path)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode in (0, 1, 2) and "Traceback" not in proc.stderr, proc.stderr
    return proc


@COMMAND
@given(doc=topology)
def test_validate_exits_0_or_1_without_a_traceback(tmp_path_factory, doc):
    assert run_command(tmp_path_factory, "validate", doc).returncode in (0, 1)


@pytest.mark.kernel  # `diff` of a valid file reads the kernel's namespaces: it needs root to do more than refuse
@COMMAND
@given(doc=topology)
def test_diff_exits_0_1_or_2_without_a_traceback(tmp_path_factory, doc):
    _require_root()
    run_command(tmp_path_factory, "diff", doc)
