//! Replay input: files of Activity Log records and Kubernetes events, cut into numbered records.
//! JSON files are streamed in chunks, so memory stays flat whatever the file size.

use super::activity_log::{self, Prefilter};
use super::frame::{Frames, Item, LineCounter, Shape};
use super::kubernetes;
use super::Decoded;
use crate::domain::Location;
use serde_json::Value;
use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Bytes read per chunk; a record larger than this grows the buffer.
pub const CHUNK: usize = 8 << 20;
/// Bytes that identify a file for its checkpoint.
const FINGERPRINT_BYTES: usize = 64 * 1024;

/// A replay file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file could not be read.
    #[error("cannot read input file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

enum Origin {
    File(PathBuf),
    Memory(Vec<u8>),
}

/// An input file, checked readable and fingerprinted; its records are read when iterated.
pub struct ReplayFile {
    /// The path as given, used in messages and locations.
    pub display: String,
    /// The canonical path, used as the checkpoint's source id.
    pub canonical: PathBuf,
    /// Identifies the content for checkpoints: a hash of the first 64 KiB, so an appended-to
    /// file keeps its checkpoint and a replaced one starts over.
    pub fingerprint: String,
    origin: Origin,
    yaml: bool,
}

fn fingerprint(head: &[u8]) -> String {
    format!("fnv1a64:{:016x}", crate::domain::id::fnv1a64(head))
}

impl ReplayFile {
    /// Opens a file; `.yaml`/`.yml` files are read as (multi-document) YAML, all else as JSON.
    pub fn open(path: &Path) -> Result<ReplayFile, ReplayError> {
        let err = |source| ReplayError::Read {
            path: path.to_path_buf(),
            source,
        };
        let mut head = Vec::with_capacity(FINGERPRINT_BYTES);
        std::fs::File::open(path)
            .and_then(|f| f.take(FINGERPRINT_BYTES as u64).read_to_end(&mut head))
            .map_err(err)?;
        let canonical = path.canonicalize().map_err(err)?;
        let yaml = matches!(
            path.extension()
                .and_then(|e| e.to_str())
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("yaml" | "yml")
        );
        Ok(ReplayFile {
            display: path.display().to_string(),
            canonical,
            fingerprint: fingerprint(&head),
            origin: Origin::File(path.to_path_buf()),
            yaml,
        })
    }

    /// An in-memory input (tests, benchmarks); `name` ending in `.yaml` reads it as YAML.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> ReplayFile {
        ReplayFile {
            display: name.to_string(),
            canonical: PathBuf::from(name),
            fingerprint: fingerprint(&bytes[..bytes.len().min(FINGERPRINT_BYTES)]),
            origin: Origin::Memory(bytes),
            yaml: name.ends_with(".yaml") || name.ends_with(".yml"),
        }
    }

    /// The records of this file, decoded, in order, numbered from 0. A read error ends the
    /// iteration; [`Records::take_error`] returns it.
    pub fn records<'a>(&'a self, cluster: &'a str, prefilter: &'a Prefilter) -> Records<'a> {
        let reader: Result<(Box<dyn Read + 'a>, u64), std::io::Error> = match &self.origin {
            Origin::File(p) => std::fs::File::open(p)
                .and_then(|f| Ok((f.metadata()?.len(), f)))
                .map(|(n, f)| (Box::new(f) as Box<dyn Read>, n)),
            Origin::Memory(b) => Ok((Box::new(b.as_slice()), b.len() as u64)),
        };
        let mut r = Records {
            file: self,
            cluster,
            prefilter,
            reader: None,
            chunk: CHUNK,
            buf: Vec::new(),
            filled: 0,
            eof: false,
            lines_before: 0,
            yaml_docs: None,
            queue: VecDeque::new(),
            next_index: 0,
            error: None,
        };
        match reader {
            Err(e) => r.fail(e),
            Ok((mut rd, _)) if self.yaml => {
                let mut all = Vec::new();
                match rd.read_to_end(&mut all) {
                    Ok(_) => r.yaml_docs = Some(yaml_documents(&all)),
                    Err(e) => r.fail(e),
                }
            }
            Ok((rd, size)) => {
                // Small files get a buffer their size (plus one byte to see the end at once).
                r.chunk = CHUNK.min(size as usize + 1).max(4096);
                r.reader = Some(rd);
            }
        }
        r
    }
}

/// One record of an input.
#[derive(Debug)]
pub struct Record {
    /// 0-based record number within the file.
    pub index: u64,
    /// 1-based line where the record (or its enclosing list) starts; 0 for skipped records.
    pub line: usize,
    /// What it decoded to; observations carry their location already.
    pub decoded: Decoded,
}

