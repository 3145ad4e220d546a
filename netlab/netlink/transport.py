"""The netlink transport: frames requests, sends them in batches, and reads back every acknowledgement,
dump and reply. Nothing here knows what a message means: `rtnl.py` builds and reads rtnetlink messages.

It sends many requests in one `sendmsg` and matches each acknowledgement to its request by sequence
number, so that a failure inside a batch is still attributed to the one request that failed.
"""

from __future__ import annotations

import os
import socket
import struct
from dataclasses import dataclass

# netlink
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x2, 0x4, 0x300
NLM_F_EXCL, NLM_F_CREATE = 0x200, 0x400
SOL_NETLINK, NETLINK_CAP_ACK, NETLINK_EXT_ACK = 270, 10, 11

HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid
_ERR = struct.Struct("=i")
CHUNK = 1 << 16  # bytes of requests per sendmsg; their acks fit the receive buffer many times over
SO_RCVBUFFORCE = 33
RCVBUF = 1 << 22  # the socket's receive buffer: room for the acks of a whole chunk
RECV = 1 << 16  # bytes per recv(); the kernel fills at most 32 KiB per dump message batch


@dataclass(frozen=True)
class Request:
    """One netlink request: message type, flags (NLM_F_REQUEST | NLM_F_ACK are added) and body."""

    type: int
    flags: int
    body: bytes


class NetlinkError(OSError):
    """A request the kernel refused (`errno` is the kernel's error), or a reply that cannot be read."""


class Socket:
    """An rtnetlink socket of the network namespace the calling thread is in when it is made."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        try:
            self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)  # an error ack echoes only the header
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)  # needs CAP_NET_ADMIN
            except OSError:
                pass
            self.sock.bind((0, 0))
        except BaseException:
            self.sock.close()
            raise
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def _frame(self, kind: int, flags: int, body: bytes) -> bytes:
        """One message with the next sequence number."""
        self.seq += 1
        return HEADER.pack(16 + len(body), kind, flags, self.seq, 0) + body

    def _messages(self):
        """The messages of one datagram: (type, flags, sequence number, buffer, offset, length)."""
        data = self.sock.recv(RECV)
        offset = 0
        while offset + 16 <= len(data):
            length, kind, flags, seq, _ = HEADER.unpack_from(data, offset)
            if length < 16:
                raise NetlinkError(0, "malformed netlink reply")
            yield kind, flags, seq, data, offset, length
            offset += (length + 3) & ~3

    def batch(self, requests: list[Request]) -> list[int]:
        """Send the requests in order, as few sendmsg calls as fit, each asking for an ack; return one
        errno per request (0 for success). The kernel handles them one after the other, as if sent one
        by one, and goes on after a failure: each result belongs to its own request."""
        results = [0] * len(requests)
        start = 0
        while start < len(requests):
            first_seq = self.seq + 1
            packed, size, end = [], 0, start
            while end < len(requests) and (size < CHUNK or end == start):
                r = requests[end]
                packed.append(self._frame(r.type, r.flags | NLM_F_REQUEST | NLM_F_ACK, r.body))
                size += len(packed[-1])
                end += 1
            self.sock.sendall(b"".join(packed))
            self._acks(first_seq, end - start, results, start)
            start = end
        return results

    def _acks(self, first_seq: int, count: int, results: list[int], base: int) -> None:
        pending = count
        while pending:
            for kind, _, seq, data, offset, _ in self._messages():
                if kind == NLMSG_ERROR and first_seq <= seq < first_seq + count:
                    results[base + seq - first_seq] = -_ERR.unpack_from(data, offset + 16)[0]
                    pending -= 1

    def request(self, request: Request) -> None:
        """Send one request; raise NetlinkError if the kernel refuses it."""
        code = self.batch([request])[0]
        if code:
            raise NetlinkError(code, os.strerror(code))

    def dump(self, kind: int, body: bytes) -> list[tuple[int, bytes]]:
        """Every reply to a dump request, as (message type, message)."""
        self.sock.sendall(self._frame(kind, NLM_F_REQUEST | NLM_F_DUMP, body))
        return self._replies(self.seq)

    def get(self, kind: int, body: bytes) -> bytes:
        """The one message that answers a non-dump request; NetlinkError if the kernel refuses it."""
        self.sock.sendall(self._frame(kind, NLM_F_REQUEST, body))
        replies = self._replies(self.seq, multi=False)
        if not replies:
            raise NetlinkError(0, "no reply")
        return replies[0][1]

    def _replies(self, seq: int, multi: bool = True) -> list[tuple[int, bytes]]:
        out = []
        while True:
            for kind, flags, got, data, offset, length in self._messages():
                if got != seq:
                    continue
                if kind == NLMSG_DONE:
                    return out
                if kind == NLMSG_ERROR:
                    code = -_ERR.unpack_from(data, offset + 16)[0]
                    if code:
                        raise NetlinkError(code, os.strerror(code))
                    return out
                out.append((kind, data[offset:offset + length]))
                if not multi and not flags & NLM_F_MULTI:
                    return out


