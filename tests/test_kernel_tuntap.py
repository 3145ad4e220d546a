"""tun/tap devices made through /dev/net/tun (netlab/kernel/tuntap.py) on the real kernel: read back by
iproute2 (`ip -j -d link show`) and by a netlink dump decoded with tuntap.read, both agreeing; the chosen
ifindex and the mark; persistence after the descriptor is closed; a user's device of the same name left
untouched (EBUSY); a failure or a crash before TUNSETPERSIST leaving nothing; deletion over rtnetlink; the
device born in the namespace asked for, not the caller's. And the time to make 100 taps against `ip -batch`.
"""

from __future__ import annotations

import errno
import grp
import os
import pwd
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from netlab.errors import KernelError
from netlab.kernel import tuntap
from netlab.kernel.namespaces import Namespaces
from netlab.netlink import rtnl
from netlab.state import HOST

from conftest import Lab, ip_json

pytestmark = pytest.mark.kernel

ROOT = Path(__file__).parent.parent
BASE = (1 << 24) + 0x5A000  # ifindexes the tests choose, above the kernel's own counter as the writer's are


class Made:
    """The test's namespace (`ns`, made with `ip netns add`), a Namespaces handle, and what the test asked
    tuntap.create to make: each is deleted over netlink at teardown, whether the test passed or not."""

    def __init__(self, lab: Lab):
        self.lab = lab
        self.ns = lab.p + "a"
        self.alias = f"netlab:{lab.p}"
        self.namespaces = Namespaces()
        self.made: list[tuple[str, int]] = []
        self.next = BASE

    def index(self) -> int:
        self.next += 1
        return self.next

    def create(self, name: str, ns: str | None = None, **options: Any) -> int:
        """tuntap.create with defaults (a tap, no owner or group, one queue); the ifindex it was given."""
        ns = ns or self.ns
        index = options.pop("index", None) or self.index()
        self.made.append((ns, index))
        args = {"tap": True, "owner": None, "group": None, "multi_queue": False, "alias": self.alias, **options}
        tuntap.create(self.namespaces, ns, name, index=index, **args)
        return index

    def dump(self, ns: str | None = None) -> dict[str, rtnl.LinkInfo]:
        """netlab's own view: a netlink link dump of the namespace, by name."""
        replies = self.namespaces.sock(ns or self.ns).dump(rtnl.RTM_GETLINK, rtnl.link_dump_request())
        links = (rtnl.decode_link(m) for t, m in replies if t == rtnl.RTM_NEWLINK)
        return {link["name"]: link for link in links}

    def cleanup(self) -> None:
        try:
            for ns, index in self.made:
                try:
                    self.namespaces.sock(ns).batch([rtnl.del_link(index=index)])
                except KernelError:
                    pass  # the namespace is gone (a test deleted it): its devices with it
        finally:
            self.namespaces.close()


@pytest.fixture
def made(lab: Lab) -> Iterator[Made]:
    m = Made(lab)
    lab.ip("netns", "add", m.ns)
    yield m
    m.cleanup()


def ip_links(ns: str | None) -> dict[str, dict[str, Any]]:
    """iproute2's view, `ip -j -d link show`, by name."""
    return {link["ifname"]: link for link in ip_json(*(["-n", ns] if ns else []), "-d", "link", "show")}


def ip_options(link: dict[str, Any]) -> dict[str, Any]:
    """A tun/tap's options as iproute2 prints them (ip/iptuntap.c, tun_print_opt: "type", "multi_queue",
    "user" and "group", each a name when the id has one in the passwd/group database, else the number; left
    out when the kernel sent no IFLA_TUN_OWNER/GROUP), normalized as tuntap.read normalizes them."""
    info = link["linkinfo"]
    assert info["info_kind"] == "tun"  # IFLA_INFO_KIND: tun for tun and tap alike
    data = info["info_data"]
    user, group = data.get("user"), data.get("group")
    return {
        "type": data["type"],
        "owner": pwd.getpwnam(user).pw_uid if isinstance(user, str) else user,
        "group": grp.getgrnam(group).gr_gid if isinstance(group, str) else group,
        "multi_queue": data["multi_queue"],
    }


