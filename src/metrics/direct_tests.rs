//! `render` (the direct encoder for the per-partition and per-group-partition families,
//! prometheus-client for the rest, in two parts) against prometheus-client encoding every
//! family at once: the same bytes, for reports full of edge cases.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::model::TopicPartition;
use kafka_protocol::messages::ApiKey;

use crate::lag::{GroupLag, GroupPartitionLag, GroupState, Member, PartitionOffsets, TopicLag};

/// The whole exposition, every family encoded by prometheus-client (its values in the
/// exposition's number format: `text::Normalized`).
fn reference(clusters: &[ClusterView], granularity: Granularity) -> String {
    let mut text = String::new();
    let mut out = TextBuf::new(&mut text);
    encode_with_prometheus_client(&mut out, clusters, &[], granularity, Part::All);
    out.finish();
    text.push_str("# EOF\n");
    text
}

fn assert_identical(clusters: &[ClusterView]) {
    for granularity in [Granularity::Partition, Granularity::Topic] {
        let expected = reference(clusters, granularity);
        let actual = render(clusters, granularity);
        if actual != expected {
            let line = expected
                .lines()
                .zip(actual.lines())
                .position(|(e, a)| e != a);
            panic!(
                "{granularity:?}: direct encoding differs from prometheus-client's at line \
                 {line:?}\nexpected line: {:?}\nactual line:   {:?}",
                line.and_then(|i| expected.lines().nth(i)),
                line.and_then(|i| actual.lines().nth(i)),
            );
        }
    }
}

/// Label values that need escaping or are otherwise unusual.
const STRINGS: [&str; 12] = [
    "",
    "plain",
    "quote\"d",
    "back\\slash",
    "new\nline",
    "\\\"\n",
    "ends with backslash\\",
    "\"",
    "carriage\rreturn\ttab",
    "unicode λ → 東京 🚀",
    "{braces},commas=\"and equals\"",
    "trailing newline\n",
];

/// Floats every gauge of a group partition may carry.
const FLOATS: [f64; 24] = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.1,
    1.0 / 3.0,
    12.5,
    -10.0,
    1e15,
    1e16,
    1e17,
    1.5e-7,
    -2.5e-5,
    1e-300,
    5e-324,
    f64::MIN_POSITIVE,
    f64::MAX,
    f64::MIN,
    f64::EPSILON,
    9_007_199_254_740_993.0,
    i64::MAX as f64,
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
];

/// Integers of the offset families and partition numbers.
const INTS: [i64; 8] = [0, -1, 1, 42, i64::MAX, i64::MIN, 1_000_000_007, -999];

fn member(i: usize) -> Option<Arc<Member>> {
    (i % 4 != 3).then(|| {
        Arc::new(Member {
            host: STRINGS[i % STRINGS.len()].into(),
            consumer_id: STRINGS[(i + 5) % STRINGS.len()].into(),
            client_id: STRINGS[(i + 7) % STRINGS.len()].into(),
        })
    })
}

