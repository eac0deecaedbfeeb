//! OTLP span export: one server span per sampled request, sent to the collector `[log] otlp`
//! names over OTLP/HTTP (protobuf) by `opentelemetry-otlp`'s exporter.
//!
//! The request path only builds a small record and `try_send`s it into a bounded queue (a
//! full queue drops the span and counts it); one task batches (up to `BATCH` spans or one
//! second) and exports. No SDK tracer or processor: their batch processor runs on a thread of
//! its own and blocks on the exporter, which the hyper client cannot serve outside a runtime,
//! and the edge already has the span's ids, times and attributes in its access record.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, Status, TraceFlags, TraceId, TraceState,
};
use opentelemetry::{InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};
use tokio::sync::mpsc;

use crate::log::Record;

/// Spans queued for export before new ones are dropped.
const QUEUE: usize = 8192;
/// Spans per export request.
const BATCH: usize = 512;

/// Who the spans come from: the node (`[node]`), as OTLP resource attributes.
#[derive(Debug, Clone, Default)]
pub struct Node {
    pub name: String,
    pub pop: String,
    pub region: String,
}

struct Queued {
    collector: Arc<str>,
    span: SpanData,
}

/// The request side: a queue into the export task.
pub struct Spans {
    tx: mpsc::Sender<Queued>,
    /// Spans dropped: the queue was full (the collector is slow or down).
    pub dropped: Arc<AtomicU64>,
    /// Spans the collector refused or never got (export errors).
    pub failed: Arc<AtomicU64>,
    pub exported: Arc<AtomicU64>,
}

