//! An in-test Event Hubs broker on fe2o3-amqp's acceptor: SASL ANONYMOUS, the `$cbs`
//! put-token, the `$management` READ of the hub and its partitions, and partition receive
//! links honouring the selector filter and link credit, answered with the exact AMQP types the
//! Rust SDK (azure_messaging_eventhubs 0.16) expects. It can drop every connection, reject
//! tokens (401) and resend from an older position. Events live in memory; tests append to them.

#![allow(dead_code)]

use fe2o3_amqp::acceptor::{
    ConnectionAcceptor, LinkAcceptor, LinkEndpoint, ListenerSessionHandle, SaslAnonymousMechanism,
    SessionAcceptor,
};
use fe2o3_amqp::link::delivery::Sendable;
use fe2o3_amqp::types::definitions::{AmqpError, ErrorCondition};
use fe2o3_amqp::types::messaging::{
    AmqpValue, ApplicationProperties, Body, Message, MessageAnnotations, Properties,
};
use fe2o3_amqp::types::primitives::{Array, Binary, OrderedMap, SimpleValue, Timestamp, Value};
use fe2o3_amqp::{Receiver, Sender};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};

/// One stored event.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    /// Sequence number (0-based per partition).
    pub seq: i64,
    /// Offset string (a byte position, like the service's: not the sequence number).
    pub offset: String,
    /// Enqueued time, Unix milliseconds.
    pub enqueued_ms: i64,
    /// The body (one data section).
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Inner {
    partitions: Vec<Vec<StoredEvent>>,
    next_offset: Vec<u64>,
    tokens: Vec<(String, String)>,
    filters: Vec<(String, String)>,
    resend_from: Option<i64>,
}

struct Shared {
    hub: String,
    consumer_groups: Vec<String>,
    inner: Mutex<Inner>,
    appended: watch::Sender<u64>,
    drop_gen: watch::Sender<u64>,
    steal_gen: watch::Sender<u64>,
    reject_tokens: AtomicBool,
    hold: AtomicBool,
}

/// A running broker; cheap to clone.
#[derive(Clone)]
pub struct AmqpBroker {
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    shared: Arc<Shared>,
}

impl AmqpBroker {
    /// Starts on 127.0.0.1 with a free port inside the current tokio runtime.
    pub async fn start(hub: &str, partitions: usize, consumer_groups: &[&str]) -> AmqpBroker {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            hub: hub.to_string(),
            consumer_groups: consumer_groups.iter().map(|s| s.to_string()).collect(),
            inner: Mutex::new(Inner {
                partitions: vec![Vec::new(); partitions],
                next_offset: vec![0; partitions],
                ..Default::default()
            }),
            appended: watch::channel(0).0,
            drop_gen: watch::channel(0).0,
            steal_gen: watch::channel(0).0,
            reject_tokens: AtomicBool::new(false),
            hold: AtomicBool::new(false),
        });
        let s = shared.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let s = s.clone();
                tokio::spawn(async move { serve_connection(s, stream).await });
            }
        });
        AmqpBroker { addr, shared }
    }

    /// The `custom_endpoint` to configure.
    pub fn endpoint(&self) -> String {
        format!("amqp://{}", self.addr)
    }

    /// Appends an event to a partition; returns its sequence number.
    pub fn append(&self, partition: usize, body: &[u8]) -> i64 {
        let mut g = self.shared.inner.lock().unwrap();
        let seq = g.partitions[partition].len() as i64;
        let offset = g.next_offset[partition];
        g.next_offset[partition] += body.len() as u64 + 100;
        let enqueued_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        g.partitions[partition].push(StoredEvent {
            seq,
            offset: offset.to_string(),
            enqueued_ms,
            body: body.to_vec(),
        });
        drop(g);
        self.shared.appended.send_modify(|n| *n += 1);
        seq
    }

    /// Closes every open connection (clients reconnect).
    pub fn drop_connections(&self) {
        self.shared.drop_gen.send_modify(|n| *n += 1);
    }

    /// Detaches every open partition link with `amqp:link:stolen`, as the service does when
    /// another consumer opens the partition with a higher owner level.
    pub fn steal_links(&self) {
        self.shared.steal_gen.send_modify(|n| *n += 1);
    }

    /// Stops (or resumes) delivering events on every partition link: events wait, unread.
    pub fn hold_deliveries(&self, hold: bool) {
        self.shared.hold.store(hold, Ordering::SeqCst);
        self.shared.appended.send_modify(|n| *n += 1);
    }

    /// From now on, `$cbs` put-token answers 401 (or accepts again).
    pub fn reject_tokens(&self, reject: bool) {
        self.shared.reject_tokens.store(reject, Ordering::SeqCst);
    }

    /// The next partition link attached starts at `seq`, whatever its filter says: a
    /// redelivery from an older position.
    pub fn resend_next_attach_from(&self, seq: i64) {
        self.shared.inner.lock().unwrap().resend_from = Some(seq);
    }

    /// (token type, audience) of every put-token received.
    pub fn tokens(&self) -> Vec<(String, String)> {
        self.shared.inner.lock().unwrap().tokens.clone()
    }

    /// (partition link address, selector filter) of every partition link attached.
    pub fn filters(&self) -> Vec<(String, String)> {
        self.shared.inner.lock().unwrap().filters.clone()
    }
}

