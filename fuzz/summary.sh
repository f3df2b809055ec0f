#!/usr/bin/env bash
# Sums fuzz/RUNS.md per target: minutes, executions, the highest coverage
# seen and the crashes found (the README's reliability table).
set -euo pipefail
cd "$(dirname "$0")"
awk -F'|' '
  /^\| 20/ {
    t = $3; gsub(/ /, "", t)
    m = $4 + 0; e = $5; gsub(/ /, "", e); c = $6 + 0
    if (!(t in min)) order[++n] = t
    min[t] += m; exe[t] += e; if (c > cov[t]) cov[t] = c
    if ($8 ~ /CRASH|TIMEOUT/) crash[t]++
    total += m; totale += e
  }
  END {
    print "| target | minutes | executions | coverage (libFuzzer `cov:`) | findings (crashes, timeouts) |"
    print "|---|---:|---:|---:|---:|"
    for (i = 1; i <= n; i++) {
      t = order[i]
      printf "| `%s` | %d | %d | %d | %d |\n", t, min[t], exe[t], cov[t], crash[t] + 0
    }
    printf "| all | %d | %d | | |\n", total, totale
  }' RUNS.md
