//! Phase 1: what the broker alone does with the workload's bytes.
//!
//! A consumer that only counts is subscribed to the input topics first; once it has received
//! a warm-up message from every partition (its group is joined and its fetchers run), the
//! clock starts and the load producer sends every message of the workload. The figure is the
//! time until the consumer has seen the last one: the ceiling for anything that reads these
//! topics on this machine. The producer's own time (until the broker acknowledged every
//! message) is reported beside it.

use std::time::Instant;

use anyhow::Context as _;
use scope_schemas::topics;

use crate::bus;
use crate::config::LoadArgs;
use crate::report::{Figure, Rate, Report, Value};
use crate::workload::{Encoded, Workload};

/// Rates of phase 1.
#[derive(Clone, Copy, Debug)]
pub struct Baseline {
    /// First send to last acknowledgement.
    pub produce: Rate,
    /// First send to last message consumed.
    pub end_to_end: Rate,
}

pub async fn run(args: &LoadArgs, workload: &Workload) -> anyhow::Result<Baseline> {
    let (_broker, bootstrap) = crate::bus::broker_with_topics(args.partitions).await?;
    let group = format!("scope-load-baseline-{}", std::process::id());
    let (progress, consumer) = bus::counting_consumer(&bootstrap, &group, &topics::MERGER_INPUTS)?;
    let producer = bus::producer(&bootstrap)?;

    let warmup = Encoded::markers("~warmup", args.partitions);
    bus::produce_all(&producer, &warmup, args.timeout)?;
    progress
        .wait_for(
            warmup.len() as u64,
            args.timeout,
            "baseline consumer warm-up",
        )
        .await?;

    let total = (warmup.len() + workload.len()) as u64;
    progress.set_target(total);
    let started = Instant::now();
    let produced = bus::produce_all(&producer, &workload.encoded, args.timeout)?;
    progress
        .wait_for(total, args.timeout, "baseline consumer")
        .await?;
    let consumed = progress.reached().unwrap_or_else(Instant::now) - started;
    progress.stop();
    consumer.await.context("the counting consumer panicked")??;

    let messages = workload.len() as u64;
    let bytes = workload.payload_bytes();
    Ok(Baseline {
        produce: Rate {
            messages,
            bytes,
            elapsed: produced,
        },
        end_to_end: Rate {
            messages,
            bytes,
            elapsed: consumed,
        },
    })
}

impl Baseline {
    pub fn report(&self, report: &mut Report) {
        report.add(Figure::new(
            "1. broker: produce (until all acknowledged)",
            Value::Rate(self.produce),
            "rdkafka BaseProducer, lz4, idempotent, linger 50 ms",
        ));
        report.add(Figure {
            reference: true,
            ..Figure::new(
                "1. broker: produce + consume (baseline)",
                Value::Rate(self.end_to_end),
                "first send to last message received by a counting consumer",
            )
        });
    }
}
