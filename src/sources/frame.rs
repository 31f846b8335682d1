//! Framing: cuts JSON input into records without parsing them, so irrelevant records cost a scan.
//!
//! Accepts any sequence of top-level values (NDJSON, pretty-printed, concatenated), each an
//! object or an array of objects. An object with a `records` array is an Event Hubs envelope
//! and yields its elements. The depth-1 keys that tell Kubernetes input from Activity Log
//! records are noted on the way, for free.

use memchr::memchr3;

/// What the depth-1 keys say a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Anything else: treated as an Activity Log record.
    Record,
    /// `{"type":…, "object":…}`: a Kubernetes watch event.
    WatchEvent,
    /// `{"apiVersion":…, "kind":…}`: a Kubernetes object or `kind: List`.
    KubeObject,
}

/// One record: byte range in the input, shape, and 0-based index in the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Start offset (inclusive).
    pub start: usize,
    /// End offset (exclusive).
    pub end: usize,
    /// What it looks like.
    pub shape: Shape,
}

/// A structural error and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    /// Byte offset where the bad value starts.
    pub offset: usize,
    /// What is wrong.
    pub problem: &'static str,
    /// The input ended while the value was still open: more bytes may complete it.
    pub truncated: bool,
}

/// One item of framed input: a record, or a stretch that is not JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A record to process.
    Frame(Frame),
    /// Input that could not be framed; scanning resumed at the next line starting with `{` or `[`.
    Malformed(FrameError),
}

/// Iterator over the records of a JSON input, or of one chunk of a larger input.
pub struct Frames<'a> {
    b: &'a [u8],
    pos: usize,
    queue: std::collections::VecDeque<Item>,
    at_eof: bool,
    incomplete_from: Option<usize>,
    top: (usize, usize),
    values: u64,
}

impl<'a> Frames<'a> {
    /// Starts framing a whole input (see [`Frames::chunk`] for its unfinished last value).
    pub fn new(input: &'a [u8]) -> Self {
        Frames::chunk(input, true)
    }

    /// Starts framing a chunk. A top-level value cut off by the end of the chunk is not
    /// malformed: iteration stops before it and [`Frames::incomplete_from`] says where it
    /// starts, so the caller can read more and frame again from there. When `at_eof` is false
    /// that holds for any error in the last value; at the end of the input it holds only when
    /// the value is a valid beginning of JSON that the input ended inside (a record still
    /// being written), while a value that is wrong whatever follows is malformed.
    pub fn chunk(input: &'a [u8], at_eof: bool) -> Self {
        // A UTF-8 byte-order mark is legal at the start of files written on Windows.
        let pos = if input.starts_with(&[0xEF, 0xBB, 0xBF]) {
            3
        } else {
            0
        };
        Frames {
            b: input,
            pos,
            queue: Default::default(),
            at_eof,
            incomplete_from: None,
            top: (pos, pos),
            values: 0,
        }
    }

    /// Where the value cut off by the end of an incomplete chunk starts, once iteration ended.
    pub fn incomplete_from(&self) -> Option<usize> {
        self.incomplete_from
    }

    /// Top-level values framed so far (empty ones included, malformed stretches not).
    pub fn values(&self) -> u64 {
        self.values
    }

    /// Byte range of the top-level value (or the malformed stretch) that the item last
    /// returned belongs to: the elements of one envelope share it. Checkpoints sit on its ends.
    pub fn top(&self) -> (usize, usize) {
        self.top
    }

    fn fill(&mut self) {
        let b = self.b;
        self.pos = skip_ws(b, self.pos);
        if self.pos >= b.len() || self.incomplete_from.is_some() {
            return;
        }
        let start = self.pos;
        let before = self.queue.len();
        let res = match b[start] {
            b'{' => self.object(start),
            b'[' => self.array(start),
            _ => Err(err(start, "expected a JSON object or array")),
        };
        match res {
            Ok(end) => {
                self.pos = end;
                self.top = (start, end);
                self.values += 1;
            }
            Err(e) => {
                self.queue.truncate(before);
                let next = resync(b, start + 1);
                // No later line starts a value: the chunk may just end mid-value.
                if next >= b.len() && (!self.at_eof || e.truncated) {
                    self.incomplete_from = Some(start);
                    self.pos = b.len();
                    return;
                }
                self.queue.push_back(Item::Malformed(e));
                self.pos = next;
                self.top = (start, next);
            }
        }
    }

