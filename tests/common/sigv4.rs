//! An independent SigV4 verifier for AWS_MSK_IAM payloads: Python botocore's signer
//! (`sigv4_verify.py` beside this file), in a venv under `target/sigv4-venv` made on first
//! use (serialized across processes by `flock` on `<repo>/.cache/sigv4-venv.lock`, as the
//! push receivers' venv is).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use super::broker::repo_root;

/// botocore, pinned.
const PACKAGES: &[&str] = &["botocore==1.44.8"];

fn python() -> PathBuf {
    let root = repo_root();
    let venv = root.join("target").join("sigv4-venv");
    let python = venv.join("bin").join("python");
    let marker = venv.join(".tidemark-ready");
    if marker.is_file() {
        return python;
    }
    let cache = root.join(".cache");
    std::fs::create_dir_all(&cache).expect(".cache");
    let script = format!(
        "test -f {marker} || {{ python3 -m venv {venv} && {python} -m pip install -q {packages} && touch {marker}; }}",
        marker = marker.display(),
        venv = venv.display(),
        python = python.display(),
        packages = PACKAGES.join(" "),
    );
    let out = Command::new("flock")
        .arg(cache.join("sigv4-venv.lock"))
        .args(["sh", "-c", &script])
        .output()
        .unwrap_or_else(|e| panic!("running flock + pip: {e}"));
    assert!(
        out.status.success() && marker.is_file(),
        "installing {} failed:\n{}{}",
        PACKAGES.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    python
}

/// Make the venv now (a login must not wait for pip).
pub fn install() {
    python();
}

/// Verify `payload` with botocore for `secret`, as if the time were now + `clock_offset`
/// seconds: `Ok` or botocore's reason.
pub fn verify(payload: &[u8], secret: &str, clock_offset: i64) -> Result<(), String> {
    let script = format!(
        "{}/tests/common/sigv4_verify.py",
        env!("CARGO_MANIFEST_DIR")
    );
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
