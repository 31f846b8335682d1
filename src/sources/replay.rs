//! Replay input: files of Activity Log records and Kubernetes events, cut into numbered records.
//! JSON files are streamed in chunks, so memory stays flat whatever the file size.
//!
//! Every record carries the [`Position`] to resume from once it is applied: a byte offset on a
//! top-level value boundary plus the hash of every byte before it. A file that only grew is
//! continued there; one whose bytes before it changed is read again from the start. A value
//! cut off by the end of the file is a record still being written: it is reported as
//! unfinished, never as malformed, and no position passes it.

mod decode;
mod position;
#[cfg(test)]
mod tests;

pub use position::{Mismatch, Position, PrefixHash, Stored, LEGACY_HEAD_BYTES};

use super::frame::{Frames, LineCounter};
use super::router::RecordRouter;
use super::Decoded;
use crate::domain::Location;
use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Bytes read per chunk; a record larger than this grows the buffer.
pub const CHUNK: usize = 8 << 20;

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

/// An input file, checked readable; its records are read when iterated.
pub struct ReplayFile {
    /// The path as given, used in messages and locations.
    pub display: String,
    /// The canonical path, used as the checkpoint's source id.
    pub canonical: PathBuf,
    origin: Origin,
    yaml: bool,
}

/// Where to read a file from, given its stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resume {
    /// No checkpoint: from the start.
    Start,
    /// The bytes before the checkpoint are unchanged: continue there.
    Continue(Position),
    /// The checkpoint does not fit the file any more: from the start.
    Restart(Mismatch),
}

/// What a file held, once read to its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// At least one JSON value or YAML document (or reading resumed after some).
    Values,
    /// Nothing but white space.
    Empty,
    /// Bytes, but not one JSON value or YAML document in them (a binary, another format).
    NotJson,
}

