//! The `tidemark` binary: CLI, logging, signals. Everything else lives in the library.

#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use tidemark::config::{self, Config};
use tidemark::exporter::Exporter;
use tidemark::kafka::tls::Verification;
use tidemark::kafka::Security;
use tidemark::oneshot;

/// Exit status for an invalid configuration.
const CONFIG_ERROR: u8 = 2;
/// How long running work may take to wind down after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// Kafka consumer-group lag exporter with exact time lag.
#[derive(Parser, Debug)]
#[command(name = "tidemark", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,

    /// Configuration file (klag-exporter's TOML format).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Log level: error, warn, info, debug or trace (or a tracing filter directive).
    /// Default: info; warn for `tidemark lag`.
    #[arg(short = 'l', long = "log-level", value_name = "LEVEL", global = true)]
    log_level: Option<String>,

    /// Log line format on stderr: `text` (colour only on a terminal, never with NO_COLOR)
    /// or `json` (one object per line, for log pipelines).
    #[arg(
        long = "log-format",
        value_name = "FORMAT",
        default_value = "text",
        global = true
    )]
    log_format: LogFormat,

    /// Refuse keys tidemark does not know and consumer properties it does not support
    /// (status 2, each named with file and line) instead of warning about them.
    #[arg(long = "strict", env = "TIDEMARK_STRICT", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false", global = true)]
    strict: bool,

    /// Validate FILE, print the resolved configuration with secrets redacted, and exit
    /// (status 0 when valid, 2 when not).
    #[arg(long = "check-config", value_name = "FILE", conflicts_with = "config")]
    check_config: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

/// Logs go to stderr, so stdout carries only command output (`--check-config`'s TOML).
fn init_logging(filter: tracing_subscriber::EnvFilter, format: LogFormat) {
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => {
            // https://no-color.org: any non-empty NO_COLOR turns colour off.
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            builder
                .with_ansi(std::io::stderr().is_terminal() && !no_color)
                .init();
        }
    }
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Read every group's lag once (or every few seconds) and print it, worst first.
    Lag(LagArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `tidemark lag` is for a terminal or a script: only warnings unless asked.
    let default_level = if cli.command.is_some() {
        "warn"
    } else {
        "info"
    };
    let level = cli.log_level.as_deref().unwrap_or(default_level);
    let filter = match tracing_subscriber::EnvFilter::try_new(level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: --log-level {level:?} is not a level or filter: {e}");
            return ExitCode::from(CONFIG_ERROR);
        }
    };
    init_logging(filter, cli.log_format);

    if let Some(Command::Lag(args)) = cli.command {
        if cli.config.is_some() || cli.check_config.is_some() {
            eprintln!("error: `tidemark lag` takes its own --config: tidemark lag -c FILE");
            return ExitCode::from(CONFIG_ERROR);
        }
        return lag(args, cli.strict);
    }

    if let Some(path) = cli.check_config {
        return match load(&path, cli.strict) {
            Ok(config) => {
                print!("{}", config.to_redacted_toml());
                ExitCode::SUCCESS
            }
            Err(code) => code,
        };
    }
    let Some(path) = cli.config else {
        eprintln!("error: no configuration file: run `tidemark -c FILE` (see --help)");
        return ExitCode::from(CONFIG_ERROR);
    };
    let config = match load(&path, cli.strict) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(config)) {
        Ok(()) => {
            // Abandon whatever is still running (a cycle stuck on a dead broker).
            runtime.shutdown_timeout(Duration::from_millis(100));
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Load and vet the configuration, reporting problems; `Err` carries the exit status.
fn load(path: &std::path::Path, strict: bool) -> Result<Config, ExitCode> {
    let config = config::load(path).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(CONFIG_ERROR)
    })?;
    vet(config, strict)
}

/// Report what `--strict` refuses (`Err`: the exit status) and warn about the rest.
fn vet(config: Config, strict: bool) -> Result<Config, ExitCode> {
    let refused = if strict {
        config.strict_problems()
    } else {
        Vec::new()
    };
    if !refused.is_empty() {
        for problem in &refused {
            eprintln!("error: {problem} (refused by --strict)");
        }
        return Err(ExitCode::from(CONFIG_ERROR));
    }
    if !config.unknown_keys.is_empty() {
        tracing::warn!(keys = %config.unknown_keys.join(", "), "ignoring configuration keys tidemark does not know");
    }
    if let Some(warning) = config.leadership_warning() {
        tracing::warn!("{warning}");
    }
    for cluster in &config.clusters {
        let client = &cluster.client;
        if !client.unsupported.is_empty() {
            tracing::warn!(cluster = %cluster.name, keys = %client.unsupported.join(", "), "consumer_properties keys not supported by tidemark are ignored");
        }
        if !client.ignored.is_empty() {
            tracing::info!(cluster = %cluster.name, keys = %client.ignored.join(", "), "consumer_properties keys that only matter to consuming clients are ignored");
        }
        if !client.unused_security.is_empty() {
            tracing::warn!(cluster = %cluster.name, protocol = %client.security_protocol, keys = %client.unused_security.join(", "), "consumer_properties keys that security.protocol does not use are ignored");
        }
        log_security(&cluster.name, &cluster.security);
    }
    Ok(config)
}

