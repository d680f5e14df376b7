//! An independent SCRAM server (RFC 5802, with the SHA-256 / SHA-512 hashes of RFC 7677 and
//! Kafka's KIP-84), written from the RFC with `sha2`, `hmac` and `pbkdf2`: it shares no code
//! with the SCRAM client tidemark uses (rsasl), so the two checking each other means
//! something. RFC 7677's SCRAM-SHA-256 example pins this implementation (see tests/sasl.rs).
//!
//! Kafka's dialect: no channel binding (`n,,` only), `a=` authzid ignored, extensions
//! (`,tokenauth=true`) not used by tidemark.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

/// The hash of a SCRAM mechanism.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    /// `SCRAM-SHA-256` / `SCRAM-SHA-512`.
    pub fn for_mechanism(name: &str) -> Option<ScramHash> {
        match name {
            "SCRAM-SHA-256" => Some(Self::Sha256),
            "SCRAM-SHA-512" => Some(Self::Sha512),
            _ => None,
        }
    }

    pub fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                let mut m = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
            Self::Sha512 => {
                let mut m = Hmac::<Sha512>::new_from_slice(key).expect("any key length");
                m.update(data);
                m.finalize().into_bytes().to_vec()
            }
        }
    }

    pub fn h(self, data: &[u8]) -> Vec<u8> {
        match self {
            Self::Sha256 => Sha256::digest(data).to_vec(),
            Self::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    /// Hi(password, salt, i) = PBKDF2 with HMAC as the PRF, output one hash long.
    pub fn hi(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            Self::Sha256 => {
                let mut out = vec![0u8; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            Self::Sha512 => {
                let mut out = vec![0u8; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

/// The keys RFC 5802 §3 derives from a password.
pub struct ScramKeys {
    pub client_key: Vec<u8>,
    pub stored_key: Vec<u8>,
    pub server_key: Vec<u8>,
}

pub fn keys(hash: ScramHash, password: &str, salt: &[u8], iterations: u32) -> ScramKeys {
    let salted = hash.hi(password.as_bytes(), salt, iterations);
    let client_key = hash.hmac(&salted, b"Client Key");
    let stored_key = hash.h(&client_key);
    let server_key = hash.hmac(&salted, b"Server Key");
    ScramKeys {
        client_key,
        stored_key,
        server_key,
    }
}

/// ClientProof = ClientKey XOR HMAC(StoredKey, AuthMessage), base64.
pub fn client_proof(keys: &ScramKeys, hash: ScramHash, auth_message: &str) -> String {
    let signature = hash.hmac(&keys.stored_key, auth_message.as_bytes());
    let proof: Vec<u8> = keys
        .client_key
        .iter()
        .zip(signature)
        .map(|(a, b)| a ^ b)
        .collect();
    B64.encode(proof)
}

/// ServerSignature = HMAC(ServerKey, AuthMessage), base64.
pub fn server_signature(keys: &ScramKeys, hash: ScramHash, auth_message: &str) -> String {
    B64.encode(hash.hmac(&keys.server_key, auth_message.as_bytes()))
}

/// SCRAM's `saslname` unescaping: `=2C` → `,`, `=3D` → `=`.
fn unescape(name: &str) -> String {
    name.replace("=2C", ",").replace("=3D", "=")
}

/// One server side of one SCRAM exchange.
pub struct ScramServer {
    hash: ScramHash,
    username: String,
    keys: ScramKeys,
    salt: Vec<u8>,
    iterations: u32,
    server_nonce: String,
    /// client-first-message-bare, server-first-message (after `client_first`).
    first: Option<(String, String, String)>,
}

impl ScramServer {
    /// A server knowing one user. `server_nonce` is appended to the client's nonce.
    pub fn new(
        hash: ScramHash,
        username: &str,
        password: &str,
        salt: &[u8],
        iterations: u32,
        server_nonce: &str,
    ) -> ScramServer {
        ScramServer {
            hash,
            username: username.to_owned(),
            keys: keys(hash, password, salt, iterations),
            salt: salt.to_vec(),
            iterations,
            server_nonce: server_nonce.to_owned(),
            first: None,
        }
    }

    /// client-first-message → server-first-message. Errors describe what is wrong with the
    /// client's message (an unknown user is reported as such).
    pub fn client_first(&mut self, message: &[u8]) -> Result<String, String> {
        let text = std::str::from_utf8(message).map_err(|_| "client-first is not UTF-8")?;
        let bare = text
            .strip_prefix("n,,")
            .or_else(|| {
                // "n,a=authzid,": Kafka allows an authzid equal to the user.
                text.strip_prefix("n,a=")
                    .and_then(|r| r.split_once(',').map(|(_, b)| b))
            })
            .ok_or_else(|| format!("client-first {text:?} has no \"n,,\" GS2 header"))?;
        let mut user = None;
        let mut nonce = None;
        for attr in bare.split(',') {
            if let Some(v) = attr.strip_prefix("n=") {
                user = Some(unescape(v));
            } else if let Some(v) = attr.strip_prefix("r=") {
                nonce = Some(v.to_owned());
            }
        }
        let user = user.ok_or("client-first has no n=")?;
        let client_nonce = nonce.ok_or("client-first has no r=")?;
        if user != self.username {
            return Err(format!("unknown user {user:?}"));
        }
        let nonce = format!("{client_nonce}{}", self.server_nonce);
        let server_first = format!(
            "r={nonce},s={},i={}",
            B64.encode(&self.salt),
            self.iterations
        );
        self.first = Some((bare.to_owned(), server_first.clone(), nonce));
        Ok(server_first)
    }

    /// client-final-message → the AuthMessage and, when the proof is right, the
    /// server-final-message `v=...`. `Err` is an invalid proof (or a malformed message).
    pub fn client_final(&mut self, message: &[u8]) -> Result<String, String> {
        let (bare, server_first, nonce) = self
            .first
            .take()
            .ok_or("client-final before client-first")?;
        let text = std::str::from_utf8(message).map_err(|_| "client-final is not UTF-8")?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| format!("client-final {text:?} has no proof"))?;
        if !without_proof.starts_with("c=biws,") {
            return Err(format!(
                "client-final {text:?}: channel binding is not \"biws\" (n,,)"
            ));
        }
        let got_nonce = without_proof
            .split(',')
            .find_map(|a| a.strip_prefix("r="))
            .ok_or("client-final has no r=")?;
        if got_nonce != nonce {
            return Err("client-final nonce differs from the server's".into());
        }
        let auth_message = format!("{bare},{server_first},{without_proof}");
        if proof != client_proof(&self.keys, self.hash, &auth_message) {
            return Err("invalid proof".into());
        }
        Ok(format!(
            "v={}",
            server_signature(&self.keys, self.hash, &auth_message)
        ))
    }
}