    /// A top-level or array-element object: an envelope yields its records, else itself.
    fn object(&mut self, start: usize) -> Result<usize, FrameError> {
        let (end, info) = scan_object(self.b, start)?;
        match info.records {
            Some(recs) => {
                for (s, e) in recs {
                    if self.b[s] == b'{' {
                        // Envelope elements are Activity Log records by definition.
                        self.queue.push_back(Item::Frame(Frame {
                            start: s,
                            end: e,
                            shape: Shape::Record,
                        }));
                    } else {
                        self.queue.push_back(Item::Malformed(err(
                            s,
                            "an element of `records` is not an object",
                        )));
                    }
                }
            }
            None => self.queue.push_back(Item::Frame(Frame {
                start,
                end,
                shape: info.shape(),
            })),
        }
        Ok(end)
    }

    fn array(&mut self, start: usize) -> Result<usize, FrameError> {
        let b = self.b;
        let mut i = skip_ws(b, start + 1);
        if b.get(i) == Some(&b']') {
            return Ok(i + 1);
        }
        loop {
            i = skip_ws(b, i);
            match b.get(i) {
                Some(b'{') => i = self.object(i)?,
                Some(_) => {
                    let e = skip_value(b, i)?;
                    self.queue
                        .push_back(Item::Malformed(err(i, "an array element is not an object")));
                    i = e;
                }
                None => return Err(cut(start, "unterminated array")),
            }
            i = skip_ws(b, i);
            match b.get(i) {
                Some(b',') => i += 1,
                Some(b']') => return Ok(i + 1),
                Some(_) => return Err(err(start, "expected `,` or `]` in array")),
                None => return Err(cut(start, "unterminated array")),
            }
        }
    }
}

impl Iterator for Frames<'_> {
    type Item = Item;
    fn next(&mut self) -> Option<Item> {
        // A value may yield nothing (`[]`, `{"records":[]}`): go on to the next one.
        while self.queue.is_empty() {
            let pos = self.pos;
            self.fill();
            if self.queue.is_empty() && self.pos == pos {
                return None;
            }
        }
        self.queue.pop_front()
    }
}

#[derive(Default)]
struct ObjectInfo {
    records: Option<Vec<(usize, usize)>>,
    has_type: bool,
    has_object: bool,
    has_api_version: bool,
    has_kind: bool,
}

impl ObjectInfo {
    fn shape(&self) -> Shape {
        if self.has_type && self.has_object {
            Shape::WatchEvent
        } else if self.has_api_version && self.has_kind {
            Shape::KubeObject
        } else {
            Shape::Record
        }
    }
}

fn err(offset: usize, problem: &'static str) -> FrameError {
    FrameError {
        offset,
        problem,
        truncated: false,
    }
}

/// The input ended inside the value: not wrong yet, just not all there.
fn cut(offset: usize, problem: &'static str) -> FrameError {
    FrameError {
        offset,
        problem,
        truncated: true,
    }
}

/// `err` or `cut`, depending on whether the scan at `i` ran off the end of the input.
fn err_at(b: &[u8], i: usize, offset: usize, problem: &'static str) -> FrameError {
    if i >= b.len() {
        cut(offset, problem)
    } else {
        err(offset, problem)
    }
}

fn scan_object(b: &[u8], start: usize) -> Result<(usize, ObjectInfo), FrameError> {
    let mut info = ObjectInfo::default();
    let mut i = skip_ws(b, start + 1);
    if b.get(i) == Some(&b'}') {
        return Ok((i + 1, info));
    }
    loop {
        i = skip_ws(b, i);
        if b.get(i) != Some(&b'"') {
            return Err(err_at(b, i, start, "expected a quoted key in object"));
        }
        let kend = skip_string(b, i).map_err(|at| err_at(b, at, start, "unterminated string"))?;
        let key = &b[i + 1..kend - 1];
        i = skip_ws(b, kend);
        if b.get(i) != Some(&b':') {
            return Err(err_at(b, i, start, "expected `:` after key"));
        }
        i = skip_ws(b, i + 1);
        match key {
            b"records" if b.get(i) == Some(&b'[') => {
                let mut recs = Vec::new();
                i = elements(b, i, &mut recs)?;
                info.records = Some(recs);
            }
            _ => {
                match key {
                    b"type" => info.has_type = true,
                    b"object" => info.has_object = true,
                    b"apiVersion" => info.has_api_version = true,
                    b"kind" => info.has_kind = true,
                    _ => {}
                }
                i = skip_value(b, i)?;
            }
        }
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b'}') => return Ok((i + 1, info)),
            _ => return Err(err_at(b, i, start, "expected `,` or `}` in object")),
        }
    }
}

fn elements(b: &[u8], start: usize, out: &mut Vec<(usize, usize)>) -> Result<usize, FrameError> {
    let mut i = skip_ws(b, start + 1);
    if b.get(i) == Some(&b']') {
        return Ok(i + 1);
    }
    loop {
        i = skip_ws(b, i);
        let e = skip_value(b, i)?;
        out.push((i, e));
        i = skip_ws(b, e);
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b']') => return Ok(i + 1),
            _ => return Err(err_at(b, i, start, "expected `,` or `]` in records array")),
        }
    }
}

