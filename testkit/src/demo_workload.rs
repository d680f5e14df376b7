//! The demo workload, shared by `examples/workload.rs` and `examples/demo.rs`.
//!
//! It drives a broker through the test kit's [`Workload`] client with a rhythm that gives
//! a lag exporter something to show:
//!
//! * `test-topic` (6 partitions) and `high-volume-topic` (3) are written in phases: a steady
//!   trickle, sudden bursts, a faster stretch, a silence, then both topics at once. Every
//!   record carries the current time as its CreateTime.
//! * `high-volume-consumer` commits, once a second, everything produced up to the second
//!   before: it stays close behind, with at most a second of lag.
//! * `test-consumer-group` reads `test-topic` slowly and commits in bursts: it trails, then
//!   stalls, then catches up — so its offset lag and time lag climb and fall again.
//! * `idle-topic` holds one record written with a CreateTime ten minutes in the past, and
//!   `idle-consumer` sits just before it: lag 1, and a time lag that only grows.
//!
//! Records go out one per produce request. The test broker (Tansu) answers ListOffsets
//! LATEST from the last batch's base offset, which is only right when that batch holds a
//! single record; one-record batches keep every watermark exact at every moment.
//!
//! The producer and both consumers run in one loop on a one-second tick, so the numbers
//! printed (after each burst, and every ten seconds of a longer phase) are exactly what was
//! written and committed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::workload::now_ms;
use crate::{Codec, HarnessError, Workload};

pub const TEST_TOPIC: &str = "test-topic";
pub const HIGH_VOLUME_TOPIC: &str = "high-volume-topic";
pub const IDLE_TOPIC: &str = "idle-topic";
pub const SLOW_GROUP: &str = "test-consumer-group";
pub const STEADY_GROUP: &str = "high-volume-consumer";
pub const IDLE_GROUP: &str = "idle-consumer";

/// Topics, their partition counts, and the codec their batches are compressed with
/// (tidemark reads timestamps out of compressed batches too).
const TOPICS: &[(&str, i32, Codec)] = &[
    (TEST_TOPIC, 6, Codec::None),
    (HIGH_VOLUME_TOPIC, 3, Codec::Zstd),
    (IDLE_TOPIC, 1, Codec::Gzip),
];

/// How far in the past the idle topic's record was "produced".
const IDLE_RECORD_AGE: Duration = Duration::from_secs(600);

/// Kafka's TOPIC_ALREADY_EXISTS: the workload runs again against the same broker.
const TOPIC_ALREADY_EXISTS: i16 = 36;

const TICK: Duration = Duration::from_secs(1);
/// Seconds between status lines within a long phase.
const REPORT_EVERY: u32 = 10;

/// One phase of the producer; the list repeats.
enum Phase {
    /// `rate` records per second to each listed topic, for `secs` seconds.
    Steady {
        rate: &'static [(&'static str, u32)],
        secs: u32,
    },
    /// This many records to each listed topic, all at once.
    Burst(&'static [(&'static str, u32)]),
    /// Nothing is produced for `secs` seconds.
    Quiet { secs: u32 },
}

/// About 85 seconds per round.
const PRODUCER: &[Phase] = &[
    Phase::Steady {
        rate: &[(TEST_TOPIC, 10), (HIGH_VOLUME_TOPIC, 3)],
        secs: 30,
    },
    Phase::Burst(&[(TEST_TOPIC, 100)]),
    Phase::Burst(&[(HIGH_VOLUME_TOPIC, 200)]),
    Phase::Steady {
        rate: &[(TEST_TOPIC, 20), (HIGH_VOLUME_TOPIC, 3)],
        secs: 30,
    },
    Phase::Quiet { secs: 20 },
    Phase::Burst(&[(TEST_TOPIC, 50), (HIGH_VOLUME_TOPIC, 100)]),
];

/// One phase of the slow group; the list repeats on its own clock (about 95 seconds),
/// drifting against the producer's so no two rounds look alike.
#[derive(Clone, Copy)]
enum Pace {
    /// Reads `rate` records per second and commits every `commit_every` seconds.
    Reading {
        name: &'static str,
        rate: u32,
        commit_every: u32,
        secs: u32,
    },
    /// Reads and commits nothing.
    Stalled { secs: u32 },
}

const SLOW_CONSUMER: &[Pace] = &[
    Pace::Reading {
        name: "trailing",
        rate: 4,
        commit_every: 5,
        secs: 40,
    },
    Pace::Stalled { secs: 30 },
    Pace::Reading {
        name: "catching up",
        rate: 60,
        commit_every: 2,
        secs: 25,
    },
];

impl Pace {
    fn secs(self) -> u32 {
        match self {
            Pace::Reading { secs, .. } | Pace::Stalled { secs } => secs,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Pace::Reading { name, .. } => name,
            Pace::Stalled { .. } => "stalled",
        }
    }
}

/// Per-partition offsets of one topic.
type Offsets = BTreeMap<i32, i64>;

