//! The application key, field encryption (AES-256-GCM) and signing (HMAC-SHA256).
//!
//! One 32-byte application key is configured (`PLATFORM_APP_KEY`, as
//! `base64:...`); purpose-specific keys are derived from it with
//! HMAC-SHA256, so the encryption key and the signing key are never the same
//! bytes. Ciphertexts name the key they were made with
//! (`enc:v1:<key id>:<base64>`), so earlier keys listed in
//! `PLATFORM_PREVIOUS_KEYS` still decrypt after a rotation.

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

type HmacSha256 = Hmac<Sha256>;

/// Fills `buf` with bytes from the operating system's secure generator.
pub fn random_bytes(buf: &mut [u8]) {
    // The OS generator failing is not recoverable: nothing secure can be made.
    getrandom::fill(buf).expect("the operating system's random generator failed");
}

/// A random URL-safe token of `n` bytes of entropy.
pub fn random_token(n: usize) -> String {
    let mut b = vec![0u8; n];
    random_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    crate::db::hex(bytes)
}

/// SHA-256 as lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Compares two byte strings in constant time.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// A 32-byte application key. Its `Debug` form never shows the bytes.
#[derive(Clone)]
pub struct AppKey([u8; 32]);

impl fmt::Debug for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppKey({})", self.id())
    }
}

impl AppKey {
    /// A new random key.
    pub fn generate() -> Self {
        let mut k = [0u8; 32];
        random_bytes(&mut k);
        Self(k)
    }

    /// Reads `base64:<44 chars>` (or bare base64) holding 32 bytes.
    pub fn parse(text: &str) -> Result<Self> {
        let t = text.trim();
        let t = t.strip_prefix("base64:").unwrap_or(t);
        let bytes = STANDARD.decode(t).map_err(|_| {
            Error::Configuration(
                "the app key must be `base64:` followed by 32 bytes in base64".into(),
            )
        })?;
        let arr: [u8; 32] = bytes
            .try_into()
            .map_err(|_| Error::Configuration("the app key must be exactly 32 bytes".into()))?;
        Ok(Self(arr))
    }

    /// The `base64:...` form, for configuration files.
    pub fn to_config_string(&self) -> String {
        format!("base64:{}", STANDARD.encode(self.0))
    }

    /// A short public identifier of this key (8 hex digits), stored in
    /// ciphertexts.
    pub fn id(&self) -> String {
        hex(&self.derive("platform/key-id")[..4])
    }

