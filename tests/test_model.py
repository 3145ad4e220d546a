"""Bad input gets one clear error naming file, line, field and rule; good input loads. No root needed."""

import glob

import pytest

from netlab.errors import ValidationError
from netlab.model import MAX_FILE_BYTES, desired, load, loads

GOOD_HEAD = "name: t\nnamespaces:\n"

# A namespace with a veth looped to itself (e0 10.0.0.1/24, e1), and the start of its routes (line 8)
ROUTED = GOOD_HEAD + ("  n0:\n    interfaces:\n      e0: {kind: veth, peer: n0/e1, addresses: [10.0.0.1/24]}\n"
                      "      e1: {}\n    routes:\n      - ")
KINDS = GOOD_HEAD + ("  n1:\n    interfaces:\n      e0: {}\n"
                     "  n0:\n    interfaces:\n      e0: {kind: veth, peer: n1/e0, addresses: [10.0.0.1/24]}\n")
# issue 12: n0/e0 (a veth to n0/e1) with an `impair:` whose fields start on line 10
IMPAIR = GOOD_HEAD + ("  n0:\n    interfaces:\n      e1: {}\n      e0:\n        kind: veth\n        peer: n0/e1\n"
                      "        impair:\n")
BAD = [
    # (case, text, expected line, expected substrings)
    ("invalid yaml", "name: [a\n", 2, ["invalid YAML"]),
    ("duplicate key", GOOD_HEAD + "  ns0: {}\n  ns0: {}\n", 4, ["namespaces.ns0", "duplicate key 'ns0'", "line 3"]),
    ("unknown field", GOOD_HEAD + "  ns0:\n    interfaces:\n      br0: {kind: bridge, adresses: []}\n", 5,
     ["unknown field 'adresses'", "did you mean 'addresses'"]),
    ("unknown top field", "name: t\nnamespace: {}\n", 2, ["unknown field 'namespace'", "did you mean 'namespaces'"]),
    ("wrong type", GOOD_HEAD + "  ns0:\n    interfaces:\n      br0: {kind: bridge, mtu: '1500'}\n", 5,
     ["interfaces.br0.mtu", "integer"]),
    ("wrong type list", GOOD_HEAD + "  ns0:\n    interfaces:\n      br0: {kind: bridge, addresses: 10.0.0.1/24}\n",
     5, ["addresses", "list"]),
    ("missing name", "namespaces: {}\n", 1, ["'name' is required"]),
    ("unknown kind", GOOD_HEAD + "  ns0:\n    interfaces:\n      b: {kind: brige}\n", 5,
     ["unknown kind 'brige'; did you mean 'bridge'?", "bridge, dummy, veth"]),
    ("ifname too long", GOOD_HEAD + "  ns0:\n    interfaces:\n      abcdefghijklmnop: {kind: bridge}\n", 5,
     ["at most 15 bytes"]),
    ("ifname 15 multibyte", GOOD_HEAD + "  ns0:\n    interfaces:\n      ééééééééé: {kind: bridge}\n", 5,
     ["at most 15 bytes", "has 18"]),
    ("ifname slash", GOOD_HEAD + "  ns0:\n    interfaces:\n      a/b: {kind: bridge}\n", 5, ["'/'"]),
    ("ifname colon", GOOD_HEAD + "  ns0:\n    interfaces:\n      a:b: {kind: bridge}\n", 5, ["':'"]),
    ("ifname percent", GOOD_HEAD + "  ns0:\n    interfaces:\n      eth%d: {kind: bridge}\n", 5, ["'%'"]),
    ("ifname space", GOOD_HEAD + "  ns0:\n    interfaces:\n      'a b': {kind: bridge}\n", 5, ["whitespace"]),
    ("ifname dotdot", GOOD_HEAD + "  ns0:\n    interfaces:\n      '..': {kind: bridge}\n", 5, ["'..'"]),
    ("ns slash", GOOD_HEAD + "  a/b: {}\n", 3, ["namespaces.a/b", "'/'"]),
    ("ns dot", GOOD_HEAD + "  '.': {}\n", 3, ["must not be '.'"]),
    ("ns dotdot", GOOD_HEAD + "  '..': {}\n", 3, ["must not be '..'"]),
    ("ns digits", GOOD_HEAD + "  '123': {}\n", 3, ["only digits"]),
    ("ns int key", GOOD_HEAD + "  123: {}\n", 3, ["must be a string"]),
    ("peer missing ns", GOOD_HEAD + "  n0:\n    interfaces:\n      v0: {kind: veth, peer: n9/v1}\n", 5,
     ["namespace 'n9' is not defined", "defined: n0"]),
    ("peer missing if", GOOD_HEAD + "  n0:\n    interfaces:\n      v0: {kind: veth, peer: n1/v1}\n  n1: {}\n", 5,
     ["interface 'v1' is not defined in namespace 'n1'"]),
    ("peer format", GOOD_HEAD + "  n0:\n    interfaces:\n      v0: {kind: veth, peer: v1}\n", 5,
     ["'namespace/interface'"]),
    ("veth without peer", GOOD_HEAD + "  n0:\n    interfaces:\n      v0: {kind: veth}\n", 5, ["needs a peer"]),
    ("ends disagree", GOOD_HEAD + "  n0:\n    interfaces:\n      v0: {kind: veth, peer: n1/v1}\n"
     "      v2: {kind: veth, peer: n1/v3}\n  n1:\n    interfaces:\n      v1: {kind: veth, peer: n0/v2}\n"
     "      v3: {}\n", 5, ["disagree"]),
    ("peer is bridge", GOOD_HEAD + "  n0:\n    interfaces:\n      v0: {kind: veth, peer: n0/b}\n"
     "      b: {kind: bridge}\n", 5, ["is a bridge, not a veth"]),
    ("kind missing", GOOD_HEAD + "  n0:\n    interfaces:\n      x: {addresses: [10.0.0.1/24]}\n", 5,
     ["kind is required"]),
    ("master not bridge", GOOD_HEAD + "  n0:\n    interfaces:\n      v0: {kind: veth, peer: n1/v1, master: v9}\n"
     "  n1:\n    interfaces:\n      v1: {}\n", 5, ["master 'v9' is not defined", "same namespace"]),
    ("master other ns", GOOD_HEAD + "  n0:\n    interfaces:\n      b: {kind: bridge}\n  n1:\n    interfaces:\n"
     "      v1: {kind: veth, peer: n0/v0, master: b}\n  n0x: {}\n", 8, ["master 'b' is not defined in namespace 'n1'"]),
    ("bad address", GOOD_HEAD + "  n0:\n    interfaces:\n      b: {kind: bridge, addresses: [300.1.1.1/24]}\n", 5,
     ["not an IPv4 or IPv6 address"]),
    ("no prefix", GOOD_HEAD + "  n0:\n    interfaces:\n      b: {kind: bridge, addresses: [10.0.0.1]}\n", 5,
     ["needs a prefix length", "10.0.0.1/24"]),
    ("duplicate address", GOOD_HEAD + "  n0:\n    interfaces:\n      b: {kind: bridge, addresses: [10.0.0.1/24]}\n"
     "      c: {kind: bridge, addresses: [10.0.0.1/16]}\n", 6, ["10.0.0.1 is already assigned to b"]),
    ("network address", GOOD_HEAD + "  n0:\n    interfaces:\n      b: {kind: bridge, addresses: [10.0.0.0/24]}\n", 5,
     ["network address"]),
    ("bad mac", GOOD_HEAD + "  n0:\n    interfaces:\n      b: {kind: bridge, mac: '01:00:00:00:00:01'}\n", 5,
     ["multicast"]),
    ("python tag", "name: !!python/object/apply:os.system [ls]\n", 1, ["tag"]),
    ("alias", "name: &a t\nnamespaces: {x: *a}\n", 1, ["anchors and aliases"]),
    ("not a mapping", "- a\n- b\n", 1, ["top level must be a mapping"]),
    ("empty", "", None, ["empty"]),
    ("lo with a kind", GOOD_HEAD + "  n0:\n    interfaces:\n      lo: {kind: bridge}\n", 5, ["leave out its kind"]),
    ("lo mtu", GOOD_HEAD + "  n0:\n    interfaces:\n      lo: {mtu: 9000}\n", 5, ["only its addresses"]),
    ("lo kernel address", GOOD_HEAD + "  n0:\n    interfaces:\n      lo: {addresses: [127.0.0.1/8]}\n", 5,
     ["lo's own"]),
    ("lo in host", GOOD_HEAD + "  host:\n    interfaces:\n      lo: {addresses: [10.9.9.9/32]}\n", 5, ["host's"]),
    ("route bad prefix", ROUTED + "{to: 10.1.0.0/33, dev: e0}\n", 8, ["not a prefix"]),
    ("route host bits", ROUTED + "{to: 10.1.0.1/16, dev: e0}\n", 8, ["host bits set", "10.1.0.0/16"]),
    ("route gateway family", ROUTED + "{to: 10.1.0.0/16, via: '2001:db8::1'}\n", 8, ["IPv6 gateway for an IPv4 route"]),
    ("route unknown type", ROUTED + "{to: 10.1.0.0/16, type: blackholes}\n", 8, ["routes.0.type", "blackhole"]),
    ("route unknown field", ROUTED + "{to: 10.1.0.0/16, gw: 10.0.0.2}\n", 8, ["unknown field 'gw'", "via"]),
    ("route dev elsewhere", ROUTED + "{to: 10.1.0.0/16, dev: n1/eth0}\n", 8, ["another namespace"]),
    ("route dev unknown", ROUTED + "{to: 10.1.0.0/16, dev: eth7}\n", 8, ["not an interface of namespace"]),
    ("route unreachable gw", ROUTED + "{to: 10.1.0.0/16, via: 10.9.0.1}\n", 8, ["not reachable"]),
    ("route duplicate", ROUTED + "{to: 10.1.0.0/16, dev: e0}\n      - {to: 10.1.0.0/16, via: 10.0.0.2}\n", 9,
     ["already declared"]),
    ("route ipv6 duplicate", ROUTED + "{to: '2001:db8:9::/64', dev: e0}\n      - {to: '2001:db8:9::/64', dev: e1}\n", 9,
     ["multipath"]),
    ("route connected", ROUTED + "{to: 10.0.0.0/24, dev: e0}\n", 8, ["the kernel makes the route"]),
    ("route blackhole via", ROUTED + "{to: 10.1.0.0/16, type: blackhole, via: 10.0.0.2}\n", 8, ["no via"]),
    ("route src not ours", ROUTED + "{to: 10.1.0.0/16, via: 10.0.0.2, src: 10.0.0.9}\n", 8, ["not an address"]),
    ("route host foreign dev", GOOD_HEAD + "  host:\n    routes:\n      - {to: 10.1.0.0/16, dev: eth0}\n", 5,
     ["not an interface"]),
    ("sysctl not net", GOOD_HEAD + "  n0:\n    sysctls: {kernel.pid_max: 100}\n", 4, ["not a network sysctl"]),
    ("sysctl bool", GOOD_HEAD + "  n0:\n    sysctls: {net.ipv4.ip_forward: true}\n", 4, ["number or a string"]),
    ("sysctl list", GOOD_HEAD + "  n0:\n    sysctls: {net.ipv4.ip_forward: [1]}\n", 4, ["number or a string"]),
    ("sysctl host", GOOD_HEAD + "  host:\n    sysctls: {net.ipv4.ip_forward: 1}\n", 4, ["root namespace's sysctls"]),
    ("sysctl other iface", GOOD_HEAD + "  n0:\n    sysctls: {net.ipv4.conf.eth0.rp_filter: 0}\n", 4,
     ["does not declare"]),
    ("forwarding host", GOOD_HEAD + "  host:\n    forwarding: true\n", 4, ["root namespace's sysctls"]),
    ("bad topology name", "name: 'a b'\n", 1, ["topology name"]),
    # issue 11: the link kinds (KINDS: n0's e0 on line 8, a veth to n1/e0; the cases add to n0 from line 9)
    ("unknown macvlan mode", KINDS + "      m0: {kind: macvlan, parent: e0, mode: brige}\n", 9,
     ["interfaces.m0.mode", "'bridge'"]),
    ("vlan id 0", KINDS + "      v0: {kind: vlan, parent: e0, id: 0}\n", 9,
     ["interfaces.v0.id", "greater than or equal to 1"]),
    ("vlan id 4095", KINDS + "      v0: {kind: vlan, parent: e0, id: 4095}\n", 9, ["less than or equal to 4094"]),
    ("vlan without id", KINDS + "      v0: {kind: vlan, parent: e0}\n", 9, ["'id' is required"]),
    ("vlan protocol", KINDS + "      v0: {kind: vlan, parent: e0, id: 5, protocol: 802.1x}\n", 9, ["'802.1ad'"]),
    ("vni 2^24", KINDS + "      x0: {kind: vxlan, vni: 16777216, remote: 10.0.0.2}\n", 9, ["vni", "16777215"]),
    ("parent loop", KINDS + "      v0: {kind: vlan, parent: v1, id: 5}\n      v1: {kind: vlan, parent: v0, id: 6}\n", 9,
     ["parents form a loop: n0/v0 -> n0/v1 -> n0/v0"]),
    ("parent undeclared", KINDS + "      v0: {kind: vlan, parent: eth7, id: 5}\n", 9,
     ["interface 'eth7' is not defined in namespace 'n0'", "host/NAME"]),
    ("parent namespace", KINDS + "      v0: {kind: vlan, parent: nx/e0, id: 5}\n", 9,
     ["namespace 'nx' is not defined"]),
    ("macvlan on a macvlan", KINDS + "      m1: {kind: macvlan, parent: e0}\n      m2: {kind: macvlan, parent: m1}\n",
     10, ["interfaces.m2.parent", "declare that (e0) as the parent"]),
    ("vlan twice on a parent", KINDS + "      v0: {kind: vlan, parent: e0, id: 5}\n      v1: {kind: vlan, parent: e0, "
     "id: 5}\n", 10, ["interfaces.v1.id", "n0/v0 is already VLAN 5 (802.1Q) on e0"]),
    ("parent lo", KINDS + "      v0: {kind: macvlan, parent: lo}\n", 9, ["lo cannot be a parent"]),
    ("macvlan on a bridge port", KINDS + "      b0: {kind: bridge}\n      p0: {kind: veth, peer: n0/p1, master: b0}\n"
     "      p1: {}\n      m0: {kind: macvlan, parent: p0}\n", 12,
     ["port of bridge b0", "EBUSY"]),
    ("ipvlan modes differ", KINDS + "      i0: {kind: ipvlan, parent: e0, mode: l2}\n"
     "      i1: {kind: ipvlan, parent: e0}\n", 10,
     ["interfaces.i1.mode", "share its mode and flags: n0/i0 has mode l2"]),
    ("child mtu above parent", KINDS.replace("e0: {kind: veth,", "e0: {mtu: 1400, kind: veth,")
     + "      v0: {kind: vlan, parent: e0, id: 5, mtu: 1500}\n", 9, ["mtu 1500 is above its parent n0/e0's (1400)"]),
    ("vxlan mtu no room", KINDS.replace("e0: {kind: veth,", "e0: {mtu: 1500, kind: veth,")
     + "      x0: {kind: vxlan, vni: 5, remote: 10.0.0.2, parent: e0, mtu: 1460}\n", 9, ["50 bytes", "at most 1450"]),
    ("vxlan group unicast", KINDS + "      x0: {kind: vxlan, vni: 5, group: 10.0.0.2, parent: e0}\n", 9,
     ["not a multicast address"]),
    ("vxlan group no parent", KINDS + "      x0: {kind: vxlan, vni: 5, group: 239.1.1.1}\n", 9, ["needs the parent"]),
    ("vxlan same vni", KINDS + "      x0: {kind: vxlan, vni: 5, remote: 10.0.0.2}\n      x1: {kind: vxlan, vni: 5, "
     "remote: 10.0.0.3}\n", 10, ["vni 5 port 4789 is already x0's"]),
    ("macvlan source no macs", KINDS + "      m0: {kind: macvlan, parent: e0, mode: source}\n", 9, ["needs the list"]),
    ("tap owner not int", KINDS + "      t0: {kind: tap, owner: alice}\n", 9, ["interfaces.t0.owner", "integer"]),
    ("tap group negative", KINDS + "      t0: {kind: tap, group: -1}\n", 9, ["greater than or equal to 0"]),
    # issue 12: impairments (IMPAIR: the fields from line 10)
    ("impair negative delay", IMPAIR + "          delay: -1ms\n", 10, ["impair.delay", "'-1ms' is negative"]),
    ("impair unit-less delay", IMPAIR + "          delay: 40\n", 10, ["impair.delay", "has no unit", "40ms"]),
    ("impair unit-less rate", IMPAIR + "          rate: '1000'\n", 10, ["impair.rate", "has no unit", "10mbit"]),
    ("impair unit-less loss", IMPAIR + "          loss: 1\n", 10, ["impair.loss", "has no unit", "1%"]),
    ("impair negative loss", IMPAIR + "          loss: -1%\n", 10, ["impair.loss", "negative"]),
    ("impair loss over 100%", IMPAIR + "          loss: 101%\n", 10, ["impair.loss", "'101%' is over 100%"]),
    ("impair correlation over 100%", IMPAIR + "          duplicate: 1% 100.5%\n", 10,
     ["impair.duplicate", "'100.5%' is over 100%"]),
    ("impair jitter without delay", IMPAIR + "          loss: 1%\n          jitter: 5ms\n", 11,
     ["impair.jitter", "give a delay too"]),
    ("impair jitter with delay 0", IMPAIR + "          delay: 0ms\n          jitter: 5ms\n", 11,
     ["impair.jitter", "give a delay too"]),
    ("impair distribution without jitter", IMPAIR + "          delay: 5ms\n          distribution: normal\n", 11,
     ["impair.distribution", "give a jitter too"]),
    ("impair unknown distribution",
     IMPAIR + "          delay: 5ms\n          jitter: 1ms\n          distribution: gauss\n", 12,
     ["impair.distribution", "unknown distribution 'gauss'", "normal, pareto, paretonormal"]),
    ("impair reorder without delay", IMPAIR + "          reorder: 5%\n", 10, ["impair.reorder", "give a delay"]),
    ("impair gap without reorder", IMPAIR + "          delay: 5ms\n          gap: 3\n", 11,
     ["impair.gap", "give a reorder"]),
    ("impair rate 0", IMPAIR + "          rate: 0kbit\n", 10, ["impair.rate", "no rate"]),
    ("impair rate below a byte", IMPAIR + "          rate: 7bit\n", 10, ["impair.rate", "no rate: at least 8bit"]),
    ("impair limit 0", IMPAIR + "          delay: 5ms\n          limit: 0\n", 11, ["impair.limit", "from 1", "not 0"]),
    ("impair limit with a unit", IMPAIR + "          delay: 5ms\n          limit: 10kb\n", 11,
     ["impair.limit", "whole number"]),
    ("impair burst with netem fields", IMPAIR + "          delay: 5ms\n          rate: 1mbit\n          burst: 32kb\n",
     12, ["impair.burst", "burst is tbf's", "with delay the rate is netem's"]),
    ("impair latency with netem fields",
     IMPAIR + "          rate: 1mbit\n          loss: 1%\n          latency: 50ms\n", 12,
     ["impair.latency", "latency is tbf's", "with loss"]),
    ("impair burst without rate", IMPAIR + "          burst: 32kb\n", 10, ["impair.burst", "give a rate too"]),
    ("impair latency without rate", IMPAIR + "          latency: 50ms\n", 10, ["impair.latency", "give a rate too"]),
    ("impair on lo", GOOD_HEAD + "  n0:\n    interfaces:\n      lo:\n        impair: {delay: 1ms}\n", 6,
     ["interfaces.lo.impair", "lo cannot be impaired"]),
    ("impair empty", IMPAIR + "          {}\n", 9, ["e0.impair:", "nothing in it"]),
    ("impair unknown field", IMPAIR + "          delay: 5ms\n          dealy: 5ms\n", 11,
     ["impair.dealy", "did you mean 'delay'?", ("(valid: delay, jitter, distribution, loss, duplicate, corrupt, "
                                              "reorder, gap, rate, limit, burst, latency)")]),
    ("impair three words", IMPAIR + "          delay: 5ms\n          loss: 1% 25% 3%\n", 11,
     ["impair.loss", "a percentage and an optional correlation"]),
    ("impair jitter three words", IMPAIR + "          delay: 5ms\n          jitter: 1ms 2% 3%\n", 11,
     ["impair.jitter", "a time and an optional correlation"]),
    ("impair jitter too long", IMPAIR + "          delay: 5s\n          jitter: 3s\n", 11,
     ["impair.jitter", "at most 2.147s"]),
    ("impair not a mapping", IMPAIR.replace("impair:\n", "impair: 40ms\n"), 9,
     ["e0.impair", "mapping", "not str '40ms'"]),
]


