//! Data keys: a fresh random key per recording, wrapped either by the
//! tenant's key-encryption key (KEK mode: the server can read its
//! recordings back for authorised playback) or to the tenant's X25519
//! public key (the server can write recordings but never read them).

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

/// Seals a data key under a wrapping key: the one AEAD both key modes use.
fn seal_key(wrapping: &Key, nonce: [u8; 12], data_key: &Key, aad: &[u8]) -> Result<Vec<u8>, Error> {
    ChaCha20Poly1305::new_from_slice(&wrapping.0)
        .map_err(|_| Error::CorruptHeader("key length"))?
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: &data_key.0,
                aad,
            },
        )
        .map_err(|_| Error::CorruptHeader("cannot wrap key"))
}

/// Opens a sealed data key; any failure means the key does not fit.
fn open_key(wrapping: &Key, nonce: [u8; 12], sealed: &[u8], header: &Header) -> Result<Key, Error> {
    let wrong = || Error::WrongKey {
        key_id: header.key_id.clone(),
    };
    let aad = wrap_aad(&header.tenant, &header.key_id, &header.call_id);
    let pt = ChaCha20Poly1305::new_from_slice(&wrapping.0)
        .map_err(|_| wrong())?
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: sealed,
                aad: &aad,
            },
        )
        .map_err(|_| wrong())?;
    Ok(Key(pt.as_slice().try_into().map_err(|_| wrong())?))
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
    let nonce: [u8; 12] = rng.random();
    let mut out = nonce.to_vec();
    out.extend(seal_key(
        kek,
        nonce,
        data_key,
        &wrap_aad(tenant, key_id, call_id),
    )?);
    Ok(out)
}

/// Unwraps the data key of a recording with `kek`.
pub fn unwrap_kek(kek: &Key, header: &Header) -> Result<Key, Error> {
    let wrong = || Error::WrongKey {
        key_id: header.key_id.clone(),
    };
    let (nonce, sealed) = header.wrapped_key.split_at_checked(12).ok_or_else(wrong)?;
    open_key(kek, nonce.try_into().map_err(|_| wrong())?, sealed, header)
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

/// The HKDF info string of key mode 1.
const PUBKEY_INFO: &[u8] = b"dhwani recording data key v1";

fn pubkey_wrapping_key(
    shared: &[u8; 32],
    ephemeral: &[u8; 32],
    recipient: &[u8; 32],
) -> Result<Key, Error> {
    let mut salt = [0u8; 64];
    salt[..32].copy_from_slice(ephemeral);
    salt[32..].copy_from_slice(recipient);
    let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(&salt), shared);
    let mut okm = [0u8; 32];
    hk.expand(PUBKEY_INFO, &mut okm)
        .map_err(|_| Error::CorruptHeader("key derivation"))?;
    Ok(Key(okm))
}

/// Key mode 1: wraps `data_key` to the tenant's X25519 public key, so only
/// the holder of the private key can open the recording. Wrapped form:
/// ephemeral public key (32) || ChaCha20-Poly1305(HKDF-SHA256(ECDH,
/// salt = ephemeral || recipient), zero nonce, data key, aad) (48). The
/// derived key is used once, so a fixed nonce is safe.
pub fn wrap_public(
    recipient: &[u8; 32],
    data_key: &Key,
    tenant: &str,
    key_id: &str,
    call_id: &str,
    rng: &mut impl Rng,
) -> Result<Vec<u8>, Error> {
    let secret = x25519_dalek::StaticSecret::from(rng.random::<[u8; 32]>());
    let ephemeral = x25519_dalek::PublicKey::from(&secret).to_bytes();
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(*recipient));
    let wk = pubkey_wrapping_key(shared.as_bytes(), &ephemeral, recipient)?;
    let mut out = ephemeral.to_vec();
    out.extend(seal_key(
        &wk,
        [0; 12],
        data_key,
        &wrap_aad(tenant, key_id, call_id),
    )?);
    Ok(out)
}

/// Key mode 1: opens the data key with the tenant's X25519 private key.
pub fn unwrap_private(private: &[u8; 32], header: &Header) -> Result<Key, Error> {
    let wrong = || Error::WrongKey {
        key_id: header.key_id.clone(),
    };
    let (eph, sealed) = header.wrapped_key.split_at_checked(32).ok_or_else(wrong)?;
    let eph: [u8; 32] = eph.try_into().map_err(|_| wrong())?;
    let secret = x25519_dalek::StaticSecret::from(*private);
    let recipient = x25519_dalek::PublicKey::from(&secret).to_bytes();
    let shared = secret.diffie_hellman(&x25519_dalek::PublicKey::from(eph));
    let wk = pubkey_wrapping_key(shared.as_bytes(), &eph, &recipient)?;
    open_key(&wk, [0; 12], sealed, header)
}

/// The X25519 public key of a private key.
pub fn public_of(private: &[u8; 32]) -> [u8; 32] {
    x25519_dalek::PublicKey::from(&x25519_dalek::StaticSecret::from(*private)).to_bytes()
}
