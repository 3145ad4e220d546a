"""Namespace handles: the fds and netlink sockets of the network namespaces a run touches, and creating
and deleting namespaces (unshare, bind mount under /run/netns, as `ip netns add` does).

No process is forked, not even per namespace: a netlink socket belongs to the network namespace its
creator was in when it was opened, so the thread `setns()`s into the namespace, opens the socket, and
returns. Each namespace is entered once per run. Opening a handle never creates anything.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import signal
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from ..errors import KernelError
from ..netlink import rtnl, transport
from ..state import HOST

NETNS_DIR = "/run/netns"
CLONE_NEWNET = 0x40000000
MS_BIND, MS_REC, MS_SHARED = 4096, 16384, 1 << 20
MNT_DETACH = 2
SIGNALS = {signal.SIGINT, signal.SIGTERM}

_libc = ctypes.CDLL(None, use_errno=True)


def check(ret: int, what: str) -> None:
    if ret != 0:
        raise KernelError.of(ctypes.get_errno(), what)


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM for the duration: they are delivered (and raise) when it ends."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class Namespaces:
    """The handles of one run, and what the run knows of each namespace: the ifindexes seen in it (so a
    chosen one is free) and the ifindexes of links by name (read, or chosen when the run made them)."""

    def __init__(self) -> None:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:  # two fds per namespace (the netns and a socket): lift the 1024 default
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        self.home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        self._fds: dict[str, int] = {HOST: self.home}
        self._sockets: dict[str, transport.Socket] = {}
        self.nsids: dict[tuple[str, str], int | None] = {}
        self.taken: dict[str, set[int]] = {}  # ifindexes seen (or chosen) per namespace
        self.indexes: dict[str, dict[str, int]] = {}  # namespace -> name -> ifindex, of links made here

    def close(self) -> None:
        for sock in self._sockets.values():
            sock.close()
        for ns, fd in self._fds.items():
            if ns != HOST:
                os.close(fd)
        os.close(self.home)
        self._sockets.clear()
        self._fds.clear()

    def fd(self, ns: str) -> int | None:
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
            check(_libc.setns(self.home, CLONE_NEWNET), "return to the root namespace")
        self._fds[ns] = fd
        return fd

    def sock(self, ns: str) -> transport.Socket:
        """The namespace's netlink socket; KernelError ENOENT if the namespace does not exist."""
        sock = self._sockets.get(ns)
        if sock is not None:
            return sock
        if ns == HOST:
            sock = self._sockets[HOST] = transport.Socket()
            return sock
        if self.fd(ns) is None:
            raise KernelError.of(errno.ENOENT, f"namespace {ns}")
        return self._sockets[ns]

    @contextmanager
    def inside(self, ns: str) -> Iterator[None]:
        """Run the block with this thread in namespace `ns` (KernelError ENOENT if it does not exist):
        /proc/sys/net is the namespace of the thread that opens a file there."""
        fd = self.fd(ns)
        if fd is None:
            raise KernelError.of(errno.ENOENT, f"namespace {ns}")
        if ns == HOST:
            yield
            return
        check(_libc.setns(fd, CLONE_NEWNET), f"enter namespace {ns}")
        try:
            yield
        finally:
            check(_libc.setns(self.home, CLONE_NEWNET), "return to the root namespace")

    def scratch(self) -> transport.Socket:
        """A netlink socket in a new, nameless network namespace, which lives only as long as the socket:
        a place to try something out and leave nothing behind."""
        with signals_held():
            check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            try:
                return transport.Socket()
            finally:
                check(_libc.setns(self.home, CLONE_NEWNET), "return to the root namespace")

    def forget(self, ns: str) -> None:
        sock = self._sockets.pop(ns, None)
        if sock is not None:
            sock.close()
        fd = self._fds.pop(ns, None)
        if fd is not None and ns != HOST:
            os.close(fd)
        if ns != HOST:
            # Ids and indexes that involve the namespace are stale now. Clearing the (small, lazily
            # refilled) id cache whole keeps this O(1) per namespace: destroy forgets thousands in a row.
            self.nsids.clear()
            self.indexes.pop(ns, None)
        self.taken.pop(ns, None)

    def names(self) -> list[str]:
        try:
            return sorted(os.listdir(NETNS_DIR))
        except FileNotFoundError:
            return []

    def remove_empty_mount_points(self, names: Iterable[str]) -> None:
        """Unlink /run/netns/NAME for each name whose file is empty and not a namespace: the mount point
        of an interrupted create (ours, or `ip netns add`'s)."""
        for ns in names:
            path = os.path.join(NETNS_DIR, ns)
            if os.path.isfile(path) and not os.path.islink(path) and os.path.getsize(path) == 0 \
                    and not os.path.ismount(path) and self.fd(ns) is None:
                os.unlink(path)

    def create(self, ns: str, alias: str) -> None:
        """A new namespace called `ns`, its lo marked with `alias` before it gets its name: a crash in
        between leaves nothing behind (the namespace dies with the thread's reference)."""
        path = os.path.join(NETNS_DIR, ns)
        _prepare_netns_dir()
        self.remove_empty_mount_points([ns])
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0)
        os.close(fd)
        mounted, sock, nsfd = False, None, None
        try:
            check(_libc.unshare(CLONE_NEWNET), "unshare(CLONE_NEWNET)")
            try:
                sock = transport.Socket()
                sock.request(rtnl.set_link(index=1, alias=alias))
                nsfd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
                check(_libc.mount(b"/proc/thread-self/ns/net", path.encode(), b"none", MS_BIND, None),
                      f"mount {path}")
                mounted = True
            finally:
                check(_libc.setns(self.home, CLONE_NEWNET), "return to the root namespace")
        finally:
            if not mounted:
                os.unlink(path)
                if sock is not None:
                    sock.close()
                if nsfd is not None:
                    os.close(nsfd)
        assert sock is not None and nsfd is not None
        self._sockets[ns] = sock
        self._fds[ns] = nsfd

    def delete(self, ns: str) -> None:
        """Unmount and remove /run/netns/NS; the kernel tears the namespace down once nothing holds it."""
        self.forget(ns)
        path = os.path.join(NETNS_DIR, ns)
        _libc.umount2(path.encode(), MNT_DETACH)
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _prepare_netns_dir() -> None:
    """Make /run/netns a shared mount point, as `ip netns add` does, so that namespaces created here are
    seen from other mount namespaces too."""
    os.makedirs(NETNS_DIR, mode=0o755, exist_ok=True)
    if _libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None) == 0:
        return
    if ctypes.get_errno() != errno.EINVAL:
        check(-1, f"mount --make-shared {NETNS_DIR}")
    check(_libc.mount(NETNS_DIR.encode(), NETNS_DIR.encode(), b"none", MS_BIND | MS_REC, None),
          f"mount --bind {NETNS_DIR}")
    check(_libc.mount(b"", NETNS_DIR.encode(), b"none", MS_SHARED | MS_REC, None),
          f"mount --make-shared {NETNS_DIR}")