def tun_fds() -> list[str]:
    """This process's descriptors open on /dev/net/tun."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == tuntap.DEVICE:
                out.append(fd)
        except FileNotFoundError:
            pass  # the descriptor listdir itself used
    return out


# (name suffix, options): a tap with an owner that has a passwd entry on most machines (iproute2 prints a
# name for it), a group above 2^31 (sent to the kernel as a negative C int), several queues, MTU and MAC;
# a tun with an owner only; a plain tap with neither.
CASES: list[tuple[str, dict[str, Any]]] = [
    ("p0", {"tap": True, "owner": 1000, "group": 3_000_000_000, "multi_queue": True, "mtu": 1400,
            "mac": bytes.fromhex("02005e000001")}),
    ("n0", {"tap": False, "owner": 4242, "group": None, "multi_queue": False, "mtu": 9000}),
    ("p1", {"tap": True, "owner": None, "group": 4343, "multi_queue": False}),
    ("n1", {"tap": False, "owner": None, "group": None, "multi_queue": True}),
]


def test_read_back_by_iproute2_and_by_netlink_agree(made: Made) -> None:
    indexes = {}
    for suffix, options in CASES:
        indexes[made.lab.p + suffix] = made.create(made.lab.p + suffix, **options)
    assert not tun_fds(), "create leaves no descriptor open"
    by_ip, by_netlink = ip_links(made.ns), made.dump()
    for suffix, options in CASES:
        name = made.lab.p + suffix
        want = tuntap.declared(tap=options["tap"], owner=options["owner"], group=options["group"],
                               multi_queue=options["multi_queue"])
        link, ours = by_ip[name], by_netlink[name]
        assert ip_options(link) == want, name
        assert tuntap.read(ours["info_data"]) == want, name
        assert ours["kind"] == tuntap.KIND
        # the chosen ifindex, the mark, MTU and MAC, each seen by both
        assert link["ifindex"] == ours["index"] == indexes[name]
        assert link.get("ifalias") == ours["alias"] == made.alias
        assert link["mtu"] == ours["mtu"] == options.get("mtu", 1500)
        if "mac" in options:
            assert link["address"] == ours["mac"] == options["mac"].hex(":")
        assert link["link_type"] == ("ether" if options["tap"] else "none")
        # persistent, with no descriptor attached; never PI or VNET_HDR
        data = link["linkinfo"]["info_data"]
        assert data["persist"] is True and data["pi"] is False and data["vnet_hdr"] is False
        if options["multi_queue"]:
            assert data["numqueues"] == 0


def test_born_in_the_namespace_asked_for(made: Made) -> None:
    """The caller's thread is in the root namespace; the device appears in the test's namespace only, and
    the thread is back in the root namespace afterwards."""
    home = os.stat("/proc/thread-self/ns/net").st_ino
    name = made.lab.p + "p0"
    index = made.create(name)
    assert os.stat("/proc/thread-self/ns/net").st_ino == home
    assert ip_links(made.ns)[name]["ifindex"] == index
    assert name not in ip_links(None)
    assert index not in {link["ifindex"] for link in ip_links(None).values()}


def test_in_the_root_namespace(made: Made) -> None:
    name = made.lab.p + "h0"
    index = made.create(name, ns=HOST, tap=False, owner=0, group=0)
    link = ip_links(None)[name]
    assert link["ifindex"] == index and link["ifalias"] == made.alias
    assert ip_options(link) == tuntap.declared(tap=False, owner=0, group=0, multi_queue=False)
    assert tuntap.read(made.dump(HOST)[name]["info_data"])["owner"] == 0  # 0 is an owner, not "none"


@pytest.mark.parametrize("kind", ["tap", "tun"])
def test_delete_over_netlink(made: Made, kind: str) -> None:
    """RTM_DELLINK by ifindex, as the writer sends it, deletes a persistent tun/tap on this kernel."""
    name = made.lab.p + "d0"
    index = made.create(name, tap=kind == "tap", multi_queue=kind == "tap")
    assert name in ip_links(made.ns)
    made.namespaces.sock(made.ns).request(rtnl.del_link(index=index))
    assert name not in ip_links(made.ns)
    assert name not in made.dump()


@pytest.mark.parametrize("theirs", ["tap", "tun", "multi_queue tap", "veth"])
def test_a_users_device_of_that_name_is_ebusy_and_untouched(made: Made, theirs: str) -> None:
    name = made.lab.p + "u0"
    if theirs == "veth":
        made.lab.ip("-n", made.ns, "link", "add", name, "type", "veth", "peer", "name", made.lab.p + "u1")
    else:
        *mq, mode = theirs.split()
        made.lab.ip("-n", made.ns, "tuntap", "add", "name", name, "mode", mode, "user", "4242", *mq)
    before = ip_links(made.ns)[name]
    for tap in (True, False):  # whichever type netlab asks for
        index = made.index()
        with pytest.raises(KernelError) as caught:
            made.create(name, tap=tap, index=index, owner=1, group=1, multi_queue=theirs.startswith("multi"),
                        mtu=1280)
        assert caught.value.errno == errno.EBUSY
        assert "the name is taken by a device netlab did not make" in str(caught.value)
        assert index not in {link["ifindex"] for link in ip_links(made.ns).values()}
    after = ip_links(made.ns)[name]
    assert after == before  # same ifindex, no alias, same owner, same MTU: everything iproute2 prints
    assert "ifalias" not in after and after["mtu"] == 1500
    assert not tun_fds()


def test_a_taken_ifindex_is_ebusy_and_says_so(made: Made) -> None:
    name = made.lab.p + "p0"
    lo = ip_links(made.ns)["lo"]["ifindex"]
    with pytest.raises(KernelError) as caught:  # not made.create: its teardown would delete by this index
        tuntap.create(made.namespaces, made.ns, name, tap=True, owner=None, group=None, multi_queue=False,
                      alias=made.alias, index=lo)
    assert caught.value.errno == errno.EBUSY
    assert f"ifindex {lo} is taken" in str(caught.value)
    assert set(ip_links(made.ns)) == {"lo"}


@pytest.mark.parametrize(("options", "code"), [
    ({"mtu": 70000}, errno.EINVAL),  # above the tap's max_mtu (65535 less the Ethernet header)
    ({"mtu": 67}, errno.EINVAL),  # below tun's MIN_MTU
    ({"mac": bytes.fromhex("01005e000001")}, errno.EADDRNOTAVAIL),  # a multicast MAC
    ({"mac": bytes.fromhex("000000000000")}, errno.EADDRNOTAVAIL),
    ({"tap": False, "mtu": 70000}, errno.EINVAL),
], ids=["mtu-70000", "mtu-67", "mac-multicast", "mac-zero", "tun-mtu-70000"])
def test_a_refusal_before_persist_leaves_nothing(made: Made, options: dict[str, Any], code: int) -> None:
    """The kernel refuses the RTM_SETLINK that marks the device: after TUNSETIFF made it, before
    TUNSETPERSIST. The descriptor is closed, and the device is gone with it."""
    name = made.lab.p + "f0"
    index = made.index()
    with pytest.raises(KernelError) as caught:
        made.create(name, index=index, owner=4242, **options)
    assert caught.value.errno == code
    assert f"create {'tun' if options.get('tap') is False else 'tap'} {made.ns}/{name}" in str(caught.value)
    links = ip_links(made.ns)
    assert set(links) == {"lo"}, links
    assert name not in made.dump()
    assert not tun_fds()
    # and the name and index are free: the same create without the refused option succeeds
    made.create(name, index=index, owner=4242, **{k: v for k, v in options.items() if k == "tap"})
    assert ip_links(made.ns)[name]["ifindex"] == index


@pytest.mark.parametrize(("name", "options", "message"), [
    ("x" * 16, {}, "not a valid interface name"),
    ("tap%d", {}, "not a valid interface name"),  # the kernel would pick a name of its own
    ("ok0", {"owner": 0xFFFFFFFF}, "owner 4294967295 is not a user or group id"),
    ("ok0", {"group": -1}, "group -1 is not a user or group id"),
    ("ok0", {"tap": False, "mac": bytes.fromhex("020000000001")}, "a tun device has no MAC address"),
])
def test_arguments_the_kernel_would_take_in_another_sense(made: Made, name: str, options: dict[str, Any],
                                                          message: str) -> None:
    with pytest.raises(KernelError) as caught:
        made.create(name, **options)
    assert caught.value.errno == errno.EINVAL and message in str(caught.value)
    assert set(ip_links(made.ns)) == {"lo"}


def test_a_namespace_that_does_not_exist(made: Made) -> None:
    with pytest.raises(KernelError) as caught:
        made.create(made.lab.p + "p0", ns=made.lab.p + "none")
    assert caught.value.errno == errno.ENOENT


# A process that makes a tap and is killed (SIGKILL) at one step of the creation: "persist" just before
# TUNSETPERSIST, "after" just after it, before the descriptor is closed.
CRASH = textwrap.dedent("""
    import os, signal, sys
    from netlab.kernel import tuntap
    from netlab.kernel.namespaces import Namespaces

    ns, name, index, alias, at = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    real = tuntap._ioctl

    def dying(fd, request, arg, what, call):
        if call == "TUNSETPERSIST" and at == "persist":
            os.kill(os.getpid(), signal.SIGKILL)
        real(fd, request, arg, what, call)
        if call == "TUNSETPERSIST" and at == "after":
            os.kill(os.getpid(), signal.SIGKILL)

    tuntap._ioctl = dying
    tuntap.create(Namespaces(), ns, name, tap=True, owner=4242, group=None, multi_queue=False, alias=alias,
                  index=index)
