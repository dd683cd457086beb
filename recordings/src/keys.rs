//! Data keys: a fresh random key per recording, wrapped by the tenant's
//! key-encryption key (KEK mode: the server can read its recordings back
//! for authorised playback). The public-key mode (X25519, write-only for
//! the server) is specified in FORMAT.md and comes with the key commands.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use rand::Rng;

use crate::error::Error;
use crate::header::Header;

/// A 256-bit key. Not `Debug`: keys never reach logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Key(pub [u8; 32]);

impl Key {
    /// A fresh random key.
    pub fn random(rng: &mut impl Rng) -> Key {
        Key(rng.random())
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

/// What binds a wrapped key to its recording.
fn wrap_aad(tenant: &str, key_id: &str, call_id: &str) -> Vec<u8> {
    let mut aad = Vec::new();
    for part in [tenant, key_id, call_id] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

/// Wraps `data_key` with `kek`: nonce (12) || ciphertext+tag (48).
pub fn wrap_kek(
    kek: &Key,
    data_key: &Key,
    tenant: &str,
    key_id: &str,
    call_id: &str,
    rng: &mut impl Rng,
) -> Result<Vec<u8>, Error> {
    let cipher =
        ChaCha20Poly1305::new_from_slice(&kek.0).map_err(|_| Error::CorruptHeader("key length"))?;
    let nonce_bytes: [u8; 12] = rng.random();
    let aad = wrap_aad(tenant, key_id, call_id);
    let ct = cipher
        .encrypt(
            &Nonce::from(nonce_bytes),
            Payload {
                msg: &data_key.0,
                aad: &aad,
            },
        )
        .map_err(|_| Error::CorruptHeader("cannot wrap key"))?;
    let mut out = nonce_bytes.to_vec();
    out.extend_from_slice(&ct);
    Ok(out)
}

/// Unwraps the data key of a recording with `kek`.
pub fn unwrap_kek(kek: &Key, header: &Header) -> Result<Key, Error> {
    let wrong = || Error::WrongKey {
        key_id: header.key_id.clone(),
    };
    let cipher = ChaCha20Poly1305::new_from_slice(&kek.0).map_err(|_| wrong())?;
    let (nonce, ct) = header.wrapped_key.split_at_checked(12).ok_or_else(wrong)?;
    let nonce: [u8; 12] = nonce.try_into().map_err(|_| wrong())?;
    let aad = wrap_aad(&header.tenant, &header.key_id, &header.call_id);
    let pt = cipher
        .decrypt(&Nonce::from(nonce), Payload { msg: ct, aad: &aad })
        .map_err(|_| wrong())?;
    let key: [u8; 32] = pt.as_slice().try_into().map_err(|_| wrong())?;
    Ok(Key(key))
}

/// Re-wraps a recording's data key under `new_kek` (key rotation): the
/// returned header carries the new key id and wrapped key; the audio
/// chunks stay valid as they are.
pub fn rewrap(
    header: &Header,
    old_kek: &Key,
    new_kek: &Key,
    new_key_id: &str,
    rng: &mut impl Rng,
) -> Result<Header, Error> {
    let data_key = unwrap_kek(old_kek, header)?;
    let mut h = header.clone();
    h.key_id = new_key_id.to_owned();
    h.wrapped_key = wrap_kek(new_kek, &data_key, &h.tenant, new_key_id, &h.call_id, rng)?;
    Ok(h)
}
