"""tun and tap devices: made through /dev/net/tun (rtnetlink refuses to: tun's validate answers "tun/tap
creation via rtnetlink is not supported"), read back from a link dump's IFLA_TUN_* attributes, deleted over
rtnetlink like any link (RTM_DELLINK: rtnl_link_register gives tun's link ops unregister_netdevice_queue
for dellink, and a persistent device with no descriptor attached goes at once).

Creation, in this order (drivers/net/tun.c, include/uapi/linux/if_tun.h):

1. open /dev/net/tun from this thread while it is inside the namespace: the device is born in the opener's
   namespace (tun_chr_open keeps current->nsproxy->net_ns in the descriptor's socket; every later ioctl
   works on that one, wherever the thread is then);
2. TUNSETIFINDEX: the ifindex the device gets (tun_set_iff sets dev->ifindex from it before
   register_netdevice, which refuses a taken one with EBUSY), chosen by the writer as for every link;
3. TUNSETIFF with IFF_TUN or IFF_TAP, IFF_NO_PI, IFF_TUN_EXCL, and IFF_MULTI_QUEUE if asked: with
   IFF_TUN_EXCL an existing device of that name, whatever it is, is EBUSY, so netlab never attaches to a
   user's device (without it, TUNSETIFF would attach to an existing tun/tap and a later TUNSETPERSIST would
   change it). No IFF_VNET_HDR: the program that attaches to the device sets what it reads and writes;
4. TUNSETOWNER, TUNSETGROUP when asked (the value is the argument itself, not a pointer);
5. the mark (IFLA_IFALIAS), and the MTU and MAC when asked, in one RTM_SETLINK by ifindex;
6. TUNSETPERSIST, last; then the descriptor is closed.

Until step 6 the device lives only as long as the descriptor: closing it (on any failure, or when the
process dies) unregisters the device (tun_chr_close, __tun_detach of a device without IFF_PERSIST), so a
failure or a crash at any step leaves nothing, and every device that outlives its creator carries the mark.

Read back (`read`): type, owner, group and multi_queue, from the link's IFLA_INFO_DATA (tun_fill_info). Not
PI or VNET_HDR: a program that attaches to the device later (TUNSETIFF without IFF_TUN_EXCL) rewrites those
flags, so they are the program's, not the topology's. IFLA_INFO_KIND is "tun" for tun and tap alike; the
type is IFLA_TUN_TYPE (IFF_TUN 1, IFF_TAP 2). The kernel leaves IFLA_TUN_OWNER/GROUP out when none is set
(uid_valid/gid_valid false): both are None then.
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct
from typing import TypedDict

from ..errors import KernelError
from ..netlink import rtnl, transport
from .namespaces import Namespaces

DEVICE = "/dev/net/tun"
KIND = "tun"  # IFLA_INFO_KIND of both tun and tap


def _iow(number: int, size: int) -> int:
    """_IOW('T', number, a type of `size` bytes) on x86 and arm64 (asm-generic/ioctl.h: dir 1 at bit 30,
    size at bit 16, type at bit 8)."""
    return (1 << 30) | (size << 16) | (ord("T") << 8) | number


# include/uapi/linux/if_tun.h: each is _IOW('T', n, int) or _IOW('T', n, unsigned int), 4 bytes either way
TUNSETIFF = _iow(202, 4)  # 0x400454ca
TUNSETPERSIST = _iow(203, 4)  # 0x400454cb
TUNSETOWNER = _iow(204, 4)  # 0x400454cc
TUNSETGROUP = _iow(206, 4)  # 0x400454ce
TUNSETIFINDEX = _iow(218, 4)  # 0x400454da
# TUNSETIFF's ifr_flags
IFF_TUN, IFF_TAP, IFF_MULTI_QUEUE, IFF_NO_PI, IFF_TUN_EXCL = 0x0001, 0x0002, 0x0100, 0x1000, 0x8000
TYPES = {IFF_TUN: "tun", IFF_TAP: "tap"}
_IFREQ = struct.Struct("=16sH22x")  # struct ifreq: ifr_name[IFNAMSIZ], then the union (ifr_flags), 40 bytes
_U32 = struct.Struct("=I")
NO_ID = 0xFFFFFFFF  # (uid_t)-1: "no owner" / "no group"; TUNSETOWNER refuses it (EINVAL)


class TunOptions(TypedDict):
    """A tun/tap's options as netlab compares them: what `read` returns and `declared` builds."""

    type: str | None  # "tun" | "tap"; None if the kernel did not say (no IFLA_INFO_DATA)
    owner: int | None
    group: int | None
    multi_queue: bool


def declared(*, tap: bool, owner: int | None, group: int | None, multi_queue: bool) -> TunOptions:
    """The options `create` makes, in the shape `read` returns: compare the two for drift."""
    return {"type": "tap" if tap else "tun", "owner": owner, "group": group, "multi_queue": multi_queue}


def read(info_data: bytes | None) -> TunOptions:
    """A tun/tap link's options from its IFLA_INFO_DATA (the `info_data` of rtnl.decode_link)."""
    a = rtnl.TUN_INFO.decode(info_data) if info_data else {}
    owner, group = a.get("owner"), a.get("group")
    return {
        "type": TYPES.get(a["type"]) if "type" in a else None,
        "owner": None if owner is None or owner == NO_ID else owner,
        "group": None if group is None or group == NO_ID else group,
        "multi_queue": bool(a.get("multi_queue")),
    }


