"""The kernel adapter: the only module that talks to the kernel (netlink, setns, unshare, mount).

`Kernel.observe()` reads the live State of the namespaces a topology concerns; `Kernel.execute()` runs
plan steps. Nothing above this module talks to the kernel, so tests can hand the applier a fake adapter.

No process is forked, not even per namespace: a netlink socket belongs to the network namespace its
creator was in when it was opened, so the adapter `setns()`s its own thread into the namespace, opens the
socket, and returns. New namespaces are made the same way with `unshare(CLONE_NEWNET)` and a bind mount
under /run/netns, as `ip netns add` does. Each namespace is opened once per run.

Writes are batched: consecutive steps in the same namespace go to the kernel in one `sendmsg`, and each
acknowledgement is matched to its step (netlink/transport.py). SIGINT and SIGTERM are held while a batch or a
namespace step runs, so an interrupt arrives between batches, with the result of every step known.

Read-only means read-only: observing never creates a namespace or a file.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import resource
import signal
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from .netlink import rtnl as nl
from .netlink import transport
from .errors import KernelError
from .plan import Step
from .state import HOST, LOOPBACK, Link, Namespace, State, mark, owner_from_alias

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_BIND, MS_REC, MS_SHARED = 4096, 16384, 1 << 20
MNT_DETACH = 2
SIGNALS = {signal.SIGINT, signal.SIGTERM}
# Errors that mean the step's goal already holds: deleting what is gone.
_ALREADY_SO = {("delete_link", errno.ENODEV), ("delete_address", errno.EADDRNOTAVAIL),
               ("delete_address", errno.ENODEV)}

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        raise KernelError.of(ctypes.get_errno(), what)


@contextmanager
def _signals_held():
    """Hold SIGINT and SIGTERM for the duration: they are delivered (and raise) when it ends."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@dataclass
class _Op:
    """One step as netlink requests. `cleanup` is sent if the first request succeeded and a later one
    failed, so that a failed step leaves nothing behind."""

    requests: list[transport.Request]
    cleanup: transport.Request | None = None


@dataclass
class _Pending:
    """Steps waiting to be sent to one namespace's socket: (position in the run, step, op)."""

    namespace: str | None = None
    items: list[tuple[int, Step, _Op]] = field(default_factory=list)


