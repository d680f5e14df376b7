use super::*;
use crate::config::Granularity;
use crate::metrics::tests::{large_view, view};
use crate::metrics::{self, ExportCounters};

/// Collects every sample, re-serialized as an exposition line, and can say "full" every
/// `every` samples.
struct Collect {
    lines: Vec<String>,
    kinds: Vec<(String, Kind)>,
    every: usize,
}

fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

impl SampleSink for Collect {
    fn sample(&mut self, family: &Family, s: &Sample<'_>) -> bool {
        let labels: Vec<String> = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape(v)))
            .collect();
        let value = match s.value {
            Value::Int(v) => v.to_string(),
            Value::Float(v) => {
                let mut out = String::new();
                crate::metrics::push_f64_for_tests(&mut out, v);
                out
            }
        };
        let line = if labels.is_empty() {
            format!("{} {value}", s.name)
        } else {
            format!("{}{{{}}} {value}", s.name, labels.join(","))
        };
        self.lines.push(line);
        self.kinds.push((family.name.clone(), family.kind));
        self.every > 0 && self.lines.len() % self.every == 0
    }
}

fn walk_all(c: &Arc<Compressed>, every: usize) -> (Collect, usize) {
    let mut sink = Collect {
        lines: Vec::new(),
        kinds: Vec::new(),
        every,
    };
    let mut walk = Walk::new(c);
    let mut feeds = 1;
    while walk.feed(&mut sink).expect("walk") {
        feeds += 1;
    }
    (sink, feeds)
}

#[test]
fn every_sample_line_of_the_exposition_comes_back_exactly() {
    let mut down = view();
    down.name = "dr".into();
    down.up = false;
    let exports = [ExportCounters {
        exporter: "otlp",
        requests_ok: 3,
        ..ExportCounters::default()
    }];
    for views in [vec![], vec![view()], vec![large_view(), down]] {
        let text = metrics::render_with_exports(&views, &exports, Granularity::Partition);
        let want: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        let c = Arc::new(
            metrics::render_compressed(&views, &exports, Granularity::Partition, 1)
                .expect("rendered"),
        );
        let (sink, _) = walk_all(&c, 0);
        assert_eq!(sink.lines.len(), c.series());
        assert_eq!(sink.lines, want);
    }
}

#[test]
fn families_carry_their_type_and_sample_names_their_suffix() {
    let views = vec![view()];
    let c = Arc::new(
        metrics::render_compressed(&views, &[], Granularity::Partition, 1).expect("rendered"),
    );
    let (sink, _) = walk_all(&c, 0);
    let kind_of = |sample: &str| {
        let i = sink
            .lines
            .iter()
            .position(|l| l.starts_with(sample))
            .unwrap_or_else(|| panic!("no {sample}"));
        sink.kinds[i].clone()
    };
    assert_eq!(
        kind_of("kafka_consumergroup_group_lag{"),
        ("kafka_consumergroup_group_lag".into(), Kind::Gauge)
    );
    assert_eq!(
        kind_of("kafka_lag_exporter_compaction_detected_total{"),
        (
            "kafka_lag_exporter_compaction_detected".into(),
            Kind::Counter
        )
    );
    assert_eq!(
        kind_of("tidemark_cycle_duration_seconds_bucket{"),
        ("tidemark_cycle_duration_seconds".into(), Kind::Histogram)
    );
}

#[test]
fn a_walk_stopped_whenever_the_sink_is_full_misses_and_repeats_nothing() {
    let views = vec![large_view()];
    let c = Arc::new(
        metrics::render_compressed(&views, &[], Granularity::Partition, 1).expect("rendered"),
    );
    let (whole, _) = walk_all(&c, 0);
    for every in [1, 7, 1000, 30_000] {
        let (parts, feeds) = walk_all(&c, every);
        assert_eq!(parts.lines, whole.lines, "every {every}");
        assert!(feeds >= whole.lines.len() / every, "{feeds} feeds");
    }
}

#[test]
fn values_and_labels_parse() {
    let mut labels = Labels::default();
    let (name, value) = parse_sample(r#"m{a="x\"y\\z\n",b=""} -12"#, &mut labels).expect("parsed");
    assert_eq!(name, "m");
    assert_eq!(value, Value::Int(-12));
    let pairs: Vec<_> = labels.iter().collect();
    assert_eq!(pairs, [("a", "x\"y\\z\n"), ("b", "")]);
    assert_eq!(
        parse_sample("m 1.5e-7", &mut labels).map(|x| x.1),
        Some(Value::Float(1.5e-7))
    );
    assert!(labels.is_empty());
    let inf = parse_sample("m +Inf", &mut labels).map(|x| x.1.as_f64());
    assert_eq!(inf, Some(f64::INFINITY));
    assert!(parse_sample("m NaN", &mut labels).is_some_and(|x| x.1.as_f64().is_nan()));
    // Beyond i64: a float.
    assert_eq!(
        parse_sample("m 99999999999999999999", &mut labels).map(|x| x.1),
        Some(Value::Float(1e20))
    );
    for bad in ["m", "m{a=\"x\" 1", "m{a=x} 1", "m x"] {
        assert!(parse_sample(bad, &mut labels).is_none(), "{bad}");
    }
}

#[test]
fn truncated_or_odd_lines_never_panic() {
    let mut labels = Labels::default();
    let lines = [
        r#"kafka_consumergroup_group_lag{cluster_name="p",group="a\"b\\c\nd",topic="λ",partition="0"} 1234"#,
        r#"m{a="\"} 1"#,
        r#"m{a="x\"#,
        "m{} 1",
        "m{=\"\"} 1",
        "m  1",
        "{} 1",
    ];
    for line in lines {
        for end in (0..=line.len()).filter(|i| line.is_char_boundary(*i)) {
            let _ = parse_sample(&line[..end], &mut labels);
        }
    }
    let mut family = Family::default();
    for comment in [" HELP", " TYPE x", " HELP x a\\", " TYPE  counter", ""] {
        read_comment(comment, &mut family);
    }
}
