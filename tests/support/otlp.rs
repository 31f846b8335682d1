//! Real OTLP trace receivers for tests: OTLP/HTTP (axum) and OTLP/gRPC (tonic), both decoding
//! `ExportTraceServiceRequest` with `opentelemetry-proto`, keeping the spans they received.

#![allow(dead_code)]

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, KeyValue};
use prost::Message as _;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone)]
pub struct Span {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
    pub name: String,
    /// OTLP span kind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
    pub kind: i32,
    /// OTLP status code: 0 unset, 1 ok, 2 error.
    pub status: i32,
    pub attrs: BTreeMap<String, String>,
    pub events: Vec<(String, BTreeMap<String, String>)>,
}

pub fn attrs(kvs: &[KeyValue]) -> BTreeMap<String, String> {
    kvs.iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                Some(any_value::Value::BoolValue(b)) => b.to_string(),
                Some(any_value::Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

pub fn collect(req: ExportTraceServiceRequest, into: &Mutex<Vec<Span>>) {
    let mut out = into.lock().unwrap();
    for rs in req.resource_spans {
        let res = attrs(&rs.resource.map(|r| r.attributes).unwrap_or_default());
        let service = res.get("service.name").cloned().unwrap_or_default();
        for ss in rs.scope_spans {
            for sp in ss.spans {
                out.push(Span {
                    service: service.clone(),
                    trace_id: hex(&sp.trace_id),
                    span_id: hex(&sp.span_id),
                    parent: hex(&sp.parent_span_id),
                    name: sp.name.clone(),
                    kind: sp.kind,
                    status: sp.status.as_ref().map_or(0, |s| s.code),
                    attrs: attrs(&sp.attributes),
                    events: sp
                        .events
                        .iter()
                        .map(|e| (e.name.clone(), attrs(&e.attributes)))
                        .collect(),
                });
            }
        }
    }
}

/// A real OTLP/gRPC receiver (tonic, the generated `TraceService`).
pub struct GrpcReceiver(pub Arc<Mutex<Vec<Span>>>);

#[async_trait::async_trait]
impl TraceService for GrpcReceiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        collect(req.into_inner(), &self.0);
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

impl GrpcReceiver {
    pub fn start(rt: &tokio::runtime::Runtime) -> (u16, Arc<Mutex<Vec<Span>>>) {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let incoming = futures::stream::unfold(listener, |l| async move {
            let conn = l.accept().await.map(|(s, _)| s);
            Some((conn, l))
        });
        let svc = TraceServiceServer::new(GrpcReceiver(spans.clone()));
        rt.spawn(async move {
            tonic::transport::Server::builder()
                .add_service(svc)
                .serve_with_incoming(incoming)
                .await
                .unwrap()
        });
        (port, spans)
    }
}

/// A real OTLP/HTTP receiver: `POST /v1/traces` with a protobuf `ExportTraceServiceRequest`.
pub struct Receiver {
    pub port: u16,
    pub spans: Arc<Mutex<Vec<Span>>>,
    pub paths: Arc<Mutex<Vec<String>>>,
}

impl Receiver {
    pub fn start(rt: &tokio::runtime::Runtime) -> Receiver {
        let spans: Arc<Mutex<Vec<Span>>> = Arc::default();
        let paths: Arc<Mutex<Vec<String>>> = Arc::default();
        let (s, p) = (spans.clone(), paths.clone());
        let app =
            axum::Router::new().fallback(move |uri: axum::http::Uri, body: axum::body::Bytes| {
                let (s, p) = (s.clone(), p.clone());
                async move {
                    p.lock().unwrap().push(uri.path().to_string());
                    let req = ExportTraceServiceRequest::decode(body)
                        .expect("a protobuf ExportTraceServiceRequest");
                    collect(req, &s);
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/x-protobuf")],
                        Vec::<u8>::new(),
                    )
                }
            });
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        rt.spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver { port, spans, paths }
    }

    pub fn spans(&self) -> Vec<Span> {
        self.spans.lock().unwrap().clone()
    }
}
