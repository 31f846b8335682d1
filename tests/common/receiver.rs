//! An HTTP/1.1 webhook receiver on loopback: records every request and answers from a script
//! (default 200). It checks Standard Webhooks signatures with its own HMAC (aws-lc-rs), not
//! with the code under test. Include with `#[path = "common/receiver.rs"] mod receiver;`.
#![allow(dead_code)]

use base64::Engine as _;
use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One received request.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Lower-case names.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// The status it was answered with.
    pub status: u16,
    /// When it was read in full.
    pub at: std::time::Instant,
}

impl Request {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("body is JSON")
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// An answer: status and extra headers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
        }
    }
    pub fn with(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn body(mut self, b: &str) -> Reply {
        self.body = b.into();
        self
    }
}

pub struct Receiver {
    pub addr: SocketAddr,
    pub got: Arc<Mutex<Vec<Request>>>,
    /// Replies given in order; when empty, 200.
    pub script: Arc<Mutex<VecDeque<Reply>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    pub fn start() -> Receiver {
        Receiver::on(TcpListener::bind("127.0.0.1:0").unwrap())
    }

    /// Listens on a given port (a receiver coming back up where it was).
    pub fn start_at(addr: SocketAddr) -> Receiver {
        let mut tries = 0;
        loop {
            match TcpListener::bind(addr) {
                Ok(l) => return Receiver::on(l),
                Err(e) if tries < 50 => {
                    tries += 1;
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(e) => panic!("rebind {addr}: {e}"),
            }
        }
    }

    fn on(listener: TcpListener) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let got: Arc<Mutex<Vec<Request>>> = Arc::default();
        let script: Arc<Mutex<VecDeque<Reply>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        listener.set_nonblocking(true).unwrap();
        let (g, s, st) = (got.clone(), script.clone(), stop.clone());
        std::thread::spawn(move || {
            while !st.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => {
                        let (g, s, st) = (g.clone(), s.clone(), st.clone());
                        std::thread::spawn(move || serve(conn, &g, &s, &st));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        Receiver {
            addr,
            got,
            script,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook", self.addr)
    }

    pub fn push(&self, r: Reply) {
        self.script.lock().unwrap().push_back(r);
    }

    pub fn requests(&self) -> Vec<Request> {
        self.got.lock().unwrap().clone()
    }

    /// Stops accepting; the port is free again once the listener thread notices (≤ 5 ms).
    pub fn stop(self) -> SocketAddr {
        self.stop.store(true, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(30));
        self.addr
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn serve(
    conn: TcpStream,
    got: &Mutex<Vec<Request>>,
    script: &Mutex<VecDeque<Reply>>,
    stop: &AtomicBool,
) {
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut out = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || stop.load(Ordering::SeqCst) {
            return;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or_default().to_string();
        let path = parts.next().unwrap_or_default().to_string();
        let mut headers = BTreeMap::new();
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
            }
        }
        let len: usize = headers
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; len];
        if r.read_exact(&mut body).is_err() {
            return;
        }
        let reply = script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Reply::status(200));
        got.lock().unwrap().push(Request {
            method,
            path,
            headers,
            body,
            status: reply.status,
            at: std::time::Instant::now(),
        });
        let mut resp = format!(
            "HTTP/1.1 {} X\r\ncontent-length: {}\r\n",
            reply.status,
            reply.body.len()
        );
        for (k, v) in &reply.headers {
            resp.push_str(&format!("{k}: {v}\r\n"));
        }
        resp.push_str("\r\n");
        resp.push_str(&reply.body);
        if out.write_all(resp.as_bytes()).is_err() {
            return;
        }
    }
}

/// Verifies a Standard Webhooks signature: `v1,base64(HMAC-SHA256(key, "{id}.{ts}.{body}"))`
/// with `key` the base64 after `whsec_`. Independent of the crate the sink uses.
pub fn verify_signature(secret: &str, req: &Request) -> Result<(), String> {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").ok_or("no whsec_ prefix")?)
        .map_err(|e| e.to_string())?;
    let id = req.header("webhook-id").ok_or("no webhook-id")?;
    let ts = req
        .header("webhook-timestamp")
        .ok_or("no webhook-timestamp")?;
    let sig = req
        .header("webhook-signature")
        .ok_or("no webhook-signature")?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let t: i64 = ts.parse().map_err(|_| "timestamp not an integer")?;
    if (now - t).abs() > 300 {
        return Err(format!("timestamp {t} is off by more than 5 minutes"));
    }
    let mut signed = format!("{id}.{ts}.").into_bytes();
    signed.extend_from_slice(&req.body);
    let k = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &key);
    let want = base64::engine::general_purpose::STANDARD
        .encode(aws_lc_rs::hmac::sign(&k, &signed).as_ref());
    if sig.split(' ').any(|s| s == format!("v1,{want}")) {
        Ok(())
    } else {
        Err(format!("signature {sig} does not match v1,{want}"))
    }
}
