//! Decoding framed values and YAML documents into records, for [`Records`].

use super::{Group, Position, Records};
use crate::sources::frame::{Item, LineCounter, Shape};
use crate::sources::kubernetes;
use crate::sources::Decoded;
use serde_json::Value;

impl Records<'_> {
    pub(super) fn decode_value(&self, v: &Value, line: usize, out: &mut Vec<(usize, Decoded)>) {
        let obj = v.as_object();
        let has = |k: &str| obj.is_some_and(|o| o.contains_key(k));
        if has("type") && has("object") {
            out.extend(
                kubernetes::decode_watch_event(v, self.cluster)
                    .into_iter()
                    .map(|d| (line, d)),
            );
        } else if v.get("kind").and_then(Value::as_str) == Some("Event")
            && v.get("apiVersion")
                .and_then(Value::as_str)
                .is_some_and(|a| a.starts_with("audit.k8s.io/"))
        {
            // A line of an API server's audit log (`--audit-log-path`): the cluster is
            // `--cluster`.
            let cluster = self.router.clusters().by_name(self.cluster);
            let bytes = serde_json::to_vec(v).unwrap_or_default();
            out.push((line, self.router.decode_audit_event(&cluster, &bytes)));
        } else if has("apiVersion") && has("kind") {
            out.extend(
                kubernetes::decode_listing(v, self.cluster)
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
                out.push((line, self.router.decode(&bytes)));
            }
        }
    }

    pub(super) fn decode_item(
        &self,
        b: &[u8],
        base_lines: usize,
        lines: &mut LineCounter,
        item: Item,
        out: &mut Vec<(usize, Decoded)>,
    ) {
        match item {
            Item::Malformed(e) => {
                let line = base_lines + lines.line_of(b, e.offset);
                out.push((line, Decoded::Malformed(e.problem.to_string())));
            }
            Item::Frame(f) => {
                let rec = &b[f.start..f.end];
                match f.shape {
                    Shape::Record => {
                        let d = self.router.decode(rec);
                        // Line numbers cost a scan: only records someone will look at get one.
                        let l = if matches!(d, Decoded::Skipped(_)) {
                            0
                        } else {
                            base_lines + lines.line_of(b, f.start)
                        };
                        out.push((l, d));
                    }
                    Shape::WatchEvent | Shape::KubeObject => {
                        let line = base_lines + lines.line_of(b, f.start);
                        match serde_json::from_slice::<Value>(rec) {
                            Ok(v) => self.decode_value(&v, line, out),
                            Err(e) => {
                                out.push((line, Decoded::Malformed(format!("invalid JSON: {e}"))))
                            }
                        }
                    }
                }
            }
        }
    }

    /// Decodes a YAML file (or what follows its checkpoint) in one go. YAML has no cheap
    /// record boundaries, so the whole tail is one value: a checkpoint inside it is its start
    /// plus the records done, and only a tail that parsed to its end moves the offset.
    pub(super) fn fill_yaml(&mut self, tail: Vec<u8>) {
        let start = Position {
            offset: self.base,
            index: self.next_index,
            line: self.newlines_before + 1,
            skip: 0,
            hash: self.hash,
        };
        let mut items = Vec::new();
        let (docs, stopped) = yaml_documents(&tail);
        for doc in docs {
            match doc {
                Ok(v) => {
                    self.values += 1;
                    self.decode_value(&v, start.line as usize, &mut items);
                }
                Err(e) => items.push((start.line as usize, Decoded::Malformed(e))),
            }
        }
        let clean = stopped.is_none();
        if let Some(e) = stopped {
            // Broken or half written: reported, and read again next time (the parser cannot
            // resume after an error, so nothing after it was read either).
            items.push((start.line as usize, Decoded::Malformed(e)));
        }
        self.hash.update(&tail);
        self.base += tail.len() as u64;
        self.newlines_before += memchr::memchr_iter(b'\n', &tail).count() as u64;
        let end = if clean {
            Position {
                offset: self.base,
                index: start.index + items.len() as u64,
                line: self.newlines_before + 1,
                skip: 0,
                hash: self.hash,
            }
        } else {
            Position {
                skip: items.len() as u64 - 1,
                ..start
            }
        };
        let top = (0, tail.len());
        self.queue_group(Group { top, start, items }, end);
    }
}

/// The documents of a YAML stream, and the parse error that stopped it early, if any (the
/// YAML parser cannot resume after an error inside a stream).
type YamlDocs = (Vec<Result<Value, String>>, Option<String>);

fn yaml_documents(bytes: &[u8]) -> YamlDocs {
    use serde::Deserialize;
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_slice(bytes) {
        match serde_yaml::Value::deserialize(doc) {
            Ok(serde_yaml::Value::Null) => {}
            Ok(y) => out.push(
                serde_json::to_value(y)
                    .map_err(|e| format!("YAML document is not JSON-compatible: {e}")),
            ),
            Err(e) => return (out, Some(format!("invalid YAML: {e}"))),
        }
    }
    (out, None)
}
