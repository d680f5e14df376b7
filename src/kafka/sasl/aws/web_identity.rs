//! AWS credentials from a web identity token (EKS IRSA): `AWS_WEB_IDENTITY_TOKEN_FILE` and
//! `AWS_ROLE_ARN` exchanged at STS with `AssumeRoleWithWebIdentity` (an unsigned request),
//! cached and renewed before they expire ([`crate::kafka::sasl::refresh`]). The STS endpoint
//! is `https://sts.<region>.amazonaws.com/`, or `AWS_ENDPOINT_URL_STS` /
//! `AWS_ENDPOINT_URL` when set (as the AWS SDKs read them).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hyper::Method;

use super::AwsCredentials;
use crate::kafka::sasl::http::{self, form_encode, Call, Url};
use crate::kafka::sasl::refresh::{Cached, Fetched};
use crate::kafka::sasl::Secret;
use crate::kafka::tls::Tls;

/// Every STS request, connecting included, ends within this.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The web identity exchange of a cluster, with its cached credentials.
#[derive(Debug)]
pub struct WebIdentity {
    tls: Tls,
    cache: Cached<AwsCredentials>,
}

impl WebIdentity {
    pub fn new(tls: Tls) -> WebIdentity {
        WebIdentity {
            tls,
            cache: Cached::default(),
        }
    }

    /// Whether the environment asks for web identity credentials.
    pub fn configured(env: &dyn Fn(&str) -> Option<String>) -> bool {
        env("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() && env("AWS_ROLE_ARN").is_some()
    }

    /// The current credentials, from STS when due.
    pub async fn credentials(
        &self,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
        region: &str,
    ) -> Result<AwsCredentials, String> {
        self.cache
            .get("AWS web identity credentials", || self.fetch(env, region))
            .await
    }

    async fn fetch(
        &self,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
        region: &str,
    ) -> Result<Fetched<AwsCredentials>, String> {
        let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
        let file = var("AWS_WEB_IDENTITY_TOKEN_FILE").unwrap_or_default();
        let role = var("AWS_ROLE_ARN").unwrap_or_default();
        let token = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read AWS_WEB_IDENTITY_TOKEN_FILE {file}: {e}"))?;
        let session = var("AWS_ROLE_SESSION_NAME").unwrap_or_else(|| "tidemark".to_owned());
        let endpoint = match var("AWS_ENDPOINT_URL_STS").or_else(|| var("AWS_ENDPOINT_URL")) {
            Some(url) => url,
            None => format!("https://sts.{region}.amazonaws.com/"),
        };
        let url = Url::parse(&endpoint).map_err(|e| format!("STS endpoint: {e}"))?;
        let call = Call {
            method: Method::POST,
            url: &url,
            headers: vec![
                ("content-type", "application/x-www-form-urlencoded".into()),
                ("accept", "application/xml".into()),
            ],
            body: Bytes::from(request_body(&role, &session, token.trim())),
        };
        let response = http::send(call, &self.tls, TIMEOUT)
            .await
            .map_err(|e| format!("AssumeRoleWithWebIdentity failed: {e}"))?;
        let what = format!("STS {url} (AssumeRoleWithWebIdentity for {role})");
        parse_response(
            &what,
            response.status.as_u16(),
            &response.body,
            SystemTime::now(),
        )
    }
}

/// The form body of an `AssumeRoleWithWebIdentity` request.
pub fn request_body(role_arn: &str, session_name: &str, token: &str) -> String {
    format!(
        "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn={}&RoleSessionName={}&WebIdentityToken={}",
        form_encode(role_arn),
        form_encode(session_name),
        form_encode(token)
    )
}

/// The text of the first `<tag>...</tag>` in `xml`.
fn element<'a>(xml: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let (_, rest) = xml.split_once(&open)?;
    let (text, _) = rest.split_once(&format!("</{tag}>"))?;
    Some(text.trim())
}

/// Credentials and their lifetime from STS's XML answer, or an error with STS's code and
/// message.
pub fn parse_response(
    what: &str,
    status: u16,
    body: &[u8],
    now: SystemTime,
) -> Result<Fetched<AwsCredentials>, String> {
    let xml = String::from_utf8_lossy(body);
    if !(200..300).contains(&status) {
        let code = element(&xml, "Code").unwrap_or("no error code");
        let message = element(&xml, "Message").unwrap_or_default();
        return Err(format!("{what} answered HTTP {status}: {code} {message}")
            .trim()
            .to_owned());
    }
    let field = |tag: &str| {
        element(&xml, tag)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| format!("{what} answered without {tag}"))
    };
    let expiration = field("Expiration")?;
    let expires = parse_timestamp(expiration)
        .ok_or_else(|| format!("{what} answered Expiration {expiration:?}, not a timestamp"))?;
    Ok(Fetched {
        value: AwsCredentials {
            access_key_id: field("AccessKeyId")?.to_owned(),
            secret_access_key: Secret::new(field("SecretAccessKey")?),
            session_token: Some(Secret::new(field("SessionToken")?)),
        },
        lifetime: Some(expires.duration_since(now).unwrap_or_default())
            .filter(|l| !l.is_zero())
            .or(Some(Duration::from_secs(1))),
    })
}

