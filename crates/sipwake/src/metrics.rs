//! Prometheus metrics: names, labels and buckets in one place, recorded
//! through the `metrics` facade so hot paths only bump atomics, rendered
//! by the management API at `/metrics`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the recorder (once per process); later calls return the same handle.
pub fn install() -> PrometheusHandle {
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Suffix("_seconds".into()),
                    &[
                        0.00002, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5,
                        1.0,
                    ],
                )
                .expect("valid buckets")
                .build_recorder();
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            sip_node::metrics::describe();
            push_senders::describe();
            describe_transports();
            handle
        })
        .clone()
}

pub use sip_node::metrics::*;

fn describe_transports() {
    metrics::describe_gauge!("sipwake_transport_connections_open", "Open connections, by transport");
    metrics::describe_counter!(
        "sipwake_transport_connections_total",
        "Connections accepted (direction=in) or opened by sipwake (direction=out), by transport"
    );
    metrics::describe_counter!(
        "sipwake_transport_handshake_failures_total",
        "Failed TLS/WebSocket handshakes, by transport and reason (tls, ws_protocol, origin, timeout)"
    );
    metrics::describe_counter!(
        "sipwake_transport_bytes_total",
        "SIP bytes received (direction=in) and sent (direction=out), by transport (inside TLS and WebSocket framing)"
    );
}

/// Sets the transport metrics from a snapshot (at scrape time).
pub fn transports(stats: &[(sip_transport::Transport, sip_transport::TransportStats)]) {
    use sip_transport::HandshakeFailure;
    for (t, s) in stats {
        let t = t.as_str();
        metrics::gauge!("sipwake_transport_connections_open", "transport" => t).set(s.connections_open as f64);
        metrics::counter!("sipwake_transport_connections_total", "transport" => t, "direction" => "in")
            .absolute(s.connections_accepted);
        metrics::counter!("sipwake_transport_connections_total", "transport" => t, "direction" => "out")
            .absolute(s.connections_opened);
        for r in HandshakeFailure::ALL {
            metrics::counter!("sipwake_transport_handshake_failures_total", "transport" => t, "reason" => r.as_str())
                .absolute(s.handshake_failures(r));
        }
        metrics::counter!("sipwake_transport_bytes_total", "transport" => t, "direction" => "in")
            .absolute(s.bytes_received);
        metrics::counter!("sipwake_transport_bytes_total", "transport" => t, "direction" => "out")
            .absolute(s.bytes_sent);
    }
}
