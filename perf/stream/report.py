#!/usr/bin/env python3
"""Table and plots for perf/stream/bench-wan.sh.

report.py RAW_LOG OUT_DIR [START]  ->  OUT_DIR/results.json, summary.md,
<profile>.png. Every ratio comes from numbers of the same log (one VM run, or
one host run over wan-emu: bench-wan.sh -e).
"""
import json
import math
import sys


def load(path):
    res, ser, notes = [], [], []
    for line in open(path, errors="replace"):
        if line.startswith("run.sh: RERUN:"):
            # The guest died under the first run (tests/vm/run.sh): only
            # the second counts, or two runs' numbers would mix.
            res, ser, notes = [], [], [line.rstrip()]
        elif line.startswith("RESULT "):
            res.append(json.loads(line[7:]))
        elif line.startswith("SERIES "):
            ser.append(json.loads(line[7:]))
        elif line.startswith(("CEILING", "guest:", "== profile", "SKIP", "FAIL",
                              "emu-link:")):
            notes.append(line.rstrip())
    return res, ser, notes


def fmt(v, nd=1):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return "%.*f" % (nd, v)


def table(res, prof):
    rows = [r for r in res if r["profile"] == prof]
    if not rows:
        return []
    by = {r["tool"]: r for r in rows}
    one = by.get("iperf3-cubic-1", {}).get("goodput_mbps")
    many = next((r["goodput_mbps"] for r in rows
                 if r["tool"].startswith("iperf3-cubic-") and r["tool"] != "iperf3-cubic-1"), None)
    r0 = rows[0]
    out = ["### %s (bottleneck %s Mbit/s, idle probe RTT %s ms)" %
           (prof, fmt(r0["bottleneck_mbps"], 0), fmt(r0["base_rtt_ms"], 2)), "",
           "| tool | goodput Mbit/s | % of bottleneck | / cubic 1 | / cubic N | "
           "probe during the transfer p50 / p99 / max ms | p99 - idle ms | "
           "bottleneck queue during the transfer p50 / p99 ms | "
           "queue from 1.5 s into the transfer: p99 ms, time > 2 ms | "
           "probe IPDV p99 ms | guest CPU busy |",
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        g = r["goodput_mbps"]
        out.append("| %s | %s | %s %% | %s | %s | %s / %s / %s | %s | %s / %s | %s, %s %% | %s | %s %% |" % (
            r["tool"] + (" (%s streams)" % r["streams"] if r.get("streams") else ""),
            fmt(g), fmt(100 * g / r["bottleneck_mbps"], 0),
            fmt(g / one, 2) + "x" if one else "-",
            fmt(g / many, 2) + "x" if many else "-",
            fmt(r["probe_p50_ms"]), fmt(r["probe_p99_ms"]), fmt(r["probe_max_ms"]),
            fmt(r["probe_p99_ms"] - r["base_rtt_ms"]),
            fmt(r.get("queue_p50_ms"), 2), fmt(r.get("queue_p99_ms"), 2),
            fmt(r.get("queue_steady_p99_ms"), 1), fmt(r.get("queue_over2ms_pct"), 0),
            fmt(r["ipdv_p99_ms"], 2),
            fmt(100 * r["guest_cpu_busy"], 0)))
    x = [r for r in rows if r["tool"].startswith("xfer")]
    if x:
        out += ["", "wccl-xfer's own view: " + "; ".join(
            "%s: chunk RTT min/p50/p99 %s/%s/%s ms, jitter %s ms, %s chunk resends, "
            "btlbw %s Mbit/s, final pacing %s Mbit/s, %s KiB chunks, crc_hw %s" % (
                r["tool"], fmt((r.get("rtt_min_us") or 0) / 1e3), fmt((r.get("rtt_p50_us") or 0) / 1e3),
                fmt((r.get("rtt_p99_us") or 0) / 1e3), fmt((r.get("jitter_us") or 0) / 1e3, 2),
                r.get("retransmits"), fmt(r.get("btlbw_mbps"), 1), fmt(r.get("pacing_mbps"), 1),
                (r.get("chunk_bytes") or 0) // 1024, r.get("crc_hw")) for r in x)]
    return out + [""]


def plot(ser, prof, path, where):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    rows = [s for s in ser if s["profile"] == prof]
    if not rows:
        return False
    fig, (a, b, c) = plt.subplots(3, 1, figsize=(10, 9), sharex=True)
    for s in rows:
        rx = s["rx"]
        t = [(rx[i][0] + rx[i - 1][0]) / 2 for i in range(1, len(rx))]
        v = [max(0, rx[i][1] - rx[i - 1][1]) * 8 / 1e6 / max(1e-3, rx[i][0] - rx[i - 1][0])
             for i in range(1, len(rx))]
        a.plot(t, v, label=s["tool"], lw=1)
        if s["ping"]:
            b.plot([p[0] for p in s["ping"]], [p[1] for p in s["ping"]], ".", ms=2,
                   label=s["tool"])
        if s.get("queue"):
            c.plot([p[0] for p in s["queue"]], [p[1] for p in s["queue"]], lw=1,
                   label=s["tool"])
    a.set_ylabel("receiver link rate, Mbit/s")
    a.set_title("%s: each tool in turn, same %s" % (prof, where))
    a.legend(fontsize=7, ncol=3)
    a.grid(alpha=.3)
    b.set_ylabel("ping probe RTT, ms")
    b.legend(fontsize=7, ncol=3)
    b.grid(alpha=.3)
    c.set_ylabel("bottleneck queue, ms")
    c.set_xlabel("seconds since the tool started")
    c.legend(fontsize=7, ncol=3)
    c.grid(alpha=.3)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def main():
    raw, out = sys.argv[1], sys.argv[2]
    start = sys.argv[3] if len(sys.argv) > 3 else ""
    res, ser, notes = load(raw)
    json.dump(res, open(out + "/results.json", "w"), indent=1)
    profs = []
    for r in res:
        if r["profile"] not in profs:
            profs.append(r["profile"])
    md = ["## perf/stream/bench-wan.sh %s" % start, ""] + ["    " + n for n in notes] + [""]
    emu = any(n.startswith("guest: link emu") for n in notes)
    where = "host run over wan-emu" if emu else "VM run"
    for p in profs:
        md += table(res, p)
        if plot(ser, p, "%s/%s.png" % (out, p), where):
            md += ["![%s](%s.png)" % (p, p), ""]
    open(out + "/summary.md", "w").write("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
