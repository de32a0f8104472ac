#!/usr/bin/env bash
# Host side, offline: summaries of guest-perf.sh lat-ab / lat-trace logs.
#   lat-an.sh sum LOG...     per MTU and column, from the REPEAT lines: median,
#                            ratio to ib_write_lat's median, median per-repeat
#                            ratio, how many <= 1.1, that median over the
#                            repeats where ib_write_lat was under 120 us, and
#                            the lower quartiles' ratio (unpinned ib reference)
#   lat-an.sh slices LOG...  wccl pairs by the busier side's slices a round
#                            (WCCL_PERF_SCHEDSTAT=1 lines): count, mean typical
#                            us, the quieter side's slices a round
#   lat-an.sh wakes LOG...   per lat-trace window: kworker wake-ups by waker
#                            vCPU -> target vCPU, switches into kworkers per
#                            vCPU, where the benchmark processes ran
set -euo pipefail
mode=${1:?usage: lat-an.sh sum|slices|wakes LOG...}
shift
case $mode in
sum)
cat "$@" | grep '^REPEAT' | awk '
function med(a, n,   i, j, t) { for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] > a[j]; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
  return (n % 2) ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2 }
{ mtu = $3; ib = $6; key = mtu; nrep[key]++; k = nrep[key]; IB[key, k] = ib
  for (i = 7; i <= NF; i++) if ($i ~ /^[a-z][a-z0-9]*$/ && $(i+1) ~ /^[0-9.]+$/ && $i != "us") { c = $i; cols[c] = 1; V[key, c, k] = $(i+1) } }
END { for (key in nrep) { n = nrep[key]; m = 0; f = 0
    for (k = 1; k <= n; k++) { a[k] = IB[key, k]; if (IB[key,k] < 120) f++ } mib = med(a, n); qib = a[int((n+3)/4)]
    printf "mtu %s: %d repeats, ib_write_lat median %.1f (fast %d), lower quartile %.1f\n", key, n, mib, f, qib
    for (c in cols) { nn = 0; nr = 0; le = 0; nf = 0; fa = 0; delete b; delete r; delete fr
      for (k = 1; k <= n; k++) if ((key, c, k) in V) { v = V[key, c, k]; b[++nn] = v; if (v < 120) fa++
        q = v / IB[key, k]; r[++nr] = q; if (q <= 1.1) le++; if (IB[key, k] < 120) fr[++nf] = q }
      if (!nn) continue
      mv = med(b, nn); qv = b[int((nn+3)/4)]
      printf "  %-7s median %.1f = %.2fx (fast %d/%d); per-repeat ratio median %.2f, %d <= 1.1; over ib-fast repeats %.2f (%d); lower quartile %.1f = %.2fx\n", c, mv, mv/mib, fa, nn, med(r, nr), le, med(fr, nf), nf, qv, qv/qib }
  } }'
	;;
slices)
awk '/^  [a-z0-9]+ [0-9.]+: SCHED/ { name=$1; v=$2+0; split($0, h, "|");
  n=split(h[1], a, " "); for(i=1;i<=n;i++) if(a[i]=="slices") cs=a[i+1]/1050;
  n=split(h[2], b, " "); for(i=1;i<=n;i++) if(b[i]=="slices") ss=b[i+1]/1050;
  hi = cs>ss?cs:ss; lo = cs>ss?ss:cs; cls = hi<1.6 ? "1" : (hi<2.6 ? "2" : "3+");
  k=name" "cls; cnt[k]++; sum[k]+=v; los[k]+=lo }
  END { for (k in cnt) printf "%-10s n=%2d mean %.1f us, quieter side %.2f a round\n", k, cnt[k], sum[k]/cnt[k], los[k]/cnt[k] }' "$@" | sort
	;;
wakes)
awk '/sched_wakeup:|sched_switch:/ {
  w = $1; sub(/:$/, "", w)
  cpu = ""; for (i = 2; i <= NF; i++) if ($i ~ /^\[[0-9]+\]$/) { cpu = substr($i, 2, length($i) - 2) + 0; break }
  if ($0 ~ /sched_wakeup:/ && $0 ~ /comm=kworker/) { match($0, /target_cpu=[0-9]+/); t = substr($0, RSTART + 11, RLENGTH - 11) + 0
     wk[w, cpu "->" t]++; wins[w] = 1 }
  if ($0 ~ /sched_switch:/) { wins[w] = 1
     if ($0 ~ /next_comm=kworker/) ksw[w, cpu]++
     if (match($0, /next_comm=(wccl-perf|ib_write_lat) next_pid=[0-9]+/)) { s = substr($0, RSTART, RLENGTH); sub(/next_comm=/, "", s); run[w, s " on " cpu]++ } } }
  END { for (x in wins) { printf "%s:", x
      for (k in wk) { split(k, a, SUBSEP); if (a[1] == x) printf " wake %s %d", a[2], wk[k] }
      for (k in ksw) { split(k, a, SUBSEP); if (a[1] == x) printf " | kworker-in on %s %d", a[2], ksw[k] }
      for (k in run) { split(k, a, SUBSEP); if (a[1] == x) printf " | %s %d", a[2], run[k] }
      printf "\n" } }' "$@"
	;;
*) echo "lat-an.sh: unknown mode $mode (sum, slices, wakes)" >&2; exit 2 ;;
esac
