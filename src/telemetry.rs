//! Logging and tracing set-up: structured logs to stderr (text for people, JSON for
//! collectors) and, when the standard `OTEL_*` variables name a collector, the same spans
//! exported over OTLP (http/protobuf by default, or grpc).
//!
//! Export never blocks the pipeline: spans go to the SDK's bounded batch queue and a thread of
//! its own sends them; a collector that is down costs failed exports, counted in
//! `accessdrift_trace_spans_dropped_total`, and a full queue drops spans.

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use opentelemetry_sdk::Resource;
use std::io::IsTerminal;
use std::time::Duration;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{fmt, EnvFilter, Layer as _};

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Tracing set-up failures: a bad `OTEL_*` variable.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP protocol is not one accessdrift speaks.
    #[error(
        "{var}={value:?} is not supported: set it to \"http/protobuf\" (the default) or \"grpc\""
    )]
    Protocol {
        /// The variable read.
        var: &'static str,
        /// Its value.
        value: String,
    },
    /// The exporter could not be built (a malformed endpoint or header).
    #[error("OTLP trace exporter ({protocol}): {reason}; check OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT and OTEL_EXPORTER_OTLP_HEADERS")]
    Exporter {
        /// `http/protobuf` or `grpc`.
        protocol: &'static str,
        /// The SDK's message.
        reason: String,
    },
    /// The grpc exporter's runtime could not start.
    #[error("starting the OTLP grpc exporter's runtime: {0}")]
    Runtime(std::io::Error),
}

/// The OTLP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP/HTTP with protobuf bodies (`http/protobuf`).
    HttpProtobuf,
    /// OTLP/gRPC (`grpc`).
    Grpc,
}

/// Whether and how to export, from the standard variables (`get` reads one): `None` when
/// `OTEL_SDK_DISABLED=true` or no endpoint is set, so an unconfigured daemon pays nothing.
pub fn otlp_from_env(
    get: impl Fn(&str) -> Option<String>,
) -> Result<Option<OtlpProtocol>, TelemetryError> {
    let set = |k: &str| get(k).filter(|v| !v.trim().is_empty());
    if set("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true")) {
        return Ok(None);
    }
    if set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").is_none()
        && set("OTEL_EXPORTER_OTLP_ENDPOINT").is_none()
    {
        return Ok(None);
    }
    let (var, value) = match set("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") {
        Some(v) => ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", v),
        None => match set("OTEL_EXPORTER_OTLP_PROTOCOL") {
            Some(v) => ("OTEL_EXPORTER_OTLP_PROTOCOL", v),
            None => return Ok(Some(OtlpProtocol::HttpProtobuf)),
        },
    };
    match value.trim() {
        "http/protobuf" => Ok(Some(OtlpProtocol::HttpProtobuf)),
        "grpc" => Ok(Some(OtlpProtocol::Grpc)),
        _ => Err(TelemetryError::Protocol { var, value }),
    }
}

/// Flushes and stops the exporter when dropped (end of `main`).
#[must_use = "dropping the guard stops trace export"]
#[derive(Debug, Default)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take() {
            // Bounded: a collector that does not answer must not hold the exit.
            let _ = p.shutdown_with_timeout(Duration::from_secs(3));
        }
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides `level` for the logs when set.
pub fn init(level: &str, format: LogFormat) -> Result<TelemetryGuard, TelemetryError> {
    let protocol = otlp_from_env(|k| std::env::var(k).ok())?;
    let provider = protocol.map(provider).transpose()?;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let logs = match format {
        LogFormat::Text => fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .boxed(),
        LogFormat::Json => fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .json()
            .flatten_event(true)
            .boxed(),
    }
    .with_filter(filter);
    // Spans and events of accessdrift only (debug included: the finding transitions), never
    // the HTTP stack's: the exporter's own requests must not feed the exporter.
    let otel = provider.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer("accessdrift"))
            .with_threads(false)
            .with_filter(
                Targets::new()
                    .with_target("accessdrift", LevelFilter::DEBUG)
                    .with_default(LevelFilter::OFF),
            )
    });
    // A second init (tests) is harmless: the first subscriber stays.
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(otel)
        .try_init();
    Ok(TelemetryGuard { provider })
}

fn provider(protocol: OtlpProtocol) -> Result<SdkTracerProvider, TelemetryError> {
    let err = |protocol: &'static str| {
        move |e: opentelemetry_otlp::ExporterBuildError| TelemetryError::Exporter {
            protocol,
            reason: e.to_string(),
        }
    };
    let exporter = match protocol {
        // The batch processor exports from its own thread with the blocking client.
        OtlpProtocol::HttpProtobuf => Counted {
            inner: opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .build()
                .map_err(err("http/protobuf"))?,
            rt: None,
        },
        // tonic needs a tokio reactor, which the batch processor's thread does not have: the
        // exporter gets a small runtime of its own, so the daemon's runtime never waits on it.
        OtlpProtocol::Grpc => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .thread_name("accessdrift-otlp")
                .build()
                .map_err(TelemetryError::Runtime)?;
            let inner = {
                let _in_rt = rt.enter();
                opentelemetry_otlp::SpanExporter::builder()
                    .with_tonic()
                    .build()
                    .map_err(err("grpc"))?
            };
            Counted {
                inner,
                rt: Some(rt),
            }
        }
    };
    Ok(SdkTracerProvider::builder()
        .with_resource(resource())
        .with_batch_exporter(exporter)
        .build())
}

