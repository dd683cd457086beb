#!/usr/bin/env bash
# Fetch load (issue 15): N concurrent SIPp callers each stay HOLD seconds
# in a flow that fetches from a local HTTPS endpoint every 5 s (a Python
# server on loopback with a certificate made here, trusted through the
# tenant's test-only fetch_ca_file), then waits in a 5 s gather with a
# short prompt. A second round runs the same calls through the same loop
# without the fetch, on the same server, so the difference is what the
# fetches cost. Loopback only; bounded in calls and
# time.
#
#   benches/fetch_load.sh [CONCURRENT] [HOLD_SECS] [RATE]   defaults: 200 30 50
#
# Prints per round: calls completed and failed, the server's CPU per
# call-second, the fetch latency seen by the flow (median, p95, max, from
# the timeline's fetch answers) and the share of frames sent to the
# callers more than 2, 5, 10 and 20 ms late (the `call finished` counters).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
HOLD=${2:-30}
RATE=${3:-50}
command -v sipp >/dev/null || { echo "sipp missing: apt-get install sip-tester" >&2; exit 1; }
command -v openssl >/dev/null || { echo "openssl missing" >&2; exit 1; }
cargo build --release -q
work=$(mktemp -d)
trap 'kill $srv $web 2>/dev/null || true; rm -rf "$work"' EXIT
srv=""; web=""
port=$((20000 + RANDOM % 20000))
web_port=$((port + 1))
# TEST FIXTURE: a throwaway CA and a localhost certificate for this run.
openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj "/CN=bench CA" \
  -keyout "$work/ca.key" -out "$work/ca.pem" -addext "basicConstraints=critical,CA:TRUE" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout "$work/leaf.key" -out "$work/leaf.csr" 2>/dev/null
printf "subjectAltName=DNS:localhost\n" > "$work/ext.cnf"
openssl x509 -req -in "$work/leaf.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" -CAcreateserial \
  -days 1 -extfile "$work/ext.cnf" -out "$work/leaf.pem" 2>/dev/null