impl ReplayFile {
    /// Opens a file; `.yaml`/`.yml` files are read as (multi-document) YAML, all else as JSON.
    pub fn open(path: &Path) -> Result<ReplayFile, ReplayError> {
        let err = |source| ReplayError::Read {
            path: path.to_path_buf(),
            source,
        };
        std::fs::File::open(path).map_err(err)?;
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
            origin: Origin::File(path.to_path_buf()),
            yaml,
        })
    }

    /// An in-memory input (tests, benchmarks); `name` ending in `.yaml` reads it as YAML.
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> ReplayFile {
        ReplayFile {
            display: name.to_string(),
            canonical: PathBuf::from(name),
            origin: Origin::Memory(bytes),
            yaml: name.ends_with(".yaml") || name.ends_with(".yml"),
        }
    }

    fn read_error(&self, source: std::io::Error) -> ReplayError {
        ReplayError::Read {
            path: PathBuf::from(&self.display),
            source,
        }
    }

    /// A reader positioned at `offset`, and the bytes from there to the end.
    fn reader_at(&self, offset: u64) -> std::io::Result<(Box<dyn Read + '_>, u64)> {
        match &self.origin {
            Origin::File(p) => {
                let mut f = std::fs::File::open(p)?;
                let len = f.metadata()?.len();
                f.seek(SeekFrom::Start(offset))?;
                Ok((Box::new(f), len.saturating_sub(offset)))
            }
            Origin::Memory(b) => {
                let rest = &b[(offset as usize).min(b.len())..];
                Ok((Box::new(rest), rest.len() as u64))
            }
        }
    }

    /// Checks a stored checkpoint (its `position` and `fingerprint` columns) against the file
    /// as it is now. Reads every byte before the checkpoint once, to hash them.
    pub fn resume(&self, stored: Option<(u64, &str)>) -> Result<Resume, ReplayError> {
        let Some((position, text)) = stored else {
            return Ok(Resume::Start);
        };
        let Some(stored) = Stored::parse(position, text) else {
            return Ok(Resume::Restart(Mismatch::Unreadable));
        };
        let (mut rd, len) = self.reader_at(0).map_err(|e| self.read_error(e))?;
        match stored {
            Stored::Legacy { records, head } => {
                let mut buf = Vec::with_capacity(LEGACY_HEAD_BYTES);
                rd.take(LEGACY_HEAD_BYTES as u64)
                    .read_to_end(&mut buf)
                    .map_err(|e| self.read_error(e))?;
                let now = format!("fnv1a64:{:016x}", crate::domain::id::fnv1a64(&buf));
                // The old format counted records from the start: skip that many, once.
                Ok(if now == head {
                    Resume::Continue(Position {
                        skip: records,
                        ..Position::default()
                    })
                } else {
                    Resume::Restart(Mismatch::Changed)
                })
            }
            Stored::Offset {
                offset,
                index,
                line,
                skip,
                digest,
            } => {
                if len < offset {
                    return Ok(Resume::Restart(Mismatch::Shorter { len, offset }));
                }
                let mut hash = PrefixHash::default();
                let mut buf = vec![0u8; (1 << 20).min(offset as usize).max(1)];
                while hash.len() < offset {
                    let want = (offset - hash.len()).min(buf.len() as u64) as usize;
                    match rd.read(&mut buf[..want]) {
                        Ok(0) => {
                            let len = hash.len();
                            return Ok(Resume::Restart(Mismatch::Shorter { len, offset }));
                        }
                        Ok(n) => hash.update(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(self.read_error(e)),
                    }
                }
                Ok(if hash.digest() == digest {
                    Resume::Continue(Position {
                        offset,
                        index,
                        line,
                        skip,
                        hash,
                    })
                } else {
                    Resume::Restart(Mismatch::Changed)
                })
            }
        }
    }

    /// The records of this file, decoded, in order, numbered from 0.
    pub fn records<'a>(&'a self, cluster: &'a str, router: &'a RecordRouter) -> Records<'a> {
        self.records_from(cluster, router, Position::default())
    }

    /// The records from `from` on (a position from [`ReplayFile::resume`] or a record's
    /// `after`). A read error ends the iteration; [`Records::take_error`] returns it.
    pub fn records_from<'a>(
        &'a self,
        cluster: &'a str,
        router: &'a RecordRouter,
        from: Position,
    ) -> Records<'a> {
        let mut r = Records {
            file: self,
            cluster,
            router,
            reader: None,
            yaml_tail: None,
            chunk: CHUNK,
            buf: Vec::new(),
            filled: 0,
            eof: false,
            base: from.offset,
            hash: from.hash,
            newlines_before: from.line.saturating_sub(1),
            queue: VecDeque::new(),
            next_index: from.index,
            to_skip: from.skip,
            skipped: 0,
            values: u64::from(from.offset > 0),
            malformed: 0,
            unfinished: 0,
            error: None,
        };
        match self.reader_at(from.offset) {
            Err(e) => r.fail(e),
            Ok((mut rd, _)) if self.yaml => {
                let mut all = Vec::new();
                match rd.read_to_end(&mut all) {
                    Ok(_) => r.yaml_tail = Some(all),
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
    /// Where to resume once this record (and all before it) is applied.
    pub after: Position,
}

/// Iterator over a file's records.
pub struct Records<'a> {
    file: &'a ReplayFile,
    cluster: &'a str,
    router: &'a RecordRouter,
    reader: Option<Box<dyn Read + 'a>>,
    yaml_tail: Option<Vec<u8>>,
    chunk: usize,
    buf: Vec<u8>,
    filled: usize,
    eof: bool,
    /// File offset of `buf[0]`; `hash` covers exactly the bytes before it.
    base: u64,
    hash: PrefixHash,
    newlines_before: u64,
    queue: VecDeque<Record>,
    next_index: u64,
    to_skip: u64,
    skipped: u64,
    values: u64,
    malformed: u64,
    unfinished: u64,
    error: Option<ReplayError>,
}

/// The records of one top-level value (or one malformed stretch), decoded, before numbering.
struct Group {
    top: (usize, usize),
    start: Position,
    items: Vec<(usize, Decoded)>,
}

impl Records<'_> {
    /// The read error that ended iteration early, if any.
    pub fn take_error(&mut self) -> Option<ReplayError> {
        self.error.take()
    }

    /// Records read again but not returned because the checkpoint was inside their value.
    pub fn skipped_before_checkpoint(&self) -> u64 {
        self.skipped
    }

    /// Bytes at the end of the file that start a value the writer has not finished yet.
    pub fn unfinished_bytes(&self) -> u64 {
        self.unfinished
    }

    /// True once a JSON value or YAML document was seen (so far): before that, what was read
    /// may be a binary, which must not be checkpointed as read.
    pub fn saw_values(&self) -> bool {
        self.values > 0
    }

    /// What the file held; meaningful once iteration ended.
    pub fn content(&self) -> Content {
        if self.values > 0 {
            Content::Values
        } else if self.malformed > 0 {
            Content::NotJson
        } else if self.unfinished > 0 {
            // The start of a first record: a writer at work, reported as unfinished.
            Content::Values
        } else {
            Content::Empty
        }
    }

    fn fail(&mut self, source: std::io::Error) {
        self.error = Some(self.file.read_error(source));
        self.reader = None;
        self.yaml_tail = None;
    }

    /// Numbers a group's records and queues them with their resume positions: inside the
    /// value, the value's start plus the records done; after its last record, its end.
    fn queue_group(&mut self, g: Group, end: Position) {
        let n = g.items.len() as u64;
        for (i, (line, mut decoded)) in (0u64..).zip(g.items) {
            let index = g.start.index + i;
            if let Decoded::Observation(o) = &mut decoded {
                o.prov.location = Location {
                    input: self.file.display.clone(),
                    index,
                };
            }
            if matches!(decoded, Decoded::Malformed(_)) {
                self.malformed += 1;
            }
            let after = if i + 1 == n {
                end
            } else {
                Position {
                    skip: i + 1,
                    ..g.start
                }
            };
            self.queue.push_back(Record {
                index,
                line,
                decoded,
                after,
            });
        }
        self.next_index = g.start.index + n;
    }

    /// The position at `rel` in the buffer, hashing the bytes up to it (`hashed` tracks how
    /// far `self.hash` got within `b`).
    fn position_at(
        &mut self,
        b: &[u8],
        hashed: &mut usize,
        lines: &mut LineCounter,
        rel: usize,
    ) -> Position {
        self.hash.update(&b[*hashed..rel]);
        *hashed = rel;
        Position {
            offset: self.base + rel as u64,
            index: self.next_index,
            line: self.newlines_before + lines.line_of(b, rel) as u64,
            skip: 0,
            hash: self.hash,
        }
    }

    /// Queues a complete group of a JSON chunk: after its last record, reading resumes at
    /// the end of its value.
    fn end_group(&mut self, b: &[u8], hashed: &mut usize, lines: &mut LineCounter, g: Group) {
        let end = Position {
            index: g.start.index + g.items.len() as u64,
            ..self.position_at(b, hashed, lines, g.top.1)
        };
        self.queue_group(g, end);
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
        // The buffer is lent out while its records are decoded into `self`.
        let buf = std::mem::take(&mut self.buf);
        let b = &buf[..self.filled];
        let span =
            tracing::info_span!("normalise", file = %self.file.display, chunk.bytes = b.len());
        let _g = span.enter();
        let mut frames = Frames::chunk(b, self.eof);
        let mut lines = LineCounter::default();
        let mut hashed = 0usize;
        let base_lines = self.newlines_before as usize;
        let mut group: Option<Group> = None;
        while let Some(item) = frames.next() {
            let top = frames.top();
            if group.as_ref().is_none_or(|g| g.top != top) {
                if let Some(g) = group.take() {
                    self.end_group(b, &mut hashed, &mut lines, g);
                }
                let start = self.position_at(b, &mut hashed, &mut lines, top.0);
                group = Some(Group {
                    top,
                    start,
                    items: Vec::new(),
                });
            }
            let g = group.as_mut().expect("set above");
            self.decode_item(b, base_lines, &mut lines, item, &mut g.items);
        }
        if let Some(g) = group.take() {
            self.end_group(b, &mut hashed, &mut lines, g);
        }
        self.values += frames.values();
        let keep_from = frames.incomplete_from().unwrap_or(self.filled);
        self.hash.update(&b[hashed..keep_from]);
        // The counter is at the last value's end by now: only the rest is scanned.
        self.newlines_before += lines.line_of(b, keep_from) as u64 - 1;
        self.base += keep_from as u64;
        self.buf = buf;
        self.buf.copy_within(keep_from..self.filled, 0);
        self.filled -= keep_from;
        if self.eof {
            // What is left at the end is a value the writer is still writing.
            self.unfinished = self.filled as u64;
            self.filled = 0;
            self.reader = None;
        }
        // Progress was made, or the buffer grows next round to fit a record larger than it.
        true
    }

    fn fill(&mut self) -> bool {
        if let Some(tail) = self.yaml_tail.take() {
            self.fill_yaml(tail);
            return true;
        }
        self.fill_chunk()
    }
}

impl Iterator for Records<'_> {
    type Item = Record;
    fn next(&mut self) -> Option<Record> {
        loop {
            while self.queue.is_empty() {
                if !self.fill() {
                    return None;
                }
            }
            let rec = self.queue.pop_front()?;
            if self.to_skip == 0 {
                return Some(rec);
            }
            self.to_skip -= 1;
            self.skipped += 1;
        }
    }
}