def create(namespaces: Namespaces, ns: str, name: str, *, tap: bool, owner: int | None, group: int | None,
           multi_queue: bool, alias: str, index: int, mtu: int | None = None, mac: bytes | None = None) -> None:
    """Make the tun (or tap) `name` in namespace `ns` at ifindex `index`, marked with `alias`, with the
    owner, group, queue mode, MTU and MAC asked for, persistent. KernelError if anything is refused, and
    then nothing is left: the device goes with its descriptor until the last step makes it persistent.
    EBUSY when the name is taken (by any device: netlab never takes over one it did not make) or the
    ifindex is; ENOENT if the namespace does not exist."""
    what = f"create {'tap' if tap else 'tun'} {ns}/{name}"
    _check_arguments(what, name, tap, owner, group, index, mac)
    sock = namespaces.sock(ns)  # before entering: opening a namespace's socket returns to the root one
    with namespaces.inside(ns):
        try:
            fd = os.open(DEVICE, os.O_RDWR | os.O_CLOEXEC)
        except OSError as exc:
            # No node: the tun module is not loaded, and nothing made its static node (systemd's
            # kmod-static-nodes does on distributions; opening that node loads the module).
            hint = " (no such device node: load the tun module, `modprobe tun`)" if exc.errno == errno.ENOENT else ""
            raise KernelError.of(exc.errno or errno.EIO, f"{what}: open {DEVICE}{hint}") from None
    try:
        _ioctl(fd, TUNSETIFINDEX, _U32.pack(index), what, f"TUNSETIFINDEX {index}")
        flags = (IFF_TAP if tap else IFF_TUN) | IFF_NO_PI | IFF_TUN_EXCL | (IFF_MULTI_QUEUE if multi_queue else 0)
        try:
            fcntl.ioctl(fd, TUNSETIFF, _IFREQ.pack(name.encode(), flags))
        except OSError as exc:
            code = exc.errno or errno.EIO
            if code == errno.EBUSY:
                raise KernelError.of(code, _busy(sock, what, name, index)) from None
            raise KernelError.of(code, f"{what}: TUNSETIFF") from None
        if owner is not None:
            _ioctl(fd, TUNSETOWNER, _as_int(owner), what, f"TUNSETOWNER {owner}")
        if group is not None:
            _ioctl(fd, TUNSETGROUP, _as_int(group), what, f"TUNSETGROUP {group}")
        try:
            sock.request(rtnl.set_link(index=index, alias=alias, mtu=mtu, mac=mac))
        except transport.NetlinkError as exc:
            asked = "".join(f", {k} {v}" for k, v in (("mtu", mtu), ("mac", mac and mac.hex(":"))) if v)
            raise KernelError.of(exc.errno, f"{what}: set its mark (alias){asked}", exc.detail) from None
        _ioctl(fd, TUNSETPERSIST, 1, what, "TUNSETPERSIST")
    finally:
        os.close(fd)  # before TUNSETPERSIST succeeded, this unregisters the device


def _check_arguments(what: str, name: str, tap: bool, owner: int | None, group: int | None, index: int,
                     mac: bytes | None) -> None:
    """What the kernel would take silently in another sense: a name it truncates to 15 bytes or reads as a
    template ('tap%d'), an id of -1 (no owner), a MAC on a tun (which has no link-layer address)."""
    raw = name.encode()
    if not raw or len(raw) > 15 or "%" in name or "/" in name or ":" in name or any(c.isspace() for c in name):
        raise KernelError.of(errno.EINVAL, f"{what}: not a valid interface name for a tun/tap")
    for field, value in (("owner", owner), ("group", group)):
        if value is not None and not 0 <= value < NO_ID:
            raise KernelError.of(errno.EINVAL, f"{what}: {field} {value} is not a user or group id (0 to {NO_ID - 1})")
    if not 0 < index < 1 << 31:
        raise KernelError.of(errno.EINVAL, f"{what}: ifindex {index} out of range")
    if mac is not None and not tap:
        raise KernelError.of(errno.EINVAL, f"{what}: a tun device has no MAC address (only a tap has)")


def _as_int(value: int) -> int:
    """An unsigned 32-bit id as the C int that fcntl.ioctl passes: the kernel reads the argument as an
    unsigned long and make_kuid()/make_kgid() keep its low 32 bits."""
    return value - (1 << 32) if value >= 1 << 31 else value


def _ioctl(fd: int, request: int, arg: int | bytes, what: str, call: str) -> None:
    try:
        fcntl.ioctl(fd, request, arg)
    except OSError as exc:
        raise KernelError.of(exc.errno or errno.EIO, f"{what}: {call}") from None


def _busy(sock: transport.Socket, what: str, name: str, index: int) -> str:
    """TUNSETIFF's EBUSY has two causes: the name exists (IFF_TUN_EXCL), or register_netdevice found the
    ifindex taken. Say which."""
    try:
        sock.get(rtnl.RTM_GETLINK, rtnl.link_by_name(name).body)
    except transport.NetlinkError:
        return f"{what}: ifindex {index} is taken in the namespace"
    return f"{what}: the name is taken by a device netlab did not make (netlab never attaches to it)"