cat > "$work/web.py" <<'PY'
import http.server, json, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle and the
    # client's delayed ACK add 40 ms to every reply.
    disable_nagle_algorithm = True
    def do_GET(self):
        body = json.dumps({"balance": 4200}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
PY
python3 "$work/web.py" "$web_port" "$work/leaf.pem" "$work/leaf.key" &
web=$!
mkdir -p "$work/flows"
# A loop needs a way out and something to wait for (the checker's E060):
# a 5 s gather with a short prompt, left with 9 (never pressed here).
cat > "$work/flows/fetch.ivr" <<IVR
flow "Fetch load"
  numbers 1000

step start
  fetch get "https://localhost:$web_port/balance", timeout 3s
    into balance
    on failure -> listen
  goto listen

step listen
  gather digits 1, timeout 5s, retries 0
    play "$PWD/examples/prompts/chime.wav"
    on timeout -> start
    on invalid -> start
    on 9 -> bye

step bye
  hangup "done"
IVR
cat > "$work/flows/wait.ivr" <<IVR
flow "Wait load"
  numbers 1001

step start
  gather digits 1, timeout 5s, retries 0
    play "$PWD/examples/prompts/chime.wav"
    on timeout -> start
    on invalid -> start
    on 9 -> bye

step bye
  hangup "done"
IVR
cat > "$work/load.toml" <<TOML
log = "warn,dhwani::call=info"
[media]
rtp_ports = "10000-60000"
timeout_secs = 120
[security]
exempt_networks = ["127.0.0.0/8"]
[calls]
max_calls = 20000
[[tenants]]
id = "load"
numbers = ["1000", "1001"]
flows_dir = "$work/flows"
max_calls = 20000
fetch_allow = ["localhost:$web_port"]
fetch_private_networks = ["127.0.0.1/32", "::1/128"]
fetch_ca_file = "$work/ca.pem"
fetch_max_concurrent = 1000
fetch_max_per_sec = 1000
fetch_filler = ""
TOML
hold_ms=$((HOLD * 1000))
cat > "$work/caller.xml" <<XML
<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="fetch-load">
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
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
From: <sip:+9198[call_number]@[local_ip]:[local_port]>;tag=[pid]T[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200"/>
</scenario>
XML
./target/release/dhwani serve --config "$work/load.toml" --listen "udp:127.0.0.1:$port" --data-dir "$work/data" --http-listen 127.0.0.1:0 2>"$work/server.log" &
srv=$!
sleep 2
hz=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' /proc/$srv/stat; }
for number in 1000 1001; do
  label="fetch every 5 s"; [ "$number" = 1001 ] && label="the same loop without the fetch (baseline)"
  c0=$(cpu_ticks); t0=$(date +%s.%N)
  log_from=$(stat -c %s "$work/server.log")
  (cd "$work" && timeout $((HOLD + N / RATE + 90)) sipp -sf caller.xml "127.0.0.1:$port" -s "$number" -i 127.0.0.1 \
      -r "$RATE" -m "$N" -l "$N" -nostdin -timeout "$((HOLD + N / RATE + 80))s" -timeout_error \
      -max_socket 60000 -trace_stat -stf "stat$number.csv" >/dev/null 2>&1) || true
  c1=$(cpu_ticks); t1=$(date +%s.%N)
  sleep 3
  echo "== $label ($N callers, $HOLD s each)"
  python3 - "$work" "$number" "$log_from" "$c0" "$c1" "$hz" "$t0" "$t1" <<'PY'
import json, re, sqlite3, statistics, sys
work, number, log_from, c0, c1, hz, t0, t1 = sys.argv[1:]
rows = [l.rstrip("\n").split(";") for l in open(f"{work}/stat{number}.csv") if l.strip()]
h, last = rows[0], rows[-1]
print(f"calls completed/failed {last[h.index('SuccessfulCall(C)')]} / {last[h.index('FailedCall(C)')]}")
frames = 0; b = {2: 0, 5: 0, 10: 0, 20: 0}
f = open(f"{work}/server.log", errors="replace"); f.seek(int(log_from))
for line in f:
    if "call finished" in line:
        m = re.search(r"frames=(\d+)", line); frames += int(m.group(1)) if m else 0
        for k in b:
            m = re.search(rf"late_{k}ms=(\d+)", line); b[k] += int(m.group(1)) if m else 0
con = sqlite3.connect(f"{work}/data/dhwani.db")
start_ms = int(float(t0) * 1000)
call_s = con.execute("SELECT COALESCE(SUM(duration_ms),0) FROM calls WHERE called = ? AND start_ms >= ?", (number, start_ms)).fetchone()[0] / 1000
ms, failed = [], 0
for (d,) in con.execute("SELECT e.detail FROM call_events e JOIN calls c ON c.call_id = e.call_id WHERE c.called = ? AND c.start_ms >= ? AND e.kind = 'fetch'", (number, start_ms)):
    d = json.loads(d)
    if d.get("event") == "answer":
        ms.append(d.get("ms", 0))
        failed += d.get("outcome") != "ok"
cpu_s = (int(c1) - int(c0)) / int(hz); wall = float(t1) - float(t0)
print(f"server CPU             {cpu_s:.1f} s over {wall:.1f} s = {100 * cpu_s / wall:.1f}% of one core")
print(f"CPU per call-second    {100 * cpu_s / max(call_s, 1):.4f}% of one core per active call")
if ms:
    ms.sort()
    print(f"fetches                {len(ms)} ({failed} failed); latency median {statistics.median(ms):.0f} ms, p95 {ms[int(0.95 * (len(ms) - 1))]} ms, max {ms[-1]} ms")
for k in b:
    print(f"frames > {k:2d} ms late     {b[k]} of {frames} = {100 * b[k] / max(frames, 1):.3f}%")
PY
done
