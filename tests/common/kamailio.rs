//! A Kamailio SIP proxy in front of Dhwani nodes, running the example
//! deployment's script (`deploy/kamailio.cfg`): REGISTERs go to one node
//! with a Path (RFC 3327) that carries the phone's source address; new
//! calls from outside go to another node; a node's INVITE with a
//! preloaded Route (a Path it read from the store) goes to the phone;
//! everything is record-routed. The test command (`scripts/test.sh`)
//! installs Debian's `kamailio` package. Loopback only.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running Kamailio; stopped (its whole process group) on drop.
pub struct Kamailio {
    child: Child,
    /// Its UDP address.
    pub addr: std::net::SocketAddr,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

fn modules_dir() -> PathBuf {
    for d in [
        "/usr/lib/x86_64-linux-gnu/kamailio/modules",
        "/usr/lib/aarch64-linux-gnu/kamailio/modules",
        "/usr/lib/kamailio/modules",
    ] {
        if Path::new(d).join("tm.so").exists() {
            return PathBuf::from(d);
        }
    }
    panic!("Kamailio's modules are missing: run ./scripts/test.sh, which installs kamailio")
}

impl Kamailio {
    /// Starts a proxy on a free loopback UDP port that hands REGISTERs to
    /// `registrar` and new calls from outside to `calls`.
    pub fn start(registrar: std::net::SocketAddr, calls: std::net::SocketAddr) -> Kamailio {
        let bin = ["/usr/sbin/kamailio", "/usr/bin/kamailio"]
            .into_iter()
            .find(|b| Path::new(b).exists())
            .expect("kamailio is missing: run ./scripts/test.sh, which installs kamailio");
        let dir = tempfile::tempdir().expect("dir");
        let port = super::free_udp_port();
        // The example deployment's script, as an operator would use it.
        let cfg = std::fs::read_to_string(super::repo_path("deploy/kamailio.cfg"))
            .expect("deploy/kamailio.cfg")
            .replace("@LISTEN@", &format!("udp:127.0.0.1:{port}"))
            .replace("@MODULES@", &modules_dir().display().to_string())
            .replace("@REGISTRAR@", &registrar.to_string())
            .replace("@CALLS@", &calls.to_string());
        let cfg_path = dir.path().join("kamailio.cfg");
        std::fs::write(&cfg_path, cfg).expect("kamailio.cfg");
        let log = dir.path().join("kamailio.log");
        let out = std::fs::File::create(&log).expect("log");
        let mut cmd = Command::new(bin);
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-m", "32", "-M", "8"])
            .arg("-Y")
            .arg(dir.path())
            .arg("-P")
            .arg(dir.path().join("kamailio.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .expect("start kamailio");
        let mut k = Kamailio {
            child,
            addr: format!("127.0.0.1:{port}").parse().expect("addr"),
            log,
            _dir: dir,
        };
        // Ready once its UDP socket is set up (then its workers start).
        let end = Instant::now() + Duration::from_secs(10);
        while !k.log().contains("SO_RCVBUF is finally") {
            assert!(
                Instant::now() < end && matches!(k.child.try_wait(), Ok(None)),
                "kamailio did not start:\n{}",
                k.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(300));
        k
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        // Kamailio's children are in its process group.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.wait();
    }
}
