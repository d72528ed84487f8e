//! The raw JetStream publish rate that `sv0 bench` compares SV0's appends with: same-size
//! messages, each with a `Nats-Msg-Id`, pipelined with at most `window` acks in flight, to a
//! scratch stream with the log's storage settings. Kept here because only this crate knows
//! NATS subjects and headers.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use sv0_log::BackendError;

/// Publishes `count` messages of `size` bytes to a fresh scratch stream and returns the time
/// from the first publish to the last ack. The stream is deleted afterwards.
pub async fn raw_publish(
    context: &jetstream::Context,
    replicas: usize,
    count: usize,
    size: usize,
    window: usize,
) -> Result<Duration, BackendError> {
    let name = "SV0_BENCH_RAW";
    let _ = context.delete_stream(name).await;
    context
        .create_stream(stream::Config {
            name: name.to_string(),
            subjects: vec!["sv0bench.raw".to_string()],
            storage: stream::StorageType::File,
            num_replicas: replicas,
            duplicate_window: Duration::from_secs(120),
            ..Default::default()
        })
        .await
        .map_err(|e| BackendError::new("create the scratch stream", e))?;
    let payload = bytes_of(size);
    let started = Instant::now();
    let mut in_flight = VecDeque::with_capacity(window);
    for n in 0..count {
        if in_flight.len() >= window.max(1) {
            let ack: jetstream::context::PublishAckFuture = in_flight.pop_front().expect("window is not empty");
            ack.await.map_err(|e| BackendError::new("acknowledgement", e))?;
        }
        let message =
            jetstream::message::PublishMessage::build().payload(payload.clone().into()).message_id(format!("{n:032x}"));
        let ack = context.send_publish("sv0bench.raw", message).await.map_err(|e| BackendError::new("publish", e))?;
        in_flight.push_back(ack);
    }
    for ack in in_flight {
        ack.await.map_err(|e| BackendError::new("acknowledgement", e))?;
    }
    let elapsed = started.elapsed();
    let _ = context.delete_stream(name).await;
    Ok(elapsed)
}

fn bytes_of(size: usize) -> Vec<u8> {
    (0..size).map(|n| (n % 251) as u8).collect()
}
