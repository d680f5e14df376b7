//! Where an OAUTHBEARER token comes from (a static value, a file, an OIDC token endpoint),
//! and the SASL extensions sent with it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::aws::AwsIam;
use super::oidc::Oidc;
use super::Secret;

/// Where an OAUTHBEARER token comes from.
#[derive(Clone, Debug)]
pub enum TokenSource {
    /// `sasl.oauthbearer.token`.
    Static(Secret),
    /// `sasl.oauthbearer.token.file`, read at every authentication.
    File(TokenFile),
    /// `sasl.oauthbearer.method = oidc`: fetched from a token endpoint, cached and shared
    /// by every connection of the cluster.
    Oidc(Arc<Oidc>),
    /// `sasl.oauthbearer.method = aws_msk_iam`: an MSK IAM token (a presigned URL),
    /// signed anew at every login.
    MskIam(Arc<AwsIam>),
}

impl TokenSource {
    /// The token to send now, fetching it when it must be.
    pub async fn token(&self) -> Result<Secret, String> {
        match self {
            Self::Oidc(oidc) => oidc.token().await,
            Self::MskIam(iam) => iam.oauth_token(std::time::SystemTime::now()).await,
            _ => self.token_now(),
        }
    }

    /// The token of a source that needs no network (static, file); an error for the others.
    pub fn token_now(&self) -> Result<Secret, String> {
        match self {
            Self::Static(t) => Ok(t.clone()),
            Self::File(f) => f.read(),
            Self::Oidc(_) | Self::MskIam(_) => Err("this token is made asynchronously".into()),
        }
    }

    /// How the token is obtained, for a log line (never the token).
    pub fn describe(&self) -> String {
        match self {
            Self::Static(_) => "a static token".into(),
            Self::File(f) => format!("the token in {}", f.path().display()),
            Self::Oidc(o) => format!(
                "tokens from {} as client {:?}",
                o.settings().endpoint,
                o.settings().client_id
            ),
            Self::MskIam(iam) => format!("MSK IAM tokens from {}", iam.describe()),
        }
    }
}

/// A token file. The last token read is kept only to notice (and log) a rotation.
#[derive(Clone)]
pub struct TokenFile {
    path: PathBuf,
    last: Arc<Mutex<Option<Secret>>>,
}

impl fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .finish()
    }
}

impl TokenFile {
    /// Read and check the file now (at start); errors say what is wrong with it.
    pub fn open(path: impl Into<PathBuf>) -> Result<TokenFile, String> {
        let file = TokenFile {
            path: path.into(),
            last: Arc::default(),
        };
        file.read()?;
        Ok(file)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The token in the file now: its text without surrounding whitespace.
    pub fn read(&self) -> Result<Secret, String> {
        let text = std::fs::read_to_string(&self.path)
            .map_err(|e| format!("cannot read token file {}: {e}", self.path.display()))?;
        let token = check_token(text.trim())
            .map_err(|problem| format!("token file {}: {problem}", self.path.display()))?;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.as_ref().is_some_and(|l| *l != token) {
            tracing::info!(file = %self.path.display(), "OAUTHBEARER token file changed; new connections use the new token");
        }
        *last = Some(token.clone());
        Ok(token)
    }
}

/// A token must be non-empty and free of the control characters that delimit the
/// OAUTHBEARER message (RFC 7628).
pub fn check_token(token: &str) -> Result<Secret, String> {
    if token.is_empty() {
        return Err("the token is empty".into());
    }
    if token.chars().any(|c| c.is_control() || c == ' ') {
        return Err("the token contains spaces or control characters".into());
    }
    Ok(Secret::new(token))
}

/// OAUTHBEARER extensions (RFC 7628 §3.1 key/value pairs besides `auth`), from
/// `sasl.oauthbearer.extensions = "k=v,k=v"`; Confluent Cloud wants `logicalCluster` and
/// `identityPoolId` there. Not secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extensions(Vec<(String, String)>);

impl Extensions {
    /// Parse `k=v,k=v` with Kafka's rules: a key is letters only and not `auth`, a value is
    /// printable ASCII (spaces allowed), each key once.
    pub fn parse(text: &str) -> Result<Extensions, String> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for item in text.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (key, value) = item
                .split_once('=')
                .ok_or_else(|| format!("{item:?} is not key=value"))?;
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphabetic()) {
                return Err(format!("extension key {key:?} must be letters only"));
            }
            if key == "auth" {
                return Err("\"auth\" is reserved for the token".into());
            }
            if value.is_empty() || !value.chars().all(|c| c == ' ' || c.is_ascii_graphic()) {
                return Err(format!(
                    "the value of extension {key:?} must be printable ASCII and not empty"
                ));
            }
            if pairs.iter().any(|(k, _)| k == key) {
                return Err(format!("extension {key:?} is given twice"));
            }
            pairs.push((key.to_owned(), value.to_owned()));
        }
        Ok(Extensions(pairs))
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
