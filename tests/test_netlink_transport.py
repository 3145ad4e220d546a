"""The netlink transport against the real kernel: acks with the kernel's own messages, refused and
interrupted dumps, batches sized to a small receive buffer, acks the kernel really dropped, truncated reads.

Each test works in a network namespace of its own that has no name: it dies with the test's last socket,
so nothing can be left behind. Requests are packed here, independently of rtnl.py.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from netlab.netlink import transport
from netlab.netlink.transport import LOST, OK, Ack, NetlinkError, Request, Socket

from conftest import _require_root, count

CLONE_NEWNET = 0x40000000
NETLINK_GET_STRICT_CHK = 12
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK, RTM_GETMULTICAST = 16, 17, 18, 19, 58
IFLA_IFNAME, IFLA_MTU, IFLA_LINKINFO, IFLA_IFALIAS, IFLA_INFO_KIND = 3, 4, 18, 20, 1
POLICY_MESSAGE = "Attribute failed policy validation"

_libc = ctypes.CDLL(None, use_errno=True)
_IFINFO = struct.Struct("=BxHiII")


def attr(kind: int, data: bytes) -> bytes:
    return struct.pack("=HH", 4 + len(data), kind) + data + b"\0" * (-len(data) & 3)


def ifinfo(index: int = 0) -> bytes:
    return _IFINFO.pack(0, 0, index, 0, 0)


def set_alias(index: int, alias: str) -> Request:
    return Request(RTM_SETLINK, 0, ifinfo(index) + attr(IFLA_IFALIAS, alias.encode()))


def new_bridge(name: str) -> Request:
    return Request(RTM_NEWLINK, 0x600, ifinfo() + attr(IFLA_IFNAME, name.encode() + b"\0")
                   + attr(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"bridge\0")))


def del_link(name: str) -> Request:
    return Request(RTM_DELLINK, 0, ifinfo() + attr(IFLA_IFNAME, name.encode() + b"\0"))


def bad_mtu() -> Request:
    """A link whose IFLA_MTU is 1 byte long instead of 4: the kernel's policy check refuses it."""
    return Request(RTM_NEWLINK, 0x600, ifinfo() + attr(IFLA_MTU, b"\x01") + attr(IFLA_IFNAME, b"x0\0"))


def link_names(sock: Socket) -> list[str]:
    names = []
    for kind, data in sock.dump(RTM_GETLINK, ifinfo()):
        assert kind == RTM_NEWLINK
        pos = 16 + _IFINFO.size
        while pos + 4 <= len(data):
            length, t = struct.unpack_from("=HH", data, pos)
            if t == IFLA_IFNAME:
                names.append(data[pos + 4:pos + length].rstrip(b"\0").decode())
            pos += (length + 3) & ~3
    return names


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "setns")


@contextmanager
def inside(fd: int) -> Iterator[None]:
    """The calling thread in namespace `fd` for the duration."""
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(fd)
        try:
            yield
        finally:
            _setns(home)
    finally:
        os.close(home)


@pytest.fixture
def netns() -> Iterator[int]:
    """An unnamed network namespace, as an fd."""
    _require_root()
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.unshare(CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "unshare")
        fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        _setns(home)
    finally:
        os.close(home)
    yield fd
    os.close(fd)


def open_in(fd: int, **kwargs: Any) -> Socket:
    with inside(fd):
        return Socket(**kwargs)


def test_error_names_the_kernels_explanation():
    e = NetlinkError(errno.ERANGE, detail=POLICY_MESSAGE)
    assert e.errno == errno.ERANGE and e.detail == POLICY_MESSAGE
    assert str(e) == f"[Errno {errno.ERANGE}] {os.strerror(errno.ERANGE)}: {POLICY_MESSAGE}"
    assert str(NetlinkError(errno.ENODEV)) == f"[Errno {errno.ENODEV}] {os.strerror(errno.ENODEV)}"
    assert LOST < 0 and LOST and LOST not in errno.errorcode


