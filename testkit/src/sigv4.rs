//! An independent SigV4 verifier for AWS_MSK_IAM payloads: Python botocore's signer
//! (`sigv4_verify.py` beside this file), in a venv under `target/sigv4-venv` made on first
//! use (serialized across processes by `flock` on `<repo>/.cache/sigv4-venv.lock`, as the
//! push receivers' venv is).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::repo_root;

/// botocore, pinned.
const PACKAGES: &[&str] = &["botocore==1.44.8"];

fn python() -> PathBuf {
    crate::venv::python("sigv4-venv", PACKAGES)
}

/// Make the venv now (a login must not wait for pip).
pub fn install() {
    python();
}

/// Verify `payload` with botocore for `secret`, as if the time were now + `clock_offset`
/// seconds: `Ok` or botocore's reason.
pub fn verify(payload: &[u8], secret: &str, clock_offset: i64) -> Result<(), String> {
    let script = repo_root().join("testkit/src/sigv4_verify.py");
    let mut child = Command::new(python())
        .arg(script)
        .env("SIGV4_SECRET", secret)
        .env("SIGV4_CLOCK_OFFSET", clock_offset.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run the verifier: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(payload);
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("verifier: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    match text.as_str() {
        "ok" => Ok(()),
        _ => Err(match text.strip_prefix("error: ") {
            Some(reason) => reason.to_owned(),
            None => format!(
                "verifier failed: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }),
    }
}

/// What an accepted AWS_MSK_IAM login signed with, read from its JSON payload (the first
/// client message).
#[derive(Debug)]
pub struct SignedLogin {
    /// The access key id: `x-amz-credential` up to its first `/`.
    pub key_id: String,
    /// `x-amz-security-token`, when the payload has one.
    pub session_token: Option<String>,
    /// The whole payload.
    pub payload: serde_json::Value,
}

/// The signature of `login`, which must have been accepted (panics otherwise, or when its
/// payload is not an AWS_MSK_IAM one).
pub fn signed_login(login: &crate::sasl_front::Login) -> SignedLogin {
    assert_eq!(login.outcome, Ok(()), "{login:?}");
    let first = login.client_messages.first().expect("a client message");
    let payload: serde_json::Value = serde_json::from_slice(first).expect("JSON payload");
    let credential = payload["x-amz-credential"]
        .as_str()
        .expect("x-amz-credential");
    let (key_id, _scope) = credential
        .split_once('/')
        .expect("x-amz-credential: key id / scope");
    SignedLogin {
        key_id: key_id.to_owned(),
        session_token: payload["x-amz-security-token"].as_str().map(str::to_owned),
        payload,
    }
}

/// The SASL front of the MSK IAM tests: AWS_MSK_IAM only, signatures checked for `secret`,
/// sessions of 1.5 s (so a test sees several re-authentications).
pub fn msk_iam_front(secret: &str) -> crate::sasl_front::FrontConfig {
    crate::sasl_front::FrontConfig {
        mechanisms: vec!["AWS_MSK_IAM".into()],
        aws_secret: secret.into(),
        session_lifetime_ms: 1500,
        ..Default::default()
    }
}

/// A `[[clusters]]` table (with a blank line before it) for an AWS_MSK_IAM cluster `name`
/// at `bootstrap`, with `aws.region` when given.
pub fn msk_iam_cluster(name: &str, bootstrap: &str, region: Option<&str>) -> String {
    let mut t = format!(
        "\n[[clusters]]\nname = \"{name}\"\nbootstrap_servers = \"{bootstrap}\"\n[clusters.consumer_properties]\n\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"AWS_MSK_IAM\"\n"
    );
    if let Some(r) = region {
        t.push_str(&format!("\"aws.region\" = \"{r}\"\n"));
    }
    t
}

/// An exporter config of the MSK IAM tests: ephemeral port, 300 ms polls, partition
/// granularity, then `clusters` (see [`msk_iam_cluster`]).
pub fn msk_iam_exporter(clusters: &str) -> String {
    format!(
        "[exporter]\nhttp_host = \"127.0.0.1\"\nhttp_port = 0\npoll_interval = \"300ms\"\ngranularity = \"partition\"\n{clusters}"
    )
}