/// Iterator over a file's records.
pub struct Records<'a> {
    file: &'a ReplayFile,
    cluster: &'a str,
    prefilter: &'a Prefilter,
    reader: Option<Box<dyn Read + 'a>>,
    chunk: usize,
    buf: Vec<u8>,
    filled: usize,
    eof: bool,
    lines_before: usize,
    yaml_docs: Option<VecDeque<Result<Value, String>>>,
    queue: VecDeque<(usize, Decoded)>,
    next_index: u64,
    error: Option<ReplayError>,
}

impl Records<'_> {
    /// The read error that ended iteration early, if any.
    pub fn take_error(&mut self) -> Option<ReplayError> {
        self.error.take()
    }

    fn fail(&mut self, source: std::io::Error) {
        self.error = Some(ReplayError::Read {
            path: PathBuf::from(&self.file.display),
            source,
        });
        self.reader = None;
        self.yaml_docs = None;
    }

    fn decode_value(
        cluster: &str,
        prefilter: &Prefilter,
        v: &Value,
        line: usize,
        queue: &mut VecDeque<(usize, Decoded)>,
    ) {
        let obj = v.as_object();
        let has = |k: &str| obj.is_some_and(|o| o.contains_key(k));
        if has("type") && has("object") {
            queue.extend(
                kubernetes::decode_watch_event(v, cluster)
                    .into_iter()
                    .map(|d| (line, d)),
            );
        } else if has("apiVersion") && has("kind") {
            queue.extend(
                kubernetes::decode_listing(v, cluster)
                    .into_iter()
                    .map(|d| (line, d)),
            );
        } else {
            let records = match v.get("records").and_then(Value::as_array) {
                Some(r) => r.iter().collect(),
                None => vec![v],
            };
            for r in records {
                let bytes = serde_json::to_vec(r).unwrap_or_default();
                queue.push_back((line, activity_log::decode_record(prefilter, &bytes)));
            }
        }
    }

    /// Reads the next chunk and decodes every complete record in it. False at the end.
    fn fill_chunk(&mut self) -> bool {
        let Some(reader) = self.reader.as_mut() else {
            return false;
        };
        if self.buf.len() < self.filled + self.chunk {
            self.buf.resize(self.filled + self.chunk, 0);
        }
        while !self.eof && self.filled < self.buf.len() {
            match reader.read(&mut self.buf[self.filled..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.fail(e);
                    return false;
                }
            }
        }
        let b = &self.buf[..self.filled];
        let span =
            tracing::debug_span!("normalise", file = %self.file.display, chunk.bytes = b.len());
        let _g = span.enter();
        let mut frames = Frames::chunk(b, self.eof);
        let mut lines = LineCounter::default();
        let base = self.lines_before;
        for item in frames.by_ref() {
            match item {
                Item::Malformed(e) => {
                    let line = base + lines.line_of(b, e.offset);
                    self.queue
                        .push_back((line, Decoded::Malformed(e.problem.to_string())));
                }
                Item::Frame(f) => {
                    let rec = &b[f.start..f.end];
                    match f.shape {
                        Shape::Record => {
                            let d = activity_log::decode_record(self.prefilter, rec);
                            // Line numbers cost a scan: only records someone will look at get one.
                            let l = if matches!(d, Decoded::Skipped(_)) {
                                0
                            } else {
                                base + lines.line_of(b, f.start)
                            };
                            self.queue.push_back((l, d));
                        }
                        Shape::WatchEvent | Shape::KubeObject => {
                            let line = base + lines.line_of(b, f.start);
                            match serde_json::from_slice::<Value>(rec) {
                                Ok(v) => Self::decode_value(
                                    self.cluster,
                                    self.prefilter,
                                    &v,
                                    line,
                                    &mut self.queue,
                                ),
                                Err(e) => self.queue.push_back((
                                    line,
                                    Decoded::Malformed(format!("invalid JSON: {e}")),
                                )),
                            }
                        }
                    }
                }
            }
        }
        let keep_from = frames.incomplete_from().unwrap_or(self.filled);
        self.lines_before += memchr::memchr_iter(b'\n', &b[..keep_from]).count();
        self.buf.copy_within(keep_from..self.filled, 0);
        self.filled -= keep_from;
        if self.eof && self.filled == 0 {
            self.reader = None;
        }
        // Progress was made, or the buffer grows next round to fit a record larger than it.
        true
    }

    fn fill(&mut self) -> bool {
        if let Some(docs) = self.yaml_docs.as_mut() {
            return match docs.pop_front() {
                None => false,
                Some(Ok(v)) => {
                    Self::decode_value(self.cluster, self.prefilter, &v, 1, &mut self.queue);
                    true
                }
                Some(Err(e)) => {
                    self.queue.push_back((1, Decoded::Malformed(e)));
                    true
                }
            };
        }
        self.fill_chunk()
    }
}