@pytest.mark.kernel
@pytest.mark.parametrize("capped", [True, False], ids=["capped", "request-echoed"])
def test_ack_carries_the_kernels_message(netns, capped):
    sock = open_in(netns)
    if not capped:  # the error ack then echoes the whole request before its attributes
        sock.sock.setsockopt(transport.SOL_NETLINK, transport.NETLINK_CAP_ACK, 0)
    refused = Ack(errno.ERANGE, POLICY_MESSAGE)  # what 6.18 says: ERANGE, not EINVAL
    assert sock.acks([set_alias(1, "a"), bad_mtu(), set_alias(1, "b")]) == [OK, refused, OK]
    assert sock.batch([bad_mtu(), set_alias(1, "c")]) == [errno.ERANGE, 0]
    with pytest.raises(NetlinkError) as raised:
        sock.request(bad_mtu())
    assert (raised.value.errno, raised.value.detail) == (errno.ERANGE, POLICY_MESSAGE)
    assert POLICY_MESSAGE in str(raised.value)
    assert sock.acks([del_link("nothere")]) == [Ack(errno.ENODEV, None)]  # refused without a word
    sock.close()


@pytest.mark.kernel
def test_refused_dump_is_an_error_not_an_empty_answer(netns):
    sock = open_in(netns)
    sock.sock.setsockopt(transport.SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
    with pytest.raises(NetlinkError) as raised:  # the error rides on NLMSG_DONE
        sock.dump(RTM_GETLINK, ifinfo(index=1))
    assert raised.value.errno == errno.EINVAL
    assert raised.value.detail == "Filter by device index not supported for link dumps"
    with pytest.raises(NetlinkError) as raised:  # no dump for this family: NLMSG_ERROR answers the request
        sock.dump(RTM_GETMULTICAST, b"\0" * 16)
    assert raised.value.errno == errno.EOPNOTSUPP
    assert link_names(sock) == ["lo"]  # the socket is in step after both
    with pytest.raises(NetlinkError) as raised:
        sock.get(RTM_GETLINK, ifinfo(index=12345))
    assert raised.value.errno == errno.ENODEV
    sock.close()


@pytest.mark.kernel
def test_small_buffer_batches_keep_every_ack(netns):
    sock = open_in(netns, rcvbuf=4096)
    assert sock.rcvbuf == 8192  # the kernel doubles what is asked for
    assert sock.batch_limit == 8192 // transport.ACK_COST
    assert sock.acks([set_alias(1, f"a{i}") for i in range(2000)]) == [OK] * 2000
    # Error acks carry a message and cost as much as success acks or more: a third of them fail.
    mixed = [bad_mtu() if i % 3 == 0 else set_alias(1, f"b{i}") for i in range(2000)]
    expected = [Ack(errno.ERANGE, POLICY_MESSAGE) if i % 3 == 0 else OK for i in range(2000)]
    assert sock.acks(mixed) == expected
    sock.close()


def receive_queue(fd: int, sock: Socket) -> int:
    """Bytes the socket's queued replies take of its receive buffer (Rmem in its namespace's
    /proc/net/netlink)."""
    inode = os.fstat(sock.sock.fileno()).st_ino
    with inside(fd), open("/proc/thread-self/net/netlink") as table:
        rows = [line.split() for line in table.read().splitlines()[1:]]
    return next(int(row[4]) for row in rows if int(row[-1]) == inode)


@pytest.mark.kernel
def test_an_ack_costs_no_more_than_the_batches_are_sized_for(netns):
    sock = open_in(netns)
    for request in (set_alias(1, "x"), bad_mtu()):
        frame = transport.HEADER.pack(16 + len(request.body), request.type, request.flags | 5, 0, 0) + request.body
        sock.sock.sendall(frame * 50)  # unread: the 50 acks wait in the queue
        cost = receive_queue(netns, sock) / 50
        assert cost <= transport.ACK_COST, cost
        for _ in range(50):
            sock.sock.recv(4096)
    sock.close()


@pytest.mark.kernel
def test_dropped_acks_are_lost_not_an_exception(netns):
    sock = open_in(netns, rcvbuf=4096)
    sock.batch_limit = 1 << 20  # bypass the sizing: a whole CHUNK of requests at once
    codes = sock.batch([set_alias(1, f"a{i}") for i in range(2000)])
    lost = codes.count(LOST)
    assert lost > 1000 and codes.count(0) == 2000 - lost
    # The socket stays in step: the next requests get their own acks, a dump its own replies.
    assert sock.acks([bad_mtu()]) == [Ack(errno.ERANGE, POLICY_MESSAGE)]
    assert sock.acks([set_alias(1, "after")]) == [OK]
    assert link_names(sock) == ["lo"]
    sock.close()


@pytest.mark.kernel
def test_sequence_numbers_wrap(netns):
    sock = open_in(netns)
    sock.seq = 0xFFFFFFFF - 3
    assert sock.acks([bad_mtu() if i == 5 else set_alias(1, f"w{i}") for i in range(8)]) == \
        [OK] * 5 + [Ack(errno.ERANGE, POLICY_MESSAGE)] + [OK] * 2
    assert sock.seq == 4
    sock.close()


@pytest.mark.kernel
def test_truncated_datagram_is_an_error(netns):
    sock = open_in(netns, recv_size=64)
    assert sock.acks([set_alias(1, "fits")]) == [OK]  # a success ack is 36 bytes
    with pytest.raises(NetlinkError) as raised:  # the error ack with its message is 120
        sock.acks([bad_mtu()])
    assert raised.value.errno == errno.EMSGSIZE and "cut to the 64-byte read buffer" in str(raised.value)
    sock.close()
    sock = open_in(netns, recv_size=64)
    with pytest.raises(NetlinkError) as raised:
        sock.dump(RTM_GETLINK, ifinfo())
    assert raised.value.errno == errno.EMSGSIZE
    sock.close()


@contextmanager
def churning(fd: int) -> Iterator[list[int]]:
    """Another thread adds and deletes a bridge in namespace `fd` over and over; yields [cycles done]."""
    stop = threading.Event()
    cycles = [0]

    def run() -> None:
        sock = open_in(fd)
        while not stop.is_set():
            assert sock.batch([new_bridge("churn")]) == [0]
            assert sock.batch([del_link("churn")]) == [0]
            cycles[0] += 1
        sock.close()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        yield cycles
    finally:
        stop.set()
        thread.join()


@pytest.mark.kernel
def test_dump_interrupted_by_a_change_is_read_again(netns, figures):
    sock = open_in(netns)
    # Enough links for a dump of several datagrams: the kernel marks one inconsistent (NLM_F_DUMP_INTR)
    # when the set changed between two of them.
    stable = {f"b{i}" for i in range(100)}
    assert sock.batch([new_bridge(name) for name in sorted(stable)]) == [0] * 100
    dumps, deadline = 0, time.monotonic() + 30
    with churning(netns) as cycles:
        while sock.dump_retries < 5 and time.monotonic() < deadline:
            names = link_names(sock)
            dumps += 1
            assert len(names) == len(set(names))
            assert set(names) - {"churn"} == stable | {"lo"}
    count(figures, "link dumps read under churn", dumps)
    count(figures, "link dumps read again after NLM_F_DUMP_INTR", sock.dump_retries)
    assert cycles[0] > 0 and sock.dump_retries >= 5, (dumps, cycles)
    sock.close()


@pytest.mark.kernel
def test_dump_that_keeps_changing_is_an_error(netns, monkeypatch):
    monkeypatch.setattr(transport, "DUMP_RETRIES", 0)  # the first interrupted read is the last
    sock = open_in(netns)
    assert sock.batch([new_bridge(f"b{i}") for i in range(100)]) == [0] * 100
    deadline = time.monotonic() + 30
    with churning(netns), pytest.raises(NetlinkError) as raised:
        while time.monotonic() < deadline:
            link_names(sock)
    assert raised.value.errno == errno.EAGAIN and "kept changing" in str(raised.value)
    assert sock.dump_retries == 0
    sock.close()
