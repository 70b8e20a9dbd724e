"""The kernel's own share of bandwidth ADD and DEL, timed inside this process.

Sends the netlink requests that our bandwidth plugin's ADD and DEL send (their
reads left out) from one socket of the calling process, so the time is the
kernel's work plus a few microseconds of Python per request: no process start,
no C library, no config parsing. Used by scripts/lib/bench.py for the floor of
the bandwidth rows. Only the standard library: raw structs over AF_NETLINK.
"""

import os
import socket
import struct
import time

NETLINK_ROUTE = 0
RTM_NEWLINK, RTM_DELLINK, RTM_SETLINK = 16, 17, 19
RTM_NEWQDISC, RTM_DELQDISC, RTM_NEWTFILTER = 36, 37, 44
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLM_F_REPLACE, NLM_F_EXCL, NLM_F_CREATE = 0x100, 0x200, 0x400
NLA_F_NESTED = 0x8000
IFF_UP = 0x1
IFLA_IFNAME, IFLA_MTU, IFLA_TXQLEN, IFLA_LINKINFO, IFLA_IFALIAS = 3, 4, 13, 18, 20
IFLA_INFO_KIND = 1
TCA_KIND, TCA_OPTIONS = 1, 2
TCA_TBF_PARMS = 1
TCA_U32_SEL, TCA_U32_ACT = 5, 7
TCA_ACT_KIND, TCA_ACT_OPTIONS = 1, 2
TCA_MIRRED_PARMS = 2
TCA_EGRESS_REDIR, TC_ACT_STOLEN = 1, 4
TC_U32_TERMINAL = 1
TC_H_ROOT, TC_H_INGRESS = 0xFFFFFFFF, 0xFFFFFFF1
TBF_HANDLE, INGRESS_HANDLE, U32_HANDLE = 0x00010000, 0xFFFF0000, 0x80000800
ETH_P_ALL = 0x0003


def attr(kind, payload):
    """One netlink attribute, padded to 4 bytes."""
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * (-n % 4)


def nested(kind, *attrs):
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def cstr(s):
    return s.encode() + b"\0"


def ifinfomsg(index=0, flags=0, change=0):
    return struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, flags, change)


def tcmsg(index, handle, parent, info=0):
    return struct.pack("=BxxxiIII", socket.AF_UNSPEC, index, handle, parent, info)


def ticks_per_us():
    """As tc and the plugins compute it from /proc/net/psched."""
    try:
        t2us, us2t, clock_res = (int(x, 16) for x in open("/proc/net/psched").read().split()[:3])
        if clock_res == 1_000_000_000:
            t2us = us2t
        return t2us / us2t * clock_res / 1e6
    except (OSError, ValueError, ZeroDivisionError):
        return 15.625  # 64 ns ticks, what every kernel since 2.6.31 reports


def tbf_options(rate_bps, burst_bits):
    """struct tc_tbf_qopt: rate spec (rate in bytes/s at offset 8), no peak
    rate, limit, buffer in psched ticks, mtu; no rate table (as the plugin)."""
    rate, burst = rate_bps // 8, burst_bits // 8
    buffer = int(burst * 1_000_000 / rate * ticks_per_us())
    limit = burst + rate // 40  # latency 25 ms, as the reference computes it
    qopt = struct.pack("=BBHhHI", 0, 0, 0, 0, 0, rate) + b"\0" * 12 + struct.pack("=III", limit, buffer, 0)
    return nested(TCA_OPTIONS, attr(TCA_TBF_PARMS, qopt))


class Netlink:
    def __init__(self):
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self):
        self.sock.close()

    def request(self, msg_type, flags, body):
        """Sends one request and waits for its ACK; raises OSError on a kernel error."""
        self.seq += 1
        hdr = struct.pack("=IHHII", 16 + len(body), msg_type, NLM_F_REQUEST | NLM_F_ACK | flags, self.seq, 0)
        self.sock.send(hdr + body)
        while True:
            data = self.sock.recv(65536)
            off = 0
            while off + 16 <= len(data):
                length, kind, _, seq, _ = struct.unpack_from("=IHHII", data, off)
                if kind == NLMSG_ERROR and seq == self.seq:
                    (err,) = struct.unpack_from("=i", data, off + 16)
                    if err:
                        raise OSError(-err, f"netlink request {msg_type}: {os.strerror(-err)}")
                    return
                off += (length + 3) & ~3

    def index(self, name):
        return socket.if_nametoindex(name)