impl Spans {
    /// Starts the export task on the current runtime.
    pub fn start(node: Node) -> Spans {
        let (tx, rx) = mpsc::channel(QUEUE);
        let spans = Spans {
            tx,
            dropped: Arc::default(),
            failed: Arc::default(),
            exported: Arc::default(),
        };
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(export(
                rx,
                node,
                spans.failed.clone(),
                spans.exported.clone(),
            ));
        }
        spans
    }

    /// Queues the server span of a finished request (when its trace is sampled).
    pub fn send(&self, collector: &Arc<str>, rec: &Record) {
        let Some(span) = span(rec) else { return };
        let queued = Queued {
            collector: collector.clone(),
            span,
        };
        if self.tx.try_send(queued).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The span of `rec`, or `None` when it has no sampled trace.
fn span(rec: &Record) -> Option<SpanData> {
    let trace = rec.trace.as_ref()?;
    if trace.flags & 0x01 == 0 {
        return None;
    }
    let end_time = edge_core::clock::wall();
    let took = Duration::from_secs_f64(rec.duration_ms.max(0.0) / 1000.0);
    let start_time = end_time.checked_sub(took).unwrap_or(SystemTime::UNIX_EPOCH);
    let mut attributes = vec![
        KeyValue::new("http.request.method", rec.method.clone()),
        KeyValue::new("url.path", rec.path.clone()),
        KeyValue::new("server.address", rec.host.clone()),
        KeyValue::new("http.response.status_code", i64::from(rec.status)),
        KeyValue::new(
            "network.protocol.version",
            rec.proto.trim_start_matches("HTTP/"),
        ),
        KeyValue::new("client.address", rec.client.clone()),
        KeyValue::new("http.response.body.size", saturating_i64(rec.bytes_sent)),
        KeyValue::new("edge.request_id", rec.request_id.clone()),
        KeyValue::new("edge.site", rec.site.clone()),
        KeyValue::new("edge.cache_status", rec.cache.clone()),
        KeyValue::new("edge.config_version", saturating_i64(rec.config_version)),
        KeyValue::new("edge.time_to_first_byte_ms", rec.head_ms),
    ];
    if let Some(q) = &rec.query {
        attributes.push(KeyValue::new("url.query", q.clone()));
    }
    if !rec.user_agent.is_empty() {
        attributes.push(KeyValue::new("user_agent.original", rec.user_agent.clone()));
    }
    if let Some(o) = &rec.origin {
        attributes.push(KeyValue::new("edge.origin.pool", rec.pool.clone()));
        attributes.push(KeyValue::new(
            "edge.origin.endpoint",
            o.endpoint.to_string(),
        ));
        attributes.push(KeyValue::new(
            "edge.origin.head_ms",
            o.head.as_secs_f64() * 1000.0,
        ));
    }
    if let Some(c) = &rec.country {
        attributes.push(KeyValue::new(
            "client.geo.country.iso_code",
            c.as_str().to_string(),
        ));
    }
    if rec.aborted {
        attributes.push(KeyValue::new("edge.aborted", true));
    }
    let status = if rec.status >= 500 {
        Status::error(format!("{}", rec.status))
    } else {
        Status::Unset
    };
    Some(SpanData {
        span_context: SpanContext::new(
            TraceId::from_bytes(trace.trace_id),
            SpanId::from_bytes(trace.span_id),
            TraceFlags::new(trace.flags),
            false,
            TraceState::NONE,
        ),
        parent_span_id: trace.parent_id.map_or(SpanId::INVALID, SpanId::from_bytes),
        parent_span_is_remote: trace.parent_id.is_some(),
        span_kind: SpanKind::Server,
        // Semantic conventions: `{method}` when there is no low-cardinality route.
        name: Cow::Owned(rec.method.clone()),
        start_time,
        end_time,
        attributes,
        dropped_attributes_count: 0,
        events: SpanEvents::default(),
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope(),
    })
}

fn saturating_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn scope() -> InstrumentationScope {
    InstrumentationScope::builder("edge")
        .with_version(env!("CARGO_PKG_VERSION"))
        .build()
}

fn exporter(collector: &str, node: &Node) -> Option<opentelemetry_otlp::SpanExporter> {
    let built = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(collector)
        .with_timeout(Duration::from_secs(10))
        .build();
    match built {
        Ok(mut e) => {
            use opentelemetry_sdk::trace::SpanExporter as _;
            let mut attrs = vec![KeyValue::new("service.instance.id", node.name.clone())];
            if !node.pop.is_empty() {
                attrs.push(KeyValue::new("edge.pop", node.pop.clone()));
            }
            if !node.region.is_empty() {
                attrs.push(KeyValue::new("cloud.region", node.region.clone()));
            }
            e.set_resource(
                &Resource::builder_empty()
                    .with_service_name("edge")
                    .with_attributes(attrs)
                    .build(),
            );
            Some(e)
        }
        Err(e) => {
            tracing::warn!(collector, error = %e, "cannot build the OTLP exporter; spans dropped");
            None
        }
    }
}

/// The export task: batches by collector (a reload may move it) and sends each batch.
async fn export(
    mut rx: mpsc::Receiver<Queued>,
    node: Node,
    failed: Arc<AtomicU64>,
    exported: Arc<AtomicU64>,
) {
    let mut current: Option<(Arc<str>, Option<opentelemetry_otlp::SpanExporter>)> = None;
    let mut batch: Vec<SpanData> = Vec::with_capacity(BATCH);
    let mut batch_for: Option<Arc<str>> = None;
    loop {
        let first = rx.recv().await;
        let Some(first) = first else { return };
        let deadline = tokio::time::sleep(Duration::from_secs(1));
        tokio::pin!(deadline);
        let mut next = Some(first);
        loop {
            if let Some(q) = next.take() {
                if batch_for.as_deref().is_some_and(|c| c != &*q.collector) {
                    flush(
                        &mut current,
                        &mut batch,
                        &mut batch_for,
                        &node,
                        &failed,
                        &exported,
                    )
                    .await;
                }
                batch_for = Some(q.collector);
                batch.push(q.span);
                if batch.len() >= BATCH {
                    break;
                }
            }
            tokio::select! {
                q = rx.recv() => match q {
                    Some(q) => next = Some(q),
                    None => break,
                },
                () = &mut deadline => break,
            }
        }
        flush(
            &mut current,
            &mut batch,
            &mut batch_for,
            &node,
            &failed,
            &exported,
        )
        .await;
    }
}

async fn flush(
    current: &mut Option<(Arc<str>, Option<opentelemetry_otlp::SpanExporter>)>,
    batch: &mut Vec<SpanData>,
    batch_for: &mut Option<Arc<str>>,
    node: &Node,
    failed: &AtomicU64,
    exported: &AtomicU64,
) {
    let Some(collector) = batch_for.take() else {
        return;
    };
    if batch.is_empty() {
        return;
    }
    if current.as_ref().is_none_or(|(c, _)| *c != collector) {
        *current = Some((collector.clone(), exporter(&collector, node)));
    }
    let spans = std::mem::take(batch);
    let n = spans.len() as u64;
    let Some((_, Some(exp))) = current.as_ref() else {
        failed.fetch_add(n, Ordering::Relaxed);
        return;
    };
    match exp.export(spans).await {
        Ok(()) => {
            exported.fetch_add(n, Ordering::Relaxed);
        }
        Err(e) => {
            failed.fetch_add(n, Ordering::Relaxed);
            tracing::warn!(collector = %collector, error = %e, spans = n, "OTLP export failed");
        }
    }
}
