#!/usr/bin/env bash
# IVR load: N concurrent SIPp callers walk a flow that plays a prompt and
# gathers a digit (sent by SIP INFO after HOLD seconds), then hears a
# goodbye prompt and gets our BYE. Loopback only; bounded in calls and time.
#
#   benches/ivr_load.sh [CONCURRENT] [HOLD_SECS] [RATE]
#   defaults: 500 concurrent, 20 s each, 300 new calls/s
#   ROUNDS=3 benches/ivr_load.sh ...   the same load again on the same
#   server process, printing RSS after each round (growth = a leak); the
#   figures below are for the last round
#
# Prints: calls completed and failed, the server's CPU and RSS (idle, peak,
# after), CPU time per call-second, and the share of RTP frames sent more
# than 2 ms late (from each call's `call finished` log line).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
HOLD=${2:-20}
RATE=${3:-300}
command -v sipp >/dev/null || { echo "sipp missing: apt-get install sip-tester" >&2; exit 1; }
cargo build --release -q
work=$(mktemp -d)
trap 'kill $srv 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
mkdir -p "$work/flows"
cat > "$work/flows/load.ivr" <<IVR
flow "Load"
  numbers 1000

step menu
  gather digits 1, timeout 60s, retries 0
    play "$PWD/examples/prompts/welcome.wav"
    on 1 -> done
    on invalid -> done
    on timeout -> done

step done
  play "$PWD/examples/prompts/chime.wav"
  hangup "done"
IVR
cat > "$work/load.toml" <<TOML
log = "warn,dhwani::call_task=info"
[media]
rtp_ports = "10000-60000"
timeout_secs = 120
[calls]
max_calls = 20000
[[tenants]]
id = "load"
numbers = ["1000"]
flows_dir = "$work/flows"
max_calls = 20000
TOML
hold_ms=$((HOLD * 1000))
cat > "$work/caller.xml" <<XML
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="ivr-load">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:+9198[call_number]@[local_ip]:[local_port]>;tag=[pid]T[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:+9198[call_number]@[local_ip]:[local_port]>;tag=[pid]T[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
]]></send>
  <pause milliseconds="$hold_ms"/>
  <send retrans="500"><![CDATA[
INFO [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:+9198[call_number]@[local_ip]:[local_port]>;tag=[pid]T[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 INFO
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/dtmf-relay
Content-Length: [len]

Signal=1
Duration=160
]]></send>
  <recv response="200"/>
  <recv request="BYE" timeout="30000"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>
</scenario>
XML
./target/release/dhwani serve --config "$work/load.toml" --listen "udp:127.0.0.1:$port" --data-dir "$work/data" 2>"$work/server.log" &
srv=$!
sleep 2
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' /proc/$srv/stat; }
rss_kb() { awk '/VmRSS/ {print $2}' /proc/$srv/status; }
idle_rss=$(rss_kb)
ROUNDS=${ROUNDS:-1}
for round in $(seq 1 "$ROUNDS"); do
c0=$(cpu_ticks); t0=$(date +%s.%N)
log_from=$(stat -c %s "$work/server.log")
peak_rss=0
(cd "$work" && timeout $((HOLD + N / RATE + 90)) sipp -sf caller.xml "127.0.0.1:$port" -s 1000 -i 127.0.0.1 \
    -r "$RATE" -m "$N" -l "$N" -nostdin -timeout "$((HOLD + N / RATE + 80))s" -timeout_error \
    -max_socket 60000 -trace_stat -stf stat.csv >/dev/null 2>&1) &
sp=$!
while kill -0 $sp 2>/dev/null; do
  r=$(rss_kb); [ "$r" -gt "$peak_rss" ] && peak_rss=$r
  sleep 0.5
done
wait $sp || true
c1=$(cpu_ticks); t1=$(date +%s.%N)
sleep 5
after_rss=$(rss_kb)
echo "round $round: RSS after the calls ended: $((after_rss / 1024)) MiB (idle before round 1: $((idle_rss / 1024)) MiB); open files $(ls /proc/$srv/fd | wc -l)"
done
read -r ok fail < <(python3 - "$work/stat.csv" <<'PY'
import sys
rows=[l.rstrip('\n').split(';') for l in open(sys.argv[1]) if l.strip()]
h=rows[0]; last=rows[-1]
print(last[h.index('SuccessfulCall(C)')], last[h.index('FailedCall(C)')])
PY
)
python3 - "$work/server.log" "$work/data/dhwani.db" "$log_from" "$c0" "$c1" "$hz" "$t0" "$t1" "$N" "$ok" "$fail" "$idle_rss" "$peak_rss" "$after_rss" <<'PY'
import re, sqlite3, sys
log, db, log_from, c0, c1, hz, t0, t1, n, ok, fail, idle, peak, after = sys.argv[1:]
frames = late = calls = 0
f = open(log, errors="replace"); f.seek(int(log_from))
for line in f:
    if 'call finished' in line:
        calls += 1
        f = re.search(r'frames=(\d+)', line); l = re.search(r'late_2ms=(\d+)', line)
        frames += int(f.group(1)) if f else 0; late += int(l.group(1)) if l else 0
cpu_s = (int(c1) - int(c0)) / int(hz); wall = float(t1) - float(t0)
con = sqlite3.connect(db)
call_s = (con.execute("SELECT COALESCE(SUM(duration_ms),0) FROM calls WHERE start_ms >= ?", (int(float(t0) * 1000),)).fetchone()[0]) / 1000
idle, peak, after = int(idle), int(peak), int(after)
print(f"concurrent callers     {n} (hold before the digit: see HOLD_SECS)")
print(f"calls completed/failed {ok} / {fail}")
print(f"server CPU             {cpu_s:.1f} s over {wall:.1f} s wall = {100*cpu_s/wall:.1f}% of one core")
print(f"call-seconds served    {call_s:.0f}")
print(f"CPU per call-second    {100*cpu_s/max(call_s,1):.4f}% of one core per active call")
print(f"RSS idle/peak/after    {idle//1024} / {peak//1024} / {after//1024} MiB; per active call {(peak-idle)/max(int(n),1):.1f} KiB")
print(f"RTP frames >2 ms late  {late} of {frames} = {100*late/max(frames,1):.2f}%")
PY
