#!/usr/bin/env python3
"""Per-tool summary of a bench-wan.sh raw.log with repeated tools (A/B runs).

    perf/stream/ab-summary.py RAW.log [RAW.log ...]

For each profile and tool: goodput of every run and the mean, the probe's whole-run
p99, and its p90 / p99 over the steady part: samples from 1 s after the
first data byte crossed the link (startup's queue excluded).
"""
import json
import statistics
import sys


def pct(v, q):
    return v[int(q * (len(v) - 1))]


def summarise(path):
    lines = open(path).read().splitlines()
    results = [json.loads(x[7:]) for x in lines if x.startswith('RESULT ')]
    series = [json.loads(x[7:]) for x in lines if x.startswith('SERIES ')]
    runs = {}
    for s, r in zip(series, results):
        rx, ping = s['rx'], s['ping']
        moved = [t for t, b in rx if b - rx[0][1] > 1e5]
        start = moved[0] if moved else 0.0
        whole = sorted(v for _, v in ping)
        steady = sorted(v for t, v in ping if t > start + 1.0) or whole
        runs.setdefault((s['profile'], s['tool']), []).append(
            (r['goodput_mbps'], pct(whole, .99), pct(steady, .9), pct(steady, .99)))
    print(path)
    for (profile, tool), a in runs.items():
        print('  %-10s %-16s n=%d goodput %s (mean %.1f) | whole p99 mean %.1f | '
              'steady p90 / p99 mean %.1f / %.1f' % (
                  profile, tool, len(a), ' '.join('%.1f' % x[0] for x in a),
                  statistics.mean(x[0] for x in a),
                  statistics.mean(x[1] for x in a),
                  statistics.mean(x[2] for x in a),
                  statistics.mean(x[3] for x in a)))


if __name__ == '__main__':
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for p in sys.argv[1:]:
        summarise(p)
