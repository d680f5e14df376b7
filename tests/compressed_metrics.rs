//! `/metrics` over real sockets with and without `Accept-Encoding: gzip`: the gzip body is
//! the stored exposition, and it inflates to exactly the text a client without gzip gets;
//! both carry the values of the report this test built. GET and HEAD, both formats, one
//! keep-alive connection.

use tidemark_testkit as common;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use common::exporter::{read_head, serve_state, Metrics};
use common::snapshot::{self, committed, high};
use tidemark::state::ExporterState;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const NOW: i64 = 1_750_000_000_000;
const GROUPS: usize = 40;
const PARTITIONS: i32 = 50;

/// The ground truth: high watermark of partition `p` and committed offset of group `g` on
/// it (the kit's synthetic snapshot), and the age in ms of the record at the committed offset.
fn age_ms(g: usize, p: i32) -> i64 {
    (high(p) - committed(g, p)) * 10 + 3
}

fn topic(g: usize) -> String {
    format!("prod.orders-{:02}.events", g % 4)
}

fn state() -> Arc<ExporterState> {
    let watermarks = snapshot::watermarks((0..4).map(|t| Arc::from(topic(t))), PARTITIONS);
    let groups = snapshot::lagging_groups(
        GROUPS,
        PARTITIONS,
        |g| format!("orders-{g:03}-consumer"),
        |g| Arc::from(topic(g)),
        |g, p| NOW - age_ms(g, p),
    );
    snapshot::published(watermarks, groups, Duration::from_nanos(5_977_897), NOW)
}

struct Response {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

/// Requests on one keep-alive connection; bodies read by their Content-Length.
struct Client {
    stream: BufReader<TcpStream>,
    host: String,
}

impl Client {
    async fn connect(address: SocketAddr) -> Client {
        Client {
            stream: BufReader::new(TcpStream::connect(address).await.expect("connect")),
            host: address.to_string(),
        }
    }

    async fn request(&mut self, method: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = format!("{method} /metrics HTTP/1.1\r\nHost: {}\r\n", self.host);
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        self.stream
            .get_mut()
            .write_all(request.as_bytes())
            .await
            .expect("send");
        let (status, headers) = read_head(&mut self.stream).await;
        let length: usize = headers
            .get("content-length")
            .unwrap_or_else(|| panic!("no Content-Length in {headers:?}"))
            .parse()
            .expect("Content-Length");
        let mut body = vec![0; if method == "HEAD" { 0 } else { length }];
        self.stream.read_exact(&mut body).await.expect("body");
        Response {
            status,
            headers,
            body,
        }
    }
}

fn gunzip(body: &[u8]) -> String {
    let mut text = String::new();
    // Single-member decoder: CRC-32 and length of the member are checked.
    flate2::read::GzDecoder::new(body)
        .read_to_string(&mut text)
        .expect("one valid gzip member of UTF-8 text");
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gzip_response_inflates_to_the_text_a_plain_client_gets() {
    let (address, _stop) = serve_state(state()).await;
    let mut c = Client::connect(address).await;
    let openmetrics = "application/openmetrics-text; version=1.0.0";
    for accept in [None, Some(openmetrics)] {
        let accept: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let mut gzip = accept.clone();
        // Prometheus' own header.
        gzip.push(("Accept-Encoding", "gzip"));

        let zipped = c.request("GET", &gzip).await;
        assert_eq!(zipped.status, 200);
        assert_eq!(zipped.header("content-encoding"), Some("gzip"));
        assert!(zipped
            .header("vary")
            .is_some_and(|v| v.contains("Accept-Encoding")));
        let plain = c.request("GET", &accept).await;
        assert_eq!(plain.status, 200);
        assert_eq!(plain.header("content-encoding"), None);
        assert_eq!(zipped.header("content-type"), plain.header("content-type"));
        let text = String::from_utf8(plain.body.clone()).expect("UTF-8");
        assert_eq!(gunzip(&zipped.body), text, "accept {accept:?}");
        assert!(zipped.body.len() * 5 < text.len());
        assert_eq!(text.ends_with("# EOF\n"), !accept.is_empty());

        // HEAD: the same lengths, no body.
        let head = c.request("HEAD", &gzip).await;
        assert_eq!(head.header("content-encoding"), Some("gzip"));
        assert_eq!(
            head.header("content-length"),
            Some(zipped.body.len().to_string().as_str())
        );
        let head = c.request("HEAD", &accept).await;
        assert_eq!(
            head.header("content-length"),
            Some(text.len().to_string().as_str())
        );

        // The values are the report's (integers as integers).
        let m = Metrics::parse(&text);
        for (g, p) in [(0, 0), (7, 13), (GROUPS - 1, PARTITIONS - 1)] {
            let labels = [
                ("group", format!("orders-{g:03}-consumer")),
                ("topic", topic(g)),
                ("partition", p.to_string()),
            ];
            let labels: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let lag = high(p) - committed(g, p);
            assert_eq!(
                m.value("kafka_consumergroup_group_lag", &labels),
                Some(lag as f64)
            );
            // Written as an integer, exactly.
            let line = format!(
                "\nkafka_consumergroup_group_offset{{cluster_name=\"prod\",group=\"orders-{g:03}-consumer\",\
                 topic=\"{}\",partition=\"{p}\",member_host=\"\",consumer_id=\"\",client_id=\"\"}} {}\n",
                topic(g),
                committed(g, p)
            );
            assert!(text.contains(&line), "missing {line:?}");
            assert_eq!(
                m.value("kafka_consumergroup_group_lag_seconds", &labels),
                Some(age_ms(g, p) as f64 / 1000.0)
            );
        }
        assert!(
            text.contains("\nkafka_consumergroup_poll_time_ms{cluster_name=\"prod\"} 5.977897\n")
        );
        assert_eq!(
            m.find("kafka_consumergroup_group_offset", &[]).len(),
            GROUPS * PARTITIONS as usize
        );
    }
}