/// One line per cluster saying how it connects (never a secret), and a warning when TLS
/// certificates are not fully verified.
fn log_security(cluster: &str, security: &Security) {
    let tls = security.tls().map(|tls| {
        let verification = match tls.verification() {
            Verification::Full => "verified",
            Verification::NoHostname => "verified without host name check",
            Verification::None => "NOT verified",
        };
        format!(
            "TLS ({} crypto, server certificate {verification}{})",
            tidemark::kafka::tls::crypto_provider_name(),
            if tls.has_client_certificate() {
                ", client certificate"
            } else {
                ""
            }
        )
    });
    let sasl = security
        .sasl()
        .map(|sasl| format!("SASL {} {}", sasl.mechanism, sasl.credentials.describe()));
    let how: Vec<String> = tls.into_iter().chain(sasl).collect();
    tracing::info!(%cluster, protocol = security.protocol_name(), "{}", if how.is_empty() { "plain TCP".to_string() } else { how.join(", ") });
    match security.tls().map(|t| t.verification()) {
        Some(Verification::None) => {
            tracing::warn!(%cluster, "enable.ssl.certificate.verification = false: broker TLS certificates are NOT verified; anyone on the network path can impersonate the brokers. Use it for tests only")
        }
        Some(Verification::NoHostname) => {
            tracing::warn!(%cluster, "ssl.endpoint.identification.algorithm = none: broker certificates are not checked against their host names")
        }
        _ => {}
    }
}

async fn run(config: Config) -> anyhow::Result<()> {
    let exporter = Exporter::start(config).await?;
    shutdown_signal().await?;
    tracing::info!("shutting down");
    exporter.shutdown(SHUTDOWN_GRACE).await;
    Ok(())
}

async fn shutdown_signal() -> anyhow::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.context("cannot listen for SIGINT")?,
        _ = term.recv() => {}
    }
    Ok(())
}

/// `tidemark lag`'s flags (docs/operations.md, "tidemark lag").
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["config", "bootstrap"])))]
struct LagArgs {
    /// Read the clusters of this configuration file (every one, or --cluster's).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Only this cluster of the configuration file.
    #[arg(long = "cluster", value_name = "NAME", conflicts_with = "bootstrap")]
    cluster: Option<String>,

    /// Read this cluster instead of a configuration file.
    #[arg(long = "bootstrap", value_name = "HOST:PORT[,...]")]
    bootstrap: Option<String>,

    #[command(flatten)]
    connection: ConnectionArgs,

    /// Only groups whose names match this regex (unanchored: anchor with ^ and $).
    #[arg(long = "group", value_name = "REGEX")]
    group: Option<String>,

    /// Print one JSON document instead of tables (one per line with --watch).
    #[arg(long = "json")]
    json: bool,

    /// Read again every SECONDS until interrupted (the screen is cleared on a terminal).
    #[arg(long = "watch", value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..))]
    watch: Option<u64>,

    /// Exit with status 1 when a partition shown has a time lag above N seconds.
    #[arg(long = "max-lag-seconds", value_name = "N", value_parser = non_negative_seconds)]
    max_lag_seconds: Option<f64>,

    /// Exit with status 1 when a partition shown has an offset lag above N.
    #[arg(long = "max-lag", value_name = "N", value_parser = clap::value_parser!(i64).range(0..))]
    max_lag: Option<i64>,

    /// Give up on a cluster whose read takes longer than SECONDS (status 3).
    #[arg(long = "timeout", value_name = "SECONDS", default_value = "60", value_parser = clap::value_parser!(u64).range(1..))]
    timeout: u64,
}

