#!/usr/bin/env bash
# IVR load: N concurrent SIPp callers walk a flow that asks recording
# consent (the caller answers 1 by SIP INFO at once), plays a prompt and
# gathers a digit (sent after HOLD seconds), then hears a goodbye prompt and
# gets our BYE. Number 1000's flow does not record; 1001's records the call.
# Loopback only; bounded in calls and time.
#
#   benches/ivr_load.sh [CONCURRENT] [HOLD_SECS] [RATE]
#   defaults: 500 concurrent, 20 s each, 300 new calls/s
#   ROUNDS=3 benches/ivr_load.sh ...   the same load again on the same
#   server process, figures per round (RSS growth across rounds = a leak)
#   COMPARE_RECORDING=1 benches/ivr_load.sh ...   round 1 without, round 2
#   with an encrypted stereo recording of every call, same server
#   RECORD=1 ...   every round records
#   SETTLE=1 ...   also the RSS 60 s after each round's load
#   STREAM=1 ...   callers stream RTP in (a 440 Hz tone, G.711 u-law, from
#   the answer to the end), as real callers do; otherwise they send none
#   PERF_OUT=FILE ...   `perf record -e cpu-clock` samples the server for
#   10 s once every caller of round 1 has dialled (`perf report -i FILE`)
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
for rec in 0 1; do
  number=$((1000 + rec))
  start=""
  [ "$rec" = 1 ] && start="recording start"
cat > "$work/flows/load$rec.ivr" <<IVR
flow "Load $rec"
  numbers $number

step menu
  consent play "$PWD/examples/prompts/chime.wav", timeout 10s
  if consent == "yes"
    log "consented"
    $start
  gather digits 1, timeout 60s, retries 0
    play "$PWD/examples/prompts/welcome.wav"
    on 1 -> done
    on invalid -> done
    on timeout -> done

step done
  play "$PWD/examples/prompts/chime.wav"
  hangup "done"
IVR
done
cat > "$work/load.toml" <<TOML
log = "warn,dhwani::call=info"
[recordings]
sync_ms = ${SYNC_MS:-1000}
[media]
rtp_ports = "10000-60000"
timeout_secs = 120
# SIPp speaks from one loopback address, like one trusted trunk.
[security]
exempt_networks = ["127.0.0.0/8"]
[calls]
max_calls = 20000
[[tenants]]
id = "load"
numbers = ["1000", "1001"]
flows_dir = "$work/flows"
max_calls = 20000
TOML
hold_ms=$((HOLD * 1000))
stream_on=""
if [ -n "${STREAM:-}" ]; then
  python3 benches/ulaw_tone.py "$work/tone.ulaw"
  stream_on="<nop><action><exec rtp_stream=\"$work/tone.ulaw,-1,0\"/></action></nop>"
