//! A throwaway PostgreSQL server for tests: `initdb` into a temp dir, listen
//! on a free loopback port, stopped and deleted on drop. The test command
//! (`scripts/test.sh`) installs Debian's `postgresql` package; PostgreSQL
//! refuses to run as root, so as root it runs as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A running PostgreSQL.
pub struct TempPostgres {
    bin: PathBuf,
    data: PathBuf,
    as_root: bool,
    /// `postgres://dhwani@127.0.0.1:PORT/postgres`
    pub url: String,
    _dir: tempfile::TempDir,
}

fn bin_dir() -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().join("bin"))
                .collect()
        })
        .unwrap_or_default();
    dirs.retain(|d| d.join("initdb").exists());
    dirs.sort();
    dirs.pop().expect(
        "PostgreSQL is missing: run ./scripts/test.sh, which installs the postgresql package",
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl TempPostgres {
    /// Starts a server (bounded: pg_ctl waits at most 60 s).
    pub fn start() -> TempPostgres {
        let bin = bin_dir();
        let dir = tempfile::tempdir().expect("temp dir");
        let as_root = is_root();
        let data = dir.path().join("pgdata");
        if as_root {
            let ok = Command::new("chmod")
                .arg("755")
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success())
                && Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(dir.path())
                    .status()
                    .is_ok_and(|s| s.success());
            assert!(ok, "cannot hand the temp dir to the postgres user");
        }
        let port = super::free_tcp_port();
        let pg = TempPostgres {
            bin,
            data,
            as_root,
            url: format!("postgres://dhwani@127.0.0.1:{port}/postgres"),
            _dir: dir,
        };
        pg.run(
            "initdb",
            &[
                "-D",
                &pg.data.display().to_string(),
                "-A",
                "trust",
                "-U",
                "dhwani",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {port} -k {} -c fsync=off",
            pg._dir.path().display()
        );
        let log = pg._dir.path().join("pg.log").display().to_string();
        pg.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                &pg.data.display().to_string(),
                "-l",
                &log,
                "-o",
                &opts,
            ],
        );
        pg
    }

    fn command(&self, tool: &str) -> Command {
        let exe = self.bin.join(tool);
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(exe);
            c
        } else {
            Command::new(exe)
        }
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let out = self
            .command(tool)
            .args(args)
            .current_dir(Path::new("/"))
            .output()
            .unwrap_or_else(|e| panic!("cannot run {tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(&self.data)
            .output();
    }
}