/// `service.name` is `accessdrift` unless `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES`
/// says otherwise (the SDK reads both).
fn resource() -> Resource {
    let named = std::env::var("OTEL_SERVICE_NAME").is_ok_and(|v| !v.trim().is_empty())
        || std::env::var("OTEL_RESOURCE_ATTRIBUTES").is_ok_and(|v| {
            v.split(',')
                .any(|kv| kv.trim_start().starts_with("service.name="))
        });
    let b = Resource::builder()
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")));
    if named {
        b.build()
    } else {
        b.with_service_name("accessdrift").build()
    }
}

/// Counts what the real exporter delivered and lost.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    rt: Option<tokio::runtime::Runtime>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len() as u64;
        let r = match &self.rt {
            Some(rt) => rt.block_on(self.inner.export(batch)),
            None => self.inner.export(batch).await,
        };
        match &r {
            Ok(()) => crate::metrics::global().spans_exported(n),
            Err(_) => crate::metrics::global().spans_dropped("export_failed", n),
        }
        r
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// The trace and span id (lower-case hex) of the current span, when it is being exported.
pub fn current_trace() -> Option<(String, String)> {
    let cx = tracing::Span::current().context();
    let span = cx.span();
    let sc = span.span_context();
    (sc.is_valid() && sc.is_sampled())
        .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

/// Makes `span` a child of the (sampled) remote span `trace_id`/`span_id`, lower-case hex as
/// findings store them; ids that do not parse leave it a root.
pub fn set_remote_parent(span: &tracing::Span, trace_id: &str, span_id: &str) {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    if let (Ok(t), Ok(s)) = (TraceId::from_hex(trace_id), SpanId::from_hex(span_id)) {
        let sc = SpanContext::new(t, s, TraceFlags::SAMPLED, true, TraceState::default());
        let _ = span.set_parent(opentelemetry::Context::new().with_remote_span_context(sc));
    }
}

/// Marks `span` failed. `error_type` (low-cardinality) is recorded unless the span has one
/// already: an HTTP client span's is the status code or the transport failure.
pub fn record_error(span: &tracing::Span, error_type: Option<&str>) {
    if let Some(t) = error_type {
        span.record("error.type", t);
    }
    span.record("otel.status_code", "error");
}

/// The W3C `traceparent` header value for a sampled span: `00-<trace id>-<span id>-01`.
/// `None` unless both ids are well-formed lower-case hex (32 and 16 digits, not all zero).
pub fn traceparent(trace_id: &str, span_id: &str) -> Option<String> {
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && s.bytes().any(|b| b != b'0')
    };
    (hex(trace_id, 32) && hex(span_id, 16)).then(|| format!("00-{trace_id}-{span_id}-01"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn otlp_settings_from_the_standard_variables() {
        use OtlpProtocol::*;
        type Case<'a> = (&'a [(&'a str, &'a str)], Option<OtlpProtocol>);
        let cases: &[Case] = &[
            (&[], None),
            (&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")], None),
            (
                &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")],
                Some(HttpProtobuf),
            ),
            (
                &[(
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://c:4318/v1/traces",
                )],
                Some(HttpProtobuf),
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
                ],
                Some(Grpc),
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
                    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                    ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
                ],
                Some(Grpc),
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_SDK_DISABLED", "TRUE"),
                ],
                None,
            ),
            (
                &[
                    ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                    ("OTEL_SDK_DISABLED", "false"),
                ],
                Some(HttpProtobuf),
            ),
            (&[("OTEL_EXPORTER_OTLP_ENDPOINT", "  ")], None),
        ];
        for (env, want) in cases {
            let got = otlp_from_env(|k| {
                env.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            });
            assert_eq!(got.unwrap(), *want, "{env:?}");
        }
        let e = otlp_from_env(|k| match k {
            "OTEL_EXPORTER_OTLP_ENDPOINT" => Some("http://c:4318".into()),
            "OTEL_EXPORTER_OTLP_PROTOCOL" => Some("http/json".into()),
            _ => None,
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("OTEL_EXPORTER_OTLP_PROTOCOL=\"http/json\"") && e.contains("grpc"),
            "{e}"
        );
    }

    #[test]
    fn traceparent_is_w3c_or_nothing() {
        let t = "4bf92f3577b34da6a3ce929d0e0e4736";
        let s = "00f067aa0ba902b7";
        assert_eq!(traceparent(t, s).unwrap(), format!("00-{t}-{s}-01"));
        for (t, s) in [
            ("", s),
            (t, ""),
            ("00000000000000000000000000000000", s),
            (t, "0000000000000000"),
            ("4BF92F3577B34DA6A3CE929D0E0E4736", s),
            (t, "00f067aa0ba902b7ff"),
        ] {
            assert_eq!(traceparent(t, s), None, "{t} {s}");
        }
    }
}
