#!/usr/bin/env bash
# An INVITE flood, bounded in count and time: N INVITEs at RATE per second
# from one loopback socket that never sends an ACK (what forged UDP
# INVITEs look like), each to the load number with an SDP offer. Every
# one becomes a call slot with its media ports until the server gives up
# on the ACK (64*T1 = 32 s) and hangs up with a BYE nobody answers (another
# 32 s of retransmissions). Prints the server's RSS idle, at its peak, when
# all that state is gone (70 s after the last INVITE) and 60 s after that
# (issue 13: back within idle + 20 MiB).
#
#   benches/invite_flood.sh [N] [RATE]     default: 5000 1000
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-5000}
RATE=${2:-1000}
cargo build --release -q
work=$(mktemp -d)
trap 'kill $srv 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
mkdir -p "$work/flows"
printf 'flow "Answer"\n  numbers 1000\n\nstep start\n  wait 1m\n  hangup "done"\n' > "$work/flows/answer.ivr"
cat > "$work/flood.toml" <<TOML
log = "warn"
# The flood comes from one trusted address, so that every INVITE is taken
# (the per-source caps would refuse most of them: that is tested elsewhere).
[security]
exempt_networks = ["127.0.0.0/8"]
[calls]
max_calls = 20000
[[tenants]]
id = "flood"
numbers = ["1000"]
flows_dir = "$work/flows"
max_calls = 20000
TOML
./target/release/dhwani serve --config "$work/flood.toml" --listen "udp:127.0.0.1:$port" --data-dir "$work/data" --http-listen 127.0.0.1:0 2>"$work/server.log" &
srv=$!
sleep 2
rss() { awk '/VmRSS/ {print int($2/1024)}' /proc/$srv/status; }
idle=$(rss)
python3 - "$port" "$N" "$RATE" <<'PY'
import socket, sys, time
port, n, rate = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 0))
s.setblocking(False)
lp = s.getsockname()[1]
start = time.monotonic()
for i in range(n):
    while time.monotonic() - start < i / rate:
        time.sleep(0.0005)
    sdp = ("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=audio {9 + 0} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    msg = (f"INVITE sip:1000@127.0.0.1:{port} SIP/2.0\r\n"
           f"Via: SIP/2.0/UDP 127.0.0.1:{lp};branch=z9hG4bKflood{i};rport\r\n"
           f"From: <sip:flood@127.0.0.1>;tag=f{i}\r\nTo: <sip:1000@127.0.0.1>\r\n"
           f"Call-ID: flood-{i}\r\nCSeq: 1 INVITE\r\nContact: <sip:flood@127.0.0.1:{lp}>\r\n"
           f"Max-Forwards: 70\r\nContent-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n{sdp}")
    s.sendto(msg.encode(), ("127.0.0.1", port))
    # Drain what comes back (100, 200 and their retransmissions), unread
    # otherwise; never an ACK.
    try:
        while True:
            s.recv(65536)
    except BlockingIOError:
        pass
PY
peak=$(awk '/VmHWM/ {print int($2/1024)}' /proc/$srv/status)
sleep 70
gone=$(rss)
sleep 60
after=$(rss)
echo "INVITE flood: $N INVITEs at $RATE/s, none ACKed"
echo "server RSS idle $idle MB, peak $peak MB, $gone MB when the calls and their BYEs are over (70 s), $after MB 60 s after that"