#[inline]
fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(c) = b.get(i) {
        if !matches!(c, b' ' | b'\t' | b'\n' | b'\r') {
            break;
        }
        i += 1;
    }
    i
}

/// `i` is at an opening quote; returns the offset just past the closing quote. JSON strings
/// cannot hold a raw line break, so one ends the string as an error: a record cut off
/// mid-string then never swallows the lines after it. The error is where the scan stopped
/// (the input's length when it ran out).
#[inline]
fn skip_string(b: &[u8], i: usize) -> Result<usize, usize> {
    let mut j = i + 1;
    loop {
        let p = memchr3(b'"', b'\\', b'\n', &b[j.min(b.len())..]).ok_or(b.len())?;
        j += p;
        match b[j] {
            b'\\' => j += 2,
            b'"' => return Ok(j + 1),
            _ => return Err(j),
        }
    }
}

/// Bytes that matter while skipping a container: quotes, escapes and brackets.
const STRUCTURAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'{' as usize] = true;
    t[b'}' as usize] = true;
    t[b'[' as usize] = true;
    t[b']' as usize] = true;
    t
};

/// Skips one JSON value starting at `i`, checking bracket balance and string termination.
fn skip_value(b: &[u8], i: usize) -> Result<usize, FrameError> {
    match b.get(i) {
        None => Err(cut(i, "unexpected end of input")),
        Some(b'"') => skip_string(b, i).map_err(|at| err_at(b, at, i, "unterminated string")),
        Some(b'{' | b'[') => {
            let mut stack: Vec<u8> = Vec::with_capacity(16);
            let mut j = i;
            let n = b.len();
            while j < n {
                // A table lookup per byte beats a memchr call per (short) string here.
                let c = b[j];
                if !STRUCTURAL[c as usize] {
                    j += 1;
                    continue;
                }
                match c {
                    b'"' => {
                        j += 1;
                        loop {
                            match b.get(j) {
                                Some(b'"') => break,
                                Some(b'\\') => j += 2,
                                Some(b'\n') => {
                                    return Err(err(i, "unterminated string (record cut off?)"))
                                }
                                None => return Err(cut(i, "unterminated string")),
                                Some(_) => j += 1,
                            }
                        }
                    }
                    b'{' => stack.push(b'}'),
                    b'[' => stack.push(b']'),
                    _ => {
                        if stack.pop() != Some(c) {
                            return Err(err(i, "mismatched bracket"));
                        }
                        if stack.is_empty() {
                            return Ok(j + 1);
                        }
                    }
                }
                j += 1;
            }
            Err(cut(i, "unterminated object or array (truncated record?)"))
        }
        Some(_) => {
            let mut j = i;
            while j < b.len() && !matches!(b[j], b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
            {
                j += 1;
            }
            if j == i {
                Err(err(i, "expected a value"))
            } else {
                Ok(j)
            }
        }
    }
}

/// After an error, the next line that starts (in column 0) with `{` or `[`.
fn resync(b: &[u8], from: usize) -> usize {
    let mut i = from;
    while let Some(nl) = memchr::memchr(b'\n', &b[i.min(b.len())..]) {
        i += nl + 1;
        if matches!(b.get(i), Some(b'{' | b'[')) {
            return i;
        }
    }
    b.len()
}

/// 1-based line numbers of byte offsets, counted incrementally: offsets asked in increasing
/// order cost one pass over the input in total.
#[derive(Debug, Default)]
pub struct LineCounter {
    pos: usize,
    line: usize,
}

impl LineCounter {
    /// The line of `offset` in `b`.
    pub fn line_of(&mut self, b: &[u8], offset: usize) -> usize {
        let offset = offset.min(b.len());
        if offset < self.pos {
            *self = LineCounter::default();
        }
        self.line += memchr::memchr_iter(b'\n', &b[self.pos..offset]).count();
        self.pos = offset;
        self.line + 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(s: &str) -> Vec<Result<(String, Shape), &'static str>> {
        Frames::new(s.as_bytes())
            .map(|it| match it {
                Item::Frame(f) => Ok((s[f.start..f.end].to_string(), f.shape)),
                Item::Malformed(e) => Err(e.problem),
            })
            .collect()
    }

    #[test]
    fn shapes_table() {
        use Shape::*;
        let r = |s: &str, sh| Ok((s.to_string(), sh));
        for (input, want) in [
            (r#"{"a":1}"#, vec![r(r#"{"a":1}"#, Record)]),
            (
                "{\"a\":1}\n{\"b\":[2]}\n",
                vec![r(r#"{"a":1}"#, Record), r(r#"{"b":[2]}"#, Record)],
            ),
            (
                r#"{"records":[{"x":"}"},{"y":2}]}"#,
                vec![r(r#"{"x":"}"}"#, Record), r(r#"{"y":2}"#, Record)],
            ),
            (
                r#"[{"a":1},{"records":[{"b":2}]}]"#,
                vec![r(r#"{"a":1}"#, Record), r(r#"{"b":2}"#, Record)],
            ),
            (
                r#"{"type":"ADDED","object":{}}"#,
                vec![r(r#"{"type":"ADDED","object":{}}"#, WatchEvent)],
            ),
            (
                r#"{"apiVersion":"v1","kind":"List","items":[]}"#,
                vec![r(
                    r#"{"apiVersion":"v1","kind":"List","items":[]}"#,
                    KubeObject,
                )],
            ),
            (
                "{\n  \"a\": \"x\\\"y\"\n}\n",
                vec![r("{\n  \"a\": \"x\\\"y\"\n}", Record)],
            ),
            (r#"{"records":[]}"#, vec![]),
            ("", vec![]),
        ] {
            assert_eq!(frames(input), want, "{input}");
        }
    }

    #[test]
    fn truncated_line_is_reported_and_the_rest_survives() {
        let got = frames("{\"a\":1}\n{\"b\": [1, \n{\"c\":3}\n");
        assert_eq!(got.len(), 3);
        assert!(got[0].is_ok());
        assert!(got[1].is_err());
        assert_eq!(got[2], Ok(("{\"c\":3}".to_string(), Shape::Record)));
    }

    #[test]
    fn a_line_cut_inside_a_string_does_not_swallow_the_next_lines() {
        let got = frames("{\"records\":[{\"a\":\"cut\n{\"records\":[{\"b\":\"x\"}]}\n");
        assert_eq!(got.len(), 2);
        assert!(got[0].is_err());
        assert_eq!(got[1], Ok(("{\"b\":\"x\"}".to_string(), Shape::Record)));
    }

    #[test]
    fn an_incomplete_chunk_stops_before_the_cut_value() {
        let input = b"{\"a\":1}\n{\"records\":[{\"b\":2},{\"c\":";
        let mut f = Frames::chunk(input, false);
        let items: Vec<Item> = f.by_ref().collect();
        assert_eq!(items.len(), 1);
        assert_eq!(f.incomplete_from(), Some(8));
        // The same bytes as a whole input: the cut value is still being written, not malformed.
        let mut f = Frames::new(input);
        assert_eq!(f.by_ref().count(), 1);
        assert_eq!(f.incomplete_from(), Some(8));
        // A broken line followed by a good one is malformed even in a chunk.
        let mut f = Frames::chunk(b"{\"a\":\n{\"b\":1}\n{\"c\":", false);
        assert_eq!(f.by_ref().count(), 2);
        assert!(f.incomplete_from().is_some());
    }

    #[test]
    fn at_the_end_a_cut_value_waits_and_a_wrong_one_is_malformed() {
        for (input, cut) in [
            ("{", true),
            ("{\"a\"", true),
            ("{\"a\":", true),
            ("{\"a\":12", true),
            ("{\"a\":\"x\\", true),
            ("{\"a\":[1,{\"b\":\"", true),
            ("{\"records\":[{\"a\":1}", true),
            ("{\"records\":[{\"a\":1},", true),
            ("[{\"a\":1}", true),
            ("[{\"a\":1},\n", true),
            ("{\n  \"a\": 1,\n", true),
            ("{broken", false),
            ("{\"a\":1]", false),
            ("{\"a\":\"x\n", false),
            ("{\"a\" 1", false),
            ("[{\"a\":1} {", false),
            ("nope", false),
        ] {
            let mut f = Frames::new(input.as_bytes());
            let items: Vec<Item> = f.by_ref().collect();
            assert_eq!(f.incomplete_from().is_some(), cut, "{input}");
            assert_eq!(items.len(), usize::from(!cut), "{input}");
        }
    }

    #[test]
    fn values_that_yield_nothing_do_not_end_the_input() {
        assert_eq!(frames("[]\n{\"records\":[]}\n{\"a\":1}").len(), 1);
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for input in [
            "}",
            "nope\n{\"a\":1}",
            "{\"a\"}",
            "[1,2]",
            "{\"records\":[1]}",
            "{\"a\":\"unterminated",
            "\u{feff}{\"a\":1}",
        ] {
            let _ = frames(input);
        }
        assert_eq!(frames("nope\n{\"a\":1}").len(), 2);
        assert_eq!(frames("[1,{\"a\":1}]").len(), 2);
    }
}
