//! The `tidemark` binary: CLI, logging, signals. Everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use tidemark::config::{self, Config};
use tidemark::exporter::Exporter;
use tidemark::kafka::sasl::{Credentials, TokenSource};
use tidemark::kafka::tls::Verification;
use tidemark::kafka::Security;

/// Exit status for an invalid configuration.
const CONFIG_ERROR: u8 = 2;
/// How long running work may take to wind down after SIGTERM/SIGINT.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(1500);

/// Kafka consumer-group lag exporter with exact time lag.
#[derive(Parser, Debug)]
#[command(name = "tidemark", version, about)]
struct Cli {
    /// Configuration file (klag-exporter's TOML format).
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Log level: error, warn, info, debug or trace (or a tracing filter directive).
    #[arg(
        short = 'l',
        long = "log-level",
        value_name = "LEVEL",
        default_value = "info"
    )]
    log_level: String,

    /// Log line format on stderr: `text` (colour only on a terminal, never with NO_COLOR)
    /// or `json` (one object per line, for log pipelines).
    #[arg(long = "log-format", value_name = "FORMAT", default_value = "text")]
    log_format: LogFormat,

    /// Refuse keys tidemark does not know and consumer properties it does not support
    /// (status 2, each named with file and line) instead of warning about them.
    #[arg(long = "strict", env = "TIDEMARK_STRICT", value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1, default_missing_value = "true", default_value = "false")]
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = match tracing_subscriber::EnvFilter::try_new(&cli.log_level) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "error: --log-level {:?} is not a level or filter: {e}",
                cli.log_level
            );
            return ExitCode::from(CONFIG_ERROR);
        }
    };
    init_logging(filter, cli.log_format);

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
    let sasl = security.sasl().map(|sasl| match &sasl.credentials {
        Credentials::Password { username, .. } => {
            format!("SASL {} as {username:?}", sasl.mechanism)
        }
        Credentials::Token(TokenSource::Static(_)) => {
            format!("SASL {} with a static token", sasl.mechanism)
        }
        Credentials::Token(TokenSource::File(f)) => {
            format!(
                "SASL {} with the token in {}",
                sasl.mechanism,
                f.path().display()
            )
        }
    });
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
