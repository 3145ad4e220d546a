"""The netlink transport: frames requests, sends them in batches, and reads back every acknowledgement,
dump and reply. Nothing here knows what a message means: `rtnl.py` builds and reads rtnetlink messages.

It sends many requests in one `sendmsg` and matches each acknowledgement to its request by sequence
number, so that a failure inside a batch is still attributed to the one request that failed. No reply is
lost without a word; how the kernel can lose or refuse one (net/netlink/af_netlink.c; iproute2's
lib/libnetlink.c reads replies the same way):

- rtnetlink runs every request of a `sendmsg` inside that syscall and queues one ack per request on the
  socket, dropping an ack that does not fit the receive buffer (and, the socket being congested, every
  ack after it until it is read empty); the next recv fails with ENOBUFS. So a batch is cut to what the
  buffer holds, and a request whose ack was still dropped is reported LOST: it may or may not have run.
- A dump ends with NLMSG_DONE, which carries an error code (a refused dump is an error, not an empty
  answer) and NLM_F_DUMP_INTR if the set changed while it was read (then it is read again).
- Acks and NLMSG_DONE carry the kernel's own explanation (extended ack attributes, NLM_F_ACK_TLVS).
- recv cuts a datagram longer than the read buffer: that is detected (MSG_TRUNC) and never parsed.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
import time
from _thread import get_ident
from collections.abc import Iterator, Sequence
from typing import NamedTuple

# netlink
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP_INTR, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x10, 0x300
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200  # on an ack: the request is not echoed; attributes follow
NLMSGERR_ATTR_MSG = 1
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11
SO_RCVBUFFORCE = 33

HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid
_ERR = struct.Struct("=i")
_ATTR = struct.Struct("=HH")
_SEQ_MASK = 0xFFFFFFFF
_MSG_TRUNC, _MSG_DONTWAIT = int(socket.MSG_TRUNC), int(socket.MSG_DONTWAIT)  # plain ints: enum `|` is slow

LOST = -1  # the result of a request whose ack the kernel dropped: no errno is negative, and it is truthy
CHUNK = 1 << 16  # bytes of requests per sendmsg (the kernel refuses more than its send buffer, 208 KiB)
RCVBUF = 1 << 22  # the receive buffer asked for; the kernel doubles it
RECV = 1 << 16  # bytes per recv(); a dump datagram is at most 32 KiB unless one message alone is larger
# What one ack takes of the receive buffer: its skb's truesize, which the kernel counts against it.
# Measured on 6.18 (/proc/net/netlink, Rmem): 832 bytes for an ack of up to ~200 bytes, a success ack (36)
# or an error ack with an extended-ack message (120 for "Attribute failed policy validation"); 1280 from
# 256 to 656 bytes; 2304 beyond. With NETLINK_CAP_ACK an error ack is 36 bytes and its attributes, whose
# message is short, so batches are sized at 1280: a batch that fails request after request still keeps
# all its acks.
ACK_COST = 1280
DUMP_RETRIES = 10  # reads of a dump again after one that the kernel marked inconsistent
DUMP_PAUSE = 0.005  # before the first read again; doubled before each next: 10 reads span about 5 s
# Read buffers, one per size and thread, shared by the sockets a thread makes: a run holds a socket per
# namespace (a thousand at N=1000) and reads them one at a time, and every reply is copied out (or fully
# parsed) before the next read. One 64 KiB buffer per socket cost 64 MiB and ~50 ms of page faults at
# N=1000. Per thread, because sockets of two threads read at the same time (a test's churning thread).
_BUFFERS: dict[tuple[int, int], bytearray] = {}  # (thread, size) -> buffer


class Request(NamedTuple):
    """One netlink request: message type, flags (NLM_F_REQUEST | NLM_F_ACK are added) and body. A
    NamedTuple, as Ack: a 300-router chain sends 89,102 route requests."""

    type: int
    flags: int
    body: bytes


class Ack(NamedTuple):
    """The outcome of one request: `code` 0 (done), the kernel's errno (refused) or LOST (unknown), and
    for a refusal the kernel's own explanation when it gave one ("Attribute failed policy validation")."""

    code: int
    message: str | None


OK = Ack(0, None)
LOST_ACK = Ack(LOST, "the kernel dropped this request's acknowledgement (the socket's receive buffer was full): "
                     "it may or may not have been done")


class NetlinkError(OSError):
    """A request the kernel refused (`errno` is the kernel's error, `detail` its own explanation if it gave
    one), or a reply that cannot be read."""

    errno: int  # always set, by __init__ (OSError's may be None)

    def __init__(self, code: int, text: str | None = None, detail: str | None = None):
        super().__init__(code, text or os.strerror(code))
        self.detail = detail

    def __str__(self) -> str:
        text = super().__str__()
        return f"{text}: {self.detail}" if self.detail else text


