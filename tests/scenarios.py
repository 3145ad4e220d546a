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

# A routed topology, shared by the applier's tests (with '@' made a name, e.g. 'rt') and the kernel suites
# (with '@' their prefix): a router with forwarding (but not on its uplink: writing the global keys
# rewrites every interface's, which an undo must put back), a per-interface sysctl and addresses on `lo`, two
# hosts with IPv4 and IPv6 default routes (one host reached through two links), a multipath route, a
# blackhole and an unreachable route, routes in a table other than main, and a root-namespace veth with a
# route of the root namespace through it.
ROUTED = """
name: "@"
namespaces:
  host:
    interfaces:
      "@w0": {kind: veth, peer: "@r/up0", addresses: [10.199.0.1/30]}
    routes:
      - {to: 10.255.0.1/32, via: 10.199.0.2}
  "@r":
    forwarding: true
    sysctls:
      net.ipv4.conf.eth1.rp_filter: 2
      net.ipv4.conf.up0.forwarding: 0
      net.ipv6.conf.up0.forwarding: 0
    interfaces:
      lo: {addresses: [10.255.0.1/32, "fd00:255::1/128"]}
      up0: {addresses: [10.199.0.2/30]}
      eth1: {kind: veth, peer: "@h1/eth0", addresses: [10.201.0.1/24, "fd01::1/64"]}
      eth2: {kind: veth, peer: "@h2/eth0", addresses: [10.202.0.1/24, "fd02::1/64"]}
      eth3: {kind: veth, peer: "@h2/eth1", addresses: [10.203.0.1/24]}
    routes:
      - {to: 10.220.0.0/16, nexthops: [{via: 10.202.0.2}, {via: 10.203.0.2, weight: 2}]}
      - {to: 198.51.100.0/24, type: blackhole}
      - {to: "fd99::/48", type: unreachable}
      - {to: 10.230.0.0/16, via: 10.202.0.2, table: 100}
      - {to: "fd30::/48", via: "fd02::2", table: 100}
  "@h1":
    interfaces:
      eth0: {addresses: [10.201.0.2/24, "fd01::2/64"]}
    routes:
      - {to: default, via: 10.201.0.1}
      - {to: default6, via: "fd01::1"}
      - {to: 10.255.0.1/32, via: 10.201.0.1, metric: 50, src: 10.201.0.2}
  "@h2":
    interfaces:
      lo: {addresses: [10.220.0.1/32]}
      eth0: {addresses: [10.202.0.2/24, "fd02::2/64"]}
      eth1: {addresses: [10.203.0.2/24]}
    routes:
      - {to: default, via: 10.202.0.1}
      - {to: default6, via: "fd02::1"}
      - {to: 10.201.0.0/24, via: 10.203.0.1, metric: 100}
"""

# ROUTED, changed in the ways that matter to routes: gateways changed (h1's default, a route of table 100
# moved to another link), a metric changed (h2's route to 10.201.0.0/24, and the root namespace's route),
# a route removed (the blackhole, h1's /32), a link replaced (r/eth3, whose peer moved from h2/eth1 to
# h2/eth5) so that the multipath route through it, and its per-interface sysctl, must come back; an
# address removed from a link that keeps its routes; IPv4 and IPv6 forwarding turned off.
ROUTED_CHANGED = """
name: "@"
namespaces:
  host:
    interfaces:
      "@w0": {kind: veth, peer: "@r/up0", addresses: [10.199.0.1/30]}
    routes:
      - {to: 10.255.0.1/32, via: 10.199.0.2, metric: 10}
  "@r":
    forwarding: false
    sysctls:
      net.ipv4.conf.eth1.rp_filter: 2
      net.ipv4.conf.eth3.rp_filter: 0
      net.ipv4.conf.up0.forwarding: 0
      net.ipv6.conf.up0.forwarding: 0
    interfaces:
      lo: {addresses: [10.255.0.1/32]}
      up0: {addresses: [10.199.0.2/30]}
      eth1: {kind: veth, peer: "@h1/eth0", addresses: [10.201.0.1/24, 10.201.0.254/24, "fd01::1/64"]}
      eth2: {kind: veth, peer: "@h2/eth0", addresses: [10.202.0.1/24, "fd02::1/64"]}
      eth3: {kind: veth, peer: "@h2/eth5", addresses: [10.203.0.1/24]}
    routes:
      - {to: 10.220.0.0/16, nexthops: [{via: 10.202.0.2}, {via: 10.203.0.2, weight: 2}]}
      - {to: "fd99::/48", type: unreachable}
      - {to: 10.230.0.0/16, via: 10.203.0.2, table: 100}
      - {to: "fd30::/48", via: "fd02::2", table: 100}
  "@h1":
    interfaces:
      eth0: {addresses: [10.201.0.2/24, "fd01::2/64"]}
    routes:
      - {to: default, via: 10.201.0.254}
      - {to: default6, via: "fd01::1"}
  "@h2":
    interfaces:
      lo: {addresses: [10.220.0.1/32]}
      eth0: {addresses: [10.202.0.2/24, "fd02::2/64"]}
      eth5: {addresses: [10.203.0.2/24]}
    routes:
      - {to: default, via: 10.202.0.1}
      - {to: default6, via: "fd02::1"}
      - {to: 10.201.0.0/24, via: 10.203.0.1, metric: 200}
"""