impl Iterator for Records<'_> {
    type Item = Record;
    fn next(&mut self) -> Option<Record> {
        while self.queue.is_empty() {
            if !self.fill() {
                return None;
            }
        }
        let (line, mut decoded) = self.queue.pop_front()?;
        let index = self.next_index;
        self.next_index += 1;
        if let Decoded::Observation(o) = &mut decoded {
            o.prov.location = Location {
                input: self.file.display.clone(),
                index,
            };
        }
        Some(Record {
            index,
            line,
            decoded,
        })
    }
}

fn yaml_documents(bytes: &[u8]) -> VecDeque<Result<Value, String>> {
    use serde::Deserialize;
    let mut out = VecDeque::new();
    for doc in serde_yaml::Deserializer::from_slice(bytes) {
        match serde_yaml::Value::deserialize(doc) {
            Ok(serde_yaml::Value::Null) => {}
            Ok(y) => out.push_back(
                serde_json::to_value(y)
                    .map_err(|e| format!("YAML document is not JSON-compatible: {e}")),
            ),
            Err(e) => {
                out.push_back(Err(format!("invalid YAML: {e}")));
                // The YAML parser cannot resume after an error inside a stream.
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_json_input_numbers_records_in_order() {
        let input = concat!(
            "{\"records\":[{\"operationName\":\"MICROSOFT.WEB/SITES/WRITE\"},{\"operationName\":\"x\"}]}\n",
            "{\"type\":\"ADDED\",\"object\":{\"kind\":\"ClusterRole\",\"metadata\":{\"name\":\"r\"},\"rules\":[]}}\n",
            "{broken\n",
            "{\"apiVersion\":\"v1\",\"kind\":\"List\",\"items\":[{\"kind\":\"Pod\",\"metadata\":{\"name\":\"p\"}}]}\n",
        );
        let f = ReplayFile::from_bytes("mem", input.as_bytes().to_vec());
        let p = Prefilter::default();
        let recs: Vec<Record> = f.records("c", &p).collect();
        assert_eq!(recs.len(), 5);
        assert_eq!(
            recs.iter().map(|r| r.index).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        assert!(matches!(&recs[2].decoded, Decoded::Observation(o) if o.prov.location.index == 2));
        assert!(matches!(&recs[3].decoded, Decoded::Malformed(_)));
        assert_eq!(recs[3].line, 3);
    }

    #[test]
    fn yaml_lists_decode() {
        let yaml = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata:\n    name: a\n    namespace: n\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: r\nrules: []\n";
        let f = ReplayFile::from_bytes("x.yaml", yaml.as_bytes().to_vec());
        let p = Prefilter::default();
        let recs: Vec<Record> = f.records("c", &p).collect();
        assert_eq!(recs.len(), 2);
        assert!(recs
            .iter()
            .all(|r| matches!(r.decoded, Decoded::Observation(_))));
    }

    #[test]
    fn records_spanning_chunks_decode_like_a_whole_file() {
        // Many records, lines long enough that chunk boundaries fall inside records.
        let rec = |i: usize| {
            format!(
                "{{\"operationName\":\"Microsoft.Web/sites/write\",\"pad\":\"{}\",\"i\":{i}}}",
                "x".repeat(1000 + i % 97)
            )
        };
        let mut text = String::new();
        for i in 0..20_000 {
            text.push_str(&rec(i));
            text.push('\n');
            if i == 12_345 {
                text.push_str("{\"truncated\": [\n");
            }
        }
        assert!(text.len() > 2 * CHUNK);
        let f = ReplayFile::from_bytes("big", text.into_bytes());
        let p = Prefilter::default();
        let mut recs = f.records("c", &p);
        let all: Vec<Record> = recs.by_ref().collect();
        assert!(recs.take_error().is_none());
        assert_eq!(all.len(), 20_001);
        let bad: Vec<&Record> = all
            .iter()
            .filter(|r| matches!(r.decoded, Decoded::Malformed(_)))
            .collect();
        assert_eq!(bad.len(), 1);
        assert_eq!((bad[0].index, bad[0].line), (12_346, 12_347));
    }
}
