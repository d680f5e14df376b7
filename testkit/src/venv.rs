//! Python virtual environments with pinned PyPI packages, made on first use under
//! `target/<name>` and reused after (a marker file says it is complete). Creation is
//! serialized across test processes by `flock` on `<repo>/.cache/<name>.lock`, so parallel
//! test binaries never install into the same venv at once.

use std::path::PathBuf;
use std::process::Command;

use crate::repo_root;

/// The python of the venv `name` holding `packages` (pip requirement strings), made once.
/// Panics with pip's output when it cannot be made.
pub fn python(name: &str, packages: &[&str]) -> PathBuf {
    let root = repo_root();
    let venv = root.join("target").join(name);
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
        packages = packages.join(" "),
    );
    let out = Command::new("flock")
        .arg(cache.join(format!("{name}.lock")))
        .args(["sh", "-c", &script])
        .output()
        .unwrap_or_else(|e| panic!("running flock + pip: {e}"));
    assert!(
        out.status.success() && marker.is_file(),
        "installing {} into {} failed:\n{}{}",
        packages.join(" "),
        venv.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    python
}
