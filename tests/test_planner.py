"""The planner as a pure function, against golden cases: tests/golden/<case>/ holds topology.yaml (or
`destroy`, holding a topology name), live.yaml (a State as State.to_dict writes it) and expected.txt (the
rendered plan, or the error). No root, no kernel. To accept a deliberate change of output:
NETLAB_REGEN=1 pytest tests/test_planner.py, then read the diff of tests/golden/ before committing."""

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


def run_case(case: Path) -> str:
    live = state_from_dict(yaml.safe_load((case / "live.yaml").read_text()) or {})
    if (case / "destroy").exists():
        name = (case / "destroy").read_text().strip()
        want = State({HOST: Namespace(HOST)})
    else:
        topo = load(str(case / "topology.yaml"))
        name, want = topo.name, desired(topo)
    try:
        p = plan(want, live, name)
    except NetlabError as exc:
        return f"{exc.kind}: {exc}\n"
    out = p.render() + "\n"
    json.dumps(p.to_dict())  # the plan always serializes
    return out


@pytest.mark.parametrize("case", CASES)
def test_golden(case):
    got = run_case(GOLDEN / case)
    expected = GOLDEN / case / "expected.txt"
    if os.environ.get("NETLAB_REGEN"):
        expected.write_text(got)
    assert got == expected.read_text()


def test_plan_is_deterministic_and_json_has_format_version():
    topo = load("topologies/seed.yaml")
    live = State({HOST: Namespace(HOST)})
    a, b = plan(desired(topo), live, "seed"), plan(desired(topo), live, "seed")
    assert a == b
    data = a.to_dict()
    assert data["format_version"] == 1 and data["summary"] == {"add": 9, "change": 10, "destroy": 0}
    assert [s["action"] for s in data["steps"]][:3] == ["create_netns"] * 3


def test_converged_state_plans_nothing():
    topo = load("topologies/seed.yaml")
    want = desired(topo)
    assert plan(want, want, "seed").empty
