//! Content negotiation of `/metrics`: the text format (`Accept`) and gzip
//! (`Accept-Encoding`).

use hyper::header::{HeaderMap, ACCEPT, ACCEPT_ENCODING};

use crate::metrics::Format;

/// OpenMetrics when the client names it in `Accept` (Prometheus does, first), else
/// Prometheus text.
pub(super) fn format(headers: &HeaderMap) -> Format {
    let openmetrics = headers
        .get_all(ACCEPT)
        .iter()
        .filter_map(|a| a.to_str().ok())
        .any(|a| a.contains("application/openmetrics-text"));
    if openmetrics {
        Format::OpenMetrics
    } else {
        Format::Prometheus
    }
}

/// Whether the client accepts a gzip body (RFC 9110, 12.5.3): `gzip` (or its alias
/// `x-gzip`) listed with a non-zero weight, or `*` with a non-zero weight when gzip is not
/// listed. Case-insensitive; every `Accept-Encoding` header counts. An element with a
/// malformed weight is ignored.
pub(super) fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut gzip = None;
    let mut any = None;
    let elements = headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    for element in elements {
        let mut parts = element.split(';');
        let coding = parts.next().unwrap_or("").trim();
        let Some(weight) = weight(parts) else {
            continue;
        };
        if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
            // The lowest weight given wins, so `gzip;q=0` is never overridden.
            gzip = Some(gzip.map_or(weight, |w: u16| w.min(weight)));
        } else if coding == "*" {
            any = Some(weight);
        }
    }
    gzip.or(any).is_some_and(|w| w > 0)
}

/// The weight of an element from its parameters, in thousandths: 1000 without `q`, None
/// when `q` is malformed.
fn weight<'a>(params: impl Iterator<Item = &'a str>) -> Option<u16> {
    let mut weight = 1000;
    for param in params {
        let (name, value) = param.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("q") {
            weight = qvalue(value.trim())?;
        }
    }
    Some(weight)
}

/// `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`, in thousandths.
fn qvalue(v: &str) -> Option<u16> {
    let (int, frac) = v.split_once('.').unwrap_or((v, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let thousandths = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn headers(name: hyper::header::HeaderName, values: &[&'static str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(name.clone(), HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn accept_encoding_table() {
        let table: &[(&[&'static str], bool)] = &[
            (&[], false),
            (&[""], false),
            (&["gzip"], true),
            (&["GZip"], true),
            (&["x-gzip"], true),
            (&["identity"], false),
            (&["deflate, br"], false),
            (&["deflate, gzip"], true),
            (&["br;q=1.0, gzip;q=0.8, *;q=0.1"], true),
            (&["gzip;q=0"], false),
            (&["gzip; q=0.000"], false),
            (&["gzip ; Q=0.001"], true),
            (&["gzip;q=1"], true),
            (&["gzip;q=1.000"], true),
            (&["*"], true),
            (&["*;q=0"], false),
            // Named explicitly, gzip's own weight decides, not the wildcard's.
            (&["*, gzip;q=0"], false),
            (&["gzip;q=0, *"], false),
            (&["*;q=0, gzip"], true),
            (&["identity;q=1, *;q=0.5"], true),
            // Malformed weights: the element is ignored.
            (&["gzip;q=2"], false),
            (&["gzip;q=0.5000"], false),
            (&["gzip;q=abc"], false),
            (&["gzip;q=-1"], false),
            (&["gzip;q"], false),
            (&["gzip;q=1.5, *"], true),
            (&["gzipx", "xgzip"], false),
            // Every header counts (Go's net/http and curl send one; proxies may add one).
            (&["br", "gzip"], true),
            (&["gzip", "gzip;q=0"], false),
        ];
        for (values, want) in table {
            assert_eq!(
                accepts_gzip(&headers(ACCEPT_ENCODING, values)),
                *want,
                "Accept-Encoding: {values:?}"
            );
        }
    }

    #[test]
    fn format_follows_accept() {
        let cases: &[(&[&'static str], Format)] = &[
            (&[], Format::Prometheus),
            (&["text/plain"], Format::Prometheus),
            (&["*/*"], Format::Prometheus),
            (
                // What Prometheus sends by default.
                &["application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2"],
                Format::OpenMetrics,
            ),
            (&["text/plain", "application/openmetrics-text"], Format::OpenMetrics),
        ];
        for (values, want) in cases {
            assert_eq!(
                format(&headers(ACCEPT, values)),
                *want,
                "Accept: {values:?}"
            );
        }
    }
}
