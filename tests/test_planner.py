"""The planner as a pure function, against golden cases: tests/golden/<case>/ holds topology.yaml (or
`destroy`, holding a topology name; `force` if the plan is made with --force), live.yaml (a State as
State.to_dict writes it), expected.txt (the rendered plan, or the error) and expected.json (the plan as
JSON: every step with its undo, so that a change to an undo fails a test as surely as a change to the
text). No root, no kernel. To accept a deliberate change of output: NETLAB_REGEN=1 pytest
tests/test_planner.py, then read the diff of tests/golden/ before committing."""

import json
import os
from pathlib import Path

import pytest
import yaml

from netlab.errors import NetlabError
from netlab.model import desired, load
from netlab.planner import plan
from netlab.state import HOST, Namespace, State, state_from_dict

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if p.is_dir())


def run_case(case: Path) -> tuple[str, str]:
    """The rendered plan (or the error) and the plan as JSON (or nothing)."""
    live = state_from_dict(yaml.safe_load((case / "live.yaml").read_text()) or {})
    destroy = (case / "destroy").exists()
    if destroy:
        name = (case / "destroy").read_text().strip()
        want = State({HOST: Namespace(HOST)})
    else:
        topo = load(str(case / "topology.yaml"))
        name, want = topo.name, desired(topo)
    try:
        p = plan(want, live, name, destroy=destroy, force=(case / "force").exists())
    except NetlabError as exc:
        return f"{exc.kind}: {exc}\n", ""
    return p.render() + "\n", json.dumps(p.to_dict(), indent=1) + "\n"


@pytest.mark.parametrize("case", CASES)
def test_golden(case):
    text, data = run_case(GOLDEN / case)
    for name, got in (("expected.txt", text), ("expected.json", data)):
        expected = GOLDEN / case / name
        if os.environ.get("NETLAB_REGEN"):
            if got:
                expected.write_text(got)
            else:
                expected.unlink(missing_ok=True)
        assert got == (expected.read_text() if expected.exists() else ""), f"{case}/{name}"


def test_plan_is_deterministic_and_json_has_format_version():
    topo = load("topologies/seed.yaml")
    live = State({HOST: Namespace(HOST)})
    a, b = plan(desired(topo), live, "seed"), plan(desired(topo), live, "seed")
    assert a == b
    data = a.to_dict()
    # a fresh topology is all additions: 3 namespaces, a bridge and 2 veth pairs, each one entry
    assert data["format_version"] == 4 and data["summary"] == {"add": 6, "change": 0, "destroy": 0}
    assert [c["symbol"] for c in data["changes"]] == ["+"] * 6
    assert [s["op"] for s in data["steps"]][:3] == ["create_netns"] * 3


def test_converged_state_plans_nothing():
    topo = load("topologies/seed.yaml")
    want = desired(topo)
    assert plan(want, want, "seed").empty
