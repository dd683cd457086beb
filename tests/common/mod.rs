//! Shared helpers of the end-to-end tests: start the real `dhwani` binary on
//! loopback ports chosen by the OS, find SIPp, run it with bounded time.
#![allow(dead_code)]

pub mod https;
pub mod kamailio;
pub mod pg;
pub mod rawsip;
pub mod sippxml;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running server, killed on drop.
pub struct Server {
    child: Child,
    /// Bound sockets, as (transport, address) from the "listening" log lines.
    pub bound: Vec<(String, SocketAddr)>,
    logs: mpsc::Receiver<String>,
    /// Everything logged so far.
    pub log: Vec<String>,
    _dir: tempfile::TempDir,
    /// The `serve` arguments, for [`Server::restart`].
    args: Vec<std::ffi::OsString>,
    /// The admin API's address (from its "admin API listening" line).
    pub http: Option<SocketAddr>,
    /// Wait for that line at start.
    want_http: bool,
}

impl Server {
    /// Starts `dhwani serve` with extra TOML appended to a config that
    /// listens on UDP and TCP port 0 on 127.0.0.1.
    pub fn start(extra_toml: &str) -> Server {
        Server::start_with(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"], extra_toml)
    }

    /// Starts with explicit `--listen` values. Unless `extra_toml` declares
    /// its own `[[tenants]]`, a tenant `test` owns number 1000 with a flow
    /// that plays the welcome prompt and then waits ten minutes (SIPp
    /// dials 1000: see [`run_sipp`]).
    pub fn start_with(listen: &[&str], extra_toml: &str) -> Server {
        Server::start_full(listen, extra_toml, &[])
    }

    /// Starts with extra environment variables.
    pub fn start_env(extra_toml: &str, env: &[(&str, &str)]) -> Server {
        Server::start_full(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"], extra_toml, env)
    }

    /// Starts with `DATA_DIR/recordings` on a tmpfs of `bytes` in a mount
    /// namespace of its own (`unshare -m`, as root): a full disk for the
    /// recordings only.
    pub fn start_small_recordings_fs(extra_toml: &str, bytes: u64) -> Server {
        Server::start_inner(
            &["udp:127.0.0.1:0", "tcp:127.0.0.1:0"],
            extra_toml,
            &[],
            Some(bytes),
        )
    }

    fn start_full(listen: &[&str], extra_toml: &str, env: &[(&str, &str)]) -> Server {
        Server::start_inner(listen, extra_toml, env, None)
    }

    fn start_inner(
        listen: &[&str],
        extra_toml: &str,
        env: &[(&str, &str)],
        small_fs: Option<u64>,
    ) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let cfg = dir.path().join("dhwani.toml");
        let mut text = if extra_toml.contains("[log]") {
            format!("{extra_toml}\n")
        } else {
            format!("log = \"info\"\n{extra_toml}\n")
        };
        if !extra_toml.contains("[[tenants]]") {
            let flows = dir.path().join("flows");
            std::fs::create_dir_all(&flows).expect("flows dir");
            std::fs::write(flows.join("test.ivr"), test_flow()).expect("write flow");
            text.push_str(&format!(
                "[[tenants]]\nid = \"test\"\nnumbers = [\"1000\"]\nflows_dir = \"{}\"\nmax_calls = 10000\n",
                flows.display()
            ));
        }
        std::fs::write(&cfg, text).expect("write config");
        let mut cmd = match small_fs {
            None => Command::new(env!("CARGO_BIN_EXE_dhwani")),
            Some(bytes) => {
                let rec = dir.path().join("data").join("recordings");
                std::fs::create_dir_all(&rec).expect("recordings dir");
                let mut c = Command::new("unshare");
                c.args(["-m", "--", "sh", "-c"])
                    .arg(format!(
                        "mount -t tmpfs -o size={bytes} tmpfs \"$0\" && exec \"$@\""
                    ))
                    .arg(&rec)
                    .arg(env!("CARGO_BIN_EXE_dhwani"));
                c
            }
        };
        cmd.arg("serve")
            .arg("--config")
            .arg(&cfg)
            .arg("--data-dir")
            .arg(dir.path().join("data"));
        for l in listen {
            cmd.arg("--listen").arg(l);
        }
        // Many servers run at once: the admin API on a port of the OS's
        // choosing (a config with its own [http] keeps its address).
        if !extra_toml.contains("[http]") {
            cmd.arg("--http-listen").arg("127.0.0.1:0");
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let args: Vec<std::ffi::OsString> = cmd.get_args().map(ToOwned::to_owned).collect();
        let (child, rx) = spawn_logged(cmd);
        let mut server = Server {
            child,
            bound: vec![],
            logs: rx,
            log: vec![],
            _dir: dir,
            args,
            http: None,
            want_http: !extra_toml.contains("[http]") || !extra_toml.contains("listen = \"\""),
        };
        server.wait_listening(listen.len());
        server
    }

    /// Starts the server again on the same config, data and `--listen`
    /// values (after [`Server::kill9`] or a stop), and waits until it
    /// listens.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_dhwani"));
        cmd.args(&self.args);
        let (child, rx) = spawn_logged(cmd);
        self.child = child;
        self.logs = rx;
        self.log.clear();
        let expected = self.bound.len();
        self.bound.clear();
        self.http = None;
        self.wait_listening(expected);
    }

    fn wait_listening(&mut self, expected: usize) {
        let server = self;
        let deadline = Instant::now() + Duration::from_secs(20);
        let want_http = server.want_http;
        while server.bound.len() < expected || (want_http && server.http.is_none()) {
            let line = server
                .next_line(deadline)
                .unwrap_or_else(|| panic!("server did not start; log:\n{}", server.log.join("\n")));
            if line.contains("admin API listening") {
                let addr = if line.starts_with('{') {
                    let v: serde_json::Value =
                        serde_json::from_str(&line).expect("a JSON log line");
                    v["http"].as_str().map(str::to_owned)
                } else {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix("http="))
                        .map(str::to_owned)
                };
                server.http = addr.and_then(|a| a.parse().ok());
                continue;
            }
            if line.starts_with('{') {
                // `[log] format = "json"`
                let v: serde_json::Value = serde_json::from_str(&line).expect("a JSON log line");
                if v["message"] == "listening"
                    && let (Some(t), Some(a)) = (v["transport"].as_str(), v["addr"].as_str())
                {
                    server.bound.push((t.to_owned(), a.parse().expect("addr")));
                }
            } else if line.contains(" listening ") {
                let field = |name: &str| {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix(name))
                        .map(str::to_owned)
                };
                let (Some(t), Some(a)) = (field("transport="), field("addr=")) else {
                    continue;
                };
                server.bound.push((t, a.parse().expect("addr")));
            }
        }
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> PathBuf {
        self._dir.path().join("data")
    }

