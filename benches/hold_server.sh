# Sourced by benches/api_load.sh and benches/syscalls.sh: builds the
# release binary and starts a server whose tenant `load` answers 1000 with
# a flow that plays a prompt and waits (so it sends RTP to every held
# call), on a random loopback UDP port and an OS-chosen admin API port.
# Sets: work (a temp dir, removed on exit), port, srv (the pid), http
# (the admin API's ADDR:PORT). Needs sipp on the PATH.
command -v sipp >/dev/null || { echo "sipp missing: apt-get install sip-tester" >&2; exit 1; }
cargo build --release -q
work=$(mktemp -d)
trap 'kill $srv 2>/dev/null || true; rm -rf "$work"' EXIT
port=$((20000 + RANDOM % 20000))
mkdir -p "$work/flows"
cat > "$work/flows/hold.ivr" <<IVR
flow "Hold"
  numbers 1000

step greet
  play "$PWD/examples/prompts/welcome.wav"
  goto hold

step hold
  wait 10m
  hangup "done"
IVR
cat > "$work/load.toml" <<TOML
log = "warn,dhwani::server=info"
[media]
rtp_ports = "10000-60000"
timeout_secs = 600
[security]
exempt_networks = ["127.0.0.0/8"]
[calls]
max_calls = 20000
[[tenants]]
id = "load"
numbers = ["1000"]
flows_dir = "$work/flows"
max_calls = 20000
TOML
./target/release/dhwani serve --config "$work/load.toml" --listen "udp:127.0.0.1:$port" --data-dir "$work/data" --http-listen 127.0.0.1:0 2>"$work/server.log" &
srv=$!
for _ in $(seq 1 50); do grep -q "admin API listening" "$work/server.log" && break; sleep 0.2; done
http=$(grep -o 'http=[0-9.:]*' "$work/server.log" | head -1 | cut -d= -f2)
[ -n "$http" ] || { echo "the server did not start:" >&2; cat "$work/server.log" >&2; exit 1; }