/// A prepared workload: topics exist, every group has committed, [`Rhythm::run`] plays it.
pub struct Rhythm {
    client: Workload,
    /// Where the next record of each partition will land (the high watermark).
    end: BTreeMap<&'static str, Offsets>,
    /// What each group committed last.
    committed: BTreeMap<&'static str, (&'static str, Offsets)>,
    /// The slow group's read position (committed in bursts).
    slow_position: Offsets,
    /// The end offsets `high-volume-consumer` will commit at the next tick.
    steady_target: Offsets,
    /// Round-robin cursors: next partition to produce to, per topic; next to read from.
    produce_cursor: BTreeMap<&'static str, i32>,
    read_cursor: i32,
    produced: u64,
    started: Instant,
    /// Prefix of every printed line.
    label: &'static str,
}

impl Rhythm {
    /// Connects to `bootstrap`, creates the topics (or reuses them), writes the idle
    /// topic's old record and one fresh record per partition, and makes every group commit
    /// so that all three exist from the start.
    pub async fn prepare(bootstrap: &str, label: &'static str) -> Result<Rhythm, HarnessError> {
        let mut client = Workload::try_connect(bootstrap).await?;
        let mut end = BTreeMap::new();
        let mut produce_cursor = BTreeMap::new();
        for &(topic, partitions, _) in TOPICS {
            match client.try_create_topic(topic, partitions).await {
                Ok(()) => {}
                Err(e) if e.kafka_code() == Some(TOPIC_ALREADY_EXISTS) => {
                    println!("{label}: {topic} exists already; writing after its last record");
                }
                Err(e) => return Err(e),
            }
            end.insert(topic, Offsets::new());
            produce_cursor.insert(topic, 0);
        }
        let mut rhythm = Rhythm {
            client,
            end,
            committed: BTreeMap::new(),
            slow_position: Offsets::new(),
            steady_target: Offsets::new(),
            produce_cursor,
            read_cursor: 0,
            produced: 0,
            started: Instant::now(),
            label,
        };

        // Every group starts just before a record of its own run, so a broker reused from
        // an earlier run does not show that run's backlog.
        let old = now_ms() - i64::try_from(IDLE_RECORD_AGE.as_millis()).unwrap_or(0);
        let first_idle = rhythm
            .produce_one_at(IDLE_TOPIC, 0, old, b"written ten minutes ago")
            .await?;
        rhythm
            .commit(IDLE_GROUP, IDLE_TOPIC, Offsets::from([(0, first_idle)]))
            .await?;
        for (topic, group) in [(TEST_TOPIC, SLOW_GROUP), (HIGH_VOLUME_TOPIC, STEADY_GROUP)] {
            let mut first = Offsets::new();
            for partition in 0..partitions(topic) {
                let base = rhythm
                    .produce_one_at(topic, partition, now_ms(), b"")
                    .await?;
                first.insert(partition, base);
            }
            if topic == TEST_TOPIC {
                rhythm.slow_position = first.clone();
            }
            rhythm.commit(group, topic, first).await?;
        }
        rhythm.steady_target = rhythm.end[HIGH_VOLUME_TOPIC].clone();
        rhythm.client.ledger_mut().clear();
        println!(
            "{label}: topics {TEST_TOPIC} (6 partitions), {HIGH_VOLUME_TOPIC} (3), {IDLE_TOPIC} (1); \
             groups {SLOW_GROUP}, {STEADY_GROUP}, {IDLE_GROUP} committed"
        );
        Ok(rhythm)
    }

    /// Plays the rhythm, printing a status line per burst, until `deadline` (forever without one) or
    /// the first error. Dropping the future stops it at once.
    pub async fn run(&mut self, deadline: Option<Instant>) -> Result<(), HarnessError> {
        self.started = Instant::now();
        // The first tick one second from now: tick n is n seconds into the run.
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + TICK, TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut phases = PRODUCER.iter().cycle();
        let mut phase = phases.next().expect("the producer has phases");
        let mut phase_secs = 0;
        let mut phase_counts: BTreeMap<&'static str, u32> = BTreeMap::new();
        let mut paces = SLOW_CONSUMER.iter().copied().cycle();
        let mut pace = paces.next().expect("the slow consumer has phases");
        let mut pace_secs = 0;
        loop {
            ticker.tick().await;

            // The producer.
            let (writes, done): (&'static [(&'static str, u32)], bool) = match phase {
                Phase::Steady { rate, secs } => (rate, phase_secs + 1 >= *secs),
                Phase::Burst(counts) => (counts, true),
                Phase::Quiet { secs } => (&[], phase_secs + 1 >= *secs),
            };
            for &(topic, count) in writes {
                for _ in 0..count {
                    self.produce_next(topic).await?;
                }
                *phase_counts.entry(topic).or_default() += count;
            }
            phase_secs += 1;

