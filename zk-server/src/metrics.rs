//! The Prometheus metrics of one server (Apache's
//! `PrometheusMetricsProvider`: `metricsProvider.className`,
//! `metricsProvider.httpPort`, default 7000, path `/metrics`).
//!
//! Latencies are summaries with Apache's names and quantiles (0.5, 0.9,
//! 0.99): `readlatency` and `updatelatency` (ms, from the request's receipt
//! to its reply), `fsynctime` (ms, one fsync of the transaction log). The
//! gauges (`znode_count`, `num_alive_connections`, ...) are read from the
//! core when scraped, so they cost nothing between scrapes.
//!
//! Each server has its own recorder (not the process-global one of the
//! `metrics` facade): several servers in one process (a
//! [`TestingCluster`](crate::TestingCluster)) each report their own.

use std::sync::Arc;

use metrics::{Histogram, Key, Level, Metadata, Recorder, SharedString, Unit};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::stats::Report;

static META: Metadata<'static> = Metadata::new("zk_server", Level::INFO, None);

/// The gauges read from the core's report at each scrape, with Apache's
/// names (its `ZooKeeperServer.registerMetrics` and `mntr` keys without
/// the `zk_` prefix).
const GAUGES: &[(&str, &str)] = &[
    ("znode_count", "Nodes in the data tree"),
    ("watch_count", "Watches set by clients"),
    ("ephemerals_count", "Ephemeral nodes"),
    ("approximate_data_size", "Bytes of paths and data in the tree"),
    ("global_sessions", "Live sessions"),
    ("local_sessions", "Local sessions (always 0: local sessions are not supported)"),
    ("num_alive_connections", "Open client connections"),
    ("outstanding_requests", "Requests received and not yet answered"),
    ("packets_received", "Requests received since the last reset"),
    ("packets_sent", "Replies and events sent since the last reset"),
    ("avg_latency", "Mean write latency in ms since the last reset"),
    ("min_latency", "Minimum write latency in ms since the last reset"),
    ("max_latency", "Maximum write latency in ms since the last reset"),
    ("open_file_descriptor_count", "Open file descriptors of the process"),
    ("max_file_descriptor_count", "File descriptor limit of the process"),
    ("uptime", "Milliseconds since the server started"),
    ("last_processed_zxid", "The last zxid applied to the tree"),
    ("learners", "Learners connected to this leader"),
    ("synced_followers", "Followers in sync with this leader"),
    ("server_state_serving", "1 when the server answers clients, 0 when it does not"),
];

/// One server's metrics: the recorder, the summaries the pipeline feeds,
/// and the rendering for `/metrics`.
pub(crate) struct ServerMetrics {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// `readlatency` (ms).
    pub(crate) read_latency: Histogram,
    /// `updatelatency` (ms).
    pub(crate) update_latency: Histogram,
    /// `fsynctime` (ms).
    pub(crate) fsync_time: Histogram,
    started: std::time::Instant,
}

impl std::fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerMetrics").finish_non_exhaustive()
    }
}

impl ServerMetrics {
    /// A fresh set of metrics.
    pub(crate) fn new() -> Arc<Self> {
        // Quantiles are constants known to be valid; an error here would be
        // a bug of this file, and the fallback (the exporter's defaults)
        // still works.
        let builder = PrometheusBuilder::new();
        let builder = match builder.set_quantiles(&[0.5, 0.9, 0.99]) {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let summary = |name: &'static str, help: &'static str| {
            recorder.describe_histogram(name.into(), Some(Unit::Milliseconds), SharedString::const_str(help));
            recorder.register_histogram(&Key::from_static_name(name), &META)
        };
        let read_latency = summary("readlatency", "Read request latency in ms, receipt to reply");
        let update_latency = summary("updatelatency", "Write request latency in ms, receipt to reply");
        let fsync_time = summary("fsynctime", "Time of one fsync of the transaction log in ms");
        for (name, help) in GAUGES {
            recorder.describe_gauge((*name).into(), None, SharedString::const_str(help));
        }
        Arc::new(ServerMetrics {
            recorder,
            handle,
            read_latency,
            update_latency,
            fsync_time,
            started: std::time::Instant::now(),
        })
    }

    fn gauge(&self, name: &'static str, value: f64) {
        self.recorder.register_gauge(&Key::from_static_name(name), &META).set(value);
    }

    /// The Prometheus text exposition, with the gauges taken from `r`
    /// (`None`: the core did not answer; the gauges keep their last values
    /// and `server_state_serving` drops to 0).
    pub(crate) fn render(&self, r: Option<&Report>) -> String {
        match r {
            Some(r) => {
                let avg = if r.stats.latency_count == 0 {
                    0.0
                } else {
                    r.stats.latency_total as f64 / r.stats.latency_count as f64
                };
                let (learners, synced) = r.learners.unwrap_or((0, 0));
                let values: [f64; 20] = [
                    r.node_count as f64,
                    r.watch_count as f64,
                    r.ephemerals as f64,
                    r.approximate_data_size as f64,
                    r.sessions as f64,
                    0.0,
                    r.connection_count as f64,
                    r.outstanding as f64,
                    r.stats.packets_received as f64,
                    r.stats.packets_sent as f64,
                    avg,
                    r.stats.latency_min as f64,
                    r.stats.latency_max as f64,
                    crate::fourlw::open_fds() as f64,
                    crate::fourlw::max_fds() as f64,
                    self.started.elapsed().as_millis() as f64,
                    r.zxid as f64,
                    learners as f64,
                    synced as f64,
                    if r.serving { 1.0 } else { 0.0 },
                ];
                for ((name, _), v) in GAUGES.iter().zip(values) {
                    self.gauge(name, v);
                }
            }
            None => self.gauge("server_state_serving", 0.0),
        }
        self.handle.render()
    }

    /// Drains the summaries' samples into their sketches; run it now and
    /// then so a server nobody scrapes does not keep every sample.
    pub(crate) fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_apache_names_and_summaries() {
        let m = ServerMetrics::new();
        for v in [1.0, 2.0, 3.0, 40.0] {
            m.update_latency.record(v);
        }
        m.read_latency.record(0.0);
        let r = Report {
            mode: "standalone",
            serving: true,
            node_count: 7,
            connection_count: 2,
            ..Report::default()
        };
        let text = m.render(Some(&r));
        assert!(text.contains("znode_count 7"), "{text}");
        assert!(text.contains("num_alive_connections 2"), "{text}");
        assert!(text.contains("server_state_serving 1"), "{text}");
        assert!(text.contains("# TYPE updatelatency summary"), "{text}");
        assert!(text.contains("updatelatency{quantile=\"0.99\"}"), "{text}");
        assert!(text.contains("updatelatency_count 4"), "{text}");
        assert!(text.contains("updatelatency_sum 46"), "{text}");
        assert!(text.contains("readlatency_count 1"), "{text}");
        let text = m.render(None);
        assert!(text.contains("server_state_serving 0") && text.contains("znode_count 7"), "{text}");
    }
}