# The link kinds of issue 11 that this machine's kernel has, for the kernel suites (rollback at every step,
# crash at every boundary): macvlans in one namespace and across namespaces (IFLA_LINK_NETNSID), one in
# source mode with its MACs; a vxlan overlay between two "hosts" (@a and @b, an underlay veth, a bridge on
# each with the vxlan as a port; no STP there, whose forward delay would hold the overlay's ports 30 s) and
# a vxlan without a parent; a tap on a bridge with STP (@c/br1).
# Reachable when applied: @a 192.168.71.1 <-> @b 192.168.71.2 (the overlay), @a 10.72.0.1 <-> @c 10.72.0.2
# (two macvlans in bridge mode on @a/eth1, one of them in @c), @a 10.73.0.1 <-> @b 10.73.0.2 (the same on
# @a/eth2).
KINDS = """
name: "@"
namespaces:
  "@a":
    interfaces:
      eth0: {kind: veth, peer: "@b/eth0", addresses: [10.71.0.1/24, 10.71.0.3/24]}
      eth1: {kind: veth, peer: "@c/eth1"}
      eth2: {kind: veth, peer: "@b/eth2"}
      mv0:  {kind: macvlan, parent: eth1, addresses: [10.72.0.1/24]}
      mv1:  {kind: macvlan, parent: eth1, mode: private}
      mv5:  {kind: macvlan, parent: eth2, addresses: [10.73.0.1/24]}
      br0:  {kind: bridge, stp: false, addresses: [192.168.71.1/24]}
      vx0:  {kind: vxlan, vni: 71, remote: 10.71.0.2, local: 10.71.0.1, parent: eth0, learning: false, master: br0}
  "@b":
    interfaces:
      eth0: {addresses: [10.71.0.2/24]}
      eth2: {}
      br0:  {kind: bridge, addresses: [192.168.71.2/24]}
      vx0:  {kind: vxlan, vni: 71, remote: 10.71.0.1, local: 10.71.0.2, parent: eth0, master: br0}
      mv6:  {kind: macvlan, parent: "@a/eth2", addresses: [10.73.0.2/24]}
  "@c":
    interfaces:
      eth1: {}
      mv2:  {kind: macvlan, parent: "@a/eth1", addresses: [10.72.0.2/24]}
      mv3:  {kind: macvlan, parent: "@a/eth1", mode: source, macs: ["02:00:00:00:71:01"]}
      vx1:  {kind: vxlan, vni: 73, remote: 10.71.0.9}
      br1:  {kind: bridge, stp: true}
      tap0: {kind: tap, owner: 1000, group: 1000, master: br1}
"""

# KINDS changed in place (a macvlan's mode and a source macvlan's MACs, a bridge's STP, a vxlan's learning
# and another's remote) and by replacement (a tap's owner, a vxlan's VNI, and a veth whose peer moved, with
# its macvlan children in its own namespace and in another).
KINDS_CHANGED = """
name: "@"
namespaces:
  "@a":
    interfaces:
      eth0: {kind: veth, peer: "@b/eth0", addresses: [10.71.0.1/24, 10.71.0.3/24]}
      eth1: {kind: veth, peer: "@c/eth1"}
      eth2: {kind: veth, peer: "@b/eth3"}
      mv0:  {kind: macvlan, parent: eth1, addresses: [10.72.0.1/24]}
      mv1:  {kind: macvlan, parent: eth1, mode: vepa}
      mv5:  {kind: macvlan, parent: eth2, addresses: [10.73.0.1/24]}
      br0:  {kind: bridge, stp: false, addresses: [192.168.71.1/24]}
      vx0:  {kind: vxlan, vni: 71, remote: 10.71.0.2, local: 10.71.0.1, parent: eth0, learning: true, master: br0}
  "@b":
    interfaces:
      eth0: {addresses: [10.71.0.2/24]}
      eth3: {}
      br0:  {kind: bridge, addresses: [192.168.71.2/24]}
      vx0:  {kind: vxlan, vni: 71, remote: 10.71.0.3, local: 10.71.0.2, parent: eth0, master: br0}
      mv6:  {kind: macvlan, parent: "@a/eth2", addresses: [10.73.0.2/24]}
  "@c":
    interfaces:
      eth1: {}
      mv2:  {kind: macvlan, parent: "@a/eth1", addresses: [10.72.0.2/24]}
      mv3:  {kind: macvlan, parent: "@a/eth1", mode: source, macs: ["02:00:00:00:71:01", "02:00:00:00:71:02"]}
      vx1:  {kind: vxlan, vni: 74, remote: 10.71.0.9}
      br1:  {kind: bridge, stp: false}
      tap0: {kind: tap, owner: 1001, group: 1000, master: br1}
"""