/// How `--bootstrap` connects: each flag is the `consumer_properties` key it names, read
/// by the same rules as in a configuration file.
/// `Debug` redacts the passwords and secret `-X` values.
#[derive(clap::Args)]
#[command(next_help_heading = "Connection (with --bootstrap)")]
struct ConnectionArgs {
    /// security.protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL.
    #[arg(
        long = "security-protocol",
        value_name = "PROTOCOL",
        conflicts_with = "config"
    )]
    security_protocol: Option<String>,
    /// sasl.mechanism: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
    #[arg(
        long = "sasl-mechanism",
        value_name = "MECHANISM",
        conflicts_with = "config"
    )]
    sasl_mechanism: Option<String>,
    /// sasl.username.
    #[arg(long = "sasl-username", value_name = "USER", conflicts_with = "config")]
    sasl_username: Option<String>,
    /// sasl.password; better from the environment variable TIDEMARK_SASL_PASSWORD, which
    /// other users cannot see in the process list.
    #[arg(
        long = "sasl-password",
        value_name = "PASSWORD",
        conflicts_with = "config"
    )]
    sasl_password: Option<String>,
    /// sasl.oauthbearer.token.file: a file holding the OAUTHBEARER token.
    #[arg(
        long = "sasl-oauthbearer-token-file",
        value_name = "FILE",
        conflicts_with = "config"
    )]
    sasl_token_file: Option<String>,
    /// ssl.ca.location: PEM file of the CA certificates that sign the brokers'.
    #[arg(
        long = "ssl-ca-location",
        value_name = "FILE",
        conflicts_with = "config"
    )]
    ssl_ca_location: Option<String>,
    /// ssl.certificate.location: PEM file of the client certificate (mutual TLS).
    #[arg(
        long = "ssl-certificate-location",
        value_name = "FILE",
        conflicts_with = "config"
    )]
    ssl_certificate_location: Option<String>,
    /// ssl.key.location: PEM file of the client certificate's key.
    #[arg(
        long = "ssl-key-location",
        value_name = "FILE",
        conflicts_with = "config"
    )]
    ssl_key_location: Option<String>,
    /// ssl.key.password, for an encrypted key; better from TIDEMARK_SSL_KEY_PASSWORD.
    #[arg(
        long = "ssl-key-password",
        value_name = "PASSWORD",
        conflicts_with = "config"
    )]
    ssl_key_password: Option<String>,
    /// Any other consumer property, e.g. -X enable.ssl.certificate.verification=false,
    /// -X client.id=oncall, -X request.timeout.ms=5000 (repeatable).
    #[arg(
        short = 'X',
        long = "property",
        value_name = "KEY=VALUE",
        conflicts_with = "config"
    )]
    property: Vec<String>,
}

impl std::fmt::Debug for ConnectionArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<String>| v.as_ref().map(|_| config::REDACTED);
        let properties: Vec<String> = self
            .property
            .iter()
            .map(|p| match p.split_once('=') {
                Some((k, _)) if config::is_secret_key(k.trim()) => {
                    format!("{k}={}", config::REDACTED)
                }
                _ => p.clone(),
            })
            .collect();
        f.debug_struct("ConnectionArgs")
            .field("security_protocol", &self.security_protocol)
            .field("sasl_mechanism", &self.sasl_mechanism)
            .field("sasl_username", &self.sasl_username)
            .field("sasl_password", &redacted(&self.sasl_password))
            .field("sasl_token_file", &self.sasl_token_file)
            .field("ssl_ca_location", &self.ssl_ca_location)
            .field("ssl_certificate_location", &self.ssl_certificate_location)
            .field("ssl_key_location", &self.ssl_key_location)
            .field("ssl_key_password", &redacted(&self.ssl_key_password))
            .field("property", &properties)
            .finish()
    }
}

fn non_negative_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 0.0 => Ok(s),
        _ => Err(format!("{text:?} is not a number of seconds ≥ 0")),
    }
}

impl ConnectionArgs {
    /// The consumer properties the flags stand for; secrets from the environment when not
    /// given as flags.
    fn properties(&self) -> Result<std::collections::BTreeMap<String, String>, String> {
        let mut out = std::collections::BTreeMap::new();
        for entry in &self.property {
            let Some((key, value)) = entry.split_once('=') else {
                return Err(format!("-X {entry:?}: expected KEY=VALUE"));
            };
            if out
                .insert(key.trim().to_owned(), value.to_owned())
                .is_some()
            {
                return Err(format!("-X {:?} is given twice", key.trim()));
            }
        }
        let from_env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let named = [
            ("security.protocol", self.security_protocol.clone()),
            ("sasl.mechanism", self.sasl_mechanism.clone()),
            ("sasl.username", self.sasl_username.clone()),
            (
                "sasl.password",
                (self.sasl_password.clone()).or_else(|| from_env("TIDEMARK_SASL_PASSWORD")),
            ),
            ("sasl.oauthbearer.token.file", self.sasl_token_file.clone()),
            ("ssl.ca.location", self.ssl_ca_location.clone()),
            (
                "ssl.certificate.location",
                self.ssl_certificate_location.clone(),
            ),
            ("ssl.key.location", self.ssl_key_location.clone()),
            (
                "ssl.key.password",
                (self.ssl_key_password.clone()).or_else(|| from_env("TIDEMARK_SSL_KEY_PASSWORD")),
            ),
        ];
        for (key, value) in named {
            if let Some(value) = value {
                if out.insert(key.to_owned(), value).is_some() {
                    return Err(format!("{key} is given both as a flag and with -X"));
                }
            }
        }
        Ok(out)
    }
}

