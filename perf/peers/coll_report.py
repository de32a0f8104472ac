#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Tables, ratios, goals and plots for perf/bench-coll.sh.

Reads RAW/<tool>.n<N>.band<B>.rep<R>.jsonl (wccl-perf --json lines or the
peer drivers' lines) and RAW/memcpy.<size>.rep<R>.jsonl. Per (tool, ranks,
size, repeat) the time is wccl's out-of-place time, or for gloo the best of
its algorithms; the reported time is the median over repeats, busbw is
computed from it (size / time x 2(n-1)/n).
"""
import argparse
import glob
import json
import os
import re
import statistics
import sys

TOOLS = ["wccl-shm", "wccl-uring", "gloo", "ompi-tcp", "ompi-vader", "mpich",
         "torch-gloo"]
SHM_PEERS = ["ompi-vader", "mpich"]
TCP_PEERS = ["gloo", "ompi-tcp", "torch-gloo"]
SMALL = 4096  # latency sizes: <= 4 KiB
LARGE = 1 << 20  # bandwidth sizes: >= 1 MiB


def fmt_size(b):
    for unit, v in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if b >= v and b % v == 0:
            return "%d%s" % (b // v, unit)
    return "%d" % b


def load(raw):
    # samples[(tool, n, size)][rep] = (us, algo); wrong[(tool, n)] = count
    samples, wrong, errors = {}, {}, []
    pat = re.compile(r"(.+)\.n(\d+)\.band(\d+)\.rep(\d+)\.jsonl$")
    for path in sorted(glob.glob(os.path.join(raw, "*.jsonl"))):
        m = pat.match(os.path.basename(path))
        if not m:
            continue
        tool, n, rep = m.group(1), int(m.group(2)), int(m.group(4))
        for line in open(path):
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                d = json.loads(line)
            except ValueError:
                continue
            if "error" in d:
                errors.append("%s n=%d %s %s: %s" % (tool, n, d.get("size"),
                                                    d.get("algo"), d["error"]))
                continue
            if "oop_us" in d:  # wccl-perf
                us, algo = d["oop_us"], d.get("algo", "")
                bad = d.get("oop_wrong", 0) + d.get("ip_wrong", 0)
            else:
                us, algo, bad = d["us"], d.get("algo", ""), d.get("wrong", 0)
            if bad:
                wrong[(tool, n)] = wrong.get((tool, n), 0) + bad
            key = (tool, n, int(d["size"]))
            cur = samples.setdefault(key, {}).get(rep)
            if cur is None or us < cur[0]:  # gloo: best algorithm
                samples[key][rep] = (us, algo)
    memcpy = {}
    for path in glob.glob(os.path.join(raw, "memcpy.*.jsonl")):
        for line in open(path):
            if line.startswith("{"):
                d = json.loads(line)
                memcpy.setdefault(int(d["bytes"]), []).append(d["GBps"])
    return samples, wrong, errors, memcpy


def summarize(samples):
    # med[(tool, n, size)] = dict(us, busbw, spread, algos, reps)
    med = {}
    for (tool, n, size), reps in samples.items():
        us_list = [v[0] for v in reps.values()]
        us = statistics.median(us_list)
        algos = sorted({v[1] for v in reps.values()})
        algbw = size / (us * 1e3) if us > 0 else 0.0
        med[(tool, n, size)] = {
            "us": us, "algbw": algbw,
            "busbw": algbw * 2 * (n - 1) / n,
            "spread": max(us_list) / min(us_list) if min(us_list) > 0 else 0,
            "algos": algos, "reps": len(us_list), "all_us": us_list}
    return med


def memcpy_at(memcpy, size):
    """Median memcpy GB/s at the measured size nearest to size."""
    if not memcpy:
        return None
    best = min(memcpy, key=lambda s: abs(s - size))
    return statistics.median(memcpy[best])


def ratio(a, b):
    return a / b if a is not None and b else None


def f(v, spec="%.2f"):
    return "-" if v is None else spec % v


def report(med, wrong, errors, memcpy, ranks, machine):
    md = []
    goals_all = {}
    md.append("Machine and run:\n\n```\n" + machine.strip() + "\n```\n")
    if memcpy:
        md.append("memcpy bound (single thread, median GB/s): " + ", ".join(
            "%s %.2f" % (fmt_size(s), statistics.median(v))
            for s, v in sorted(memcpy.items())) + "\n")
    for n in ranks:
        tools = [t for t in TOOLS if any(k[0] == t and k[1] == n for k in med)]
        sizes = sorted({k[2] for k in med if k[1] == n})
        if not sizes:
            continue
        g = lambda t, s, fld: med.get((t, n, s), {}).get(fld)
        md.append("\n### %d ranks\n" % n)
        md.append("busbw (GB/s, median of repeats; gloo = best algorithm "
                  "per size)\n")
        md.append("| size | " + " | ".join(tools) + " |")
        md.append("|---:|" + "---:|" * len(tools))
        for s in sizes:
            md.append("| %s | " % fmt_size(s) + " | ".join(
                f(g(t, s, "busbw"), "%.3f") for t in tools) + " |")
        md.append("\ntime (µs, median of repeats; slowest rank's average)\n")
        md.append("| size | " + " | ".join(tools) + " |")
        md.append("|---:|" + "---:|" * len(tools))
        for s in sizes:
            md.append("| %s | " % fmt_size(s) + " | ".join(
                f(g(t, s, "us"), "%.1f") for t in tools) + " |")
        if "gloo" in tools:
            md.append("\ngloo's winning algorithm per size (per repeat): " +
                      "; ".join("%s %s" % (fmt_size(s), "/".join(
                          g("gloo", s, "algos") or ["-"])) for s in sizes))
        md.append("\nrun-to-run spread (max/min time over repeats, median "
                  "over sizes): " + ", ".join(
                      "%s %.2fx" % (t, statistics.median(
                          [g(t, s, "spread") for s in sizes
                           if g(t, s, "spread")] or [0])) for t in tools))
        # Ratios.
        md.append("\nratios (> 1 = wccl better for busbw; < 1 = wccl "
                  "better for time)\n")
        md.append("| size | shm busbw / best shm peer | uring busbw / best "
                  "TCP peer | shm busbw / memcpy | shm busbw / memcpy "
                  "of n x size | shm t / vader t | "
                  "uring t / ompi-tcp t | uring t / (gloo t / 3) |")
        md.append("|---:|---:|---:|---:|---:|---:|---:|---:|")
        rows = {}
        for s in sizes:
            bshm = max([g(t, s, "busbw") or 0 for t in SHM_PEERS] or [0])
            btcp = max([g(t, s, "busbw") or 0 for t in TCP_PEERS] or [0])
            r = {
                "shm_vs_peer": ratio(g("wccl-shm", s, "busbw"), bshm),
                "uring_vs_peer": ratio(g("wccl-uring", s, "busbw"), btcp),
                "shm_vs_memcpy": ratio(g("wccl-shm", s, "busbw"),
                                       memcpy_at(memcpy, s))
                if s >= LARGE else None,
                # memcpy of n x size: the same bytes touched as the n
                # ranks' inputs and outputs, so the same cache level.
                "shm_vs_memcpy_fp": ratio(g("wccl-shm", s, "busbw"),
                                          memcpy_at(memcpy, n * s))
                if s >= LARGE else None,
            }
            if s <= SMALL:
                r["shm_t_vs_vader"] = ratio(g("wccl-shm", s, "us"),
                                            g("ompi-vader", s, "us"))
                r["uring_t_vs_ompi_tcp"] = ratio(g("wccl-uring", s, "us"),
                                                 g("ompi-tcp", s, "us"))
                gl = g("gloo", s, "us")
                r["uring_t_vs_gloo_third"] = ratio(g("wccl-uring", s, "us"),
                                                   gl / 3 if gl else None)
            rows[s] = r
            md.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                fmt_size(s), f(r["shm_vs_peer"]), f(r["uring_vs_peer"]),
                f(r["shm_vs_memcpy"]), f(r["shm_vs_memcpy_fp"]),
                f(r.get("shm_t_vs_vader")),
                f(r.get("uring_t_vs_ompi_tcp")),
                f(r.get("uring_t_vs_gloo_third"))))

        def goal(name, key, sel, ok):
            vals = [(s, rows[s].get(key)) for s in sizes if sel(s)]
            vals = [(s, v) for s, v in vals if v is not None]
            if not vals:
                return (name, None, "no data")
            bad = [fmt_size(s) for s, v in vals if not ok(v)]
            worst = (min if ok(2.0) and not ok(0.0) else max)(
                v for _, v in vals)
            return (name, not bad, "worst %.2f%s" % (
                worst, "; fails at " + ", ".join(bad) if bad else ""))

        goals = [
            goal("shm busbw >= 2x best shm peer (>= 1 MiB)", "shm_vs_peer",
                 lambda s: s >= LARGE, lambda v: v >= 2.0),
            goal("shm busbw >= 50% of memcpy (>= 1 MiB)", "shm_vs_memcpy",
                 lambda s: s >= LARGE, lambda v: v >= 0.5),
            goal("shm busbw >= 50% of memcpy of n x size, the same bytes "
                 "touched (>= 1 MiB)", "shm_vs_memcpy_fp",
                 lambda s: s >= LARGE, lambda v: v >= 0.5),
            goal("shm latency <= Open MPI vader (<= 4 KiB)", "shm_t_vs_vader",
                 lambda s: s <= SMALL, lambda v: v <= 1.0),
            goal("uring busbw >= 1.0x best TCP peer (>= 1 MiB)",
                 "uring_vs_peer", lambda s: s >= LARGE, lambda v: v >= 1.0),
            goal("uring latency <= Open MPI tcp (<= 4 KiB)",
                 "uring_t_vs_ompi_tcp", lambda s: s <= SMALL,
                 lambda v: v <= 1.0),
            goal("uring latency <= 1/3 of Gloo (<= 4 KiB)",
                 "uring_t_vs_gloo_third", lambda s: s <= SMALL,
                 lambda v: v <= 1.0),
        ]
        goals_all[n] = goals
        md.append("\ngoals, %d ranks (each must hold at every size in its "
                  "range):\n" % n)
        for name, ok, why in goals:
            md.append("- %s: **%s** (%s)" % (
                name, "met" if ok else ("no data" if ok is None else
                                        "NOT met"), why))
    bad = ["%s n=%d: %d wrong elements" % (t, n, c)
           for (t, n), c in sorted(wrong.items())]
    if bad:
        md.append("\n**Wrong results:** " + "; ".join(bad))
    if errors:
        md.append("\nalgorithms that refused a size: " + "; ".join(
            sorted(set(errors))[:20]))
    return "\n".join(md) + "\n", goals_all


def plot(med, ranks, plots):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    styles = {"wccl-shm": ("C0", "-", "o"), "wccl-uring": ("C1", "-", "s"),
              "gloo": ("C2", "--", "^"), "ompi-tcp": ("C3", "--", "v"),
              "ompi-vader": ("C4", ":", "D"), "mpich": ("C5", ":", "x"),
              "torch-gloo": ("C6", "--", "+")}
    paths = []
    for n in ranks:
        fig, ax = plt.subplots(figsize=(8, 5))
        for t in TOOLS:
            pts = sorted((k[2], v["busbw"]) for k, v in med.items()
                         if k[0] == t and k[1] == n and v["busbw"] > 0)
            if not pts:
                continue
            c, ls, mk = styles[t]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=c,
                    linestyle=ls, marker=mk, label=t)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("size per rank (bytes)")
        ax.set_ylabel("busbw (GB/s), median of repeats")
        ax.set_title("allreduce fp32 sum, %d ranks, one host (loopback/shm)"
                     % n)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
        path = os.path.join(plots, "allreduce_busbw_%dranks.png" % n)
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--raw", required=True)
    p.add_argument("--machine", default=None)
    p.add_argument("--ranks", default="2 4")
    p.add_argument("--md", default=None)
    p.add_argument("--json", default=None)
    p.add_argument("--plots", default=None)
    a = p.parse_args()
    ranks = [int(x) for x in a.ranks.split()]
    samples, wrong, errors, memcpy = load(a.raw)
    if not samples:
        sys.exit("coll_report: no results under %s" % a.raw)
    med = summarize(samples)
    machine = open(a.machine).read() if a.machine else ""
    text, goals = report(med, wrong, errors, memcpy, ranks, machine)
    print(text)
    if a.md:
        open(a.md, "w").write(text)
    if a.json:
        json.dump({"results": [dict(tool=k[0], ranks=k[1], size=k[2], **v)
                               for k, v in sorted(med.items())],
                   "memcpy_GBps": {str(k): v for k, v in memcpy.items()},
                   "goals": {str(n): [dict(goal=g[0], met=g[1], detail=g[2])
                                      for g in gs]
                             for n, gs in goals.items()},
                   "wrong": {"%s/n%d" % k: v for k, v in wrong.items()},
                   "errors": errors}, open(a.json, "w"), indent=1)
    if a.plots:
        try:
            for path in plot(med, ranks, a.plots):
                print("plot: " + path)
        except ImportError as e:
            print("no plot: %s" % e, file=sys.stderr)


if __name__ == "__main__":
    main()
