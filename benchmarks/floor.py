"""The floor: the kernel operations of a benchmark topology issued from one process, with batched
netlink and nothing else: no file to parse, no state to read, no plan, no validation. Whatever netlab
spends above this is its own cost.

    python benchmarks/floor.py create|destroy SHAPE N PREFIX

It does what netlab does to the kernel, in the same order: namespaces made with unshare and a bind
mount (each one's lo marked), links made at chosen ifindexes and marked, ports enslaved, addresses
added, links up with bridges last; consecutive operations in one namespace go in one sendmsg.
"""

from __future__ import annotations

import ctypes
import ipaddress
import os
import socket
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from netlab.kernel.namespaces import CLONE_NEWNET, MNT_DETACH, MS_BIND, NETNS_DIR, _prepare_netns_dir
from netlab.netlink import rtnl as nl, transport

import shapes

libc = ctypes.CDLL(None, use_errno=True)


def create(t: shapes.Topology) -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    alias = "netlab:" + t.name
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    socks, fds = {shapes.HOST: transport.Socket()}, {}
    _prepare_netns_dir()
    for ns in t.namespaces:
        path = f"{NETNS_DIR}/{ns}"
        os.close(os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0))
        assert libc.unshare(CLONE_NEWNET) == 0
        socks[ns] = transport.Socket()
        socks[ns].request(nl.set_link(index=1, alias=alias))
        fds[ns] = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        assert libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None) == 0
        assert libc.setns(home, CLONE_NEWNET) == 0
    index = {(ns, "lo"): 1 for ns in t.namespaces}
    next_index = 1 << 24

    def new_index(ns: str, name: str) -> int:
        nonlocal next_index
        next_index += 1
        index[(ns, name)] = next_index
        return next_index

    ops: list[tuple[str, transport.Request]] = []
    for ns, name in t.bridges:
        i = new_index(ns, name)
        ops += [(ns, nl.new_link(name, "bridge", i)), (ns, nl.set_link(index=i, alias=alias))]
    for ns, name, pns, pname in t.veths:
        i, j = new_index(ns, name), new_index(pns, pname)
        peer = {"name": pname, "index": j, "net_ns_fd": fds[pns] if pns != ns else None}
        ops += [(ns, nl.new_link(name, "veth", i, peer=peer)), (ns, nl.set_link(index=i, alias=alias))]
    ops += [(ns, nl.set_link(index=index[(ns, port)], master=index[(ns, bridge)])) for ns, port, bridge in t.masters]
    for ns, link, address in t.addresses:
        iface = ipaddress.ip_interface(address)
        ops.append((ns, nl.address(True, index[(ns, link)], socket.AF_INET, iface.ip.packed, iface.network.prefixlen)))
    ops += [(ns, nl.set_link(index=index[(ns, name)], up=True)) for ns, name in t.ups()]
    batch, where = [], None
    for ns, request in ops + [(None, None)]:
        if ns != where and batch:
            codes = socks[where].batch(batch)
            assert not any(codes), [os.strerror(c) for c in codes if c]
            batch = []
        where = ns
        batch.append(request)


def destroy(t: shapes.Topology) -> None:
    for ns in t.namespaces:
        path = f"{NETNS_DIR}/{ns}"
        libc.umount2(path.encode(), MNT_DETACH)
        os.unlink(path)
    host = transport.Socket()
    codes = host.batch([nl.del_link(name) for ns, name in t.bridges if ns == shapes.HOST])
    assert not any(codes)


if __name__ == "__main__":
    command, shape, n, prefix = sys.argv[1:5]
    topology = shapes.SHAPES[shape](int(n), prefix)
    {"create": create, "destroy": destroy}[command](topology)
