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
            describe_cluster();
            handle
        })
        .clone()
}

pub use sip_node::metrics::*;

/// Registers every metric family at zero (called once at start-up, after
/// [`install`]): a scrape right after start shows every family, so
/// dashboards and alerts have series before the first event.
/// `providers`: the configured `pn-provider` values (`push.providers`).
pub fn register_all(providers: &[String]) {
    sip_node::metrics::register_zero(providers);
    push_senders::register_zero(providers);
    // The transport families are set at every scrape, for every listener.
    cluster(&sip_node::ClusterStats::default(), 0, false);
}

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

fn describe_cluster() {
    metrics::describe_gauge!("sipwake_cluster_members", "Live cluster members seen by this node (itself included)");
    metrics::describe_gauge!("sipwake_cluster_feed_up", "1 while the change feed of the shared store is connected");
    metrics::describe_counter!(
        "sipwake_cluster_replicated_total",
        "Binding changes of other nodes applied to this node's cache, by kind (upsert, removal)"
    );
    metrics::describe_counter!(
        "sipwake_cluster_barriers_total",
        "Lookup barriers sent through the change feed, by outcome (sent, timeout)"
    );
    metrics::describe_counter!(
        "sipwake_cluster_refresh_claims_total",
        "Refresh-push claims, by outcome (won: sent by this node, lost: sent by another, left_to_owner: the owner is alive)"
    );
}

/// Sets the cluster metrics from a snapshot (at scrape time).
pub fn cluster(s: &sip_node::ClusterStats, members: usize, feed_up: bool) {
    metrics::gauge!("sipwake_cluster_members").set(members as f64);
    metrics::gauge!("sipwake_cluster_feed_up").set(if feed_up { 1.0 } else { 0.0 });
    metrics::counter!("sipwake_cluster_replicated_total", "kind" => "upsert").absolute(s.replicated_upserts);
    metrics::counter!("sipwake_cluster_replicated_total", "kind" => "removal").absolute(s.replicated_removals);
    metrics::counter!("sipwake_cluster_barriers_total", "outcome" => "sent").absolute(s.syncs);
    metrics::counter!("sipwake_cluster_barriers_total", "outcome" => "timeout").absolute(s.sync_timeouts);
    metrics::counter!("sipwake_cluster_refresh_claims_total", "outcome" => "won").absolute(s.claims_won);
    metrics::counter!("sipwake_cluster_refresh_claims_total", "outcome" => "lost").absolute(s.claims_lost);
    metrics::counter!("sipwake_cluster_refresh_claims_total", "outcome" => "left_to_owner")
        .absolute(s.refreshes_left_to_owner);
}
