#!/usr/bin/env bash
# Agents registering with digest, bounded in count and time: N agents (in
# the config as MD5 HA1s) register once each at RATE per second through
# a small Python client (REGISTER, 401, REGISTER with credentials, 200;
# SIPp's [authentication] cannot take a username per agent). Prints the
# registrations that succeeded and failed, the server's CPU (percent of
# one core over the run, and CPU milliseconds per registration) and its
# memory (RSS before and after, peak, 35 s later when the REGISTER
# transactions are gone, and 60 s later).
#
#   benches/register.sh [AGENTS] [RATE]     default: 10000 500
set -euo pipefail
cd "$(dirname "$0")/.."
AGENTS=${1:-10000}
RATE=${2:-500}
cargo build --release -q
work=$(mktemp -d)
trap 'kill $srv 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
mkdir -p "$work/flows"
printf 'flow "Answer"\n  numbers 1000\n\nstep start\n  wait 1m\n  hangup "done"\n' > "$work/flows/answer.ivr"
python3 - "$work" "$AGENTS" <<'PY'
import hashlib, sys
work, n = sys.argv[1], int(sys.argv[2])
with open(f"{work}/bench.toml", "w") as c, open(f"{work}/agents.csv", "w") as a:
    c.write('log = "warn"\n[security]\nexempt_networks = ["127.0.0.0/8"]\n')
    c.write('[registrar]\ndigest_algorithms = ["MD5"]\nmax_bindings = 1000000\n')
    c.write(f'[[tenants]]\nid = "bench"\nnumbers = ["1000"]\nflows_dir = "{work}/flows"\n')
    a.write("SEQUENTIAL\n")
    for i in range(n):
        ext = str(100000 + i)
        pw = f"pw-{ext}"  # bench fixture, not a secret
        ha1 = hashlib.md5(f"{ext}:dhwani:{pw}".encode()).hexdigest()
        c.write(f'[[tenants.agents]]\nextension = "{ext}"\nha1_md5 = "{ha1}"\n')
        a.write(f"{ext};{pw}\n")
PY
./target/release/dhwani serve --config "$work/bench.toml" --listen "udp:127.0.0.1:$port" --data-dir "$work/data" --http-listen 127.0.0.1:0 2>"$work/server.log" &
srv=$!
sleep 2
hz=$(getconf CLK_TCK)
[ -n "${PERF:-}" ] && { perf record -F 499 -g -p $srv -o "$PERF" -- sleep 25 >/dev/null 2>&1 & }
rss0=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$srv/status)
read -r _ _ _ _ _ _ _ _ _ _ _ _ _ ut st _ < <(cut -d' ' -f1-20 /proc/$srv/stat)
t0=$(date +%s.%N)
# The load: one UDP socket per 1,000 agents, each agent REGISTERs, gets
# the 401, answers the MD5 challenge (RFC 2617 with qop=auth) and waits for
# the 200, at RATE new agents per second. Bounded: every agent gets at
# most 5 s for its two round trips.
read -r ok fail < <(python3 - "$port" "$AGENTS" "$RATE" <<'PY'
import hashlib, os, re, select, socket, sys, time
port, n, rate = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
server = ("127.0.0.1", port)
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(max(1, n // 1000))]
for s in socks:
    s.bind(("127.0.0.1", 0))
    s.setblocking(False)
def reg(s, ext, cseq, auth=""):
    lp = s.getsockname()[1]
    msg = (f"REGISTER sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bK{ext}-{cseq};rport\r\n"
           f"From: <sip:{ext}@127.0.0.1:{port}>;tag={ext}\r\nTo: <sip:{ext}@127.0.0.1:{port}>\r\n"
           f"Call-ID: reg-{ext}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:{ext}@127.0.0.1:{lp}>\r\n"
           f"Expires: 3600\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n")
    s.sendto(msg.encode(), server)
def md5(x):
    return hashlib.md5(x.encode()).hexdigest()
ok = fail = 0
state = {}  # ext -> (socket, deadline)
start = time.monotonic()
sent = 0
while sent < n or state:
    now = time.monotonic()
    while sent < n and sent < (now - start) * rate:
        ext = str(100000 + sent)
        s = socks[sent % len(socks)]
        reg(s, ext, 1)
        state[ext] = (s, now + 5)
        sent += 1
    r, _, _ = select.select(socks, [], [], 0.002)
    for s in r:
        while True:
            try:
                data = s.recv(4096).decode(errors="replace")
            except BlockingIOError:
                break
            m = re.search(r"Call-ID: reg-(\d+)", data)
            if not m or m.group(1) not in state:
                continue
            ext = m.group(1)
            status = data.split(" ", 2)[1]
            if status == "401":
                nonce = re.search(r'nonce="([^"]+)"', data).group(1)
                uri = f"sip:127.0.0.1:{port}"
                ha1 = md5(f"{ext}:dhwani:pw-{ext}")  # bench fixture passwords
                ha2 = md5(f"REGISTER:{uri}")
                resp = md5(f"{ha1}:{nonce}:00000001:c0ffee:auth:{ha2}")
                auth = (f'Authorization: Digest username="{ext}", realm="dhwani", nonce="{nonce}", uri="{uri}", '
                        f'response="{resp}", algorithm=MD5, qop=auth, nc=00000001, cnonce="c0ffee"\r\n')
                reg(s, ext, 2, auth)
            elif status == "200":
                ok += 1
                del state[ext]
            else:
                fail += 1
                del state[ext]
    for ext in [e for e, (_, d) in state.items() if d < now]:
        fail += 1
        del state[ext]
print(ok, fail)
PY
)
t1=$(date +%s.%N)
read -r _ _ _ _ _ _ _ _ _ _ _ _ _ ut2 st2 _ < <(cut -d' ' -f1-20 /proc/$srv/stat)
rss1=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$srv/status)
peak=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$srv/status)
# The REGISTER transactions end 32 s after their answer (Timer J): what
# stays after them is the bindings' share.
sleep 35
rss2=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$srv/status)
# And 60 s after the load (issue 13: back within idle + 20 MiB by then).
sleep 25
rss3=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$srv/status)
python3 - <<PY
cpu_s = (($ut2 + $st2) - ($ut + $st)) / $hz
wall = $t1 - $t0
ok = int("$ok")
print(f"agents {$AGENTS} at {$RATE}/s: {ok} registered, $fail failed in {wall:.1f} s")
print(f"server CPU {100 * cpu_s / wall:.1f}% of one core, {1000 * cpu_s / max(ok, 1):.3f} ms per registration")
print(f"server RSS {$rss0} MB before, {$rss1} MB after, {$peak} MB peak, {$rss2} MB 35 s later, {$rss3} MB 60 s later")
PY