@pytest.mark.parametrize("case,text,line,expected", BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_clear_error(case, text, line, expected, tmp_path):
    path = tmp_path / "topo.yaml"
    path.write_text(text)
    with pytest.raises(ValidationError) as info:
        load(str(path))
    message = str(info.value)
    where = f"{path}:{line}" if line else f"{path}"
    assert message.startswith(where) and message[len(where)] in " :", message
    for part in expected:
        assert part in message, message


def test_every_impair_problem_is_reported_at_once_each_at_its_line():
    text = IMPAIR + "          delay: -1ms\n          loss: 200%\n          gap: 0\n          burst: 1kb\n"
    with pytest.raises(ValidationError) as info:
        loads(text, "t.yaml")
    found = {(p.path[-1], p.line) for p in info.value.problems}
    assert {("delay", 10), ("loss", 11), ("gap", 12), ("burst", 13)} <= found, found


def test_an_impair_that_is_not_a_mapping_is_not_called_an_interface():
    with pytest.raises(ValidationError) as info:
        loads(IMPAIR.replace("impair:\n", "impair: 40ms\n"), "t.yaml")
    assert "an interface is" not in str(info.value)


def test_a_distribution_table_that_is_not_installed_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TC_LIB_DIR", str(tmp_path))  # where tc would look: no .dist files there
    path = tmp_path / "topo.yaml"
    path.write_text(IMPAIR + "          delay: 5ms\n          jitter: 1ms\n          distribution: pareto\n")
    with pytest.raises(ValidationError) as info:
        load(str(path))
    message = str(info.value)
    assert message.startswith(f"{path}:12 ") and "impair.distribution" in message, message
    assert "no pareto.dist found" in message and str(tmp_path) in message, message


def test_every_problem_is_reported_at_once():
    text = GOOD_HEAD + "  a/b: {}\n  '12': {}\n  n0:\n    interfaces:\n      b: {kind: brige}\n"
    with pytest.raises(ValidationError) as info:
        loads(text, "t.yaml")
    assert len(info.value.problems) == 3


def test_binary_junk_and_huge_files_are_rejected(tmp_path):
    junk = tmp_path / "junk.yaml"
    junk.write_bytes(b"name: \xff\xfe\x00\x01")
    with pytest.raises(ValidationError, match="not UTF-8"):
        load(str(junk))
    huge = tmp_path / "huge.yaml"
    huge.write_text("name: t\n" + "#" * MAX_FILE_BYTES)
    with pytest.raises(ValidationError, match="larger than"):
        load(str(huge))


@pytest.mark.parametrize("path", sorted(glob.glob("topologies/*.yaml")))
def test_shipped_topologies_are_valid(path):
    topo = load(path)
    assert desired(topo).namespaces


def test_desired_state_of_the_seed():
    state = desired(load("topologies/seed.yaml"))
    vth0, vth1, br0 = state.link("ns0", "vth0"), state.link("ns1", "vth1"), state.link("ns0", "br0")
    lo = state.link("ns0", "lo")
    assert vth0 is not None and vth1 is not None and br0 is not None and lo is not None
    assert vth1.peer == ("ns0", "vth0")
    assert vth0.kind == "veth" and vth1.kind == "veth"
    assert br0.addresses == frozenset({"10.0.0.1/24"})
    assert lo.up and state.namespaces["ns0"].owner == "seed"
    assert state.namespaces["host"].owner is None and not state.namespaces["host"].links


def test_a_childs_mtu_is_checked_against_its_parents_kernel_default():
    """A parent the file declares without an MTU gets the kernel's default (1500 for a veth; a macvlan its
    parent's): a vxlan, macvlan or vlan above it is refused when loaded, not by the kernel at apply (found
    by the kinded fuzz)."""
    text = ("name: fz\nnamespaces:\n  a:\n    interfaces:\n      e0: {kind: veth, peer: b/e0}\n"
            "      c0: {kind: vxlan, vni: 7, remote: 10.0.0.3, parent: e0, mtu: 9000}\n"
            "      v0: {kind: macvlan, parent: e0, mtu: 1600}\n      v1: {kind: vlan, parent: v2, id: 5, mtu: 1600}\n"
            "      v2: {kind: macvlan, parent: e0}\n"
            "  b:\n    interfaces:\n      e0: {}\n")
    with pytest.raises(ValidationError) as info:
        loads(text, "t.yaml")
    found = {(".".join(map(str, p.path)), p.line) for p in info.value.problems}
    assert found == {("namespaces.a.interfaces.c0.mtu", 6), ("namespaces.a.interfaces.v0.mtu", 7),
                     ("namespaces.a.interfaces.v1.mtu", 8)}, found
    assert "at most 1450" in str(info.value) and "(1500, the kernel's default for it)" in str(info.value)
    loads(text.replace("mtu: 9000", "mtu: 1450").replace("mtu: 1600", "mtu: 1500"), "t.yaml")
