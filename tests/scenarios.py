"""Topologies shared by the unit tests (planner, applier). Text, so that they go through the real loader."""

BIG = """
name: big
namespaces:
  host:
    interfaces:
      hbr0: {kind: bridge, addresses: [192.0.2.1/24, "2001:db8::1/64"], mtu: 9000}
      hv0:  {kind: veth, peer: c1/eth0, master: hbr0}
      hv1:  {kind: veth, peer: c2/eth0, master: hbr0}
  c1:
    interfaces:
      eth0: {addresses: [192.0.2.11/24, "2001:db8::11/64"], mac: "02:00:00:00:01:01"}
  c2:
    interfaces:
      eth0: {addresses: [192.0.2.12/24]}
  r0:
    interfaces:
      br0:  {kind: bridge, addresses: [10.0.0.1/24]}
      v0:   {kind: veth, peer: r1/v1, master: br0}
      v2:   {kind: veth, peer: r2/v3, master: br0, mtu: 1400}
      loop: {kind: veth, peer: r0/loop2}
      loop2: {addresses: [10.9.0.2/30]}
  r1:
    interfaces:
      v1: {addresses: [10.0.0.2/24]}
  r2:
    interfaces:
      v3: {addresses: [10.0.0.3/24], mtu: 1400}
"""

# BIG, changed in every way the planner knows: a namespace removed (r2) and one added (r3), a veth whose
# peer moved (v0: r1/v1 -> r3/v5), an address moved between links, a master cleared and one set, an MTU
# changed, a link set down, a bridge replaced by a veth (hv1 kept, hbr0 kept).
BIG_CHANGED = """
name: big
namespaces:
  host:
    interfaces:
      hbr0: {kind: bridge, addresses: [192.0.2.1/24], mtu: 1500}
      hv0:  {kind: veth, peer: c1/eth0}
      hv1:  {kind: veth, peer: c2/eth0, master: hbr0, up: false}
  c1:
    interfaces:
      eth0: {addresses: ["2001:db8::11/64"], mac: "02:00:00:00:01:02"}
  c2:
    interfaces:
      eth0: {addresses: [192.0.2.12/24, 192.0.2.13/24]}
  r0:
    interfaces:
      br0:  {kind: bridge}
      v0:   {kind: veth, peer: r3/v5, master: br0, addresses: [10.0.0.1/24]}
      loop: {kind: veth, peer: r0/loop2, master: br0}
      loop2: {addresses: [10.9.0.2/30]}
  r1:
    interfaces:
      v1b: {kind: bridge, addresses: [10.0.0.2/24]}
  r3:
    interfaces:
      v5: {addresses: [10.0.0.5/24]}
"""
