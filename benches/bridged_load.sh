#!/usr/bin/env bash
# Bridged-call load (issue 12): N agents register with digest (a small
# Python client, one UDP socket on port P), then a SIPp "agent farm" on
# the same port P answers every call the server rings (180, 200 with SDP,
# and -rtp_echo sends each leg's audio back). N SIPp callers dial in at
# RATE per second, consent to recording (SIP INFO 1) and queue; each is
# bridged to an agent, recorded in stereo (caller left, agent right), and
# talks for HOLD seconds (the caller streams a 440 Hz tone, so every leg
# carries audio both ways), then hangs up. Loopback only; bounded in calls
# and time.
#
#   benches/bridged_load.sh [CALLS] [HOLD_SECS] [RATE]   defaults: 500 30 25
#
# With PERF_OUT=FILE set, `perf record -e cpu-clock` samples the server for
# 10 s once every caller has dialled (where a bridged call's CPU goes:
# `perf report -i FILE`). SERVER_PREFIX="valgrind --tool=massif ..." runs
# the server under that command (where a bridged call's memory goes; keep
# CALLS small, valgrind runs the server on one core, many times slower).
#
# Prints: calls completed and failed, bridged calls, the server's CPU per
# bridged call (over the whole run: CPU seconds / bridged call-seconds),
# RSS idle, peak and per call, the time (in a sample of 40 calls) from INVITE to the agent's phone
# being rung (the timeline's "agent rung" minus the call's start) and to
# the bridge, and the share of the caller legs' RTP frames sent more than
# 2, 5, 10 and 20 ms late (each call's `call finished` counters).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-500}
HOLD=${2:-30}
RATE=${3:-25}
command -v sipp >/dev/null || { echo "sipp missing: apt-get install sip-tester" >&2; exit 1; }
cargo build --release -q
work=$(mktemp -d)
trap 'kill $srv $farm 2>/dev/null || true; rm -rf "$work"' EXIT
srv=""; farm=""
port=$((20000 + RANDOM % 20000))
agents_port=$((port + 1))
mkdir -p "$work/flows"
cp examples/prompts/hold-music.wav "$work/flows/hold.wav"
cat > "$work/flows/queue.ivr" <<'IVR'
flow "Bridged"
  numbers 1000

step start
  consent say "Recorded.", timeout 10s
  if consent == "yes"
    recording start
  queue "support", hold "hold.wav", max wait 2m
    on overflow -> gone

step gone
  hangup "overflow"
IVR
python3 - "$work" "$N" <<'PY'
import hashlib, math, struct, sys
work, n = sys.argv[1], int(sys.argv[2])
with open(f"{work}/bench.toml", "w") as c:
    c.write('log = "warn,dhwani::call=info"\n[security]\nexempt_networks = ["127.0.0.0/8"]\n')
    c.write('[media]\nrtp_ports = "10000-60000"\ntimeout_secs = 120\n')
    c.write('[calls]\nmax_calls = 20000\n[recordings]\nsync_ms = 1000\n')
    c.write('[registrar]\ndigest_algorithms = ["MD5"]\nmax_bindings = 1000000\n')
    c.write(f'[[tenants]]\nid = "bench"\nnumbers = ["1000"]\nflows_dir = "{work}/flows"\nmax_calls = 20000\n')
    exts = [str(100000 + i) for i in range(n)]
    for ext in exts:
        ha1 = hashlib.md5(f"{ext}:dhwani:pw-{ext}".encode()).hexdigest()  # bench fixture
        c.write(f'[[tenants.agents]]\nextension = "{ext}"\nha1_md5 = "{ha1}"\n')
    c.write('[[tenants.queues]]\nname = "support"\nstrategy = "longest-idle"\n')
    c.write('ring_timeout_secs = 10\nwrap_up_secs = 0\nmax_len = 100000\nno_answer_pause = false\n')
    c.write("members = [" + ", ".join(f'"{e}"' for e in exts) + "]\n")