/// `2026-12-03T17:00:00Z` (fractional seconds allowed) as a time; `None` also for a date
/// beyond what the clock holds.
pub fn parse_timestamp(text: &str) -> Option<SystemTime> {
    let text = text.trim().strip_suffix('Z')?;
    let (date, time) = text.split_once('T')?;
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let time = time.split('.').next()?;
    let mut t = time.splitn(3, ':').map(|p| p.parse::<u64>().ok());
    let (h, min, s) = (t.next()??, t.next()??, t.next()??);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || h > 23 || min > 59 || s > 60 {
        return None;
    }
    let days = u64::try_from(days_from_civil(y, m, day)?).ok()?;
    // h, min and s are checked above: only the days can overflow.
    let secs = days
        .checked_mul(86_400)?
        .checked_add(
            h.saturating_mul(3600)
                .saturating_add(min.saturating_mul(60)),
        )?
        .checked_add(s)?;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a Gregorian date (H. Hinnant's algorithm), `None` when a year
/// from the network is too large for it. `m` and `d` are in range.
fn days_from_civil(y: i64, m: i64, d: i64) -> Option<i64> {
    let y = if m <= 2 { y.checked_sub(1)? } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    // Month and day are checked: these stay within a few hundred.
    let mp = m.saturating_add(9).rem_euclid(12);
    let doy = mp
        .saturating_mul(153)
        .saturating_add(2)
        .div_euclid(5)
        .saturating_add(d)
        .saturating_sub(1);
    let doe = yoe
        .saturating_mul(365)
        .saturating_add(yoe.div_euclid(4))
        .saturating_sub(yoe.div_euclid(100))
        .saturating_add(doy);
    era.checked_mul(146_097)?
        .checked_add(doe)?
        .checked_sub(719_468)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        let t = parse_timestamp("2020-10-22T01:02:03Z").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(1_603_328_523));
        let t = parse_timestamp("2000-02-29T23:59:59.123Z").unwrap();
        assert_eq!(t, UNIX_EPOCH + Duration::from_secs(951_868_799));
        for bad in [
            "2020-10-22T01:02:03",
            "2020-13-01T00:00:00Z",
            "x",
            "2020-10-22Z",
            // Used to overflow: i64 arithmetic on the year, then SystemTime + Duration.
            "9223372036854775807-01-01T00:00:00Z",
            "-9223372036854775808-01-01T00:00:00Z",
            "300000000000-01-01T00:00:00Z",
        ] {
            assert!(parse_timestamp(bad).is_none(), "{bad}");
        }
        let far =
            b"<Credentials><Expiration>300000000000-01-01T00:00:00Z</Expiration></Credentials>";
        let e = parse_response("STS x", 200, far, UNIX_EPOCH).unwrap_err();
        assert!(e.contains("not a timestamp"), "{e}");
    }

    #[test]
    fn sts_answers() {
        let ok = br#"<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <SessionToken>FwoGZXIvYXdzEXAMPLE</SessionToken>
      <SecretAccessKey>wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY</SecretAccessKey>
      <Expiration>2020-10-22T02:02:03Z</Expiration>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>"#;
        let now = UNIX_EPOCH + Duration::from_secs(1_603_328_523);
        let f = parse_response("STS", 200, ok, now).unwrap();
        assert_eq!(f.value.access_key_id, "ASIAEXAMPLE");
        assert_eq!(
            f.value.secret_access_key.expose(),
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        );
        assert_eq!(
            f.value.session_token.as_ref().map(|t| t.expose()),
            Some("FwoGZXIvYXdzEXAMPLE")
        );
        assert_eq!(f.lifetime, Some(Duration::from_secs(3600)));
        let err = br#"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Token expired</Message></Error></ErrorResponse>"#;
        let e = parse_response("STS x", 400, err, now).unwrap_err();
        assert_eq!(
            e,
            "STS x answered HTTP 400: InvalidIdentityToken Token expired"
        );
        let e = parse_response("STS x", 200, b"<Credentials/>", now).unwrap_err();
        assert!(e.contains("without Expiration"), "{e}");
    }

    #[test]
    fn the_request_is_a_form() {
        assert_eq!(
            request_body("arn:aws:iam::123456789012:role/tm", "tidemark", "ey.J/w+"),
            "Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Ftm&RoleSessionName=tidemark&WebIdentityToken=ey.J%2Fw%2B"
        );
    }
}
