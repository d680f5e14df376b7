//! The status page `/`: counts, filters that match nothing, missing ACLs, the last error.

use std::sync::Arc;
use std::time::Duration;

use hyper::header::HeaderMap;
use hyper::Method;

use super::route;
use crate::config::Granularity;
use crate::state::{Coverage, CycleHealth, CycleOutcome, ExporterState};

fn page(s: &ExporterState) -> String {
    use http_body_util::BodyExt;
    let r = route(&Method::GET, "/", &HeaderMap::new(), s);
    let bytes = futures_util::FutureExt::now_or_never(r.into_body().collect())
        .and_then(Result::ok)
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn counts_denials_and_the_last_error_after_recovery() {
    let s = ExporterState::new(&[("a".to_string(), vec![])], Granularity::Partition);
    assert!(page(&s).contains("<td>pending</td>"), "{}", page(&s));
    s.publish(
        "a",
        CycleOutcome::Failure {
            error: "no bootstrap server answered: <cause>".into(),
        },
        Duration::ZERO,
    );
    // Recovered, complete, but a DescribeConfigs was denied and no group is kept.
    let health = CycleHealth {
        coverage: Coverage {
            groups_seen: 3,
            groups_monitored: 0,
            topics_seen: 4,
            topics_monitored: 2,
            user_topics_seen: 3,
        },
        denied: vec!["DescribeConfigs: DescribeConfigs on topic t is not allowed".into()],
        ..CycleHealth::complete([1])
    };
    let ok = CycleOutcome::Success {
        report: Arc::default(),
        poll_time: Duration::ZERO,
        health,
    };
    s.publish("a", ok, Duration::ZERO);
    let html = page(&s);
    for want in [
        "<td>3 / 0 / 3<br><b>the group filters match nothing</b>",
        "<td>4 / 2 / 2</td>",
        "ok, but:<ul><li>not authorized: DescribeConfigs: DescribeConfigs on topic t is not allowed</li>",
        // Kept after the recovery, escaped.
        ": no bootstrap server answered: &lt;cause&gt;</td></tr>",
    ] {
        assert!(html.contains(want), "{want} missing:\n{html}");
    }
    assert!(!html.contains("partial ("), "{html}");
}