    /// The config file.
    pub fn config_path(&self) -> PathBuf {
        self._dir.path().join("dhwani.toml")
    }

    /// The directory of the config file (for flows next to it).
    pub fn dir(&self) -> PathBuf {
        self._dir.path().to_path_buf()
    }

    /// The pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let wait = deadline.checked_duration_since(Instant::now())?;
        let line = self.logs.recv_timeout(wait).ok()?;
        self.log.push(line.clone());
        Some(line)
    }

    /// The address of the first socket of `transport`.
    pub fn addr(&self, transport: &str) -> SocketAddr {
        self.bound
            .iter()
            .find(|(t, _)| t == transport)
            .map(|(_, a)| *a)
            .unwrap_or_else(|| panic!("no {transport} socket"))
    }

    /// Waits (bounded) for a log line containing `needle`.
    pub fn wait_for_log(&mut self, needle: &str, within: Duration) -> bool {
        if self.log.iter().any(|l| l.contains(needle)) {
            return true;
        }
        let deadline = Instant::now() + within;
        while let Some(line) = self.next_line(deadline) {
            if line.contains(needle) {
                return true;
            }
        }
        false
    }

    /// Kills the server with SIGKILL (no chance to clean up) and returns
    /// when that happened.
    pub fn kill9(&mut self) -> std::time::SystemTime {
        let at = std::time::SystemTime::now();
        let _ = Command::new("kill")
            .args(["-KILL", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
        at
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    pub fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return st;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `cmd` with its stderr read line by line into a channel.
fn spawn_logged(mut cmd: Command) -> (Child, mpsc::Receiver<String>) {
    let mut child = cmd
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dhwani");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// A repository file's absolute path.
pub fn repo_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// The default test tenant's flow: the welcome prompt, then a long wait.
pub fn test_flow() -> String {
    format!(
        "flow \"Test\"\n  numbers 1000\n\nstep start\n  play \"{}\"\n  wait 10m\n  hangup \"done\"\n",
        repo_path("examples/prompts/welcome.wav").display()
    )
}

/// Runs `dhwani ARGS` (a CLI subcommand) and returns (status, stdout, stderr).
pub fn dhwani(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_dhwani"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run dhwani");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `dhwani ARGS --config C --data-dir D` for `server`; asserts success and
/// returns stdout.
pub fn dhwani_for(server: &Server, args: &[&str]) -> String {
    let cfg = server.config_path().display().to_string();
    let data = server.data_dir().display().to_string();
    let mut a = args.to_vec();
    a.extend(["--config", &cfg, "--data-dir", &data]);
    let (code, out, err) = dhwani(&a);
    assert_eq!(code, 0, "dhwani {args:?}: {out}{err}");
    out
}

/// The stored calls (newest first), once the newest has its CDR (the
/// writer flushes at least every 200 ms; the CDR follows the BYE).
pub fn finished_calls(server: &Server) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = dhwani_for(server, &["calls", "list", "--json"]);
        let calls: Vec<serde_json::Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        if calls.first().is_some_and(|c| c["end_ms"].is_i64()) {
            return calls;
        }
        assert!(
            Instant::now() < deadline,
            "no finished call in the store: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The SIPp binary; the test command installs it (`scripts/test.sh`).
pub fn sipp() -> PathBuf {
    let p = PathBuf::from("/usr/bin/sipp");
    assert!(
        p.exists(),
        "SIPp is missing: run ./scripts/test.sh, which installs the sip-tester package"
    );
    p
}

/// A free UDP port on loopback (for SIPp's media port).
pub fn free_udp_port() -> u16 {
    let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

/// A free TCP port on loopback.
pub fn free_tcp_port() -> u16 {
    let s = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    s.local_addr().expect("addr").port()
}

/// The outcome of one SIPp run.
pub struct SippRun {
    /// Exit code (0: every call succeeded).
    pub code: Option<i32>,
    /// Successful calls from the final statistics.
    pub successful: u64,
    /// Failed calls from the final statistics.
    pub failed: u64,
    /// SIPp's output.
    pub output: String,
}

/// Runs SIPp against `target` with `args`, bounded by `limit`. It dials
/// 1000 (the test tenant's number) unless `args` has its own `-s`.
pub fn run_sipp(target: SocketAddr, args: &[&str], limit: Duration) -> SippRun {
    let dir = tempfile::tempdir().expect("temp dir");
    let mp = free_udp_port().to_string();
    let mut cmd = Command::new(sipp());
    cmd.current_dir(dir.path())
        .arg(target.to_string())
        .args(["-i", "127.0.0.1", "-mp", &mp, "-nostdin", "-timeout"])
        .arg(format!("{}s", limit.as_secs()))
        .args([
            "-timeout_error",
            "-max_recv_loops",
            "1000",
            "-trace_stat",
            "-stf",
            "stats.csv",
        ])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !args.contains(&"-s") {
        cmd.args(["-s", "1000"]);
    }
    let out = cmd.output().expect("run sipp");
    let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
    output.push_str(&String::from_utf8_lossy(&out.stderr));
    let stats = std::fs::read_to_string(dir.path().join("stats.csv")).unwrap_or_default();
    let (successful, failed) = parse_stats(&stats);
    SippRun {
        code: out.status.code(),
        successful,
        failed,
        output,
    }
}

/// Reads SuccessfulCall(C) and FailedCall(C) of the last row of SIPp's
/// statistics file.
fn parse_stats(csv: &str) -> (u64, u64) {
    let mut lines = csv.lines().filter(|l| !l.trim().is_empty());
    let Some(header) = lines.next() else {
        return (0, 0);
    };
    let Some(last) = lines.next_back() else {
        return (0, 0);
    };
    let cols: Vec<&str> = header.split(';').collect();
    let vals: Vec<&str> = last.split(';').collect();
    let get = |name: &str| {
        cols.iter()
            .position(|c| *c == name)
            .and_then(|i| vals.get(i))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("SuccessfulCall(C)"), get("FailedCall(C)"))
}

/// The scenario file of this repository.
pub fn scenario(name: &str) -> String {
    format!("{}/tests/sipp/{name}", env!("CARGO_MANIFEST_DIR"))
}
