//! A sink that writes alerts to a stream: the demo's "would send", and a debugging aid.

use super::{Alert, Sink, SinkError};
use std::io::Write;

/// Writes each alert as a readable block (or one JSON line).
pub struct StdoutSink<W: Write> {
    out: W,
    json: bool,
}

impl<W: Write> StdoutSink<W> {
    /// A sink writing to `out`; `json` writes the alert body as one JSON line.
    pub fn new(out: W, json: bool) -> Self {
        StdoutSink { out, json }
    }
}

impl<W: Write> Sink for StdoutSink<W> {
    fn name(&self) -> &str {
        "stdout"
    }

    fn deliver(&mut self, alert: &Alert) -> Result<(), SinkError> {
        let text = if self.json {
            serde_json::to_string(alert).map_err(|e| SinkError::Permanent(e.to_string()))?
        } else {
            let mut s = alert.one_line();
            for d in &alert.diff {
                s.push_str(&format!("\n      {d}"));
            }
            if let Some(c) = &alert.correlation_id {
                s.push_str(&format!("\n      correlation id {c}"));
            }
            s
        };
        writeln!(self.out, "{text}").map_err(|e| match e.kind() {
            // The reader is gone (`notify | head`): nothing was delivered, nothing failed.
            std::io::ErrorKind::BrokenPipe => {
                SinkError::Gone(format!("stdout closed by its reader: {e}"))
            }
            _ => SinkError::Temporary(format!("cannot write to stdout: {e}")),
        })
    }
}
