//! Runs the `accessdrift run` binary against an in-test API server and observes it from outside:
//! its HTTP server, its database and its output. Every wait is bounded.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_accessdrift");

/// Polls `f` until it returns `Some`, or panics naming `what` after `limit`.
pub fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `GET path` on loopback: (status, body), or None when nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let code = out.split(' ').nth(1)?.parse().ok()?;
    let body = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((code, body))
}

/// A running daemon; killed on drop if still running.
pub struct Daemon {
    /// The child process.
    pub child: Child,
    /// Its `/healthz` and `/readyz` port (0 until it has logged it).
    port: u16,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
}

fn capture(r: impl Read + Send + 'static) -> Arc<Mutex<String>> {
    let buf = Arc::new(Mutex::new(String::new()));
    let b = buf.clone();
    std::thread::spawn(move || {
        let mut r = std::io::BufReader::new(r);
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut r, &mut line).unwrap_or(0) > 0 {
            b.lock().unwrap().push_str(&line);
            line.clear();
        }
    });
    buf
}

/// Writes the kubeconfig and config files into `dir` and returns the config path. The
/// `[kubernetes]` table has no `enabled`: being there turns the watch on.
/// The daemon listens on `127.0.0.1:0` and logs the port it got: a port picked by the test
/// and released could be taken by another test's server before the daemon binds it.
pub fn write_config(dir: &Path, kubeconfig: &str, extra: &str) -> PathBuf {
    let kc = dir.join("kubeconfig");
    std::fs::write(&kc, kubeconfig).unwrap();
    let cfg = dir.join("accessdrift.toml");
    std::fs::write(
        &cfg,
        format!(
            "[[clusters]]\nname = \"aks-test\"\nresource_id = \"/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-test\"\n\n\
             [kubernetes]\ncluster = \"aks-test\"\nkubeconfig = {kc:?}\nbatch_max_wait = \"50ms\"\n{extra}\n\
             [server]\nlisten = \"127.0.0.1:0\"\n\n[notify]\npoll_interval = \"200ms\"\ninitial_backoff = \"1s\"\n"
        ),
    )
    .unwrap();
    cfg
}

impl Daemon {
    /// Starts `accessdrift run --config CFG --db DB`.
    pub fn start(cfg: &Path, db: &Path) -> Daemon {
        Self::start_with(cfg, db, &[])
    }

    /// Starts the daemon with extra global flags (e.g. `--log-format json`).
    pub fn start_with(cfg: &Path, db: &Path, global: &[&str]) -> Daemon {
        Self::start_env(cfg, db, global, &[])
    }

    /// Starts the daemon with extra global flags and environment variables (`OTEL_*`).
    pub fn start_env(cfg: &Path, db: &Path, global: &[&str], env: &[(&str, &str)]) -> Daemon {
        let mut child = Command::new(BIN)
            .args(global)
            .args(["--log-level", "info", "run", "--config"])
            .arg(cfg)
            .arg("--db")
            .arg(db)
            .env_remove("RUST_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = capture(child.stdout.take().unwrap());
        let stderr = capture(child.stderr.take().unwrap());
        let mut d = Daemon {
            child,
            port: 0,
            stdout,
            stderr,
        };
        d.port = wait_for(
            "the daemon to log its listen address",
            Duration::from_secs(30),
            || {
                if let Ok(Some(st)) = d.child.try_wait() {
                    panic!("daemon exited with {st:?} at start; logs:\n{}", d.stderr());
                }
                let logs = d.stderr();
                // Text logs say `listen=127.0.0.1:N`, JSON logs `"listen":"127.0.0.1:N"`.
                let at = ["listen=127.0.0.1:", "\"listen\":\"127.0.0.1:"]
                    .iter()
                    .find_map(|p| logs.find(p).map(|i| i + p.len()))?;
                let digits: String = logs[at..]
                    .chars()
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse().ok()
            },
        );
        d
    }

    /// The health server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Alerts the notifier printed so far.
    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    /// Logs so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// `/readyz`: (status, JSON body).
    pub fn readyz(&self) -> Option<(u16, serde_json::Value)> {
        let (code, body) = http_get(self.port, "/readyz")?;
        Some((code, serde_json::from_str(&body).ok()?))
    }

    /// Waits for `/readyz` to answer 200.
    pub fn wait_ready(&mut self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!(
                    "daemon exited with {st:?} before it was ready; logs:\n{}",
                    self.stderr()
                );
            }
            if let Some((200, _)) = self.readyz() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "daemon not ready after {limit:?}: {:?}\nlogs:\n{}",
                    self.readyz(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends a signal (`TERM`, `INT`) without waiting.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        self.signal("TERM");
        self.wait_exit(limit)
    }

    /// Waits (bounded) for the exit status.
    pub fn wait_exit(&mut self, limit: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "daemon did not exit within {limit:?} of SIGTERM; logs:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs the CLI to completion: (exit code, stdout, stderr).
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the CLI, killing it (and failing) if it has not exited within `limit`: for commands
/// that must return at once, so a regression fails fast instead of hanging the suite.
pub fn cli_within(args: &[&str], limit: Duration) -> (i32, String, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = capture(child.stdout.take().unwrap());
    let stderr = capture(child.stderr.take().unwrap());
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`accessdrift {}` still running after {limit:?}; stderr:\n{}",
                args.join(" "),
                stderr.lock().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // The pipes close with the process; give the reader threads a moment to finish.
    std::thread::sleep(Duration::from_millis(50));
    let out = stdout.lock().unwrap().clone();
    let err = stderr.lock().unwrap().clone();
    (status.code().unwrap_or(-1), out, err)
}