    /// A key for one purpose, derived with HMAC-SHA256.
    fn derive(&self, purpose: &str) -> [u8; 32] {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(purpose.as_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Encrypts and decrypts field values; signs and verifies data.
#[derive(Clone)]
pub struct Crypto {
    current: (String, Aes256Gcm),
    previous: Vec<(String, Aes256Gcm)>,
    sign_key: [u8; 32],
    previous_sign_keys: Vec<(String, [u8; 32])>,
}

impl fmt::Debug for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crypto")
            .field("key", &self.current.0)
            .field(
                "previous",
                &self.previous.iter().map(|p| &p.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

const PREFIX: &str = "enc:v1:";

/// What [`Crypto::check_signature`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signature {
    /// Made with a configured key over exactly this data.
    Valid,
    /// Not a signature of this data by any configured key: altered.
    Invalid,
    /// Made with the key of this id, which is not configured (neither the
    /// current key nor one of `PLATFORM_PREVIOUS_KEYS`).
    UnknownKey(String),
}

impl Crypto {
    /// Uses `key` for new ciphertexts and signatures, and `previous` keys to
    /// read older ones.
    pub fn new(key: &AppKey, previous: &[AppKey]) -> Self {
        let cipher = |k: &AppKey| {
            (
                k.id(),
                Aes256Gcm::new_from_slice(&k.derive("platform/encrypt")).expect("32-byte key"),
            )
        };
        Self {
            current: cipher(key),
            previous: previous.iter().map(cipher).collect(),
            sign_key: key.derive("platform/sign"),
            previous_sign_keys: previous
                .iter()
                .map(|k| (k.id(), k.derive("platform/sign")))
                .collect(),
        }
    }

    /// The id of the key new ciphertexts use.
    pub fn key_id(&self) -> &str {
        &self.current.0
    }

    /// Encrypts `plaintext`, binding it to `context` (the table and column),
    /// so a ciphertext copied into another column does not decrypt.
    pub fn encrypt(&self, plaintext: &str, context: &str) -> String {
        let mut nonce = [0u8; 12];
        random_bytes(&mut nonce);
        let ct = self
            .current
            .1
            .encrypt(
                &nonce.into(),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("AES-GCM encryption of a bounded message cannot fail");
        let mut blob = Vec::with_capacity(12 + ct.len());
        blob.extend_from_slice(&nonce);
        blob.extend_from_slice(&ct);
        format!(
            "{PREFIX}{}:{}",
            self.current.0,
            URL_SAFE_NO_PAD.encode(blob)
        )
    }

    /// Whether `text` looks like one of our ciphertexts.
    pub fn is_ciphertext(text: &str) -> bool {
        text.starts_with(PREFIX)
    }

    /// The key id a ciphertext was made with.
    pub fn ciphertext_key_id(text: &str) -> Option<&str> {
        text.strip_prefix(PREFIX)?.split(':').next()
    }

    /// Decrypts a ciphertext made by [`Crypto::encrypt`] with the same
    /// `context`, with the current or a previous key.
    pub fn decrypt(&self, ciphertext: &str, context: &str) -> Result<String> {
        let bad = || Error::Backend {
            backend: "crypto",
            source: "ciphertext cannot be decrypted (wrong key, wrong column or tampered)".into(),
        };
        let rest = ciphertext.strip_prefix(PREFIX).ok_or_else(bad)?;
        let (kid, body) = rest.split_once(':').ok_or_else(bad)?;
        let cipher = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|(id, _)| id == kid)
            .map(|(_, c)| c)
            .ok_or_else(|| Error::Configuration(format!(
                "a value is encrypted with key `{kid}`, which is not configured (add it to PLATFORM_PREVIOUS_KEYS)"
            )))?;
        let blob = URL_SAFE_NO_PAD.decode(body).map_err(|_| bad())?;
        if blob.len() < 12 + 16 {
            return Err(bad());
        }
        let (nonce, ct) = blob.split_at(12);
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| bad())?;
        let pt = cipher
            .decrypt(
                &nonce.into(),
                Payload {
                    msg: ct,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| bad())?;
        String::from_utf8(pt).map_err(|_| bad())
    }

    /// HMAC-SHA256 of `data` with the signing key, as hex.
    pub fn sign(&self, data: &[u8]) -> String {
        Self::mac(&self.sign_key, data)
    }

    /// Checks a signature made by [`Crypto::sign`] with the current or a
    /// previous key, in constant time.
    pub fn verify(&self, data: &[u8], signature: &str) -> bool {
        std::iter::once(&self.sign_key)
            .chain(self.previous_sign_keys.iter().map(|(_, k)| k))
            .any(|k| constant_time_eq(Self::mac(k, data).as_bytes(), signature.as_bytes()))
    }

    /// HMAC-SHA256 of `data` with the signing key, as `<key id>:<hex>`, so
    /// that a check can tell a signature made with a key that is not
    /// configured from an altered one.
    pub fn sign_with_id(&self, data: &[u8]) -> String {
        format!("{}:{}", self.current.0, self.sign(data))
    }

    /// Checks a signature made by [`Crypto::sign_with_id`] (or, without a
    /// key id, by [`Crypto::sign`]) with the current or a previous key, in
    /// constant time.
    pub fn check_signature(&self, data: &[u8], signature: &str) -> Signature {
        let Some((kid, mac)) = signature.split_once(':') else {
            return if self.verify(data, signature) {
                Signature::Valid
            } else {
                Signature::Invalid
            };
        };
        let key = if kid == self.current.0 {
            Some(&self.sign_key)
        } else {
            self.previous_sign_keys
                .iter()
                .find(|(id, _)| id == kid)
                .map(|(_, k)| k)
        };
        match key {
            None => Signature::UnknownKey(kid.chars().take(16).collect()),
            Some(k) if constant_time_eq(Self::mac(k, data).as_bytes(), mac.as_bytes()) => {
                Signature::Valid
            }
            Some(_) => Signature::Invalid,
        }
    }

    fn mac(key: &[u8; 32], data: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
        mac.update(data);
        hex(&mac.finalize().into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_context_binding() {
        let c = Crypto::new(&AppKey::generate(), &[]);
        let ct = c.encrypt("DE89 3704 0044 0532 0130 00", "invoices.iban");
        assert!(ct.starts_with("enc:v1:"));
        assert!(!ct.contains("DE89"));
        assert_eq!(
            c.decrypt(&ct, "invoices.iban").unwrap(),
            "DE89 3704 0044 0532 0130 00"
        );
        assert!(c.decrypt(&ct, "customers.iban").is_err());
        // Two encryptions of the same text differ (random nonce).
        assert_ne!(
            ct,
            c.encrypt("DE89 3704 0044 0532 0130 00", "invoices.iban")
        );
    }

    #[test]
    fn tampering_is_detected() {
        let c = Crypto::new(&AppKey::generate(), &[]);
        let ct = c.encrypt("secret", "t.c");
        let mut bytes = ct.into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert!(
            c.decrypt(&String::from_utf8(bytes).unwrap(), "t.c")
                .is_err()
        );
        assert!(c.decrypt("enc:v1:zzz", "t.c").is_err());
        assert!(c.decrypt("plain", "t.c").is_err());
    }

    #[test]
    fn rotation_keeps_old_ciphertexts_readable() {
        let old = AppKey::generate();
        let new = AppKey::generate();
        let ct = Crypto::new(&old, &[]).encrypt("x", "t.c");
        let sig = Crypto::new(&old, &[]).sign(b"data");
        let rotated = Crypto::new(&new, std::slice::from_ref(&old));
        assert_eq!(rotated.decrypt(&ct, "t.c").unwrap(), "x");
        assert!(rotated.verify(b"data", &sig));
        let err = Crypto::new(&new, &[]).decrypt(&ct, "t.c").unwrap_err();
        assert!(err.to_string().contains("PLATFORM_PREVIOUS_KEYS"), "{err}");
    }

    #[test]
    fn signatures_name_their_key() {
        let old = AppKey::generate();
        let new = AppKey::generate();
        let s = Crypto::new(&old, &[]).sign_with_id(b"data");
        assert!(s.starts_with(&format!("{}:", old.id())));
        let rotated = Crypto::new(&new, std::slice::from_ref(&old));
        assert_eq!(rotated.check_signature(b"data", &s), Signature::Valid);
        assert_eq!(rotated.check_signature(b"datA", &s), Signature::Invalid);
        assert_eq!(
            Crypto::new(&new, &[]).check_signature(b"data", &s),
            Signature::UnknownKey(old.id())
        );
        let bare = Crypto::new(&old, &[]).sign(b"data");
        assert_eq!(rotated.check_signature(b"data", &bare), Signature::Valid);
        assert_eq!(
            Crypto::new(&new, &[]).check_signature(b"data", &bare),
            Signature::Invalid
        );
    }

    #[test]
    fn key_parsing() {
        let k = AppKey::generate();
        let again = AppKey::parse(&k.to_config_string()).unwrap();
        assert_eq!(k.id(), again.id());
        assert!(AppKey::parse("base64:AAAA").is_err());
        assert!(AppKey::parse("not base64!").is_err());
        assert!(!format!("{k:?}").contains(&k.to_config_string()[7..]));
    }
}