""")


@pytest.mark.parametrize("at", ["persist", "after"])
def test_a_crash_leaves_nothing_or_a_marked_device(made: Made, at: str) -> None:
    name, index = made.lab.p + "c0", made.index()
    made.made.append((made.ns, index))
    proc = subprocess.run([sys.executable, "-c", CRASH, made.ns, name, str(index), made.alias, at], cwd=ROOT,
                          capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == -9, proc.stderr
    links = ip_links(made.ns)
    if at == "persist":
        assert set(links) == {"lo"}, links
    else:
        assert links[name]["ifindex"] == index and links[name]["ifalias"] == made.alias


COUNT = 100


def test_time_100_taps_against_ip_batch(made: Made, tmp_path: Path) -> None:
    """100 taps in one namespace by a loop of tuntap.create (open, 5 ioctls, one RTM_SETLINK, close, each),
    against `ip -batch` with 100 `tuntap add` (the same ioctls, without the mark) and with each followed by
    `link set ... alias` (the same work). Timed in this process; the figures are printed (pytest -s)."""
    names = [f"{made.lab.p}{i:03d}" for i in range(COUNT)]
    start = time.perf_counter()
    indexes = [made.create(name, owner=4242, group=4343) for name in names]
    ours = time.perf_counter() - start
    links = ip_links(made.ns)
    assert [links[n]["ifindex"] for n in names] == indexes
    assert all(links[n]["ifalias"] == made.alias and ip_options(links[n])["owner"] == 4242 for n in names)
    figures = {"tuntap.create x100": ours}
    for variant in ("tuntap add", "tuntap add + alias"):
        ns = made.lab.p + ("b" if variant == "tuntap add" else "c")
        made.lab.ip("netns", "add", ns)
        script = tmp_path / f"{ns}.batch"
        lines = []
        for name in names:
            lines.append(f"tuntap add name {name} mode tap user 4242 group 4343")
            if variant != "tuntap add":
                lines.append(f"link set dev {name} alias {made.alias}")
        script.write_text("\n".join(lines) + "\n")
        start = time.perf_counter()
        subprocess.run(["ip", "-n", ns, "-batch", str(script)], check=True)
        figures[f"ip -batch ({variant}) x100"] = time.perf_counter() - start
        assert len(ip_links(ns)) == COUNT + 1
    print("\n" + "\n".join(f"{k}: {v * 1000:.1f} ms" for k, v in figures.items()))


def test_read_decodes_what_the_kernel_sends() -> None:
    """tuntap.read on IFLA_INFO_DATA as tun_fill_info lays it out: owner/group absent when unset (and
    (uid_t)-1, should a kernel send it, is none too), type 1 tun, 2 tap; PI, VNET_HDR, PERSIST ignored."""
    encode = rtnl.TUN_INFO.encode
    assert tuntap.read(encode({"type": 2, "pi": 0, "vnet_hdr": 1, "persist": 1, "multi_queue": 1,
                               "num_queues": 0})) == \
        {"type": "tap", "owner": None, "group": None, "multi_queue": True}
    assert tuntap.read(encode({"type": 1, "owner": 0, "group": 0xFFFFFFFF, "multi_queue": 0})) == \
        {"type": "tun", "owner": 0, "group": None, "multi_queue": False}
    assert tuntap.read(None) == {"type": None, "owner": None, "group": None, "multi_queue": False}
    assert tuntap.read(encode({"type": 9}))["type"] is None
