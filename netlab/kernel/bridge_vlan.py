"""Bridge VLAN filtering, STP and port VLANs at the kernel level: read every bridge port's VLANs (and each
bridge's own) in one AF_BRIDGE link dump, and the requests that add, change and delete them and that
change a bridge's options, for the writer to put in a batch. Nothing here knows about topologies.

What the kernel does (Linux 6.1, the stock kernel the guest lane runs; the same in mainline), each fact
checked by tests/test_kernel_bridge_vlan.py on that kernel:

- Reading: an AF_BRIDGE RTM_GETLINK dump with IFLA_EXT_MASK RTEXT_FILTER_BRVLAN answers one message per
  bridge port (br_getlink through the port's master, net/core/rtnetlink.c rtnl_bridge_getlink) and one
  per bridge device (its own ndo_bridge_getlink: the bridge's "self" VLANs), each VLAN an
  IFLA_BRIDGE_VLAN_INFO {flags, vid} in IFLA_AF_SPEC, PVID and UNTAGGED set as they apply
  (br_fill_ifvlaninfo, net/bridge/br_netlink.c). We ask for the uncompressed form, one attribute per
  VLAN; RTEXT_FILTER_BRVLAN_COMPRESSED would send runs as RANGE_BEGIN/RANGE_END pairs (the decoder
  reads both). Uncompressed is not a size limit: for an RTM_GETLINK dump the kernel sizes its buffer
  for the largest link with what the mask asks for (rtnl_calcit, net/core/rtnetlink.c), so a port with
  all 4094 VLANs comes in one message of about 33 KB (measured on 6.1; the transport reads 64 KiB). A
  bridge's VLAN that exists only as the global context of port VLANs (no BRENTRY flag) is not reported
  (br_vlan_should_use): adding a port VLAN does not add a self VLAN.
- Writing: AF_BRIDGE RTM_SETLINK adds a VLAN, AF_BRIDGE RTM_DELLINK removes it (br_setlink/br_dellink ->
  br_afspec -> br_vlan_info, br_netlink.c). The family matters: RTM_DELLINK as AF_UNSPEC is rtnl_dellink
  and deletes the port itself (rtnetlink.c registers rtnl_bridge_dellink for PF_BRIDGE only). For the
  bridge's own VLANs, IFLA_BRIDGE_FLAGS = BRIDGE_FLAGS_SELF; without it (or with BRIDGE_FLAGS_MASTER)
  the request goes to the link's master, so a bridge that is no port answers EOPNOTSUPP
  (rtnl_bridge_setlink).
- Re-adding a VLAN that is there replaces its flags, it does not OR them: nbp_vlan_add (or br_vlan_add
  for self) on an existing VLAN commits the new flags (__vlan_flags_update, net/bridge/br_vlan.c): PVID
  given makes it the port's pvid, PVID absent on the VLAN that is the pvid leaves the port without
  one; UNTAGGED is set or cleared. So `add` is also the flag change, and sending it twice is harmless.
- One pvid per port: a VLAN added with PVID takes the pvid from whichever VLAN had it (that VLAN stays,
  keeping its untagged flag). Deleting the pvid VLAN leaves the port with no pvid (__vlan_del ->
  __vlan_delete_pvid: pvid 0), and the port then drops untagged frames (__allowed_ingress); no other
  VLAN becomes the pvid.
- Default VLAN 1: the bridge gets VLAN 1 (pvid, untagged, self) when it is made (br_vlan_init) and every
  port gets vlan_default_pvid (1) as pvid, untagged when it joins (nbp_vlan_init), whether or not
  filtering is on. IFLA_BR_VLAN_DEFAULT_PVID 0 through changelink (__br_vlan_set_default_pvid ->
  br_vlan_disable_default_pvid, br_vlan.c) removes the default VLAN from the bridge and from each port
  where it is still as the default made it (pvid and untagged), leaves it where the user changed it,
  and new ports then get no VLAN at all. Through changelink this works with filtering on or off (only
  the sysfs path, br_vlan_set_default_pvid, refuses EPERM while filtering is on).
- vlan_filtering off and on again: only the bridge's BROPT_VLAN_ENABLED flips (__br_vlan_filter_toggle,
  br_vlan.c); the VLAN entries of the ports and the bridge are kept as they were, and they apply again
  when filtering is back on.
- STP: IFLA_BR_STP_STATE 1 in a namespace other than the initial one starts the kernel's STP (stp_state
  reads back 1, BR_KERNEL_STP); in the initial namespace the kernel first runs /sbin/bridge-stp and may
  report 2 (user STP) (br_stp_start, net/bridge/br_stp_if.c). Read as "on" for any non-zero state.
- Deleting a VLAN that is not there succeeds: br_vlan_info (br_netlink.c) ignores the ENOENT of
  nbp_vlan_delete/br_vlan_delete on RTM_DELLINK. An add of VID 0 or 4095 is EINVAL (br_vlan_valid_id).
- A kernel without CONFIG_BRIDGE_VLAN_FILTERING (this machine's 6.18): IFLA_BR_VLAN_FILTERING is
  refused EOPNOTSUPP whatever its value, 0 included (br_changelink calls the stub br_vlan_filter_toggle,
  br_private.h), with no extended-ack message: send it only to change it. A VLAN add (port or self) is
  EOPNOTSUPP, a VLAN delete succeeds doing nothing, IFLA_BR_VLAN_DEFAULT_PVID is accepted and ignored
  (and not reported back), and the dump answers every port and bridge with no VLANs (measured by the
  host-kernel tests of tests/test_kernel_bridge_vlan.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..netlink import rtnl, transport

Vlans = dict[int, tuple[bool, bool]]  # vid -> (pvid, untagged)

STP_OFF, STP_KERNEL, STP_USER = 0, 1, 2  # IFLA_BR_STP_STATE as read back (br_private.h BR_*_STP)


def read(sock: transport.Socket) -> dict[int, Vlans]:
    """Every bridge port's VLANs, and every bridge's own, in the socket's namespace: link index -> {vid:
    (pvid, untagged)}. A port or bridge without VLANs is there with an empty dict; a link that is neither
    is absent. NetlinkError if the kernel refuses the dump."""
    out: dict[int, Vlans] = {}
    for kind, data in sock.dump(rtnl.RTM_GETLINK, rtnl.bridge_vlan_dump_request()):
        if kind == rtnl.RTM_NEWLINK:
            index, vlans = rtnl.decode_bridge_vlans(data)
            out[index] = vlans
    return out


def add(index: int, vid: int, pvid: bool = False, untagged: bool = False, self_: bool = False) -> transport.Request:
    """Add VLAN `vid` to the bridge port `index` (or, `self_`, to the bridge `index` itself), or replace
    the flags of the one there: pvid and untagged are set exactly as given."""
    return rtnl.bridge_vlan(True, index, vid, pvid, untagged, self_)


def delete(index: int, vid: int, self_: bool = False) -> transport.Request:
    """Remove VLAN `vid` from the bridge port `index` (or, `self_`, from the bridge itself); the port
    stays. A VLAN that is not there is no error (see the module's notes)."""
    return rtnl.bridge_vlan(False, index, vid, self_=self_)


def wanted(vlans: list[int] | tuple[int, ...], pvid: int | None) -> Vlans:
    """The VLANs a declared port carries: `vlans` tagged, and `pvid` as pvid and untagged (added to the
    set if `vlans` does not name it), as issue 11's schema says (untagged = pvid)."""
    out: Vlans = dict.fromkeys(vlans, (False, False))
    if pvid is not None:
        out[pvid] = (True, True)
    return out


def changes(index: int, current: Mapping[int, tuple[bool, bool]], target: Mapping[int, tuple[bool, bool]],
            self_: bool = False, unread: Iterable[int] = ()) -> list[transport.Request]:
    """The requests that take link `index` from its `current` VLANs (as `read` gives them) to exactly
    `target`: deletes of the VLANs not wanted, then an add for each VLAN missing or with other flags
    (an add replaces flags). Empty when they agree. In one batch, in this order, the result does not
    depend on which VLAN held the pvid before. `unread`: VLANs that may be there though `current` does
    not list them (VLAN 1, which the kernel gives a port as it joins a bridge later in the same plan),
    deleted unless wanted (deleting a VLAN that is not there is no error)."""
    out = [delete(index, vid, self_) for vid in sorted(set(current) | set(unread)) if vid not in target]
    out += [add(index, vid, *flags, self_=self_) for vid, flags in sorted(target.items()) if current.get(vid) != flags]
    return out


def options(name: str | None = None, index: int = 0, *, vlan_filtering: bool | None = None,
            stp: bool | None = None, default_pvid: int | None = None) -> transport.Request:
    """RTM_NEWLINK without NLM_F_CREATE (rtnl.change_link) changing a bridge's own options in place, by
    ifindex or name; an option left None is not sent, so the kernel keeps it. `default_pvid` 0 makes
    the kernel stop giving VLAN 1 to the bridge and its ports (see the module's notes)."""
    data = {"stp_state": None if stp is None else (STP_KERNEL if stp else STP_OFF),
            "vlan_filtering": None if vlan_filtering is None else int(vlan_filtering),
            "vlan_default_pvid": default_pvid}
    return rtnl.change_link("bridge", rtnl.BRIDGE_INFO.encode(data), name=name, index=index)


def decode_options(info_data: bytes | None) -> dict[str, int | None]:
    """A bridge's stp_state, vlan_filtering and vlan_default_pvid from its IFLA_INFO_DATA (what
    rtnl.decode_link gives as `info_data`); None for what the kernel did not send (vlan_default_pvid
    without CONFIG_BRIDGE_VLAN_FILTERING)."""
    got = rtnl.BRIDGE_INFO.decode(info_data or b"")
    return {f: got.get(f) for f in ("stp_state", "vlan_filtering", "vlan_default_pvid")}
