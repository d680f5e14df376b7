//! Tools from Debian's packages that tests need, installed on first use when missing:
//! `promtool` (package `prometheus`) for checking expositions, rules and queries.
//!
//! Installing needs root (CI runs as root on a fresh machine); as any other user a missing
//! tool is an error that names the package. Installs are serialized across test processes
//! (and with `docker/lib.sh`) by `flock` on `<repo>/.cache/apt.lock`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian's `prometheus` package puts promtool.
pub const PROMTOOL: &str = "/usr/bin/promtool";

/// `promtool`, installing Debian's `prometheus` package when it is missing.
pub fn ensure_promtool() -> Result<PathBuf, String> {
    ensure_debian_tool(Path::new(PROMTOOL), "prometheus")
}

/// `tool`, installing the Debian `package` that provides it when it is missing.
pub fn ensure_debian_tool(tool: &Path, package: &str) -> Result<PathBuf, String> {
    if tool.is_file() {
        return Ok(tool.to_path_buf());
    }
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    if uid != "0" {
        return Err(format!(
            "{} is missing and this test runs as uid {uid:?}, not root: install the Debian package `{package}` (apt-get install --no-install-recommends {package})",
            tool.display()
        ));
    }
    let cache = crate::repo_root().join(".cache");
    std::fs::create_dir_all(&cache).map_err(|e| format!("creating {}: {e}", cache.display()))?;
    let lock = cache.join("apt.lock");
    let script = format!(
        "test -x {tool} || {{ apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y -o DPkg::Lock::Timeout=300 --no-install-recommends {package}; }}",
        tool = tool.display()
    );
    let out = Command::new("flock")
        .arg(&lock)
        .args(["sh", "-c", &script])
        .output()
        .map_err(|e| format!("running flock + apt-get to install {package}: {e}"))?;
    if !out.status.success() || !tool.is_file() {
        return Err(format!(
            "installing the Debian package `{package}` for {} failed ({}):\n{}{}",
            tool.display(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(tool.to_path_buf())
}