async fn serve_connection(shared: Arc<Shared>, stream: tokio::net::TcpStream) {
    let acceptor = ConnectionAcceptor::builder()
        .container_id("accessdrift-test-broker")
        .sasl_acceptor(SaslAnonymousMechanism::new())
        .build();
    let Ok(mut conn) = acceptor.accept(stream).await else {
        return;
    };
    let mut dropped = shared.drop_gen.subscribe();
    dropped.borrow_and_update();
    let session_acceptor = SessionAcceptor::new();
    let (kill_tx, _) = watch::channel(false);
    let cut = loop {
        tokio::select! {
            _ = dropped.changed() => break true,
            s = session_acceptor.accept(&mut conn) => match s {
                Ok(session) => {
                    let shared = shared.clone();
                    let kill = kill_tx.subscribe();
                    tokio::spawn(async move { serve_session(shared, session, kill).await });
                }
                Err(_) => break false,
            },
        }
    };
    let _ = kill_tx.send(true);
    if cut {
        // Dropping the handle without a close frame is what a network failure looks like.
        drop(conn);
    } else {
        // The client closed: answer its close.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), conn.close()).await;
    }
}

type Replies = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Message<Body<Value>>>>>>;

async fn serve_session(
    shared: Arc<Shared>,
    mut session: ListenerSessionHandle,
    mut kill: watch::Receiver<bool>,
) {
    let replies: Replies = Arc::default();
    let links = LinkAcceptor::new();
    loop {
        let attach = tokio::select! {
            _ = kill.changed() => break,
            a = session.next_incoming_attach() => match a { Some(a) => a, None => break },
        };
        let source_addr = attach
            .source
            .as_ref()
            .and_then(|s| s.address.clone())
            .unwrap_or_default();
        let target_addr = attach
            .target
            .as_ref()
            .and_then(|t| match t.as_ref() {
                fe2o3_amqp::types::messaging::TargetArchetype::Target(t) => t.address.clone(),
                #[allow(unreachable_patterns)]
                _ => None,
            })
            .unwrap_or_default();
        let filter = attach
            .source
            .as_ref()
            .and_then(|s| s.filter.as_ref())
            .and_then(|f| f.values().find_map(selector_text));
        let Ok(link) = links.accept_incoming_attach(attach, &mut session).await else {
            continue;
        };
        let shared = shared.clone();
        let replies = replies.clone();
        let kill = kill.clone();
        match link {
            LinkEndpoint::Receiver(r) => {
                let node = target_addr.clone();
                tokio::spawn(async move { serve_requests(shared, r, node, replies, kill).await });
            }
            LinkEndpoint::Sender(s) => {
                if source_addr == "$cbs" || source_addr == "$management" {
                    let (tx, rx) = mpsc::unbounded_channel();
                    replies.lock().unwrap().insert(target_addr.clone(), tx);
                    tokio::spawn(async move { serve_replies(s, rx, kill).await });
                } else {
                    tokio::spawn(async move {
                        serve_partition(shared, s, source_addr, filter, kill).await
                    });
                }
            }
        }
    }
    let _ = session.end().await;
}