def add(nl, veth, ifb, rate_bps, burst_bits, mtu=1500):
    """bandwidth ADD's changes: the ifb (up, MTU, queue length, alias), a TBF on
    it, a TBF on the host veth, the veth's ingress qdisc and the u32 filter
    that redirects everything into the ifb."""
    veth_i = nl.index(veth)
    link = attr(IFLA_IFNAME, cstr(ifb)) + attr(IFLA_MTU, struct.pack("=I", mtu))
    link += attr(IFLA_TXQLEN, struct.pack("=I", 0)) + nested(IFLA_LINKINFO, attr(IFLA_INFO_KIND, cstr("ifb")))
    nl.request(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, ifinfomsg(flags=IFF_UP, change=IFF_UP) + link)
    nl.request(RTM_SETLINK, 0, ifinfomsg() + attr(IFLA_IFNAME, cstr(ifb)) + attr(IFLA_IFALIAS, cstr("bench")))
    ifb_i = nl.index(ifb)
    tbf = attr(TCA_KIND, cstr("tbf")) + tbf_options(rate_bps, burst_bits)
    for i in (ifb_i, veth_i):
        nl.request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE, tcmsg(i, TBF_HANDLE, TC_H_ROOT) + tbf)
    ingress = attr(TCA_KIND, cstr("ingress")) + nested(TCA_OPTIONS)
    nl.request(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_EXCL, tcmsg(veth_i, INGRESS_HANDLE, TC_H_INGRESS) + ingress)
    # struct tc_u32_sel with one key that matches everything, then one mirred action.
    sel = struct.pack("=BBBxHHhhI", TC_U32_TERMINAL, 0, 1, 0, 0, 0, 0, 0) + struct.pack("=IIii", 0, 0, 0, 0)
    mirred = struct.pack("=IIiiiiI", 0, 0, TC_ACT_STOLEN, 0, 0, TCA_EGRESS_REDIR, ifb_i)
    action = nested(1, attr(TCA_ACT_KIND, cstr("mirred")), nested(TCA_ACT_OPTIONS, attr(TCA_MIRRED_PARMS, mirred)))
    u32 = attr(TCA_KIND, cstr("u32")) + nested(TCA_OPTIONS, attr(TCA_U32_SEL, sel), nested(TCA_U32_ACT, action))
    info = (1 << 16) | socket.htons(ETH_P_ALL)
    nl.request(RTM_NEWTFILTER, NLM_F_CREATE | NLM_F_REPLACE, tcmsg(veth_i, U32_HANDLE, INGRESS_HANDLE, info) + u32)


def delete(nl, veth, ifb, qdiscs=True):
    """bandwidth DEL's changes: the ifb (whose unregistration waits for RCU
    grace periods), then, as ours does and the reference does not, the veth's
    root and ingress qdiscs."""
    nl.request(RTM_DELLINK, 0, ifinfomsg(index=nl.index(ifb)))
    if qdiscs:
        veth_i = nl.index(veth)
        nl.request(RTM_DELQDISC, 0, tcmsg(veth_i, 0, TC_H_ROOT))
        nl.request(RTM_DELQDISC, 0, tcmsg(veth_i, INGRESS_HANDLE, TC_H_INGRESS))


def timed(fn, *args, **kwargs):
    """Nanoseconds that fn takes (a fresh socket each time, as a plugin has)."""
    nl = Netlink()
    try:
        t0 = time.perf_counter_ns()
        fn(nl, *args, **kwargs)
        return time.perf_counter_ns() - t0
    finally:
        nl.close()
