//! The `notify` span of one delivery, shaped by the OpenTelemetry semantic conventions for a
//! client call: kind CLIENT with the HTTP or SMTP peer's attributes, never a secret.

use super::{Alert, Peer};

/// The span of one delivery: a child of the batch span that opened the alert's finding when
/// the alert carries its trace (so the trace runs from the record to the alert), else a root.
/// The HTTP sink records `http.response.status_code` and `error.type` on it as it answers.
pub(super) fn delivery(alert: &Alert, sink: &str, peer: &Peer) -> tracing::Span {
    let kind = match peer {
        Peer::Local => "internal",
        Peer::Http { .. } | Peer::Smtp { .. } => "client",
    };
    let span = tracing::info_span!(
        parent: None,
        "notify",
        otel.kind = kind,
        accessdrift.sink = sink,
        accessdrift.finding.id = %alert.finding_id,
        accessdrift.rule = %alert.rule,
        accessdrift.severity = alert.severity.as_str(),
        accessdrift.transition = alert.transition.as_str(),
        http.request.method = tracing::field::Empty,
        url.full = tracing::field::Empty,
        server.address = tracing::field::Empty,
        server.port = tracing::field::Empty,
        network.protocol.name = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
        error.type = tracing::field::Empty,
        otel.status_code = tracing::field::Empty,
    );
    match peer {
        Peer::Local => {}
        Peer::Http {
            method,
            address,
            port,
            url,
        } => {
            span.record("http.request.method", *method);
            span.record("url.full", url.as_str());
            span.record("server.address", address.as_str());
            span.record("server.port", i64::from(*port));
        }
        Peer::Smtp { address, port } => {
            span.record("server.address", address.as_str());
            span.record("server.port", i64::from(*port));
            span.record("network.protocol.name", "smtp");
        }
    }
    if let (Some(t), Some(s)) = (&alert.trace_id, &alert.trace_span_id) {
        crate::telemetry::set_remote_parent(&span, t, s);
    }
    span
}