fn selector_text(v: &Value) -> Option<String> {
    match v {
        Value::Described(d) => match &d.value {
            Value::String(s) => Some(s.clone()),
            _ => None,
        },
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

async fn serve_replies(
    mut sender: Sender,
    mut rx: mpsc::UnboundedReceiver<Message<Body<Value>>>,
    mut kill: watch::Receiver<bool>,
) {
    loop {
        let m = tokio::select! {
            _ = kill.changed() => return,
            m = rx.recv() => match m { Some(m) => m, None => return },
        };
        let sendable = Sendable::builder().message(m).settled(true).build();
        if sender.send(sendable).await.is_err() {
            return;
        }
    }
}

fn reply(
    correlation: &Properties,
    status: i32,
    description: &str,
    body: Value,
) -> Message<Body<Value>> {
    Message::builder()
        .properties(Properties {
            correlation_id: correlation.message_id.clone(),
            ..Default::default()
        })
        .application_properties(
            ApplicationProperties::builder()
                .insert("status-code", SimpleValue::Int(status))
                .insert(
                    "status-description",
                    SimpleValue::String(description.into()),
                )
                .build(),
        )
        .body(Body::Value(AmqpValue(body)))
        .build()
}

fn app_prop(m: &Message<Body<Value>>, key: &str) -> Option<String> {
    match m.application_properties.as_ref()?.0.get(key)? {
        SimpleValue::String(s) => Some(s.clone()),
        SimpleValue::Symbol(s) => Some(s.0.clone()),
        other => Some(format!("{other:?}")),
    }
}

async fn serve_requests(
    shared: Arc<Shared>,
    mut receiver: Receiver,
    node: String,
    replies: Replies,
    mut kill: watch::Receiver<bool>,
) {
    loop {
        let delivery = tokio::select! {
            _ = kill.changed() => return,
            d = receiver.recv::<Body<Value>>() => match d { Ok(d) => d, Err(_) => return },
        };
        let _ = receiver.accept(&delivery).await;
        let msg = delivery.into_message();
        let props = msg.properties.clone().unwrap_or_default();
        let reply_to = props.reply_to.clone().unwrap_or_default();
        let answer = match node.as_str() {
            "$cbs" => {
                let ty = app_prop(&msg, "type").unwrap_or_default();
                let name = app_prop(&msg, "name").unwrap_or_default();
                shared.inner.lock().unwrap().tokens.push((ty, name));
                if shared.reject_tokens.load(Ordering::SeqCst) {
                    reply(&props, 401, "Unauthorized: token rejected", Value::Null)
                } else {
                    reply(&props, 202, "Accepted", Value::Null)
                }
            }
            "$management" => management(&shared, &msg, &props),
            _ => continue,
        };
        let tx = replies.lock().unwrap().get(&reply_to).cloned();
        if let Some(tx) = tx {
            let _ = tx.send(answer);
        }
    }
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    let mut m = OrderedMap::new();
    for (k, v) in entries {
        m.insert(Value::String(k.to_string()), v);
    }
    Value::Map(m)
}

fn management(
    shared: &Shared,
    msg: &Message<Body<Value>>,
    props: &Properties,
) -> Message<Body<Value>> {
    let ty = app_prop(msg, "type").unwrap_or_default();
    let name = app_prop(msg, "name").unwrap_or_default();
    if name != shared.hub {
        return reply(
            props,
            404,
            &format!("The messaging entity '{name}' could not be found"),
            Value::Null,
        );
    }
    let g = shared.inner.lock().unwrap();
    match ty.as_str() {
        "com.microsoft:eventhub" => {
            let ids: Vec<Value> = (0..g.partitions.len())
                .map(|i| Value::String(i.to_string()))
                .collect();
            reply(
                props,
                200,
                "OK",
                map(vec![
                    ("name", Value::String(shared.hub.clone())),
                    (
                        "created_at",
                        Value::Timestamp(Timestamp::from_milliseconds(0)),
                    ),
                    ("partition_count", Value::Int(ids.len() as i32)),
                    ("partition_ids", Value::Array(Array::from(ids))),
                ]),
            )
        }
        "com.microsoft:partition" => {
            let pid = app_prop(msg, "partition").unwrap_or_default();
            let Some(events) = pid.parse::<usize>().ok().and_then(|i| g.partitions.get(i)) else {
                return reply(
                    props,
                    404,
                    &format!("partition {pid} not found"),
                    Value::Null,
                );
            };
            let last = events.last();
            reply(
                props,
                200,
                "OK",
                map(vec![
                    ("name", Value::String(shared.hub.clone())),
                    ("partition", Value::String(pid.clone())),
                    ("type", Value::String("com.microsoft:partition".into())),
                    ("begin_sequence_number", Value::Long(0)),
                    (
                        "last_enqueued_sequence_number",
                        Value::Long(last.map_or(-1, |e| e.seq)),
                    ),
                    ("last_enqueued_sequence_number_epoch", Value::Long(0)),
                    (
                        "last_enqueued_offset",
                        Value::String(last.map_or("-1".into(), |e| e.offset.clone())),
                    ),
                    (
                        "last_enqueued_time_utc",
                        Value::Timestamp(Timestamp::from_milliseconds(
                            last.map_or(0, |e| e.enqueued_ms),
                        )),
                    ),
                    ("is_partition_empty", Value::Bool(events.is_empty())),
                ]),
            )
        }
        _ => reply(props, 400, &format!("unknown type {ty}"), Value::Null),
    }
}

/// Index of the first event the selector filter lets through.
fn start_index(events: &[StoredEvent], filter: &str) -> usize {
    let (field, rest) = filter.split_once(' ').unwrap_or((filter, ""));
    let rest = rest.trim();
    let (inclusive, value) = match rest.strip_prefix(">=") {
        Some(v) => (true, v),
        None => (false, rest.strip_prefix('>').unwrap_or(rest)),
    };
    let value = value.trim().trim_matches('\'');
    match (field, value) {
        (_, "-1") => 0,
        (_, "@latest") => events.len(),
        ("amqp.annotation.x-opt-offset", v) => {
            let v: u64 = v.parse().unwrap_or(0);
            events
                .iter()
                .position(|e| {
                    let o: u64 = e.offset.parse().unwrap();
                    if inclusive {
                        o >= v
                    } else {
                        o > v
                    }
                })
                .unwrap_or(events.len())
        }
        ("amqp.annotation.x-opt-sequence-number", v) => {
            let v: i64 = v.parse().unwrap_or(-1);
            let first = if inclusive { v } else { v + 1 };
            first.clamp(0, events.len() as i64) as usize
        }
        _ => 0,
    }
}

fn event_message(e: &StoredEvent) -> Message<Body<Value>> {
    let annotations = MessageAnnotations::builder()
        .insert("x-opt-sequence-number", Value::Long(e.seq))
        .insert("x-opt-offset", Value::String(e.offset.clone()))
        .insert(
            "x-opt-enqueued-time",
            Value::Timestamp(Timestamp::from_milliseconds(e.enqueued_ms)),
        )
        .build();
    Message::builder()
        .message_annotations(annotations)
        .body(Body::Data(
            vec![fe2o3_amqp::types::messaging::Data(Binary::from(
                e.body.clone(),
            ))]
            .into(),
        ))
        .build()
}

async fn serve_partition(
    shared: Arc<Shared>,
    mut sender: Sender,
    address: String,
    filter: Option<String>,
    mut kill: watch::Receiver<bool>,
) {
    // amqps://NS/HUB/ConsumerGroups/CG/Partitions/ID
    let parts: Vec<&str> = address.trim_end_matches('/').rsplit('/').take(5).collect();
    let ok = parts.len() == 5
        && parts[1] == "Partitions"
        && parts[3] == "ConsumerGroups"
        && parts[4] == shared.hub
        && shared.consumer_groups.iter().any(|g| g == parts[2]);
    let pid: Option<usize> = parts.first().and_then(|p| p.parse().ok());
    let pid = match pid {
        Some(p) if ok && p < shared.inner.lock().unwrap().partitions.len() => p,
        _ => {
            let err = fe2o3_amqp::types::definitions::Error::new(
                ErrorCondition::AmqpError(AmqpError::NotFound),
                format!("The messaging entity '{address}' could not be found."),
                None,
            );
            let _ = sender.close_with_error(err).await;
            return;
        }
    };
    let filter = filter.unwrap_or_else(|| "amqp.annotation.x-opt-offset > '@latest'".into());
    let mut next = {
        let mut g = shared.inner.lock().unwrap();
        g.filters.push((address.clone(), filter.clone()));
        match g.resend_from.take() {
            Some(seq) => seq.max(0) as usize,
            None => start_index(&g.partitions[pid], &filter),
        }
    };
    let mut appended = shared.appended.subscribe();
    let mut stolen = shared.steal_gen.subscribe();
    stolen.borrow_and_update();
    loop {
        let batch: Vec<StoredEvent> = if shared.hold.load(Ordering::SeqCst) {
            Vec::new()
        } else {
            let g = shared.inner.lock().unwrap();
            g.partitions[pid].get(next..).unwrap_or_default().to_vec()
        };
        for e in batch {
            // Pre-settled, as the service does for a receiver in mixed settle mode.
            let sendable = Sendable::builder()
                .message(event_message(&e))
                .settled(true)
                .build();
            tokio::select! {
                _ = kill.changed() => return,
                r = sender.send(sendable) => if r.is_err() { return },
            }
            next += 1;
        }
        tokio::select! {
            _ = kill.changed() => return,
            _ = appended.changed() => {}
            _ = stolen.changed() => {
                let err = fe2o3_amqp::types::definitions::Error::new(
                    ErrorCondition::Custom(fe2o3_amqp::types::primitives::Symbol::from("amqp:link:stolen")),
                    format!("New receiver with higher epoch of '0' is created hence current receiver with epoch '0' is getting disconnected. Partition {pid}."),
                    None,
                );
                let _ = sender.close_with_error(err).await;
                return;
            }
            _ = sender.on_detach() => return,
        }
    }
}
