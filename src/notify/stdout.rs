//! A sink that writes alerts to a stream: the demo's "would send", and a debugging aid.

use super::{Alert, Digest, Receipt, Sink, SinkError, SinkFuture};
use std::io::Write;

/// Writes each alert as a readable block (or one JSON line).
pub struct StdoutSink<W: Write + Send> {
    out: W,
    json: bool,
}

impl<W: Write + Send> StdoutSink<W> {
    /// A sink writing to `out`; `json` writes the alert body as one JSON line.
    pub fn new(out: W, json: bool) -> Self {
        StdoutSink { out, json }
    }

    fn write(&mut self, alert: &Alert) -> Result<Receipt, SinkError> {
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
        })?;
        Ok(Receipt("written".to_string()))
    }
}

impl<W: Write + Send> Sink for StdoutSink<W> {
    fn name(&self) -> &str {
        super::route::STDOUT
    }

    fn deliver<'a>(&'a mut self, alert: &'a Alert) -> SinkFuture<'a> {
        let r = self.write(alert);
        Box::pin(async move { r })
    }

    fn deliver_digest<'a>(&'a mut self, digest: &'a Digest) -> SinkFuture<'a> {
        // A terminal has no inbox to flood: every alert is printed.
        let r = digest
            .alerts
            .iter()
            .try_for_each(|a| self.write(a).map(|_| ()))
            .map(|()| Receipt("written".to_string()));
        Box::pin(async move { r })
    }

    fn groups_bursts(&self) -> bool {
        false
    }
}
