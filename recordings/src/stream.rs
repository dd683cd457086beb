//! The encrypted audio stream: a WAV (16-bit PCM, "infinite" sizes in its
//! header, as a stream must) cut into chunks of about 100 ms, each sealed
//! with ChaCha20-Poly1305 under the STREAM construction (nonce = 7-byte
//! prefix || 32-bit chunk counter || last-chunk flag) with the header's
//! audio binding as associated data, and written out as soon as it is
//! complete.
//!
//! A killed writer leaves a file whose chunks all verify up to the last
//! whole one: the reader reports it as truncated at that second, never as
//! corrupt, and decrypts everything before.

use std::io::{Read, Seek, SeekFrom, Write};

use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};

use crate::error::Error;
use crate::header::{self, Header};
use crate::keys::Key;

/// Poly1305 tag length.
const TAG: usize = 16;
/// Largest chunk a reader accepts (a 100 ms stereo 48 kHz chunk is 19 KB).
const MAX_CHUNK: usize = 1 << 20;
/// How far from its place a reordered chunk is searched for.
const REORDER_SEARCH: u64 = 16;

fn nonce(prefix: &[u8; 7], counter: u32, last: bool) -> Nonce {
    let mut n = [0u8; 12];
    n[..7].copy_from_slice(prefix);
    n[7..11].copy_from_slice(&counter.to_be_bytes());
    n[11] = u8::from(last);
    Nonce::from(n)
}

