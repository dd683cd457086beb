#!/usr/bin/env bash
# Admin API and /metrics under load: N concurrent SIPp calls (held HOLD
# seconds each, the server sending RTP to every one) in two rounds on one
# server process. Round 1 nobody scrapes; round 2 /metrics is scraped once
# a second and `/v1/calls/live` is read once a second, and, while all N
# calls are up, 50 back-to-back scrapes and 50 back-to-back live-call
# reads are timed. Loopback only; bounded in calls and time.
#
#   benches/api_load.sh [CONCURRENT] [HOLD_SECS] [RATE]
#   defaults: 2000 concurrent, 40 s each, 300 new calls/s
#
# Prints per round: calls completed, server CPU, and the share of frames
# sent more than 2 / 5 / 10 / 20 ms late (from /metrics, the calls of that
# round); then scrape and calls-live latency (p50, p95, max) and sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-2000}
HOLD=${2:-40}
RATE=${3:-300}
# shellcheck source=benches/hold_server.sh
source benches/hold_server.sh
key=$(./target/release/dhwani apikeys add --config "$work/load.toml" --data-dir "$work/data" --role platform-operator 2>/dev/null)
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' /proc/$srv/stat; }
for round in 1 2; do
  c0=$(cpu_ticks); t0=$(date +%s.%N)
  (cd "$work" && timeout $((HOLD + N / RATE + 90)) sipp -sn uac "127.0.0.1:$port" -s 1000 -i 127.0.0.1 \
      -r "$RATE" -m "$N" -l "$N" -d $((HOLD * 1000)) -nostdin -timeout "$((HOLD + N / RATE + 80))s" \
      -max_socket 60000 -trace_stat -stf "stat$round.csv" >/dev/null 2>&1) &
  sp=$!
  python3 - "$http" "$key" "$round" "$N" "$sp" "$work/latency$round.txt" <<'PY'
import json, os, sys, time, urllib.request
http, key, rnd, n, sp, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
def get(path, auth=False):
    req = urllib.request.Request(f"http://{http}{path}")
    if auth:
        req.add_header("Authorization", f"Bearer {key}")
    t = time.perf_counter()
    body = urllib.request.urlopen(req, timeout=30).read()
    return time.perf_counter() - t, body
def alive():
    try:
        os.kill(sp, 0)
        return True
    except OSError:
        return False
def active():
    _, b = get("/metrics")
    for l in b.decode().splitlines():
        if l.startswith('dhwani_calls_active{tenant="load"}'):
            return float(l.split()[-1])
    return 0
timed = False
lines = []
while alive():
    if rnd == 2:
        a = active()
        get("/v1/calls/live", auth=True)
        if not timed and a >= n:
            timed = True
            for path, auth in (("/metrics", False), ("/v1/calls/live", True)):
                ts, size = [], 0
                for _ in range(50):
                    dt, body = get(path, auth)
                    ts.append(dt); size = len(body)
                ts.sort()
                lines.append(f"{path:<16} with {int(a)} live calls: p50 {ts[24]*1000:.1f} ms, p95 {ts[47]*1000:.1f} ms, max {ts[-1]*1000:.1f} ms, {size} bytes")
    time.sleep(1)
open(out, "w").write("\n".join(lines) + "\n")
PY
  wait $sp || true
  c1=$(cpu_ticks); t1=$(date +%s.%N)
  sleep 3
  curl -s "http://$http/metrics" > "$work/metrics$round.txt"
  python3 - "$work/stat$round.csv" "$work/metrics$round.txt" "$work/metrics$((round - 1)).txt" "$c0" "$c1" "$hz" "$t0" "$t1" "$round" <<'PY'
import sys
stat, now, before, c0, c1, hz, t0, t1, rnd = sys.argv[1:]
rows = [l.rstrip('\n').split(';') for l in open(stat) if l.strip()]
h = rows[0]; last = rows[-1]
ok, fail = last[h.index('SuccessfulCall(C)')], last[h.index('FailedCall(C)')]
def series(path):
    d = {}
    try:
        for l in open(path):
            if l.startswith('dhwani_frames'):
                k, v = l.rsplit(' ', 1)
                d[k] = float(v)
    except FileNotFoundError:
        pass
    return d
a, b = series(now), series(before)
frames = a.get('dhwani_frames_total', 0) - b.get('dhwani_frames_total', 0)
late = {ms: a.get(f'dhwani_frames_late_total{{over_ms="{ms}"}}', 0) - b.get(f'dhwani_frames_late_total{{over_ms="{ms}"}}', 0) for ms in (2, 5, 10, 20)}
cpu = (int(c1) - int(c0)) / int(hz); wall = float(t1) - float(t0)
label = "nobody scraping" if rnd == "1" else "scraped /metrics and read /v1/calls/live every second"
print(f"== round {rnd}: {label}")
print(f"calls                  {ok} completed, {fail} failed")
print(f"server CPU             {cpu:.1f} s over {wall:.1f} s wall = {100 * cpu / wall:.1f}% of one core")
if frames:
    print("frames late            " + ", ".join(f"> {ms} ms {100 * late[ms] / frames:.3f}%" for ms in (2, 5, 10, 20)) + f" of {int(frames)}")
PY
  [ "$round" = 2 ] && cat "$work/latency2.txt"
done
