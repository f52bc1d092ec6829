//! The local vault's data directory: its TLS identity and its access token.
//!
//! On first start the directory (mode 0700) gets:
//!
//! | file | mode | what |
//! |---|---|---|
//! | `ca.pem` | 0644 | a private CA, the certificate that clients trust |
//! | `server.pem` | 0644 | the server certificate (localhost, 127.0.0.1, ::1) and the CA |
//! | `server-key.pem` | 0600 | the server's private key |
//! | `token` | 0600 | the bearer token every request must carry |
//! | `backup.key` | 0600 | the key that seals backup blobs, so only this vault reads them back |
//!
//! The CA's private key is never written: nobody, kvrun included, can issue another
//! certificate under this CA. Delete the four files to start over.
//!
//! A data directory, or a private file in it, that another user owns or can write is refused
//! ([`crate::private_files`]): whoever could plant the token would read every secret.

use crate::error::{Error, Result};
use crate::private_files;
use crate::secret::SecretString;
use rand::RngCore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;

/// What the local vault loads from its data directory.
pub struct Identity {
    /// PEM of the CA certificate (`ca.pem`).
    pub ca_pem: Vec<u8>,
    /// The server certificate chain.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The server's private key.
    pub key: PrivateKeyDer<'static>,
    /// The access token.
    pub token: SecretString,
    /// The key of backup blobs (hex of 32 bytes).
    pub backup_key: SecretString,
}

/// Loads the identity from `dir`, creating what is missing.
pub fn load_or_create(dir: &Path) -> Result<Identity> {
    private_files::private_dir(dir, "the local vault's data directory")?;
    let ca = dir.join("ca.pem");
    let server = dir.join("server.pem");
    let server_key = dir.join("server-key.pem");
    if !(ca.is_file() && server.is_file() && server_key.is_file()) {
        generate_certificates(dir)?;
    }
    let token_path = dir.join("token");
    let backup_key_path = dir.join("backup.key");
    for path in [&token_path, &backup_key_path, &server_key] {
        private_files::check_file(path, "the local vault's private file")?;
    }
    for path in [&token_path, &backup_key_path] {
        if !path.is_file() {
            let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
            rand::thread_rng().fill_bytes(&mut bytes[..]);
            write_private(path, hex::encode(&bytes[..]).as_bytes())?;
        }
    }
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| {
            Error::io(
                format!(
                    "could not read {} (is the data directory readable by this user?)",
                    path.display()
                ),
                e,
            )
        })
    };
    let ca_pem = read(&ca)?;
    let cert_chain = CertificateDer::pem_slice_iter(&read(&server)?)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("{} is not valid PEM: {e}", server.display())))?;
    let key = PrivateKeyDer::from_pem_slice(&read(&server_key)?)
        .map_err(|e| Error::Config(format!("{} is not a PEM key: {e}", server_key.display())))?;
    let read_secret = |path: &Path| -> Result<SecretString> {
        let text = SecretString::new(
            String::from_utf8(read(path)?)
                .map_err(|_| Error::Config(format!("{} is not text", path.display())))?,
        );
        let trimmed = SecretString::new(text.expose().trim().to_string());
        if trimmed.is_empty() {
            return Err(Error::Config(format!(
                "{} is empty; delete it to have a new one generated",
                path.display()
            )));
        }
        Ok(trimmed)
    };
    Ok(Identity {
        ca_pem,
        cert_chain,
        key,
        token: read_secret(&token_path)?,
        backup_key: read_secret(&backup_key_path)?,
    })
}

fn generate_certificates(dir: &Path) -> Result<()> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
        KeyUsagePurpose, SanType,
    };
    let tls = |e: rcgen::Error| {
        Error::Config(format!(
            "generating the local vault's certificates failed: {e}"
        ))
    };
    let year = 1970
        + (std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            / 31_556_952) as i32;

    let ca_key = KeyPair::generate().map_err(tls)?;
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "kvrun local vault CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    ca_params.not_after = rcgen::date_time_ymd(year + 20, 1, 1);
    let ca_cert = ca_params.self_signed(&ca_key).map_err(tls)?;

    let server_key = KeyPair::generate().map_err(tls)?;
    let mut params = CertificateParams::default();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params.subject_alt_names = vec![
        SanType::DnsName("localhost".try_into().map_err(tls)?),
        SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()),
    ];
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = rcgen::date_time_ymd(year - 1, 1, 1);
    params.not_after = rcgen::date_time_ymd(year + 10, 1, 1);
    let server_cert = params
        .signed_by(&server_key, &ca_cert, &ca_key)
        .map_err(tls)?;

    write_private(
        &dir.join("server-key.pem"),
        server_key.serialize_pem().as_bytes(),
    )?;
    write_public(
        &dir.join("server.pem"),
        format!("{}{}", server_cert.pem(), ca_cert.pem()).as_bytes(),
    )?;
    write_public(&dir.join("ca.pem"), ca_cert.pem().as_bytes())
}

/// Writes a file readable by its owner only (0600), replacing it atomically.
fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    private_files::write(path, contents, 0o600, "the local vault's private file")
}

fn write_public(path: &Path, contents: &[u8]) -> Result<()> {
    private_files::write(path, contents, 0o644, "the local vault's certificate")
}