fn report(name: &str, rows: usize, float: impl Fn(usize) -> f64) -> LagReport {
    let topic = |i: usize| Arc::<str>::from(STRINGS[(i + 1) % STRINGS.len()]);
    let partition = |i: usize| match i % 5 {
        0 => i32::MAX,
        1 => -1,
        _ => i as i32,
    };
    let partitions = (0..rows)
        .map(|i| PartitionOffsets {
            tp: TopicPartition::new(topic(i), partition(i)),
            low: INTS[i % INTS.len()],
            high: INTS[(i + 3) % INTS.len()],
            read_at_ms: 0,
        })
        .collect();
    let group_partitions = (0..rows)
        .map(|i| {
            GroupPartitionLag::new(
                i as u32,
                member(i),
                INTS[i % INTS.len()],
                (INTS[(i + 2) % INTS.len()], INTS[(i + 5) % INTS.len()]),
                i % 5 == 4,
                (i % 7 != 6).then(|| float(i)),
                i % 2 == 0,
            )
        })
        .collect();
    let groups = (0..STRINGS.len())
        .map(|i| GroupLag {
            group: Arc::from(STRINGS[i]),
            group_type: Default::default(),
            state: GroupState::Stable,
            offsets_known: i % 5 != 4,
            max_lag: INTS[i % INTS.len()],
            max_lag_seconds: (i % 3 != 0).then(|| float(i)),
            sum_lag: INTS[(i + 1) % INTS.len()],
            topics: BTreeMap::from([(
                topic(i),
                TopicLag {
                    sum_lag: INTS[i % INTS.len()],
                    max_lag: INTS[(i + 2) % INTS.len()],
                    max_lag_seconds: (i % 2 == 0).then(|| float(i + 1)),
                },
            )]),
            read_at_ms: 0,
            stale: i % 4 == 1,
            // Consecutive shares of the rows.
            rows: ((i + 1) * rows / STRINGS.len() - i * rows / STRINGS.len()) as u32,
        })
        .collect();
    LagReport {
        cluster: name.into(),
        partitions,
        group_partitions,
        groups,
        compaction_partitions: 3,
        data_loss_partitions: 4,
        stale_groups: 1,
        stale_partitions: 0,
        ..LagReport::default()
    }
}

fn cluster(name: &str, labels: &[(&str, &str)], report: Option<LagReport>) -> ClusterView {
    let mut histogram = CycleHistogram::default();
    histogram.observe(Duration::from_millis(70));
    ClusterView {
        name: name.into(),
        labels: labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        report: report.map(Arc::new),
        up: true,
        partial: false,
        brokers: vec![(1, true), (2, false)],
        cycle_duration: Some(Duration::from_nanos(123_456_789)),
        poll_time: Some(Duration::from_micros(1)),
        compaction_detected_total: 1,
        data_loss_total: u64::MAX,
        cycle_histogram: histogram,
        client: ClientStats {
            requests: vec![(-1, ApiKey::Metadata, 1, 0), (3, ApiKey::Fetch, 9, 2)],
            bytes_received: vec![(3, 1 << 40)],
            ..ClientStats::default()
        },
        ha: None,
    }
}

#[test]
fn escaping_numbers_and_granularities_match_prometheus_client() {
    let rows = STRINGS.len() * FLOATS.len();
    let clusters = [
        cluster(
            "pr\"o\\d\nλ",
            &[
                ("env", "prod\"uction\\\n"),
                ("region", "東京"),
                ("team", ""),
            ],
            Some(report("a", rows, |i| FLOATS[i % FLOATS.len()])),
        ),
        // No custom labels.
        cluster(
            "plain",
            &[],
            Some(report("b", 40, |i| -FLOATS[i % FLOATS.len()])),
        ),
        // No report yet: no series of these families.
        cluster("starting\\", &[("env", "x")], None),
        // A report without rows.
        cluster("empty", &[("env", "\"")], Some(report("c", 0, |_| 0.0))),
    ];
    assert_identical(&clusters);
    let mut down = clusters;
    down[1].up = false;
    assert_identical(&down);
    assert_identical(&[]);
}

/// Floats of arbitrary bit patterns (every exponent, subnormals, NaN payloads) and
/// integer-valued floats around the points where formatting switches to exponents.
#[test]
fn arbitrary_floats_match_prometheus_client() {
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    let random: Vec<f64> = (0..4000).map(|_| f64::from_bits(next())).collect();
    let powers: Vec<f64> = (-30..=30)
        .flat_map(|e| {
            let p = 10f64.powi(e);
            [p, p - 1.0, p + 1.0, -p, 1.5 * p, p / 3.0]
        })
        .collect();
    for values in [random, powers] {
        let report = report("r", values.len(), |i| values[i % values.len()]);
        assert_identical(&[cluster("r", &[("k", "v")], Some(report))]);
    }
}