/// The clusters `tidemark lag` reads and the settings to read them with; `Err`: the exit
/// status, the problem reported.
fn lag_targets(
    args: &LagArgs,
    strict: bool,
) -> Result<(Vec<config::ClusterSettings>, config::ExporterConfig), ExitCode> {
    let usage = |problem: String| {
        eprintln!("error: {problem}");
        ExitCode::from(CONFIG_ERROR)
    };
    let config = match (&args.config, &args.bootstrap) {
        (Some(path), _) => load(path, strict)?,
        (None, Some(bootstrap)) => {
            let properties = args.connection.properties().map_err(usage)?;
            let config = config::single_cluster("command line", bootstrap, bootstrap, &properties)
                .map_err(|e| usage(e.to_string()))?;
            vet(config, strict)?
        }
        (None, None) => return Err(usage("give --config FILE or --bootstrap HOST:PORT".into())),
    };
    let mut clusters = config.clusters;
    if let Some(name) = &args.cluster {
        let names: Vec<String> = clusters.iter().map(|c| format!("{:?}", c.name)).collect();
        clusters.retain(|c| &c.name == name);
        if clusters.is_empty() {
            return Err(usage(format!(
                "--cluster {name:?}: no such cluster in the file; it has {}",
                names.join(", ")
            )));
        }
    }
    Ok((clusters, config.exporter))
}

/// `tidemark lag`: exit status 0, 1 (over a threshold), 2 (usage) or 3 (a cluster could
/// not be read).
fn lag(args: LagArgs, strict: bool) -> ExitCode {
    let (clusters, exporter) = match lag_targets(&args, strict) {
        Ok(targets) => targets,
        Err(code) => return code,
    };
    let group = match args.group.as_deref().map(regex::Regex::new).transpose() {
        Ok(group) => group,
        Err(e) => {
            eprintln!("error: --group: not a regex: {e}");
            return ExitCode::from(CONFIG_ERROR);
        }
    };
    let options = oneshot::Options {
        group,
        json: args.json,
        limits: oneshot::Limits {
            max_lag_seconds: args.max_lag_seconds,
            max_lag: args.max_lag,
        },
        watch: args.watch.map(Duration::from_secs),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut session = oneshot::Session::new(clusters, &exporter, Duration::from_secs(args.timeout));
    let stdout = std::io::stdout();
    let terminal = std::io::IsTerminal::is_terminal(&stdout);
    let stop = async {
        if shutdown_signal().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let ran = runtime.block_on(oneshot::run(
        &mut session,
        &options,
        &mut stdout.lock(),
        terminal,
        stop,
    ));
    runtime.shutdown_timeout(Duration::from_millis(100));
    match ran {
        Ok((doc, status)) => {
            report_breaches(&doc, options.limits);
            ExitCode::from(status.code())
        }
        // `tidemark lag | head`: the reader has what it wanted.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The partitions over a threshold, on stderr (at most 20 named).
fn report_breaches(doc: &oneshot::Document, limits: oneshot::Limits) {
    const SHOWN: usize = 20;
    let breaches = oneshot::breaches(doc, limits);
    if breaches.is_empty() {
        return;
    }
    eprintln!(
        "{} partition{} over the threshold (--max-lag-seconds {}, --max-lag {}):",
        breaches.len(),
        if breaches.len() == 1 { "" } else { "s" },
        limits.max_lag_seconds.map_or("-".into(), |s| s.to_string()),
        limits.max_lag.map_or("-".into(), |n| n.to_string()),
    );
    for line in breaches.iter().take(SHOWN) {
        eprintln!("  {line}");
    }
    if breaches.len() > SHOWN {
        eprintln!("  and {} more", breaches.len() - SHOWN);
    }
}