fi
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
  $stream_on
  <pause milliseconds="300"/>
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
  <pause milliseconds="$hold_ms"/>
  <send retrans="500"><![CDATA[
INFO [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:+9198[call_number]@[local_ip]:[local_port]>;tag=[pid]T[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 3 INFO
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
./target/release/dhwani serve --config "$work/load.toml" --listen "udp:127.0.0.1:$port" --data-dir "$work/data" --http-listen 127.0.0.1:0 2>"$work/server.log" &
srv=$!
sleep 2
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' /proc/$srv/stat; }
rss_kb() { awk '/VmRSS/ {print $2}' /proc/$srv/status; }
idle_rss=$(rss_kb)
ROUNDS=${ROUNDS:-1}
[ -n "${COMPARE_RECORDING:-}" ] && ROUNDS=2
for round in $(seq 1 "$ROUNDS"); do
number=1000
label="no recording"
if [ -n "${COMPARE_RECORDING:-}" ] && [ "$round" = 2 ]; then number=1001; label="recording every call"; fi
[ -n "${RECORD:-}" ] && { number=1001; label="recording every call"; }
c0=$(cpu_ticks); t0=$(date +%s.%N)
log_from=$(stat -c %s "$work/server.log")
peak_rss=0
(cd "$work" && timeout $((HOLD + N / RATE + 90)) sipp -sf caller.xml "127.0.0.1:$port" -s "$number" -i 127.0.0.1 \
    -r "$RATE" -m "$N" -l "$N" -nostdin -timeout "$((HOLD + N / RATE + 80))s" -timeout_error \
    -max_socket 60000 -trace_stat -stf "stat$round.csv" >/dev/null 2>&1) &
sp=$!
if [ -n "${PERF_OUT:-}" ] && [ "$round" = 1 ]; then
  (sleep $((N / RATE + 3)); perf record -q -e cpu-clock -F 999 -g -p "$srv" -o "$PERF_OUT" -- sleep 10 >/dev/null 2>&1) &
fi
while kill -0 $sp 2>/dev/null; do
  r=$(rss_kb); [ "$r" -gt "$peak_rss" ] && peak_rss=$r
  sleep 0.5
done
wait $sp || true
c1=$(cpu_ticks); t1=$(date +%s.%N)
sleep 5
after_rss=$(rss_kb)
# 60 s after the load (issue 13: back within idle + 20 MiB by then).
[ -n "${SETTLE:-}" ] && { sleep 55; settled_rss=$(rss_kb); } || settled_rss=0
read -r ok fail < <(python3 - "$work/stat$round.csv" <<'PY'
import sys
rows=[l.rstrip('\n').split(';') for l in open(sys.argv[1]) if l.strip()]
h=rows[0]; last=rows[-1]
print(last[h.index('SuccessfulCall(C)')], last[h.index('FailedCall(C)')])
PY
)
echo "== round $round: $label; open files after: $(ls /proc/$srv/fd | wc -l); recordings on disk: $(find "$work/data/recordings" -type f 2>/dev/null | wc -l)"
python3 - "$work/server.log" "$work/data/dhwani.db" "$log_from" "$c0" "$c1" "$hz" "$t0" "$t1" "$N" "$ok" "$fail" "$idle_rss" "$peak_rss" "$after_rss" "$settled_rss" <<'PY'
import re, sqlite3, sys
log, db, log_from, c0, c1, hz, t0, t1, n, ok, fail, idle, peak, after, settled = sys.argv[1:]
frames = late = calls = 0
buckets = {5: 0, 10: 0, 20: 0}
f = open(log, errors="replace"); f.seek(int(log_from))
for line in f:
    if 'call finished' in line:
        calls += 1
        fr = re.search(r'frames=(\d+)', line); l = re.search(r'late_2ms=(\d+)', line)
        frames += int(fr.group(1)) if fr else 0; late += int(l.group(1)) if l else 0
        for b in (5, 10, 20):
            m = re.search(rf'late_{b}ms=(\d+)', line)
            buckets[b] += int(m.group(1)) if m else 0
cpu_s = (int(c1) - int(c0)) / int(hz); wall = float(t1) - float(t0)
con = sqlite3.connect(db)
call_s = (con.execute("SELECT COALESCE(SUM(duration_ms),0) FROM calls WHERE start_ms >= ?", (int(float(t0) * 1000),)).fetchone()[0]) / 1000
idle, peak, after = int(idle), int(peak), int(after)
print(f"concurrent callers     {n}")
print(f"calls completed/failed {ok} / {fail}")
print(f"server CPU             {cpu_s:.1f} s over {wall:.1f} s wall = {100*cpu_s/wall:.1f}% of one core")
print(f"call-seconds served    {call_s:.0f}")
print(f"CPU per call-second    {100*cpu_s/max(call_s,1):.4f}% of one core per active call")
print(f"RSS idle/peak/after    {idle//1024} / {peak//1024} / {after//1024} MiB; per active call {(peak-idle)/max(int(n),1):.1f} KiB")
if int(settled):
    print(f"RSS 60 s after         {int(settled)//1024} MiB")
print(f"RTP frames >2 ms late  {late} of {frames} = {100*late/max(frames,1):.2f}%")
for b in (5, 10, 20):
    print(f"RTP frames >{b} ms late {' ' if b < 10 else ''}{buckets[b]} of {frames} = {100*buckets[b]/max(frames,1):.3f}%")
PY
done
