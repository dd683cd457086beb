#!/usr/bin/env bash
# System calls per RTP packet (issue 18's "before" figure): N SIPp calls
# held HOLD seconds against a flow that plays a prompt and waits, so the
# server sends one RTP packet per call every 20 ms; `strace -c -f` counts
# the server's system calls for WINDOW seconds while every call is up.
# Packets in the window = live calls x 50/s x WINDOW (SIPp sends none).
# strace slows the server, so read the counts, not the timings.
# Loopback only; bounded in calls and time.
#
#   benches/syscalls.sh [CONCURRENT] [HOLD_SECS] [WINDOW_SECS]
#   defaults: 200 concurrent, 30 s each, a 10 s window
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
HOLD=${2:-30}
WINDOW=${3:-10}
command -v strace >/dev/null || { echo "strace missing: apt-get install strace" >&2; exit 1; }
# shellcheck source=benches/hold_server.sh
source benches/hold_server.sh
(cd "$work" && timeout $((HOLD + 60)) sipp -sn uac "127.0.0.1:$port" -s 1000 -i 127.0.0.1 \
    -r 200 -m "$N" -l "$N" -d $((HOLD * 1000)) -nostdin -timeout "$((HOLD + 50))s" \
    -max_socket 60000 >/dev/null 2>&1) &
sp=$!
active() { curl -s "http://$http/metrics" | awk '/^dhwani_calls_active\{tenant="load"\}/ {print $2}'; }
for _ in $(seq 1 100); do [ "$(active)" = "$N" ] && break; sleep 0.2; done
live=$(active)
timeout -s INT "$WINDOW" strace -c -f -p "$srv" -o "$work/strace.txt" || true
wait $sp || true
python3 - "$work/strace.txt" "$live" "$WINDOW" <<'PY'
import sys
path, live, window = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
rows, total = [], 0
for l in open(path):
    f = l.split()
    if len(f) >= 5 and f[0][0].isdigit() and f[-1] != "total":
        calls = int(f[3]); name = f[-1]
        rows.append((calls, name)); total += calls
packets = live * 50 * window
print(f"live calls             {int(live)}; window {window:.0f} s; RTP packets sent in it (50/s per call) {int(packets)}")
print(f"system calls           {total} = {total / packets:.2f} per RTP packet sent")
for calls, name in sorted(rows, reverse=True)[:8]:
    print(f"  {name:<20} {calls:>9}  {calls / packets:.3f} per packet")
PY
