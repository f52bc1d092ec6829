//! The audit key: 32 random bytes that make fingerprints and chain the records of every run.
//!
//! - **Fingerprint**: `HMAC-SHA256(K_f, value)`, the first 16 bytes in hex, where
//!   `K_f = HMAC-SHA256(key, "kvrun audit fingerprint v1")`. The same value always has the
//!   same fingerprint under one key, so `kvrun audit match` traces a leaked string to the runs
//!   that read or used it; without the key a fingerprint tells nothing about the value (a run
//!   that read the key could test guesses of a use-only value offline against any log it sees,
//!   which is why the key is a kept file: never in a view, never under a writable `--dir`).
//! - **Chain**: each record's `mac` is `HMAC-SHA256(K_c, the record up to its mac)`, 16 bytes
//!   in hex, with `K_c = HMAC-SHA256(key, "kvrun audit chain v1")`; the record names its run,
//!   its place (`seq`) and its predecessor's mac (`prev`), so nobody without the key can
//!   remove, change, reorder or forge a record unseen ([`super::verify`]).
//!
//! The key is `DATA_DIR/audit.key`, made on first use (mode 0600, never replaced once there:
//! two processes that make it at once keep the first), or a file the operator names
//! (`--audit-key PATH`, `KVRUN_AUDIT_KEY`) so that a fleet shares one key.

use crate::error::{Error, Result};
use ring::hmac;
use std::fmt;
use std::path::Path;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "audit.key";

/// How many bytes the key file holds.
pub const KEY_BYTES: usize = 32;

/// The audit key (see the module docs). Never printed.
pub struct AuditKey {
    fingerprint: hmac::Key,
    chain: hmac::Key,
}

impl fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AuditKey(…)")
    }
}

impl AuditKey {
    /// The key made of `bytes`.
    pub fn from_bytes(bytes: &[u8; KEY_BYTES]) -> AuditKey {
        let root = hmac::Key::new(hmac::HMAC_SHA256, bytes);
        let derive =
            |label: &[u8]| hmac::Key::new(hmac::HMAC_SHA256, hmac::sign(&root, label).as_ref());
        AuditKey {
            fingerprint: derive(b"kvrun audit fingerprint v1"),
            chain: derive(b"kvrun audit chain v1"),
        }
    }

    /// A new random key that is kept nowhere (a run whose records need not be verified
    /// later, such as a test's).
    pub fn ephemeral() -> AuditKey {
        let mut bytes = zeroize::Zeroizing::new([0u8; KEY_BYTES]);
        rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, bytes.as_mut());
        AuditKey::from_bytes(&bytes)
    }

    /// The key the operator named: the file must exist, be this user's, writable by nobody
    /// else, and hold exactly 32 bytes.
    pub fn named(path: &Path) -> Result<AuditKey> {
        crate::private_files::check_file(path, "the audit key")?;
        let bytes = zeroize::Zeroizing::new(std::fs::read(path).map_err(|e| {
            Error::io(
                format!(
                    "could not read the audit key {} (make one with `head -c 32 /dev/urandom > FILE`, or leave out --audit-key to use the data directory's)",
                    path.display()
                ),
                e,
            )
        })?);
        let bytes: &[u8; KEY_BYTES] = bytes.as_slice().try_into().map_err(|_| {
            Error::Config(format!(
                "the audit key {} holds {} bytes, not {KEY_BYTES}: make it with `head -c {KEY_BYTES} /dev/urandom > FILE`",
                path.display(),
                bytes.len()
            ))
        })?;
        Ok(AuditKey::from_bytes(bytes))
    }

    /// The key a run uses, and its file: the one the operator named, else the data
    /// directory's (`data_dir`, or the default one: [`crate::vault::LocalVaultOptions::default_data_dir`]).
    pub fn resolve(
        named: Option<&Path>,
        data_dir: Option<&Path>,
    ) -> Result<(AuditKey, std::path::PathBuf)> {
        if let Some(path) = named {
            return Ok((AuditKey::named(path)?, path.to_path_buf()));
        }
        let dir = match data_dir {
            Some(dir) => dir.to_path_buf(),
            None => crate::vault::LocalVaultOptions::default_data_dir()?,
        };
        Ok((AuditKey::in_data_dir(&dir)?, dir.join(KEY_FILE)))
    }

    /// The data directory's key, `DIR/audit.key`, made on first use.
    pub fn in_data_dir(dir: &Path) -> Result<AuditKey> {
        crate::private_files::private_dir(dir, "the data directory")?;
        let path = dir.join(KEY_FILE);
        if !path.exists() {
            make(&path)?;
        }
        AuditKey::named(&path)
    }

    /// The fingerprint of `value` (see the module docs): 32 hex digits.
    pub fn fingerprint(&self, value: &[u8]) -> String {
        hex::encode(&hmac::sign(&self.fingerprint, value).as_ref()[..16])
    }

    /// The chain mac of `record` (a record's text up to its mac): 32 hex digits.
    pub(crate) fn mac(&self, record: &[u8]) -> String {
        hex::encode(&hmac::sign(&self.chain, record).as_ref()[..16])
    }

    /// Whether `mac` (32 hex digits) is the chain mac of `record`, in constant time.
    pub(crate) fn verify(&self, record: &[u8], mac: &str) -> bool {
        use subtle::ConstantTimeEq;
        let expected = self.mac(record);
        mac.len() == expected.len() && bool::from(expected.as_bytes().ct_eq(mac.as_bytes()))
    }
}

/// Writes a new random key to `path`, mode 0600, unless another process wrote one first (the
/// first stays: records already chained under it must still verify).
fn make(path: &Path) -> Result<()> {
    let mut bytes = zeroize::Zeroizing::new([0u8; KEY_BYTES]);
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, bytes.as_mut());
    crate::private_files::write_new(path, bytes.as_ref(), "the audit key")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_data_directorys_key_is_made_once_private_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let first = AuditKey::in_data_dir(&data).unwrap();
        let path = data.join(KEY_FILE);
        let metadata = std::fs::metadata(&path).unwrap();
        assert_eq!(metadata.len(), KEY_BYTES as u64);
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
        let again = AuditKey::in_data_dir(&data).unwrap();
        assert_eq!(first.fingerprint(b"v"), again.fingerprint(b"v"));
        assert_ne!(first.fingerprint(b"v"), first.fingerprint(b"w"));
        assert_ne!(
            first.fingerprint(b"v"),
            AuditKey::ephemeral().fingerprint(b"v")
        );
        assert_eq!(format!("{first:?}"), "AuditKey(…)");
    }

    #[test]
    fn a_named_key_must_be_32_private_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let missing = AuditKey::named(&path).unwrap_err().to_string();
        assert!(
            missing.contains("could not read the audit key"),
            "{missing}"
        );
        std::fs::write(&path, b"short").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let short = AuditKey::named(&path).unwrap_err().to_string();
        assert!(short.contains("holds 5 bytes, not 32"), "{short}");
        std::fs::write(&path, [7u8; 32]).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(AuditKey::named(&path).is_err(), "others can write it");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let key = AuditKey::named(&path).unwrap();
        assert_eq!(
            key.fingerprint(b"v"),
            AuditKey::from_bytes(&[7u8; 32]).fingerprint(b"v")
        );
        let mac = key.mac(b"{\"a\":1");
        assert!(key.verify(b"{\"a\":1", &mac));
        assert!(!key.verify(b"{\"a\":2", &mac));
        assert!(!AuditKey::ephemeral().verify(b"{\"a\":1", &mac));
    }
}
