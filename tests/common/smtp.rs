//! A real SMTP server (aiosmtpd, tests/peers/smtp_server.py) as a child process, and a test
//! CA with a server certificate for 127.0.0.1. Include with
//! `#[path = "common/smtp.rs"] mod smtp;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The Python that has aiosmtpd: `ACCESSDRIFT_TEST_PYTHON` when set (`.ci/run` sets it),
/// else the project's `target/aiosmtpd-venv` (created here, with pip, on first use, so plain
/// `cargo test --locked` works on a fresh machine), else a `python3` that already has it.
/// Missing is a failure, never a skip.
pub fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("ACCESSDRIFT_TEST_PYTHON") {
        return PathBuf::from(p);
    }
    let has = |py: &Path| {
        Command::new(py)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    let venv = target.join("aiosmtpd-venv");
    let venv_py = venv.join("bin/python");
    if has(&venv_py) {
        return venv_py;
    }
    if has(Path::new("python3")) {
        return PathBuf::from("python3");
    }
    // One installer at a time across test threads and test binaries.
    std::fs::create_dir_all(&target).unwrap();
    let lock = std::fs::File::create(target.join("aiosmtpd-venv.lock")).unwrap();
    lock.lock().unwrap();
    if !has(&venv_py) {
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success())
            && Command::new(venv.join("bin/pip"))
                .args([
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "aiosmtpd>=1.4,<2",
                ])
                .status()
                .is_ok_and(|s| s.success());
        assert!(
            ok && has(&venv_py),
            "the SMTP tests need aiosmtpd and installing it into {} failed: run \
             `python3 -m venv target/aiosmtpd-venv && target/aiosmtpd-venv/bin/pip install aiosmtpd` \
             (needs python3 with venv and access to PyPI), or `apt install python3-aiosmtpd`",
            venv.display()
        );
    }
    venv_py
}

pub struct SmtpPeer {
    child: Child,
    pub port: u16,
    pub maildir: PathBuf,
}

impl SmtpPeer {
    /// Starts the server with these extra arguments, writing mail under `dir`.
    pub fn start(dir: &Path, args: &[&str]) -> SmtpPeer {
        let maildir = dir.join(format!("mail-{}", rand_suffix()));
        std::fs::create_dir_all(&maildir).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/smtp_server.py");
        let mut child = Command::new(python())
            .arg(script)
            .arg("--maildir")
            .arg(&maildir)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the aiosmtpd peer");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .trim()
            .strip_prefix("READY ")
            .unwrap_or_else(|| panic!("aiosmtpd peer did not start: {line:?}"))
            .parse()
            .unwrap();
        SmtpPeer {
            child,
            port,
            maildir,
        }
    }

    /// Received messages, in arrival order, as parsed by the peer: `headers` (lower-case
    /// names, decoded), `parts` (`type`, `text`), `rcpt_tos`, `auth`.
    pub fn messages(&self) -> Vec<serde_json::Value> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.maildir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

/// A CA and a server certificate for 127.0.0.1 and localhost, written as PEM files in `dir`:
/// returns (ca.pem, server.pem, server.key).
pub fn test_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "accessdrift test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca, ca_key);
    let mut leaf =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
    leaf.distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).unwrap();
    let (ca_p, cert_p, key_p) = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&ca_p, ca_cert.pem()).unwrap();
    std::fs::write(&cert_p, leaf_cert.pem()).unwrap();
    std::fs::write(&key_p, leaf_key.serialize_pem()).unwrap();
    (ca_p, cert_p, key_p)
}
