//! Request counts and latencies for `/metrics`: per method, matched route and status, a
//! Prometheus histogram of seconds.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0];

#[derive(Debug, Default, Clone)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// Counts and latency histograms of the requests served.
#[derive(Debug, Default)]
pub struct RequestMetrics {
    // Ordered, so that the exposition is stable.
    series: Mutex<BTreeMap<(String, String, u16), Series>>,
}

impl RequestMetrics {
    fn record(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let mut series = self.series.lock().unwrap_or_else(|e| e.into_inner());
        let s = series.entry((method.to_string(), route.to_string(), status)).or_default();
        s.count += 1;
        s.sum += seconds;
        for (bucket, bound) in s.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *bucket += 1;
            }
        }
    }

    /// The Prometheus text of the counters and histograms.
    pub fn exposition(&self) -> String {
        let series = self.series.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut text = String::from(
            "# HELP sv0_http_requests_total Requests served, by method, route and status.\n# TYPE sv0_http_requests_total counter\n",
        );
        for ((method, route, status), s) in &series {
            text.push_str(&format!(
                "sv0_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}\n",
                s.count
            ));
        }
        text.push_str(
            "# HELP sv0_http_request_duration_seconds Time to answer a request.\n# TYPE sv0_http_request_duration_seconds histogram\n",
        );
        for ((method, route, status), s) in &series {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            for (bucket, bound) in s.buckets.iter().zip(BUCKETS) {
                text.push_str(&format!(
                    "sv0_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {bucket}\n"
                ));
            }
            text.push_str(&format!("sv0_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n", s.count));
            text.push_str(&format!("sv0_http_request_duration_seconds_sum{{{labels}}} {}\n", s.sum));
            text.push_str(&format!("sv0_http_request_duration_seconds_count{{{labels}}} {}\n", s.count));
        }
        text
    }
}

/// Middleware: times each request and records it under its matched route (never the raw
/// path, so ids do not multiply the series).
pub async fn track(State(metrics): State<std::sync::Arc<RequestMetrics>>, request: Request, next: Next) -> Response {
    // Only the methods HTTP defines name a series: any other is `other`, so a client cannot
    // grow the exposition with made-up methods.
    let method = match request.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "PATCH" | "OPTIONS" | "CONNECT" | "TRACE") => m,
        _ => "other",
    }
    .to_string();
    let route =
        request.extensions().get::<MatchedPath>().map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    // The route template, never the path or query (which may carry ids or a `cursor`), and no
    // header: a token is never logged.
    tracing::info!(
        target: "sv0::requests",
        %method,
        %route,
        status = response.status().as_u16(),
        ms = (seconds * 1000.0).round() as u64,
        "request"
    );
    metrics.record(&method, &route, response.status().as_u16(), seconds);
    response
}