PY
# The callers' audio: 2 s of 440 Hz as raw G.711 u-law, looped by SIPp.
python3 benches/ulaw_tone.py "$work/tone.ulaw"
cat > "$work/agent.xml" <<'XML'
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="agent farm">
  <recv request="INVITE"/>
  <send><![CDATA[
SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]A[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>
  <send retrans="500"><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]A[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:agent@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=agent 1 1 IN IP4 [media_ip]
s=-
c=IN IP4 [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv request="ACK"/>
  <recv request="BYE" timeout="600000"/>
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
hold_ms=$((HOLD * 1000))
cat > "$work/caller.xml" <<XML
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bridged caller">
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
  <nop><action><exec rtp_stream="$work/tone.ulaw,-1,0"/></action></nop>
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
  <nop><action><exec rtp_stream="pause"/></action></nop>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:+9198[call_number]@[local_ip]:[local_port]>;tag=[pid]T[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 3 BYE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200"/>
</scenario>
XML
${SERVER_PREFIX:-} ./target/release/dhwani serve --config "$work/bench.toml" --listen "udp:127.0.0.1:$port" --data-dir "$work/data" --http-listen 127.0.0.1:0 2>"$work/server.log" &
srv=$!
sleep "${START_WAIT:-3}"
# Register every agent from port P (their bindings' flow), then free P.
python3 - "$port" "$N" "$agents_port" <<'PY'
import hashlib, re, select, socket, sys, time
port, n, ap = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", ap))
md5 = lambda x: hashlib.md5(x.encode()).hexdigest()
def reg(ext, cseq, auth=""):
    msg = (f"REGISTER sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{ap};branch=z9hG4bK{ext}-{cseq};rport\r\n"
           f"From: <sip:{ext}@127.0.0.1:{port}>;tag={ext}\r\nTo: <sip:{ext}@127.0.0.1:{port}>\r\n"
           f"Call-ID: reg-{ext}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{ext}@127.0.0.1:{ap}>\r\n"
           f"Expires: 3600\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n")
    s.sendto(msg.encode(), ("127.0.0.1", port))
pending = {str(100000 + i) for i in range(n)}
unsent = sorted(pending)
sent_at = {}
deadline = time.monotonic() + 60
while pending and time.monotonic() < deadline:
    now = time.monotonic()
    # At most 50 REGISTERs in flight; one unanswered for 2 s is sent again.
    for e in [e for e, t in sent_at.items() if now - t > 2]:
        unsent.append(e); del sent_at[e]
    while unsent and len(sent_at) < 50:
        e = unsent.pop(); reg(e, 1); sent_at[e] = now
    if not select.select([s], [], [], 0.05)[0]:
        continue
    data = s.recv(4096).decode(errors="replace")
    m = re.search(r"Call-ID: reg-(\d+)", data)
    if not m or m.group(1) not in pending:
        continue
    ext, status = m.group(1), data.split(" ", 2)[1]
    if status == "401":
        nonce = re.search(r'nonce="([^"]+)"', data).group(1)
        uri = f"sip:127.0.0.1:{port}"
        resp = md5(f"{md5(f'{ext}:dhwani:pw-{ext}')}:{nonce}:00000001:c0ffee:auth:{md5(f'REGISTER:{uri}')}")
        reg(ext, 2, f'Authorization: Digest username="{ext}", realm="dhwani", nonce="{nonce}", uri="{uri}", '
                    f'response="{resp}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee"\r\n')
    elif status == "200":
        pending.discard(ext); sent_at.pop(ext, None)
print(f"agents registered      {n - len(pending)} of {n}")
PY
limit=$((HOLD + N / RATE + 120))
(cd "$work" && timeout "$limit" sipp -sf agent.xml -p "$agents_port" -i 127.0.0.1 -rtp_echo -m "$N" \
    -nostdin -max_socket 60000 -trace_stat -stf agents.csv >/dev/null 2>&1) &
farm=$!
sleep 2
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' /proc/$srv/stat; }
rss_kb() { awk '/VmRSS/ {print $2}' /proc/$srv/status; }
idle_rss=$(rss_kb)
c0=$(cpu_ticks); t0=$(date +%s.%N)
peak_rss=0
(cd "$work" && timeout "$limit" sipp -sf caller.xml "127.0.0.1:$port" -s 1000 -i 127.0.0.1 \
    -r "$RATE" -m "$N" -l "$N" -nostdin -timeout "$((limit - 10))s" -timeout_error \
    -max_socket 60000 -trace_stat -stf callers.csv -trace_err -error_file errors.log >/dev/null 2>&1) &
sp=$!
if [ -n "${PERF_OUT:-}" ]; then
  (sleep $((N / RATE + 5)); perf record -q -e cpu-clock -F 999 -g -p "$srv" -o "$PERF_OUT" -- sleep 10 >/dev/null 2>&1) &
fi
while kill -0 $sp 2>/dev/null; do
  r=$(rss_kb); [ "$r" -gt "$peak_rss" ] && peak_rss=$r
  sleep 0.5
done
wait $sp || true
c1=$(cpu_ticks); t1=$(date +%s.%N)
sleep 3
wait $farm 2>/dev/null || true
farm=""
python3 - "$work" "$c0" "$c1" "$hz" "$t0" "$t1" "$N" "$idle_rss" "$peak_rss" <<'PY'
import json, os, re, sqlite3, statistics, sys
work, c0, c1, hz, t0, t1, n, idle, peak = sys.argv[1:]
def stat(name):
    rows = [l.rstrip("\n").split(";") for l in open(f"{work}/{name}") if l.strip()]
    h, last = rows[0], rows[-1]
    return last[h.index("SuccessfulCall(C)")], last[h.index("FailedCall(C)")]
ok, fail = stat("callers.csv")
frames = late = 0
buckets = {5: 0, 10: 0, 20: 0}
for line in open(f"{work}/server.log", errors="replace"):
    if "call finished" in line:
        fr = re.search(r"frames=(\d+)", line); l = re.search(r"late_2ms=(\d+)", line)
        frames += int(fr.group(1)) if fr else 0; late += int(l.group(1)) if l else 0
        for b in (5, 10, 20):
            m = re.search(rf"late_{b}ms=(\d+)", line)
            buckets[b] += int(m.group(1)) if m else 0
con = sqlite3.connect(f"{work}/data/dhwani.db")
calls = con.execute("SELECT call_id, start_ms, talk_ms FROM calls WHERE tenant = 'bench'").fetchall()
bridged = [c for c in calls if c[2]]
talk_s = sum(c[2] for c in bridged) / 1000
rung, joined = [], []
# Timeline details are sealed in the store: read a sample of 40 calls
# through the CLI, which opens them.
import subprocess
for cid, start, _ in bridged[:40]:
    out = subprocess.run(["./target/release/dhwani", "calls", "show", cid, "--json",
                          "--config", f"{work}/bench.toml", "--data-dir", f"{work}/data"],
                         capture_output=True, text=True).stdout
    try:
        timeline = json.loads(out).get("timeline", [])
    except ValueError:
        continue
    first = {}
    for t in timeline:
        if t.get("kind") == "queue" and isinstance(t.get("detail"), dict):
            first.setdefault(t["detail"].get("event"), t["at_ms"])
    if "agent rung" in first:
        rung.append(first["agent rung"] - start)
    if "bridged" in first:
        joined.append(first["bridged"] - start)
recs = sum(len(fs) for _, _, fs in os.walk(f"{work}/data/recordings"))
cpu_s = (int(c1) - int(c0)) / int(hz); wall = float(t1) - float(t0)
idle, peak = int(idle), int(peak)
pct = lambda v, p: sorted(v)[min(len(v) - 1, int(p * len(v)))] if v else 0
print(f"calls completed/failed {ok} / {fail}; bridged {len(bridged)}; recordings {recs}")
print(f"server CPU             {cpu_s:.1f} s over {wall:.1f} s wall = {100 * cpu_s / wall:.1f}% of one core")
print(f"bridged call-seconds   {talk_s:.0f}")
print(f"CPU per bridged call   {100 * cpu_s / max(talk_s, 1) * 1:.4f}% of one core (both legs, recording included; the run's setup and teardown counted in)")
print(f"RSS idle/peak          {idle // 1024} / {peak // 1024} MiB; per call {(peak - idle) / max(int(n), 1):.1f} KiB")
print(f"INVITE to agent rung   (a sample of {len(rung)} calls) median {statistics.median(rung) if rung else 0:.0f} ms, p95 {pct(rung, 0.95)} ms")
print(f"INVITE to bridged      median {statistics.median(joined) if joined else 0:.0f} ms, p95 {pct(joined, 0.95)} ms")
print(f"caller RTP >2 ms late  {late} of {frames} = {100 * late / max(frames, 1):.2f}%")
for b in (5, 10, 20):
    print(f"caller RTP >{b} ms late {' ' if b < 10 else ''}{buckets[b]} of {frames} = {100 * buckets[b] / max(frames, 1):.3f}%")
PY
# Why callers failed, if any did (SIPp's first complaints).
grep -m 3 -E "Aborting|unexpected|timeout" "$work/errors.log" 2>/dev/null | cut -c1-200 || true
