//! The plaintext header of a recording (see `recordings/FORMAT.md`). It is
//! authenticated: every chunk binds the fields that describe the audio
//! ([`Header::audio_binding`]), and the wrapped data key binds the tenant,
//! key id and call id, so re-wrapping the key under a new tenant key never
//! touches the audio.
//!
//! ```text
//! magic "DHWREC\r\n" (8) | version u16 | algorithm u8 | key mode u8
//! | tenant str | key id str | wrapped data key bytes
//! | sample rate u32 | channels u8 | bits u8 | chunk frames u32
//! | call id str | nonce prefix (7) | header length check u32
//! str/bytes = u16 length + bytes; integers big-endian
//! ```

use sha2::{Digest, Sha256};

use crate::error::Error;

/// File magic.
pub const MAGIC: &[u8; 8] = b"DHWREC\r\n";
/// Format version written by this build.
pub const VERSION: u16 = 1;
/// ChaCha20-Poly1305.
pub const ALG_CHACHA20_POLY1305: u8 = 1;
/// Longest header accepted.
pub const MAX_HEADER: usize = 4096;

/// How the data key is wrapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMode {
    /// With the tenant's public key (X25519): the server cannot read back.
    PublicKey,
    /// With a key-encryption key the server holds.
    Kek,
}

/// A recording's header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// How the data key is wrapped.
    pub key_mode: KeyMode,
    /// Tenant.
    pub tenant: String,
    /// Key id of the wrapping key.
    pub key_id: String,
    /// The wrapped data key.
    pub wrapped_key: Vec<u8>,
    /// Samples per second.
    pub sample_rate: u32,
    /// 1 or 2 (caller left, far end right).
    pub channels: u8,
    /// Frames per chunk.
    pub chunk_frames: u32,
    /// The call.
    pub call_id: String,
    /// STREAM nonce prefix.
    pub nonce_prefix: [u8; 7],
}

fn put_str(out: &mut Vec<u8>, b: &[u8]) -> Result<(), Error> {
    let len = u16::try_from(b.len()).map_err(|_| Error::CorruptHeader("field too long"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(b);
    Ok(())
}

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        let s = self
            .b
            .get(self.pos..self.pos + n)
            .ok_or(Error::CorruptHeader("cut short"))?;
        self.pos += n;
        Ok(s)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }
    fn u16(&mut self) -> Result<u16, Error> {
        let s = self.take(2)?;
        Ok(u16::from_be_bytes([
            s.first().copied().unwrap_or(0),
            s.get(1).copied().unwrap_or(0),
        ]))
    }
    fn u32(&mut self) -> Result<u32, Error> {
        let s: [u8; 4] = self
            .take(4)?
            .try_into()
            .map_err(|_| Error::CorruptHeader("cut short"))?;
        Ok(u32::from_be_bytes(s))
    }
    fn bytes(&mut self) -> Result<&'a [u8], Error> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
    fn string(&mut self) -> Result<String, Error> {
        String::from_utf8(self.bytes()?.to_vec())
            .map_err(|_| Error::CorruptHeader("text is not UTF-8"))
    }
}

impl Header {
    /// Bytes of the header.
    pub fn encode(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.push(ALG_CHACHA20_POLY1305);
        out.push(match self.key_mode {
            KeyMode::PublicKey => 1,
            KeyMode::Kek => 2,
        });
        put_str(&mut out, self.tenant.as_bytes())?;
        put_str(&mut out, self.key_id.as_bytes())?;
        put_str(&mut out, &self.wrapped_key)?;
        out.extend_from_slice(&self.sample_rate.to_be_bytes());
        out.push(self.channels);
        out.push(16);
        out.extend_from_slice(&self.chunk_frames.to_be_bytes());
        put_str(&mut out, self.call_id.as_bytes())?;
        out.extend_from_slice(&self.nonce_prefix);
        let len = u32::try_from(out.len() + 4).map_err(|_| Error::CorruptHeader("too long"))?;
        out.extend_from_slice(&len.to_be_bytes());
        if out.len() > MAX_HEADER {
            return Err(Error::CorruptHeader("too long"));
        }
        Ok(out)
    }

    /// Reads a header from the start of `b`; returns it and its length.
    pub fn decode(b: &[u8]) -> Result<(Header, usize), Error> {
        let mut c = Cursor { b, pos: 0 };
        if c.take(8).map_err(|_| Error::NotARecording)? != MAGIC {
            return Err(Error::NotARecording);
        }
        let version = c.u16()?;
        if version != VERSION {
            return Err(Error::UnsupportedVersion(version));
        }
        if c.u8()? != ALG_CHACHA20_POLY1305 {
            return Err(Error::CorruptHeader("unknown algorithm"));
        }
        let key_mode = match c.u8()? {
            1 => KeyMode::PublicKey,
            2 => KeyMode::Kek,
            _ => return Err(Error::CorruptHeader("unknown key mode")),
        };
        let tenant = c.string()?;
        let key_id = c.string()?;
        let wrapped_key = c.bytes()?.to_vec();
        let sample_rate = c.u32()?;
        let channels = c.u8()?;
        let bits = c.u8()?;
        let chunk_frames = c.u32()?;
        let call_id = c.string()?;
        let nonce_prefix: [u8; 7] = c
            .take(7)?
            .try_into()
            .map_err(|_| Error::CorruptHeader("cut short"))?;
        let len = c.u32()? as usize;
        if len != c.pos
            || !(1..=2).contains(&channels)
            || bits != 16
            || sample_rate == 0
            || chunk_frames == 0
        {
            return Err(Error::CorruptHeader("inconsistent fields"));
        }
        Ok((
            Header {
                key_mode,
                tenant,
                key_id,
                wrapped_key,
                sample_rate,
                channels,
                chunk_frames,
                call_id,
                nonce_prefix,
            },
            len,
        ))
    }
}

impl Header {
    /// The associated data of every chunk: SHA-256 over every header field
    /// except the three that key rotation rewrites (key mode, key id,
    /// wrapped data key).
    pub fn audio_binding(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(MAGIC);
        h.update(VERSION.to_be_bytes());
        h.update([ALG_CHACHA20_POLY1305]);
        h.update((self.tenant.len() as u32).to_be_bytes());
        h.update(self.tenant.as_bytes());
        h.update(self.sample_rate.to_be_bytes());
        h.update([self.channels, 16]);
        h.update(self.chunk_frames.to_be_bytes());
        h.update((self.call_id.len() as u32).to_be_bytes());
        h.update(self.call_id.as_bytes());
        h.update(self.nonce_prefix);
        h.finalize().into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Header {
        Header {
            key_mode: KeyMode::Kek,
            tenant: "acme".into(),
            key_id: "acme-2026-11".into(),
            wrapped_key: vec![7; 60],
            sample_rate: 8000,
            channels: 2,
            chunk_frames: 800,
            call_id: "c-1@x".into(),
            nonce_prefix: [1, 2, 3, 4, 5, 6, 7],
        }
    }

    #[test]
    fn round_trip_and_rejections() {
        let h = sample();
        let b = h.encode().expect("encodes");
        let (back, len) = Header::decode(&b).expect("decodes");
        assert_eq!((back, len), (h, b.len()));
        assert_eq!(
            Header::decode(b"RIFF\0\0\0\0WAVE"),
            Err(Error::NotARecording)
        );
        let mut v2 = b.clone();
        v2[9] = 2;
        assert_eq!(Header::decode(&v2), Err(Error::UnsupportedVersion(2)));
        for cut in 0..b.len() {
            assert!(Header::decode(&b[..cut]).is_err(), "cut at {cut}");
        }
    }
}