class Kernel:
    """Talks to the running kernel. One instance per run; `close()` releases its sockets and fds."""

    def __init__(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:  # two fds per namespace (the netns and a socket): lift the 1024 default
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self._home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._fds: dict[str, int] = {HOST: self._home}
        self._sockets: dict[str, transport.Socket] = {}
        self._nsids: dict[tuple[str, str], int | None] = {}
        self._taken: dict[str, set[int]] = {}  # ifindexes seen (or chosen) per namespace
        self._indexes: dict[str, dict[str, int]] = {}  # namespace -> name -> ifindex of links made here

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        for ns, fd in self._fds.items():
            if ns != HOST:
                os.close(fd)
        os.close(self._home)
        self._sockets.clear()
        self._fds.clear()

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
        except (FileNotFoundError, NotADirectoryError):
            return None
        # An empty file left by an interrupted create is not a namespace: setns() refuses it. The
        # socket is opened while inside, so that each namespace is entered once.
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            os.close(fd)
            return None
        try:
            self._sockets[ns] = transport.Socket()
        finally:
            _check(_libc.setns(self._home, CLONE_NEWNET), "return to the root namespace")
        self._fds[ns] = fd
        return fd

    def _sock(self, ns: str) -> transport.Socket:
        sock = self._sockets.get(ns)
        if sock is not None:
            return sock
        if ns == HOST:
            sock = self._sockets[HOST] = transport.Socket()
            return sock
        if self._fd(ns) is None:
            raise KernelError.of(errno.ENOENT, f"namespace {ns}")
        return self._sockets[ns]

    def _forget(self, ns: str) -> None:
        sock = self._sockets.pop(ns, None)
        if sock is not None:
            sock.close()
        fd = self._fds.pop(ns, None)
        if fd is not None and ns != HOST:
            os.close(fd)
        if ns != HOST:
            # Ids and indexes that involve the namespace are stale now. Clearing the (small, lazily
            # refilled) id cache whole keeps this O(1) per namespace: destroy forgets thousands in a row.
            self._nsids.clear()
            self._indexes.pop(ns, None)
        self._taken.pop(ns, None)

    def remove_empty_mount_points(self, names) -> None:
        """Unlink /run/netns/NAME for each name whose file is empty and not a namespace: the mount point
        of an interrupted create (ours, or `ip netns add`'s)."""
        for ns in names:
            path = os.path.join(NETNS_DIR, ns)
            if os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) == 0 \
                    and not os.path.ismount(path) and self._fd(ns) is None:
                os.unlink(path)

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
        raw: dict[str, dict[int, dict]] = {HOST: self._dump(HOST)}
        for ns in sorted(wanted):
            if self._fd(ns) is not None:
                raw[ns] = self._dump(ns)
        peers = self._peers(raw)
        result = {}
        for ns, dumped in raw.items():
            links = {}
            for info in dumped.values():
                link = self._link(info, dumped, peers.get((ns, info["index"])))
                links[link.name] = link
            if ns == HOST:
                # The root namespace's own links, and the user's ports on them: a rollback that rebuilds a
                # bridge takes those back too.
                ours = {n: l for n, l in links.items() if l.owner == topology or n in host_links}
                links = {n: l for n, l in links.items() if n in ours or (
                         l.master in ours and ours[l.master].kind == "bridge")}
            owner = None if ns == HOST else links.get(LOOPBACK, Link(LOOPBACK, "loopback")).owner
            result[ns] = Namespace(ns, owner, links)
        return State(result)

    def _lo_owner(self, ns: str) -> str | None:
        try:
            reply = self._sock(ns).get(nl.RTM_GETLINK, nl.ifinfo(index=1))
        except OSError:
            return None
        return owner_from_alias(nl.decode_link(reply)["alias"])

    def _dump(self, ns: str) -> dict[int, dict]:
        """The namespace's links by ifindex, each with its addresses."""
        sock = self._sock(ns)
        links = {}
        for kind, message in sock.dump(nl.RTM_GETLINK, nl.link_dump_request()):
            if kind == nl.RTM_NEWLINK:
                info = nl.decode_link(message)
                links[info["index"]] = info
        self._taken.setdefault(ns, set()).update(links)
        for kind, message in sock.dump(nl.RTM_GETADDR, nl.ifaddr(socket.AF_UNSPEC, 0, 0)):
            got = nl.decode_address(message) if kind == nl.RTM_NEWADDR else None
            if got is None:
                continue
            index, family, packed, prefixlen, flags = got
            link = links.get(index)
            if link is None or not flags & nl.IFA_F_PERMANENT:
                continue  # dynamic addresses (SLAAC, DHCP) belong to the kernel or a daemon
            if family == socket.AF_INET:
                text = socket.inet_ntop(family, packed)
            elif packed[0] == 0xFE and packed[1] & 0xC0 == 0x80:
                continue  # fe80::/10, the kernel's own link-local addresses
            else:
                text = str(ipaddress.IPv6Address(packed))  # the same spelling as the topology's, normalized
            link["addresses"].add(f"{text}/{prefixlen}")
        return links

    def _peers(self, raw: dict[str, dict[int, dict]]) -> dict[tuple[str, int], tuple[str, dict]]:
        """The other end of every veth among the namespaces read, keyed by (namespace, ifindex): reciprocal
        ifindexes, and (across namespaces) the peer namespace's id as seen from this one, which is what
        IFLA_LINK_NETNSID names. Candidates are found through an index, so this is linear in links."""
        by_pair: dict[tuple[int, int], list[tuple[str, dict]]] = {}
        for ns, links in raw.items():
            for info in links.values():
                if info["kind"] == "veth" and info["link"]:
                    by_pair.setdefault((info["index"], info["link"]), []).append((ns, info))
        found: dict[tuple[str, int], tuple[str, dict]] = {}
        for (index, link), ends in by_pair.items():
            for ns, info in ends:
                if (ns, index) in found:
                    continue
                if info["link_nsid"] is None:
                    other = raw[ns].get(link)
                    if other and other["kind"] == "veth":
                        found[(ns, index)] = (ns, other)
                    continue
                for other_ns, other in by_pair.get((link, index), ()):
                    if other_ns != ns and self._nsid(ns, other_ns) == info["link_nsid"]:
                        found[(ns, index)] = (other_ns, other)
                        found[(other_ns, link)] = (ns, info)
                        break
        return found

    def _nsid(self, ns: str, other: str) -> int | None:
        """The id that namespace `ns` knows namespace `other` by."""
        key = (ns, other)
        if key not in self._nsids:
            reply = self._sock(ns).get(nl.RTM_GETNSID, nl.nsid_request(self._fd(other)))
            self._nsids[key] = nl.decode_nsid(reply)
        return self._nsids[key]

    def _link(self, info: dict, links: dict[int, dict], found: tuple[str, dict] | None) -> Link:
        peer = (found[0], found[1]["name"]) if found else None
        master = links.get(info["master"], {}).get("name") if info["master"] else None
        owner = owner_from_alias(info["alias"])
        if owner is None and found:
            owner = owner_from_alias(found[1]["alias"])  # a veth pair is one object: either end's mark counts
        loopback = info["kind"] == "loopback"
        return Link(
            name=info["name"],
            kind=info["kind"],
            peer=peer,
            master=master,
            addresses=None if loopback else frozenset(info["addresses"]),
            up=info["up"],
            mtu=info["mtu"],
            mac=None if loopback else info["mac"],
            owner=owner,
        )

    # --- writing -------------------------------------------------------------------------------------

    def execute(self, steps: list[Step] | tuple[Step, ...], topology: str,
                results: list[tuple[int, KernelError | None]]) -> None:
        """Run steps in order, appending (position, None or the error) to `results` as each batch comes
        back. Stops after the first batch in which a step failed; steps after it were not run. A failed
        step has changed nothing (a compound step undoes its own first half); deleting what is already
        gone counts as success."""
        alias = mark(topology)
        pending = _Pending()
        failed = False
        held: list[int] = []  # deleted namespaces whose teardown has not been waited for
        dying: list[str] = []  # the veth ends elsewhere that go with them

        def flush() -> bool:
            nonlocal failed
            if pending.items and not failed:
                failed = self._send(pending, results)
            pending.namespace, pending.items = None, []
            if held and not failed:
                with _signals_held():
                    error = self._await_gone(dying)
                if error is not None:  # the deletions are done (and recorded); the last one is also failed
                    results.append((held[-1], error))
                    failed = True
            held.clear()
            dying.clear()
            return not failed

        for position, step in enumerate(steps):
            if step.action in ("create_netns", "delete_netns"):
                if (pending.items or step.action == "create_netns") and not flush():
                    return
                with _signals_held():
                    try:
                        getattr(self, "_" + step.action)(step, alias)
                    except OSError as exc:
                        flush()
                        results.append((position, exc if isinstance(exc, KernelError)
                                        else KernelError.of(exc.errno or 0)))
                        return
                    results.append((position, None))
                    if step.action == "delete_netns":
                        held.append(position)
                        dying.extend(step.value or ())
                continue
            if (pending.namespace != step.namespace or held) and not flush():
                return
            try:
                op = self._op(step, alias, flush)
            except KernelError as exc:
                if not flush():
                    return
                results.append((position, exc))
                return
            if failed:
                return
            if op is None:  # nothing to do: already so
                if not flush():
                    return
                results.append((position, None))
                continue
            pending.namespace = step.namespace
            pending.items.append((position, step, op))
        flush()

    def _await_gone(self, ends: list[str], timeout: float = 60.0) -> KernelError | None:
        """Wait until the kernel's teardown of deleted namespaces has removed the veth ends they took
        with them ("namespace/name"), so that what comes next (a link of the same name) does not find
        them still there. One end is probed at a time: while it is there, the ones after it (torn down
        later, or with it) are not asked about."""
        deadline, pause = time.monotonic() + timeout, 0.001
        for end in ends:
            ns, name = end.split("/", 1)
            probe = nl.link_by_name(name)
            while self._fd(ns) is not None and self._sock(ns).batch([probe])[0] != errno.ENODEV:
                if time.monotonic() > deadline:
                    return KernelError.of(errno.ETIMEDOUT, f"the kernel has not finished removing {end} "
                                                          f"after {timeout:.0f} s")
                time.sleep(pause)
                pause = min(pause * 2, 0.02)
        return None

    def _send(self, pending: _Pending, results: list) -> bool:
        """Send one namespace's batch; record each step's result. True if any step failed."""
        sock = self._sock(pending.namespace)
        with _signals_held():
            codes = sock.batch([r for _, _, op in pending.items for r in op.requests])
            at, failed, outcome = 0, False, []
            for position, step, op in pending.items:
                mine = codes[at:at + len(op.requests)]
                at += len(op.requests)
                code = next((c for c in mine if c), 0)
                if code and not mine[0] and op.cleanup is not None:
                    sock.batch([op.cleanup])
                if (step.action, code) in _ALREADY_SO:
                    code = 0
                if step.action == "delete_link" or (step.action == "create_link" and code):
                    # The link is gone, or was never made: forget the ifindexes remembered for it.
                    self._indexes.get(step.namespace, {}).pop(step.name, None)
                    peer = (step.value or step.before or {}).get("peer")
                    if peer:
                        self._indexes.get(peer["namespace"], {}).pop(peer["name"], None)
                outcome.append((position, KernelError.of(code) if code else None))
                failed = failed or bool(code)
            results.extend(outcome)
        return failed

    def _index(self, ns: str, name: str, flush) -> int | None:
        """The ifindex of a link, or None if there is none. Steps still waiting in the batch may be the
        ones that create it, so they are sent first."""
        known = self._indexes.get(ns, {}).get(name)
        if known is not None:
            return known
        for attempt in (0, 1):
            try:
                probe = nl.link_by_name(name)
                return nl.decode_link(self._sock(ns).get(probe.type, probe.body))["index"]
            except transport.NetlinkError as exc:
                if exc.errno != errno.ENODEV:
                    raise KernelError.of(exc.errno, f"look up {ns}/{name}") from None
                if attempt or not flush():
                    return None
        return None

    def _op(self, step: Step, alias: str, flush) -> _Op | None:
        """The netlink requests of one step, or None if there is nothing to do."""
        ns, name, a = step.namespace, step.name, step.action
        self._sock(ns)  # a missing namespace fails this step, not the batch
        if a == "create_link":
            return self._create_link(step, alias)
        if a == "delete_link":
            return _Op([nl.del_link(name)])
        if a == "set_up" or a == "set_down":
            return _Op([nl.set_link(name, up=a == "set_up")])
        if a == "set_mtu":
            return _Op([nl.set_link(name, mtu=step.value)])
        if a == "set_mac":
            return _Op([nl.set_link(name, mac=_mac(step.value))])
        if a == "clear_master":
            return _Op([nl.set_link(name, master=0)])
        if a == "set_master":
            master = self._index(ns, step.value, flush)
            if master is None:
                raise KernelError.of(errno.ENODEV, f"link {ns}/{step.value}")
            return _Op([nl.set_link(name, master=master)])
        if a in ("add_address", "delete_address"):
            index = self._index(ns, name, flush)
            if index is None:
                if a == "delete_address":
                    return None  # the link is gone, and its addresses with it
                raise KernelError.of(errno.ENODEV, f"link {ns}/{name}")
            iface = ipaddress.ip_interface(step.value)
            family = socket.AF_INET if iface.version == 4 else socket.AF_INET6
            return _Op([nl.address(a == "add_address", index, family, iface.ip.packed, iface.network.prefixlen)])
        raise ValueError(f"unknown action {a}")

    def _create_link(self, step: Step, alias: str) -> _Op:
        """Create the link at an ifindex of our choosing, then mark it by that index, in one batch. The
        kernel runs both in the same syscall, so a crash cannot leave an unmarked link; and if the create
        fails (the name is taken), the mark goes to an index that is free, never to the link that has the
        name. The index is random above 2^24, where the kernel's own counter does not reach, and not one
        that this run has seen in the namespace."""
        spec = step.value
        index = self._free_index(step.namespace)
        peer = None
        if spec.get("peer"):
            p = spec["peer"]
            peer = {"name": p["name"], "mtu": p.get("mtu"), "mac": _mac(p.get("mac"))}
            if p["namespace"] != step.namespace:
                peer["net_ns_fd"] = self._fd(p["namespace"])
                if peer["net_ns_fd"] is None:
                    raise KernelError.of(errno.ENOENT, f"namespace {p['namespace']}")
            # The peer's index is chosen too (the kernel allows it when the first end's is): the steps
            # that address the peer then need no lookup.
            peer["index"] = self._free_index(p["namespace"])
            self._indexes.setdefault(p["namespace"], {})[p["name"]] = peer["index"]
        self._indexes.setdefault(step.namespace, {})[step.name] = index
        return _Op([nl.new_link(step.name, spec["kind"], index, spec.get("mtu"), _mac(spec.get("mac")), peer),
                    nl.set_link(index=index, alias=alias)],
                   cleanup=nl.del_link(index=index))

    def _free_index(self, ns: str) -> int:
        taken = self._taken.setdefault(ns, set())
        while True:
            index = (1 << 24) + int.from_bytes(os.urandom(4)) % ((1 << 31) - (1 << 24) - 1)
            if index not in taken:
                taken.add(index)
                return index

    def _create_netns(self, step: Step, alias: str) -> None:
        path = os.path.join(NETNS_DIR, step.namespace)
        _prepare_netns_dir()
        self.remove_empty_mount_points([step.namespace])
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
        os.close(fd)
        mounted, sock, nsfd = False, None, None
        try:
            _check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            try:
                # Mark lo before the namespace gets its name: a crash in between leaves nothing behind.
                sock = transport.Socket()
                sock.request(nl.set_link(index=1, alias=alias))
                nsfd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                _check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None),
                       f"mount {path}")
                mounted = True
            finally:
                _check(_libc.setns(self._home, CLONE_NEWNET), "return to the root namespace")
        finally:
            if not mounted:
                os.unlink(path)
                if sock is not None:
                    sock.close()
                if nsfd is not None:
                    os.close(nsfd)
        self._sockets[step.namespace] = sock
        self._fds[step.namespace] = nsfd

    def _delete_netns(self, step: Step, alias: str) -> None:
        self._forget(step.namespace)
        path = os.path.join(NETNS_DIR, step.namespace)
        _libc.umount2(path.encode(), MNT_DETACH)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _mac(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text.replace(":", ""))


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