/// The 44-byte header of a WAV whose length is not known yet.
fn wav_header(rate: u32, channels: u8) -> [u8; 44] {
    let mut h = [0u8; 44];
    let block = u16::from(channels) * 2;
    h[0..4].copy_from_slice(b"RIFF");
    h[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    h[8..12].copy_from_slice(b"WAVE");
    h[12..16].copy_from_slice(b"fmt ");
    h[16..20].copy_from_slice(&16u32.to_le_bytes());
    h[20..22].copy_from_slice(&1u16.to_le_bytes());
    h[22..24].copy_from_slice(&u16::from(channels).to_le_bytes());
    h[24..28].copy_from_slice(&rate.to_le_bytes());
    h[28..32].copy_from_slice(&(rate * u32::from(block)).to_le_bytes());
    h[32..34].copy_from_slice(&block.to_le_bytes());
    h[34..36].copy_from_slice(&16u16.to_le_bytes());
    h[36..40].copy_from_slice(b"data");
    h[40..44].copy_from_slice(&(u32::MAX - 36).to_le_bytes());
    h
}

/// Writes one recording.
pub struct Writer<W: Write> {
    out: W,
    cipher: ChaCha20Poly1305,
    prefix: [u8; 7],
    aad: [u8; 32],
    counter: u32,
    pending: Vec<u8>,
    chunk_bytes: usize,
    /// Bytes written so far (header included).
    pub written: u64,
}

impl<W: Write> Writer<W> {
    /// Starts a recording: writes the header now.
    pub fn new(mut out: W, header: &Header, data_key: &Key) -> Result<Writer<W>, Error> {
        let bytes = header.encode()?;
        out.write_all(&bytes)?;
        let cipher = ChaCha20Poly1305::new_from_slice(&data_key.0)
            .map_err(|_| Error::CorruptHeader("key length"))?;
        let chunk_bytes = header.chunk_frames as usize * usize::from(header.channels) * 2;
        let mut pending = Vec::with_capacity(chunk_bytes + 44);
        pending.extend_from_slice(&wav_header(header.sample_rate, header.channels));
        Ok(Writer {
            out,
            cipher,
            prefix: header.nonce_prefix,
            aad: header.audio_binding(),
            counter: 0,
            pending,
            chunk_bytes,
            written: bytes.len() as u64,
        })
    }

    fn seal(&mut self, last: bool) -> Result<(), Error> {
        let take = if last {
            self.pending.len()
        } else {
            self.chunk_bytes
        };
        let take = take.min(self.pending.len());
        // Sealed in place: no copy of the chunk, no allocation.
        let chunk = self
            .pending
            .get_mut(..take)
            .ok_or(Error::Io("chunk bounds".into()))?;
        let tag = self
            .cipher
            .encrypt_inout_detached(
                &nonce(&self.prefix, self.counter, last),
                &self.aad,
                chunk.into(),
            )
            .map_err(|_| Error::Io("encryption failed".into()))?;
        let sealed_len = take + tag.len();
        let len = u32::try_from(sealed_len).map_err(|_| Error::Io("chunk too large".into()))?;
        self.out.write_all(&len.to_be_bytes())?;
        self.out
            .write_all(self.pending.get(..take).unwrap_or_default())?;
        self.out.write_all(&tag)?;
        self.pending.drain(..take);
        self.written += 4 + sealed_len as u64;
        self.counter = self
            .counter
            .checked_add(1)
            .ok_or(Error::Io("recording too long".into()))?;
        Ok(())
    }

    /// Appends interleaved samples; each completed chunk is sealed and
    /// handed to the writer at once.
    pub fn write_samples(&mut self, interleaved: &[i16]) -> Result<(), Error> {
        let mut rest = interleaved;
        while !rest.is_empty() {
            let room = self
                .chunk_bytes
                .saturating_sub(self.pending.len())
                .div_ceil(2)
                .max(1);
            let (now, later) = rest.split_at(room.min(rest.len()));
            self.pending
                .extend(now.iter().flat_map(|s| s.to_le_bytes()));
            if self.pending.len() >= self.chunk_bytes {
                self.seal(false)?;
            }
            rest = later;
        }
        Ok(())
    }

    /// The underlying writer (to sync it to disk).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// Seals the last chunk and returns the writer.
    pub fn finish(mut self) -> Result<W, Error> {
        self.seal(true)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// What a reader found.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The header.
    pub header: Header,
    /// Chunks that verified.
    pub chunks: u64,
    /// Seconds of audio.
    pub seconds: f64,
}

/// Reads the header of a recording (to find its tenant and key).
pub fn read_header(input: &mut impl Read) -> Result<(Header, Vec<u8>), Error> {
    let mut buf = vec![0u8; 10];
    input
        .read_exact(&mut buf)
        .map_err(|_| Error::NotARecording)?;
    // Read up to the length field: fields are variable, so read more as
    // needed (the header is small).
    let mut rest = vec![0u8; header::MAX_HEADER - 10];
    let mut got = 0;
    loop {
        match Header::decode(&buf) {
            Ok((h, len)) => {
                // Put back what we read past the header.
                let extra = buf.split_off(len);
                return Ok((h, extra));
            }
            Err(Error::CorruptHeader("cut short")) if buf.len() < header::MAX_HEADER => {
                let n = input.read(&mut rest[got..got + 1])?;
                if n == 0 {
                    return Err(Error::CorruptHeader("cut short"));
                }
                buf.push(rest[got]);
                got += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Decrypts a recording, writing the WAV bytes to `out` as each chunk
/// verifies (constant memory). `key` turns the header into the data key.
pub fn decrypt(
    mut input: impl Read,
    key: impl FnOnce(&Header) -> Result<Key, Error>,
    mut out: impl Write,
) -> Result<Summary, Error> {
    let (header, mut carry) = read_header(&mut input)?;
    let aad = header.audio_binding();
    let data_key = key(&header)?;
    let cipher = ChaCha20Poly1305::new_from_slice(&data_key.0).map_err(|_| Error::WrongKey {
        key_id: header.key_id.clone(),
    })?;
    let bytes_per_second = f64::from(header.sample_rate) * f64::from(header.channels) * 2.0;
    let mut audio_bytes: u64 = 0;
    let mut chunks: u64 = 0;
    let mut wav_skip = 44usize;
    let seconds = |b: u64| b as f64 / bytes_per_second;
    let mut read_exact = |buf: &mut [u8], carry: &mut Vec<u8>| -> Result<bool, Error> {
        let from_carry = carry.len().min(buf.len());
        buf[..from_carry].copy_from_slice(&carry[..from_carry]);
        carry.drain(..from_carry);
        let mut filled = from_carry;
        while filled < buf.len() {
            let n = input.read(&mut buf[filled..])?;
            if n == 0 {
                return Ok(false);
            }
            filled += n;
        }
        Ok(true)
    };
    loop {
        let mut len = [0u8; 4];
        if !read_exact(&mut len, &mut carry)? {
            return Err(Error::Truncated {
                chunks,
                seconds: seconds(audio_bytes),
            });
        }
        let len = u32::from_be_bytes(len) as usize;
        if !(TAG..=MAX_CHUNK).contains(&len) {
            return Err(Error::Tampered {
                chunk: chunks,
                seconds: seconds(audio_bytes),
            });
        }
        let mut ct = vec![0u8; len];
        if !read_exact(&mut ct, &mut carry)? {
            return Err(Error::Truncated {
                chunks,
                seconds: seconds(audio_bytes),
            });
        }
        let counter = u32::try_from(chunks).map_err(|_| Error::Io("too many chunks".into()))?;
        let open = |c: u32, last: bool| {
            cipher.decrypt(
                &nonce(&header.nonce_prefix, c, last),
                Payload {
                    msg: &ct,
                    aad: &aad,
                },
            )
        };
        let (plain, last) = match (open(counter, false), open(counter, true)) {
            (Ok(p), _) => (p, false),
            (_, Ok(p)) => (p, true),
            _ => {
                // Authentic but elsewhere? Then the chunks were reordered.
                let lo = chunks.saturating_sub(REORDER_SEARCH);
                for c in lo..chunks + REORDER_SEARCH {
                    let Ok(c32) = u32::try_from(c) else { continue };
                    if c != chunks && (open(c32, false).is_ok() || open(c32, true).is_ok()) {
                        return Err(Error::Reordered {
                            found_at: chunks,
                            belongs_at: c,
                        });
                    }
                }
                return Err(Error::Tampered {
                    chunk: chunks,
                    seconds: seconds(audio_bytes),
                });
            }
        };
        out.write_all(&plain)?;
        let skip = wav_skip.min(plain.len());
        wav_skip -= skip;
        audio_bytes += (plain.len() - skip) as u64;
        chunks += 1;
        if last {
            let mut probe = [0u8; 1];
            if read_exact(&mut probe, &mut carry)? {
                return Err(Error::TrailingData);
            }
            out.flush()?;
            return Ok(Summary {
                header,
                chunks,
                seconds: seconds(audio_bytes),
            });
        }
    }
}

/// [`decrypt`] into a WAV whose header gives the true sizes, for players
/// that trust it (the stored stream's own header says "unknown length",
/// as a stream being written must). A first pass verifies and counts, in
/// constant memory, the audio that verifies; the second writes it behind a
/// header with that length, so it works into a pipe as well as a file. A
/// truncated or damaged recording gets the sizes of the audio before the
/// damage, which is all that is written. `input` is read twice (a file).
pub fn decrypt_sized<R: Read + Seek>(
    mut input: R,
    key: impl FnOnce(&Header) -> Result<Key, Error>,
    out: impl Write,
) -> Result<Summary, Error> {
    let start = input.stream_position()?;
    let mut data_key = None;
    let mut count = Count::default();
    let first = decrypt(
        &mut input,
        |h| {
            let k = key(h)?;
            data_key = Some(k.clone());
            Ok(k)
        },
        &mut count,
    );
    let Some(data_key) = data_key else {
        // No key, no audio: nothing to write.
        return first;
    };
    if count.bytes == 0 {
        return first;
    }
    input.seek(SeekFrom::Start(start))?;
    let audio = count.bytes.saturating_sub(44);
    let mut patched = SizedHeader {
        out,
        head: Vec::with_capacity(44),
        audio: u32::try_from(audio)
            .unwrap_or(u32::MAX - 36)
            .min(u32::MAX - 36),
    };
    decrypt(&mut input, |_| Ok(data_key), &mut patched)
}

/// Counts bytes.
#[derive(Default)]
struct Count {
    bytes: u64,
}

impl Write for Count {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Passes bytes on, with the RIFF and data sizes of the first 44 (the
/// WAV header) set for `audio` bytes of samples.
struct SizedHeader<W: Write> {
    out: W,
    head: Vec<u8>,
    audio: u32,
}

impl<W: Write> Write for SizedHeader<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.head.len() >= 44 {
            return self.out.write(buf);
        }
        let take = (44 - self.head.len()).min(buf.len());
        self.head.extend_from_slice(&buf[..take]);
        if self.head.len() == 44 {
            self.head[4..8].copy_from_slice(&(36 + self.audio).to_le_bytes());
            self.head[40..44].copy_from_slice(&self.audio.to_le_bytes());
            self.out.write_all(&self.head)?;
        }
        Ok(take)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Verifies a recording without keeping the audio.
pub fn verify(
    input: impl Read,
    key: impl FnOnce(&Header) -> Result<Key, Error>,
) -> Result<Summary, Error> {
    decrypt(input, key, std::io::sink())
}
