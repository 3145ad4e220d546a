"""The kernel adapter: the only module that imports pyroute2 or calls setns/unshare/mount.

`Kernel.observe()` reads the live State of the namespaces a topology concerns; `Kernel.execute()` runs one
plan step. Nothing above this module talks to the kernel, so tests can hand the applier a fake adapter.

No process is forked, not even per namespace (pyroute2's `IPRoute(netns=...)` forks a helper each time):
a netlink socket belongs to the network namespace its creator was in when it was opened, so the adapter
`setns()`s its own thread into the namespace, opens the socket, and returns. New namespaces are made the
same way with `unshare(CLONE_NEWNET)` and a bind mount under /run/netns, as `ip netns add` does.

Read-only means read-only: observing never creates a namespace or a file (pyroute2 opens namespaces with
O_CREAT by default; this module never passes a name to pyroute2).
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import ipaddress
import os
import resource
from dataclasses import dataclass, field

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from .errors import KernelError
from .plan import Step
from .state import HOST, LOOPBACK, Link, Namespace, State, mark, owner_from_alias

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_BIND, MS_REC, MS_SHARED = 4096, 16384, 1 << 20
MNT_DETACH = 2
IFF_UP, IFF_LOOPBACK = 0x1, 0x8
IFA_F_NODAD, IFA_F_PERMANENT = 0x02, 0x80

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        code = ctypes.get_errno()
        raise KernelError(f"{what}: {os.strerror(code)} (errno {code})", code)


@dataclass
class _Raw:
    """One namespace as dumped: links by index, their addresses, and its socket."""

    ipr: IPRoute
    fd: int
    links: dict[int, dict] = field(default_factory=dict)
    by_name: dict[str, int] = field(default_factory=dict)


class Kernel:
    """Talks to the running kernel. One instance per run; `close()` releases its sockets and fds."""

    def __init__(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:  # two fds per namespace (the netns and a socket): lift the 1024 default
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self._loop = asyncio.new_event_loop()
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._fds: dict[str, int] = {HOST: self._home}
        self._sockets: dict[str, IPRoute] = {}

    def close(self) -> None:
        for ipr in self._sockets.values():
            ipr.close()
        for ns, fd in self._fds.items():
            if ns != HOST:
                os.close(fd)
        os.close(self._home)
        self._sockets.clear()
        self._fds.clear()
        # pyroute2 leaves async generators behind on the shared loop; finish them so asyncio stays quiet.
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- namespaces and sockets ------------------------------------------------------------------------

    def _fd(self, ns: str) -> int | None:
        """An fd for the namespace, or None if it does not exist. Never creates anything."""
        if ns in self._fds:
            return self._fds[ns]
        try:
            fd = os.open(os.path.join(NETNS_DIR, ns), os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        # An empty file left by an interrupted `ip netns add` is not a namespace: setns() refuses it.
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            os.close(fd)
            return None
        _check(_libc.setns(self._home, CLONE_NEWNET), "return to the root namespace")
        self._fds[ns] = fd
        return fd

    def _ipr(self, ns: str) -> IPRoute:
        ipr = self._sockets.get(ns)
        if ipr is not None:
            return ipr
        fd = self._fd(ns)
        if fd is None:
            raise KernelError(f"namespace {ns} does not exist", errno.ENOENT)
        if ns == HOST:
            ipr = IPRoute(use_event_loop=self._loop)
        else:
            _check(_libc.setns(fd, CLONE_NEWNET), f"enter namespace {ns}")
            try:
                ipr = IPRoute(use_event_loop=self._loop)
            finally:
                _check(_libc.setns(self._home, CLONE_NEWNET), "return to the root namespace")
        self._sockets[ns] = ipr
        return ipr

    def _forget(self, ns: str) -> None:
        ipr = self._sockets.pop(ns, None)
        if ipr is not None:
            ipr.close()
        fd = self._fds.pop(ns, None)
        if fd is not None and ns != HOST:
            os.close(fd)

    def namespace_names(self) -> list[str]:
        try:
            return sorted(os.listdir(NETNS_DIR))
        except FileNotFoundError:
            return []

    # --- reading -------------------------------------------------------------------------------------

    def observe(self, topology: str, namespaces: set[str], host_links: set[str] = frozenset()) -> State:
        """The live State of `namespaces` (those that exist), of every namespace marked as `topology`'s,
        and, in the root namespace, of the links named in `host_links` or marked as `topology`'s."""
        wanted = set(namespaces) - {HOST}
        for ns in self.namespace_names():
            if ns not in wanted and self._fd(ns) is not None and self._lo_owner(ns) == topology:
                wanted.add(ns)
        raw: dict[str, _Raw] = {HOST: self._dump(HOST)}
        for ns in sorted(wanted):
            if self._fd(ns) is not None:
                raw[ns] = self._dump(ns)
        nsids: dict[tuple[str, str], int] = {}
        result = {}
        for ns, r in raw.items():
            links = {}
            for index, info in r.links.items():
                link = self._link(ns, info, raw, nsids)
                if ns == HOST and link.owner != topology and link.name not in host_links:
                    continue
                links[link.name] = link
            owner = None if ns == HOST else links.get(LOOPBACK, Link(LOOPBACK, "loopback")).owner
            result[ns] = Namespace(ns, owner, links)
        return State(result)

    def _lo_owner(self, ns: str) -> str | None:
        try:
            lo = self._ipr(ns).link("get", index=1)[0]
        except NetlinkError:
            return None
        return owner_from_alias(lo.get_attr("IFLA_IFALIAS"))

    def _dump(self, ns: str) -> _Raw:
        ipr = self._ipr(ns)
        r = _Raw(ipr, self._fd(ns))
        for msg in ipr.get_links():
            info = msg.get_attr("IFLA_LINKINFO")
            kind = info.get_attr("IFLA_INFO_KIND") if info is not None else None
            if msg["flags"] & IFF_LOOPBACK:
                kind = "loopback"
            r.links[msg["index"]] = {
                "index": msg["index"],
                "name": msg.get_attr("IFLA_IFNAME"),
                "kind": kind or "device",
                "link": msg.get_attr("IFLA_LINK"),
                "link_nsid": msg.get_attr("IFLA_LINK_NETNSID"),
                "master": msg.get_attr("IFLA_MASTER"),
                "up": bool(msg["flags"] & IFF_UP),
                "mtu": msg.get_attr("IFLA_MTU"),
                "mac": (msg.get_attr("IFLA_ADDRESS") or None),
                "alias": msg.get_attr("IFLA_IFALIAS"),
                "addresses": set(),
            }
            r.by_name[r.links[msg["index"]]["name"]] = msg["index"]
        for msg in ipr.get_addr():
            link = r.links.get(msg["index"])
            flags = msg.get_attr("IFA_FLAGS") or msg["flags"]
            addr = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            if link is None or addr is None or not flags & IFA_F_PERMANENT:
                continue  # dynamic addresses (SLAAC, DHCP) belong to the kernel or a daemon
            iface = ipaddress.ip_interface(f"{addr}/{msg['prefixlen']}")
            if iface.version == 6 and iface.ip.is_link_local:
                continue  # the kernel's own fe80:: addresses
            link["addresses"].add(str(iface))
        return r

    def _link(self, ns: str, info: dict, raw: dict[str, _Raw], nsids: dict) -> Link:
        r = raw[ns]
        peer, peer_alias = None, None
        if info["kind"] == "veth" and info["link"]:
            found = self._find_peer(ns, info, raw, nsids)
            if found:
                peer = (found[0], found[1]["name"])
                peer_alias = found[1]["alias"]
        master = r.links.get(info["master"], {}).get("name") if info["master"] else None
        owner = owner_from_alias(info["alias"])
        if owner is None and info["kind"] == "veth":
            owner = owner_from_alias(peer_alias)  # a veth pair is one object: either end's mark counts
        return Link(
            name=info["name"],
            kind=info["kind"],
            peer=peer,
            master=master,
            addresses=None if info["kind"] == "loopback" else frozenset(info["addresses"]),
            up=info["up"],
            mtu=info["mtu"],
            mac=info["mac"] if info["kind"] != "loopback" else None,
            owner=owner,
        )

    def _find_peer(self, ns: str, info: dict, raw: dict[str, _Raw], nsids: dict):
        """The other end of a veth among the namespaces read: reciprocal ifindexes, and (across namespaces)
        the peer namespace's id as seen from this one, which is what IFLA_LINK_NETNSID names."""
        if info["link_nsid"] is None:
            other = raw[ns].links.get(info["link"])
            return (ns, other) if other and other["kind"] == "veth" else None
        for other_ns, r in raw.items():
            other = r.links.get(info["link"])
            if other_ns == ns or not other or other["kind"] != "veth" or other["link"] != info["index"]:
                continue
            key = (ns, other_ns)
            if key not in nsids:
                reply = raw[ns].ipr.get_netnsid(fd=r.fd)
                nsids[key] = reply["nsid"] if reply else -1
            if nsids[key] == info["link_nsid"]:
                return (other_ns, other)
        return None

    # --- writing -------------------------------------------------------------------------------------

    def execute(self, step: Step, topology: str) -> None:
        """Run one step. A step either happens whole or raises KernelError having changed nothing (a
        compound step undoes its own first half); deleting what is already gone counts as success."""
        try:
            getattr(self, "_" + step.action)(step, mark(topology))
        except NetlinkError as exc:
            raise KernelError(f"{os.strerror(exc.code)} (errno {exc.code})", exc.code) from None
        except OSError as exc:
            if isinstance(exc, KernelError):
                raise
            raise KernelError(f"{exc.strerror} (errno {exc.errno})", exc.errno) from None

    def _index(self, ns: str, name: str) -> int:
        found = self._ipr(ns).link_lookup(ifname=name)
        if not found:
            raise KernelError(f"no link {name} in namespace {ns}", errno.ENODEV)
        return found[0]

    def _create_netns(self, step: Step, alias: str) -> None:
        path = os.path.join(NETNS_DIR, step.namespace)
        _prepare_netns_dir()
        if os.path.lexists(path) and self._fd(step.namespace) is None and os.path.isfile(path) \
                and os.path.getsize(path) == 0:
            os.unlink(path)  # the empty mount point of an interrupted `ip netns add`: not a namespace
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
        os.close(fd)
        mounted = False
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            try:
                # Mark lo before the namespace gets its name: a crash in between leaves nothing behind.
                ipr = IPRoute(use_event_loop=self._loop)
                try:
                    ipr.link("set", index=1, ifalias=alias)
                except BaseException:
                    ipr.close()
                    raise
                _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None),
                       f"mount {path}")
                mounted = True
            finally:
                _check(_libc.setns(self._home, CLONE_NEWNET), "return to the root namespace")
        finally:
            if not mounted:
                os.unlink(path)
        self._sockets[step.namespace] = ipr

    def _delete_netns(self, step: Step, alias: str) -> None:
        self._forget(step.namespace)
        path = os.path.join(NETNS_DIR, step.namespace)
        _libc.umount2(path.encode(), MNT_DETACH)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def _create_link(self, step: Step, alias: str) -> None:
        spec = step.value
        ipr = self._ipr(step.namespace)
        request = {"ifname": step.name, "kind": spec["kind"]}
        if "mtu" in spec:
            request["mtu"] = spec["mtu"]
        if "mac" in spec:
            request["address"] = spec["mac"]
        peer = spec.get("peer")
        if peer:
            request["peer"] = {"ifname": peer["name"]}
            if peer["namespace"] != step.namespace:
                fd = self._fd(peer["namespace"])
                if fd is None:
                    raise KernelError(f"namespace {peer['namespace']} does not exist", errno.ENOENT)
                request["peer"]["net_ns_fd"] = fd
            if "mtu" in peer:
                request["peer"]["mtu"] = peer["mtu"]
            if "mac" in peer:
                request["peer"]["address"] = peer["mac"]
        ipr.link("add", **request)
        try:
            ipr.link("set", ifname=step.name, ifalias=alias)
            if peer:
                self._ipr(peer["namespace"]).link("set", ifname=peer["name"], ifalias=alias)
        except BaseException:
            ipr.link("del", ifname=step.name)
            raise

    def _delete_link(self, step: Step, alias: str) -> None:
        try:
            self._ipr(step.namespace).link("del", ifname=step.name)
        except NetlinkError as exc:
            if exc.code != errno.ENODEV:
                raise

    def _set_master(self, step: Step, alias: str) -> None:
        master = self._index(step.namespace, step.value)
        self._ipr(step.namespace).link("set", ifname=step.name, master=master)

    def _clear_master(self, step: Step, alias: str) -> None:
        self._ipr(step.namespace).link("set", ifname=step.name, master=0)

    def _set_up(self, step: Step, alias: str) -> None:
        self._ipr(step.namespace).link("set", ifname=step.name, state="up")

    def _set_down(self, step: Step, alias: str) -> None:
        self._ipr(step.namespace).link("set", ifname=step.name, state="down")

    def _set_mtu(self, step: Step, alias: str) -> None:
        self._ipr(step.namespace).link("set", ifname=step.name, mtu=step.value)

    def _set_mac(self, step: Step, alias: str) -> None:
        self._ipr(step.namespace).link("set", ifname=step.name, address=step.value)

    def _address(self, step: Step, command: str) -> None:
        iface = ipaddress.ip_interface(step.value)
        request = {"index": self._index(step.namespace, step.name), "address": str(iface.ip),
                   "prefixlen": iface.network.prefixlen}
        if iface.version == 6 and command == "add":
            request["flags"] = IFA_F_NODAD  # usable at once: no tentative period, no flaky first ping
        self._ipr(step.namespace).addr(command, **request)

    def _add_address(self, step: Step, alias: str) -> None:
        self._address(step, "add")

    def _delete_address(self, step: Step, alias: str) -> None:
        try:
            self._address(step, "del")
        except NetlinkError as exc:
            if exc.code != errno.EADDRNOTAVAIL:
                raise


def _prepare_netns_dir() -> None:
    """Make /run/netns a shared mount point, as `ip netns add` does, so that namespaces created here are
    seen from other mount namespaces too."""
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    if _libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:
        _check(-1, f"mount --make-shared {NETNS_DIR}")
    _check(_libc.mount(NETNS_DIR.encode(), NETNS_DIR.encode(), b"none", MS_BIND | MS_REC, None),
           f"mount --bind {NETNS_DIR}")
    _check(_libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None),
           f"mount --make-shared {NETNS_DIR}")
