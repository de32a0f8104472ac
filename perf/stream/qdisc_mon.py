#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The bottleneck's own queue, sampled: the backlog of one qdisc kind on
one device, read over rtnetlink (RTM_GETQDISC dump) every INTERVAL_MS.

    qdisc_mon.py DEV KIND OUT [INTERVAL_MS]

Writes "time backlog_bytes qlen_packets drops" lines to OUT until killed.
On the WAN profiles (tests/vm/wan-profile.sh) the tbf under netem on the
sender's veth is where a sender's standing queue sits: its backlog over
the rate is the queueing delay every packet behind it waits, measured
apart from the ping probe, whose RTT under load also carries the
emulator's CPU time. A netlink dump costs far less than running tc.
"""
import socket
import struct
import sys
import time

RTM_NEWQDISC, RTM_GETQDISC, NLMSG_ERROR, NLMSG_DONE = 36, 38, 2, 3
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
TCA_KIND, TCA_STATS2 = 1, 7
TCA_STATS_QUEUE = 3
NLA_F_MASK = 0x3FFF


def attrs(buf):
    """(type, payload) of each netlink attribute in buf."""
    off = 0
    while off + 4 <= len(buf):
        alen, atype = struct.unpack_from("=HH", buf, off)
        if alen < 4:
            return
        yield atype & NLA_F_MASK, buf[off + 4:off + alen]
        off += (alen + 3) & ~3


def sample(sock, ifindex, kind, seq):
    """(backlog, qlen, drops) of the first `kind` qdisc on ifindex."""
    tcmsg = struct.pack("=BxxxiIII", socket.AF_UNSPEC, ifindex, 0, 0, 0)
    hdr = struct.pack("=IHHII", 16 + len(tcmsg), RTM_GETQDISC,
                      NLM_F_REQUEST | NLM_F_DUMP, seq, 0)
    sock.send(hdr + tcmsg)
    found = None
    while True:
        data = sock.recv(65536)
        off = 0
        while off + 16 <= len(data):
            mlen, mtype, _, mseq, _ = struct.unpack_from("=IHHII", data, off)
            if mlen < 16:
                raise SystemExit("qdisc_mon: bad netlink message")
            body = data[off + 16:off + mlen]
            off += (mlen + 3) & ~3
            if mseq != seq:
                continue
            if mtype == NLMSG_DONE:
                return found
            if mtype == NLMSG_ERROR:
                raise SystemExit("qdisc_mon: netlink error %d"
                                 % struct.unpack_from("=i", body)[0])
            if mtype != RTM_NEWQDISC or found:
                continue
            if struct.unpack_from("=i", body, 4)[0] != ifindex:
                continue
            a = dict(attrs(body[20:]))
            if a.get(TCA_KIND, b"").rstrip(b"\0").decode() != kind:
                continue
            q = dict(attrs(a.get(TCA_STATS2, b""))).get(TCA_STATS_QUEUE)
            if q and len(q) >= 12:
                qlen, backlog, drops = struct.unpack_from("=III", q)
                found = (backlog, qlen, drops)


def main():
    if len(sys.argv) < 4:
        raise SystemExit(__doc__)
    dev, kind, out = sys.argv[1:4]
    interval = (float(sys.argv[4]) if len(sys.argv) > 4 else 20.0) / 1e3
    ifindex = socket.if_nametoindex(dev)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
    sock.bind((0, 0))
    seq = 0
    with open(out, "w") as f:
        while True:
            seq += 1
            s = sample(sock, ifindex, kind, seq)
            if s is None:
                raise SystemExit("qdisc_mon: no %s qdisc on %s" % (kind, dev))
            f.write("%.4f %d %d %d\n" % (time.time(), *s))
            f.flush()
            time.sleep(interval)


if __name__ == "__main__":
    main()
