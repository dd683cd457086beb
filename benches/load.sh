#!/usr/bin/env bash
# Whole-server load with SIPp's built-in uac scenario, bounded in calls and
# time. Prints, per rate: calls attempted/succeeded/failed, the server's CPU
# (percent of one core) and memory (peak RSS; at the end, idle and 60 s
# after the load).
#
#   benches/load.sh [RATE...]      default rates: 300 500 700; 30 s each
#   SECS=10 benches/load.sh 500
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${SECS:-30}
RATES=("$@")
[ ${#RATES[@]} -gt 0 ] || RATES=(300 500 700)
command -v sipp >/dev/null || { echo "sipp missing: apt-get install sip-tester" >&2; exit 1; }
cargo build --release -q
work=$(mktemp -d)
trap 'kill $srv 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
mkdir -p "$work/flows"
printf 'flow "Answer"\n  numbers 1000\n\nstep start\n  wait 1m\n  hangup "done"\n' > "$work/flows/answer.ivr"
cat > "$work/load.toml" <<TOML
log = "warn"
# SIPp speaks from one loopback address, like one trusted trunk.
[security]
exempt_networks = ["127.0.0.0/8"]
[calls]
max_calls = 20000
max_call_secs = 60
[[tenants]]
id = "load"
numbers = ["1000"]
flows_dir = "$work/flows"
max_calls = 20000
TOML
./target/release/dhwani serve --config "$work/load.toml" --listen "udp:127.0.0.1:$port" --data-dir "$work/data" --http-listen 127.0.0.1:0 2>"$work/server.log" &
srv=$!
sleep 1
hz=$(getconf CLK_TCK)
idle=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$srv/status)
printf '%-6s %-8s %-10s %-7s %-12s %-12s\n' rate calls successful failed "server CPU%" "peak RSS MB"
for rate in "${RATES[@]}"; do
  calls=$((rate * SECS))
  read -r _ _ _ _ _ _ _ _ _ _ _ _ _ ut st _ < <(cut -d' ' -f1-20 /proc/$srv/stat)
  t0=$(date +%s.%N)
  (cd "$work" && timeout $((SECS + 60)) sipp -sn uac "127.0.0.1:$port" -s 1000 -i 127.0.0.1 \
      -r "$rate" -m "$calls" -l $((rate * 4)) -nostdin -timeout "$((SECS + 50))s" -timeout_error \
      -trace_stat -stf "stat_$rate.csv" >/dev/null 2>&1) || true
  t1=$(date +%s.%N)
  read -r _ _ _ _ _ _ _ _ _ _ _ _ _ ut2 st2 _ < <(cut -d' ' -f1-20 /proc/$srv/stat)
  cpu=$(python3 -c "print(round(100*(($ut2+$st2)-($ut+$st))/$hz/($t1-$t0),1))")
  rss=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$srv/status)
  read -r ok fail < <(python3 - "$work/stat_$rate.csv" <<'PY'
import sys
rows=[l.rstrip('\n').split(';') for l in open(sys.argv[1]) if l.strip()]
h=rows[0]; last=rows[-1]
print(last[h.index('SuccessfulCall(C)')], last[h.index('FailedCall(C)')])
PY
)
  printf '%-6s %-8s %-10s %-7s %-12s %-12s\n' "$rate" "$calls" "$ok" "$fail" "$cpu" "$rss"
done
# Memory after the load: idle at start, then 60 s after the last rate
# (issue 13: back within idle + 20 MiB).
sleep 60
echo "RSS idle $idle MB, 60 s after the load $(awk '/VmRSS/ {print int($2/1024)}' /proc/$srv/status) MB"
