//! Replay input: files of Activity Log records and Kubernetes events, cut into numbered records.

use super::activity_log::{self, Prefilter};
use super::frame::{Frames, Item, LineCounter, Shape};
use super::kubernetes;
use super::Decoded;
use crate::domain::Location;
use serde_json::Value;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};

/// A replay file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The file could not be read.
    #[error("cannot read input file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A whole input file in memory (replay files are bounded; the daemon streams instead).
pub struct ReplayFile {
    /// The path as given, used in messages and locations.
    pub display: String,
    /// The canonical path, used as the checkpoint's source id.
    pub canonical: PathBuf,
    /// The content.
    pub bytes: Vec<u8>,
    yaml: bool,
}

impl ReplayFile {
    /// Reads a file; `.yaml`/`.yml` files are read as (multi-document) YAML, all else as JSON.
    pub fn read(path: &Path) -> Result<ReplayFile, ReplayError> {
        let err = |source| ReplayError::Read {
            path: path.to_path_buf(),
            source,
        };
        let bytes = std::fs::read(path).map_err(err)?;
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
            bytes,
            yaml,
        })
    }

    /// Builds an in-memory input (tests, benchmarks).
    pub fn from_bytes(display: &str, bytes: Vec<u8>) -> ReplayFile {
        ReplayFile {
            display: display.to_string(),
            canonical: PathBuf::from(display),
            bytes,
            yaml: false,
        }
    }

    /// The records of this file, decoded, in order, numbered from 0.
    pub fn records<'a>(&'a self, cluster: &'a str, prefilter: &'a Prefilter) -> Records<'a> {
        let yaml_docs = if self.yaml {
            Some(yaml_documents(&self.bytes))
        } else {
            None
        };
        Records {
            file: self,
            cluster,
            prefilter,
            frames: Frames::new(if self.yaml { b"" } else { &self.bytes }),
            yaml_docs,
            queue: VecDeque::new(),
            next_index: 0,
            lines: LineCounter::default(),
        }
    }
}

/// One record of an input.
#[derive(Debug)]
pub struct Record {
    /// 0-based record number within the file.
    pub index: u64,
    /// 1-based line where the record (or its enclosing list) starts.
    pub line: usize,
    /// What it decoded to; observations carry their location already.
    pub decoded: Decoded,
}

/// Iterator over a file's records.
pub struct Records<'a> {
    file: &'a ReplayFile,
    cluster: &'a str,
    prefilter: &'a Prefilter,
    frames: Frames<'a>,
    yaml_docs: Option<VecDeque<Result<Value, String>>>,
    queue: VecDeque<(usize, Decoded)>,
    next_index: u64,
    lines: LineCounter,
}

impl Records<'_> {
    fn decode_value(&mut self, v: &Value, line: usize) {
        let obj = v.as_object();
        let has = |k: &str| obj.is_some_and(|o| o.contains_key(k));
        if has("type") && has("object") {
            for d in kubernetes::decode_watch_event(v, self.cluster) {
                self.queue.push_back((line, d));
            }
        } else if has("apiVersion") && has("kind") {
            for d in kubernetes::decode_listing(v, self.cluster) {
                self.queue.push_back((line, d));
            }
        } else if let Some(records) = v.get("records").and_then(Value::as_array) {
            for r in records {
                let bytes = serde_json::to_vec(r).unwrap_or_default();
                let d = activity_log::decode_record(self.prefilter, &bytes);
                self.queue.push_back((line, d));
            }
        } else {
            let bytes = serde_json::to_vec(v).unwrap_or_default();
            let d = activity_log::decode_record(self.prefilter, &bytes);
            self.queue.push_back((line, d));
        }
    }

    fn fill(&mut self) -> bool {
        if let Some(docs) = self.yaml_docs.as_mut() {
            return match docs.pop_front() {
                None => false,
                Some(Ok(v)) => {
                    self.decode_value(&v, 1);
                    true
                }
                Some(Err(e)) => {
                    self.queue.push_back((1, Decoded::Malformed(e)));
                    true
                }
            };
        }
        let b = &self.file.bytes;
        match self.frames.next() {
            None => false,
            Some(Item::Malformed(e)) => {
                let line = self.lines.line_of(b, e.offset);
                self.queue
                    .push_back((line, Decoded::Malformed(e.problem.to_string())));
                true
            }
            Some(Item::Frame(f)) => {
                let rec = &b[f.start..f.end];
                match f.shape {
                    Shape::Record => {
                        let d = activity_log::decode_record(self.prefilter, rec);
                        // Line numbers cost a scan: only records someone will look at get one.
                        let l = if matches!(d, Decoded::Skipped(_)) {
                            0
                        } else {
                            self.lines.line_of(b, f.start)
                        };
                        self.queue.push_back((l, d));
                    }
                    Shape::WatchEvent | Shape::KubeObject => {
                        let line = self.lines.line_of(b, f.start);
                        match serde_json::from_slice::<Value>(rec) {
                            Ok(v) => self.decode_value(&v, line),
                            Err(e) => self.queue.push_back((
                                line,
                                Decoded::Malformed(format!("invalid JSON: {e}")),
                            )),
                        }
                    }
                }
                true
            }
        }
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
        let f = ReplayFile {
            display: "x.yaml".into(),
            canonical: "x.yaml".into(),
            bytes: yaml.as_bytes().to_vec(),
            yaml: true,
        };
        let p = Prefilter::default();
        let recs: Vec<Record> = f.records("c", &p).collect();
        assert_eq!(recs.len(), 2);
        assert!(recs
            .iter()
            .all(|r| matches!(r.decoded, Decoded::Observation(_))));
    }
}