            // The slow group.
            if let Pace::Reading {
                rate, commit_every, ..
            } = pace
            {
                self.read(rate);
                if (pace_secs + 1) % commit_every == 0 || pace_secs + 1 == pace.secs() {
                    let position = self.slow_position.clone();
                    self.commit(SLOW_GROUP, TEST_TOPIC, position).await?;
                }
            }
            pace_secs += 1;
            if pace_secs >= pace.secs() {
                pace = paces.next().expect("cycle");
                pace_secs = 0;
            }

            // The steady group: everything produced before this tick.
            let target =
                std::mem::replace(&mut self.steady_target, self.end[HIGH_VOLUME_TOPIC].clone());
            if self.committed[STEADY_GROUP].1 != target {
                self.commit(STEADY_GROUP, HIGH_VOLUME_TOPIC, target).await?;
            }

            // One line per burst, and one per ten seconds of a longer phase.
            if done || phase_secs % REPORT_EVERY == 0 {
                self.report(phase, phase_secs, &phase_counts, pace);
                self.client.ledger_mut().clear();
                phase_counts.clear();
            }
            if done {
                phase = phases.next().expect("cycle");
                phase_secs = 0;
            }

            // Stop when the next tick would come after the deadline (give or take).
            if deadline.is_some_and(|d| Instant::now() + TICK / 2 >= d) {
                return Ok(());
            }
        }
    }

    /// One status line for a finished phase.
    fn report(&self, phase: &Phase, secs: u32, counts: &BTreeMap<&str, u32>, pace: Pace) {
        let what = match phase {
            Phase::Steady { secs: total, .. } => format!("steady {secs}s of {total}"),
            Phase::Burst(_) => "burst".to_owned(),
            Phase::Quiet { secs: total } => format!("quiet {secs}s of {total}"),
        };
        let written = if counts.is_empty() {
            "nothing written".to_owned()
        } else {
            counts
                .iter()
                .map(|(topic, n)| format!("{topic} +{n}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!(
            "{} {:>5}s {what:<15} {written:<40} behind: {SLOW_GROUP} {} ({}), {STEADY_GROUP} {}, {IDLE_GROUP} {}",
            self.label,
            self.started.elapsed().as_secs(),
            self.behind(SLOW_GROUP),
            pace.name(),
            self.behind(STEADY_GROUP),
            self.behind(IDLE_GROUP),
        );
    }

    /// Records the group has not committed past, summed over its partitions.
    fn behind(&self, group: &str) -> i64 {
        let (topic, committed) = &self.committed[group];
        committed
            .iter()
            .map(|(p, c)| (self.end[topic].get(p).copied().unwrap_or(0) - c).max(0))
            .sum()
    }

    /// Advances the slow group's position by up to `n` records, one partition at a time.
    fn read(&mut self, n: u32) {
        let partitions = partitions(TEST_TOPIC);
        let mut left = n;
        let mut idle_partitions = 0;
        while left > 0 && idle_partitions < partitions {
            let p = self.read_cursor;
            self.read_cursor = (p + 1) % partitions;
            let end = self.end[TEST_TOPIC].get(&p).copied().unwrap_or(0);
            let position = self.slow_position.entry(p).or_insert(end);
            if *position < end {
                *position += 1;
                left -= 1;
                idle_partitions = 0;
            } else {
                idle_partitions += 1;
            }
        }
    }

    /// Produces one record, now, to the next partition of `topic`.
    async fn produce_next(&mut self, topic: &'static str) -> Result<(), HarnessError> {
        let cursor = self.produce_cursor.entry(topic).or_default();
        let partition = *cursor;
        *cursor = (partition + 1) % partitions(topic);
        self.produced += 1;
        let value = format!("demo record {}", self.produced);
        self.produce_one_at(topic, partition, now_ms(), value.as_bytes())
            .await?;
        Ok(())
    }

    /// Produces one record as its own batch; returns its offset.
    async fn produce_one_at(
        &mut self,
        topic: &'static str,
        partition: i32,
        timestamp_ms: i64,
        value: &[u8],
    ) -> Result<i64, HarnessError> {
        let codec = TOPICS
            .iter()
            .find(|(t, _, _)| *t == topic)
            .map_or(Codec::None, |(_, _, c)| *c);
        let offset = self
            .client
            .try_produce(topic, partition, codec, &[(timestamp_ms, value.to_vec())])
            .await?;
        self.end
            .entry(topic)
            .or_default()
            .insert(partition, offset + 1);
        Ok(offset)
    }

    /// Commits `offsets` of `topic` for `group` in one request.
    async fn commit(
        &mut self,
        group: &'static str,
        topic: &'static str,
        offsets: Offsets,
    ) -> Result<(), HarnessError> {
        let list: Vec<(&str, i32, i64)> = offsets.iter().map(|(p, o)| (topic, *p, *o)).collect();
        self.client.try_commit_offsets(group, &list).await?;
        self.committed.insert(group, (topic, offsets));
        Ok(())
    }
}

fn partitions(topic: &str) -> i32 {
    TOPICS
        .iter()
        .find(|(t, _, _)| *t == topic)
        .map_or(1, |(_, n, _)| *n)
}
