//! Test certificates made at test time with `rcgen`: a CA, a server certificate for
//! 127.0.0.1 and localhost, a client certificate for mTLS (also with an encrypted key), and
//! a second, unrelated CA. Files are written to a fresh directory removed on drop.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair,
};

/// Password of `client-encrypted.key`.
pub const CLIENT_KEY_PASSWORD: &str = "client-key-pass";

/// A directory of PEM files: `ca.pem`, `server.pem` (certificate + key, HAProxy's format),
/// `server.crt`, `server.key`, `client.crt`, `client.key`, `client-encrypted.key`,
/// `other-ca.pem`.
pub struct Pki {
    pub dir: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA")
}

fn leaf(
    issuer: &CertifiedIssuer<'static, KeyPair>,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (String, KeyPair) {
    let key = KeyPair::generate().expect("leaf key");
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .expect("leaf params");
    params.distinguished_name.push(DnType::CommonName, names[0]);
    params.extended_key_usages = vec![usage];
    let cert = params.signed_by(&key, issuer).expect("sign leaf");
    (cert.pem(), key)
}

/// Encrypted PKCS#8 (PBES2: PBKDF2-SHA256 + AES-256-CBC), as `openssl pkcs8 -topk8 -v2
/// aes-256-cbc` writes it.
fn encrypt_key(key: &KeyPair, password: &str) -> String {
    let der = key.serialize_der();
    let info = pkcs8::PrivateKeyInfo::try_from(der.as_slice()).expect("pkcs8");
    let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(
        2048,
        b"tidemark-test-salt",
        b"0123456789abcdef",
    )
    .expect("pbes2 parameters");
    let encrypted = info
        .encrypt_with_params(params, password)
        .expect("encrypt key");
    encrypted
        .to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
        .expect("pem")
        .to_string()
}

impl Default for Pki {
    fn default() -> Pki {
        Pki::new()
    }
}

impl Pki {
    pub fn new() -> Pki {
        let dir = std::env::temp_dir().join(super::unique_name("tidemark-pki"));
        std::fs::create_dir_all(&dir).expect("create the PKI directory");
        let ca1 = ca("tidemark test CA");
        let (server_crt, server_key) = leaf(
            &ca1,
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let (client_crt, client_key) = leaf(
            &ca1,
            &["tidemark-client"],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let other = ca("someone else's CA");
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("write {name}: {e}"))
        };
        write("ca.pem", &ca1.pem());
        write("other-ca.pem", &other.pem());
        write("server.crt", &server_crt);
        write("server.key", &server_key.serialize_pem());
        write(
            "server.pem",
            &format!("{server_crt}{}", server_key.serialize_pem()),
        );
        write("client.crt", &client_crt);
        write("client.key", &client_key.serialize_pem());
        write(
            "client-encrypted.key",
            &encrypt_key(&client_key, CLIENT_KEY_PASSWORD),
        );
        Pki { dir }
    }

    /// The path of one of the files, as a string for a config.
    pub fn path(&self, name: &str) -> String {
        let p: &Path = &self.dir.join(name);
        p.display().to_string()
    }
}