class Socket:
    """An rtnetlink socket of the network namespace the calling thread is in when it is made.

    `rcvbuf` is the receive buffer to ask for (RCVBUF if None). Past net.core.rmem_max it takes
    CAP_NET_ADMIN in the initial user namespace (SO_RCVBUFFORCE); without it (in a user namespace, say) the
    socket gets at most rmem_max. `recv_size` is the read buffer.

    Attributes: `rcvbuf`, what the socket got (as the kernel counts it: doubled); `batch_limit`, how many
    acks that holds, so how many requests one sendmsg carries; `dump_retries`, how many times a dump was
    read again because the kernel marked it inconsistent."""

    def __init__(self, rcvbuf: int | None = None, recv_size: int = RECV):
        asked = RCVBUF if rcvbuf is None else rcvbuf
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # an error ack echoes only the header
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, asked)
            except PermissionError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, asked)
            self.sock.bind((0, 0))
        except BaseException:
            self.sock.close()
            raise
        self.rcvbuf: int = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        self.batch_limit = max(1, self.rcvbuf // ACK_COST)
        self.dump_retries = 0
        self.seq = 0
        key = (get_ident(), recv_size)
        self._buf = _BUFFERS.get(key) or _BUFFERS.setdefault(key, bytearray(recv_size))

    def close(self) -> None:
        self.sock.close()

    # --- requests and their acks -------------------------------------------------------------------------

    def acks(self, requests: Sequence[Request]) -> list[Ack]:
        """Send the requests in order, each asking for an ack, and return one Ack per request. The kernel
        handles them one after the other, as if sent one by one, and goes on after a failure: each result
        belongs to its own request. Never raises for a dropped ack: that request's result is LOST."""
        results = [LOST_ACK] * len(requests)
        start = 0
        while start < len(requests):
            first = (self.seq + 1) & _SEQ_MASK
            end = self._send(requests, start)
            self._collect(first, end - start, results, start)
            start = end
        return results

    def batch(self, requests: Sequence[Request]) -> list[int]:
        """One errno per request (0 for success, LOST if its ack was dropped): `acks` without messages."""
        return [ack.code for ack in self.acks(requests)]

    def request(self, request: Request) -> None:
        """Send one request; raise NetlinkError if the kernel refuses it (or its ack was lost)."""
        code, message = self.acks([request])[0]
        if code:
            raise NetlinkError(code, detail=message)

    def _send(self, requests: Sequence[Request], start: int) -> int:
        """Send requests from `start` in one sendmsg, as many as the receive buffer holds acks for and
        CHUNK bytes allow (one at least); return where the next sendmsg starts."""
        frames = []
        size, end, stop, seq = 0, start, min(len(requests), start + self.batch_limit), self.seq
        pack = HEADER.pack
        while end < stop and (size < CHUNK or end == start):
            r = requests[end]
            seq = (seq + 1) & _SEQ_MASK
            frames.append(pack(16 + len(r.body), r.type, r.flags | NLM_F_REQUEST | NLM_F_ACK, seq, 0) + r.body)
            size += 16 + len(r.body)
            end += 1
        self.seq = seq
        self.sock.sendall(b"".join(frames))
        return end

    def _collect(self, first: int, count: int, results: list[Ack], base: int) -> None:
        """Read the acks of `count` requests numbered from `first` into results[base:]. The kernel ran them
        all inside sendmsg, so every ack it kept is queued by now: after ENOBUFS (it dropped some), what
        is queued is read without waiting, and the requests without an ack stay LOST."""
        pending, flags = count, 0
        while pending:
            try:
                n = self._read(flags)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno != errno.ENOBUFS:
                    raise
                flags = _MSG_DONTWAIT
                continue
            for kind, msg_flags, seq, offset, length in self._walk(n):
                i = (seq - first) & _SEQ_MASK
                if kind == NLMSG_ERROR and i < count:
                    code = -_ERR.unpack_from(self._buf, offset + 16)[0]
                    results[base + i] = Ack(code, self._error_message(offset, length, msg_flags)) if code else OK
                    pending -= 1

    # --- dumps and replies -----------------------------------------------------------------------------

    def dump(self, kind: int, body: bytes) -> list[tuple[int, bytes]]:
        """Every reply to a dump request, as (message type, message). NetlinkError if the kernel refuses
        the dump; one that changed while it was read is read again, up to DUMP_RETRIES times, after a
        pause that doubles each time (the churn that interrupts a dump, such as a thousand new links' IPv6
        addresses coming and going, lasts longer than ten reads in a row: the benchmark of issue 11 saw it)."""
        retries, pause = 0, DUMP_PAUSE
        while True:
            self.sock.sendall(self._frame(kind, NLM_F_REQUEST | NLM_F_DUMP, body))
            replies, interrupted = self._replies(self.seq, multi=True)
            if not interrupted:
                return replies
            if retries == DUMP_RETRIES:
                raise NetlinkError(errno.EAGAIN, f"the dump (message type {kind}) kept changing while it was "
                                                 f"read: all {retries + 1} reads were interrupted (NLM_F_DUMP_INTR)")
            retries += 1
            time.sleep(pause)
            pause *= 2
            self.dump_retries += 1

    def get(self, kind: int, body: bytes) -> bytes:
        """The one message that answers a non-dump request; NetlinkError if the kernel refuses it."""
        self.sock.sendall(self._frame(kind, NLM_F_REQUEST, body))
        replies, _ = self._replies(self.seq, multi=False)
        if not replies:
            raise NetlinkError(0, "no reply")
        return replies[0][1]

    def _frame(self, kind: int, flags: int, body: bytes) -> bytes:
        """One message with the next sequence number."""
        self.seq = (self.seq + 1) & _SEQ_MASK
        return HEADER.pack(16 + len(body), kind, flags, self.seq, 0) + body

    def _replies(self, seq: int, multi: bool) -> tuple[list[tuple[int, bytes]], bool]:
        """The messages answering request `seq` up to its end, and whether the kernel marked any of them
        NLM_F_DUMP_INTR. An error in NLMSG_DONE or NLMSG_ERROR raises NetlinkError."""
        out: list[tuple[int, bytes]] = []
        interrupted = False
        buf, view = self._buf, memoryview(self._buf)
        while True:
            for kind, flags, got, offset, length in self._walk(self._read()):
                if got != seq:
                    continue
                interrupted = interrupted or bool(flags & NLM_F_DUMP_INTR)
                if kind == NLMSG_DONE:
                    self._check_done(offset, length, flags)
                    return out, interrupted
                if kind == NLMSG_ERROR:
                    code = -_ERR.unpack_from(buf, offset + 16)[0]
                    if code:
                        raise NetlinkError(code, detail=self._error_message(offset, length, flags))
                    return out, interrupted
                out.append((kind, bytes(view[offset:offset + length])))
                if not multi and not flags & NLM_F_MULTI:
                    return out, interrupted

    def _check_done(self, offset: int, length: int, flags: int) -> None:
        """NLMSG_DONE carries the dump's result, an int (negative errno), and attributes after it."""
        code = -_ERR.unpack_from(self._buf, offset + 16)[0] if length >= 20 else 0
        if code:
            detail = self._text(offset + 20, offset + length) if flags & NLM_F_ACK_TLVS else None
            raise NetlinkError(code, detail=detail)

    # --- reading ---------------------------------------------------------------------------------------

    def _read(self, flags: int = 0) -> int:
        """Read one datagram into the buffer; its length. MSG_TRUNC makes recv return the datagram's real
        length: a longer one lost its tail, so it is an error, never parsed."""
        n = self.sock.recv_into(self._buf, 0, flags | _MSG_TRUNC)
        if n > len(self._buf):
            raise NetlinkError(errno.EMSGSIZE, f"a netlink reply of {n} bytes was cut to the "
                                               f"{len(self._buf)}-byte read buffer")
        return n

    def _walk(self, n: int) -> Iterator[tuple[int, int, int, int, int]]:
        """The messages of the datagram in buf[:n]: (type, flags, sequence number, offset, length)."""
        buf, offset = self._buf, 0
        while offset + 16 <= n:
            length, kind, flags, seq, _ = HEADER.unpack_from(buf, offset)
            if length < 16 or offset + length > n:
                raise NetlinkError(errno.EBADMSG, "malformed netlink reply")
            yield kind, flags, seq, offset, length
            offset += (length + 3) & ~3

    def _error_message(self, offset: int, length: int, flags: int) -> str | None:
        """The kernel's explanation in an NLMSG_ERROR: its attributes follow the error code and the
        request's header (the whole request, aligned, unless NLM_F_CAPPED)."""
        if not flags & NLM_F_ACK_TLVS:
            return None
        echoed = 16 if flags & NLM_F_CAPPED else HEADER.unpack_from(self._buf, offset + 20)[0]
        return self._text(offset + 20 + ((echoed + 3) & ~3), offset + length)

    def _text(self, pos: int, end: int) -> str | None:
        """NLMSGERR_ATTR_MSG among the attributes in buf[pos:end]."""
        buf = self._buf
        while pos + 4 <= end:
            length, kind = _ATTR.unpack_from(buf, pos)
            if length < 4:
                break
            if kind == NLMSGERR_ATTR_MSG:
                return bytes(buf[pos + 4:min(pos + length, end)]).rstrip(b"\0").decode(errors="replace") or None
            pos += (length + 3) & ~3
        return None
