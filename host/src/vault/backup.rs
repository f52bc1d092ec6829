//! Backup blobs: every version of one secret, sealed so that only the vault that made the
//! blob (the holder of `DATA_DIR/backup.key`) can read it back.
//!
//! A blob is base64url (no padding) of `KVRUNBK1 || nonce (12 bytes) || AES-256-GCM(JSON)`,
//! where the JSON lists the versions with their values and attributes. Anything else, or a
//! blob sealed by another vault, is refused as "Malformed backup blob".

use super::storage::{NewVersion, StoredVersion};
use crate::error::{Error, Result};
use crate::secret::SecretString;
use base64::Engine as _;
use rand::RngCore;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use zeroize::Zeroizing;

const MAGIC: &[u8] = b"KVRUNBK1";

/// The sealing key.
pub struct BackupKey(LessSafeKey);

#[derive(Serialize, Deserialize)]
struct Sealed {
    name: String,
    version: String,
    value: String,
    #[serde(rename = "contentType")]
    content_type: Option<String>,
    tags: BTreeMap<String, String>,
    enabled: bool,
    nbf: Option<i64>,
    exp: Option<i64>,
    created: i64,
    updated: i64,
}

impl BackupKey {
    /// The key from its hex form (`DATA_DIR/backup.key`).
    pub fn from_hex(hex_key: &SecretString) -> Result<BackupKey> {
        let bytes = Zeroizing::new(hex::decode(hex_key.expose()).map_err(|_| {
            Error::Config("backup.key is not hex; delete it to have a new one generated".into())
        })?);
        let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| {
            Error::Config(
                "backup.key is not 32 bytes; delete it to have a new one generated".into(),
            )
        })?;
        Ok(BackupKey(LessSafeKey::new(key)))
    }

    /// Seals every version of one secret into a blob.
    pub fn seal(&self, versions: &[StoredVersion]) -> String {
        let sealed: Vec<Sealed> = versions
            .iter()
            .map(|v| Sealed {
                name: v.data.name.clone(),
                version: v.version.clone(),
                value: v.data.value.expose().to_string(),
                content_type: v.data.content_type.clone(),
                tags: v.data.tags.clone(),
                enabled: v.data.enabled,
                nbf: v.data.nbf,
                exp: v.data.exp,
                created: v.created,
                updated: v.updated,
            })
            .collect();
        let mut plain = Zeroizing::new(serde_json::to_vec(&sealed).expect("versions serialise"));
        // Wipe the copies of the values now that they are serialised.
        sealed
            .into_iter()
            .for_each(|s| drop(SecretString::new(s.value)));
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let tag = self
            .0
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(MAGIC),
                &mut plain,
            )
            .expect("sealing a bounded buffer cannot fail");
        let mut blob =
            Vec::with_capacity(MAGIC.len() + NONCE_LEN + plain.len() + tag.as_ref().len());
        blob.extend_from_slice(MAGIC);
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&plain);
        blob.extend_from_slice(tag.as_ref());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(blob)
    }

    /// Opens a blob; `None` if it is not one of ours.
    pub fn open(&self, blob: &str) -> Option<Vec<StoredVersion>> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(blob.trim_end_matches('='))
            .ok()?;
        let rest = raw.strip_prefix(MAGIC)?;
        if rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let mut buffer = Zeroizing::new(sealed.to_vec());
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(MAGIC), &mut buffer)
            .ok()?;
        let sealed: Vec<Sealed> = serde_json::from_slice(plain).ok()?;
        let first = sealed.first()?.name.to_ascii_uppercase();
        if sealed.iter().any(|s| s.name.to_ascii_uppercase() != first) {
            return None;
        }
        Some(
            sealed
                .into_iter()
                .map(|s| StoredVersion {
                    version: s.version,
                    created: s.created,
                    updated: s.updated,
                    data: NewVersion {
                        name: s.name,
                        value: SecretString::new(s.value),
                        content_type: s.content_type,
                        tags: s.tags,
                        enabled: s.enabled,
                        nbf: s.nbf,
                        exp: s.exp,
                    },
                })
                .collect(),
        )
    }
}
