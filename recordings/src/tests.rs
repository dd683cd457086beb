//! Round trips and every kind of damage.

use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::error::Error;
use crate::header::{Header, KeyMode};
use crate::keys::{Key, unwrap_kek, wrap_kek};
use crate::stream::{Writer, decrypt, verify};

const KEK: Key = Key([42; 32]);

/// A recording of `seconds` of a ramp, `channels` wide, 8 kHz, 100 ms chunks.
fn record(seconds: u32, channels: u8, finish: bool) -> (Vec<u8>, Vec<i16>) {
    let mut rng = StdRng::seed_from_u64(1);
    let data_key = Key::random(&mut rng);
    let wrapped = wrap_kek(&KEK, &data_key, "acme", "acme-1", "call-1", &mut rng).expect("wrap");
    let header = Header {
        key_mode: KeyMode::Kek,
        tenant: "acme".into(),
        key_id: "acme-1".into(),
        wrapped_key: wrapped,
        sample_rate: 8000,
        channels,
        chunk_frames: 800,
        call_id: "call-1".into(),
        nonce_prefix: [9; 7],
    };
    let samples: Vec<i16> = (0..8000 * seconds * u32::from(channels))
        .map(|i| (i % 30000) as i16)
        .collect();
    let mut w = Writer::new(Vec::new(), &header, &data_key).expect("writer");
    for frame in samples.chunks(160 * usize::from(channels)) {
        w.write_samples(frame).expect("write");
    }
    let bytes = if finish {
        w.finish().expect("finish")
    } else {
        std::mem::take(w.get_mut())
    };
    (bytes, samples)
}

fn open(bytes: &[u8]) -> Result<(crate::stream::Summary, Vec<u8>), Error> {
    let mut out = Vec::new();
    let s = decrypt(bytes, |h| unwrap_kek(&KEK, h), &mut out)?;
    Ok((s, out))
}

fn pcm(wav: &[u8]) -> Vec<i16> {
    wav[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

/// Offsets where each chunk's length prefix starts.
fn chunk_offsets(bytes: &[u8]) -> Vec<usize> {
    let (_, mut at) = Header::decode(bytes).expect("decode");
    let mut offs = Vec::new();
    while at + 4 <= bytes.len() {
        offs.push(at);
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().expect("4")) as usize;
        at += 4 + len;
    }
    offs
}

#[test]
fn mono_and_stereo_round_trip() {
    for channels in [1u8, 2] {
        let (bytes, samples) = record(3, channels, true);
        let (summary, wav) = open(&bytes).expect("opens");
        assert_eq!(pcm(&wav), samples);
        assert!((summary.seconds - 3.0).abs() < 1e-9, "{}", summary.seconds);
        assert_eq!(&wav[..4], b"RIFF");
        assert_eq!(u16::from_le_bytes([wav[22], wav[23]]), u16::from(channels));
    }
}

#[test]
fn a_wrong_key_is_named() {
    let (bytes, _) = record(1, 1, true);
    let r = verify(&bytes[..], |h| unwrap_kek(&Key([1; 32]), h));
    assert_eq!(
        r.map(|_| ()),
        Err(Error::WrongKey {
            key_id: "acme-1".into()
        })
    );
}

#[test]
fn a_flipped_bit_in_any_chunk_is_tampering_at_that_chunk() {
    let (bytes, _) = record(1, 1, true);
    let offs = chunk_offsets(&bytes);
    assert_eq!(
        offs.len(),
        11,
        "ten 100 ms chunks (the first shorter by the WAV header) and the final one"
    );
    for (i, off) in offs.iter().enumerate() {
        let mut b = bytes.clone();
        b[off + 4 + 3] ^= 0x10;
        match verify(&b[..], |h| unwrap_kek(&KEK, h)) {
            Err(Error::Tampered { chunk, .. }) => assert_eq!(chunk, i as u64),
            other => panic!("chunk {i}: {other:?}"),
        }
    }
}

#[test]
fn a_flipped_bit_in_the_header_is_caught() {
    let (bytes, _) = record(1, 1, true);
    let (_, hlen) = Header::decode(&bytes).expect("decode");
    for pos in 10..hlen - 4 {
        let mut b = bytes.clone();
        b[pos] ^= 0x01;
        let r = verify(&b[..], |h| unwrap_kek(&KEK, h));
        assert!(r.is_err(), "header byte {pos} altered unnoticed");
    }
}

#[test]
fn swapped_chunks_are_reported_as_reordered() {
    let (bytes, _) = record(1, 1, true);
    let offs = chunk_offsets(&bytes);
    let (a, b, c) = (offs[2], offs[3], offs[4]);
    let mut swapped = bytes[..a].to_vec();
    swapped.extend_from_slice(&bytes[b..c]);
    swapped.extend_from_slice(&bytes[a..b]);
    swapped.extend_from_slice(&bytes[c..]);
    assert_eq!(
        verify(&swapped[..], |h| unwrap_kek(&KEK, h)).map(|_| ()),
        Err(Error::Reordered {
            found_at: 2,
            belongs_at: 3
        })
    );
}

#[test]
fn truncation_at_every_boundary_and_mid_chunk_keeps_what_came_before() {
    let (bytes, samples) = record(1, 1, true);
    let offs = chunk_offsets(&bytes);
    let mut cuts: Vec<(usize, u64)> = Vec::new();
    for (i, off) in offs.iter().enumerate() {
        cuts.push((*off, i as u64)); // at the boundary
        cuts.push((off + 4 + 7, i as u64)); // inside chunk i
        cuts.push((off + 2, i as u64)); // inside its length prefix
    }
    for (cut, intact) in cuts {
        let mut out = Vec::new();
        match decrypt(&bytes[..cut], |h| unwrap_kek(&KEK, h), &mut out) {
            Err(Error::Truncated { chunks, seconds }) => {
                assert_eq!(chunks, intact, "cut at {cut}");
                let got = if out.len() >= 44 {
                    pcm(&out)
                } else {
                    Vec::new()
                };
                assert_eq!(&samples[..got.len()], &got[..], "what came before decrypts");
                assert!((seconds - got.len() as f64 / 8000.0).abs() < 1e-9);
            }
            other => panic!("cut at {cut}: {other:?}"),
        }
    }
}

#[test]
fn a_killed_writer_leaves_a_truncated_but_readable_file() {
    let (bytes, samples) = record(2, 2, false);
    let mut out = Vec::new();
    match decrypt(&bytes[..], |h| unwrap_kek(&KEK, h), &mut out) {
        Err(Error::Truncated { chunks, seconds }) => {
            assert_eq!(chunks, 20, "every whole chunk");
            assert!(seconds > 1.9, "at most one chunk (100 ms) lost: {seconds}");
            assert_eq!(&samples[..pcm(&out).len()], &pcm(&out)[..]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn data_after_the_final_chunk_is_tampering() {
    let (mut bytes, _) = record(1, 1, true);
    bytes.extend_from_slice(b"extra");
    assert_eq!(
        verify(&bytes[..], |h| unwrap_kek(&KEK, h)).map(|_| ()),
        Err(Error::TrailingData)
    );
}

#[test]
fn not_a_recording() {
    assert_eq!(
        verify(&b"RIFF....WAVEfmt "[..], |h| unwrap_kek(&KEK, h)).map(|_| ()),
        Err(Error::NotARecording)
    );
    assert_eq!(
        verify(&b""[..], |h| unwrap_kek(&KEK, h)).map(|_| ()),
        Err(Error::NotARecording)
    );
}

#[test]
fn rewrapping_under_a_new_key_leaves_the_audio_untouched() {
    let (bytes, samples) = record(1, 1, true);
    let (old, hlen) = Header::decode(&bytes).expect("decode");
    let new_kek = Key([7; 32]);
    let new = crate::keys::rewrap(
        &old,
        &KEK,
        &new_kek,
        "acme-2",
        &mut StdRng::seed_from_u64(5),
    )
    .expect("rewrap");
    let mut rewrapped = new.encode().expect("encode");
    rewrapped.extend_from_slice(&bytes[hlen..]);
    let mut out = Vec::new();
    let s = decrypt(&rewrapped[..], |h| unwrap_kek(&new_kek, h), &mut out)
        .expect("opens with the new key");
    assert_eq!(s.header.key_id, "acme-2");
    assert_eq!(pcm(&out), samples);
    assert!(matches!(
        verify(&rewrapped[..], |h| unwrap_kek(&KEK, h)),
        Err(Error::WrongKey { .. })
    ));
}

#[test]
fn the_public_key_mode_opens_only_with_the_private_key() {
    use crate::keys::{public_of, unwrap_private, wrap_public};
    let mut rng = StdRng::seed_from_u64(11);
    let private = [5u8; 32];
    let public = public_of(&private);
    let data_key = Key::random(&mut rng);
    let header = Header {
        key_mode: KeyMode::PublicKey,
        tenant: "bank".into(),
        key_id: "bank-pub-1".into(),
        wrapped_key: wrap_public(&public, &data_key, "bank", "bank-pub-1", "call-9", &mut rng)
            .expect("wrap"),
        sample_rate: 16000,
        channels: 1,
        chunk_frames: 1600,
        call_id: "call-9".into(),
        nonce_prefix: [3; 7],
    };
    let samples: Vec<i16> = (0..16000).map(|i| (i * 3) as i16).collect();
    let mut w = Writer::new(Vec::new(), &header, &data_key).expect("writer");
    w.write_samples(&samples).expect("write");
    let bytes = w.finish().expect("finish");
    let mut out = Vec::new();
    decrypt(&bytes[..], |h| unwrap_private(&private, h), &mut out).expect("the business opens it");
    assert_eq!(pcm(&out), samples);
    assert!(matches!(
        verify(&bytes[..], |h| unwrap_private(&[6u8; 32], h)),
        Err(Error::WrongKey { .. })
    ));
    // The server only has the public key: it cannot treat it as a KEK.
    assert!(matches!(
        verify(&bytes[..], |h| unwrap_kek(&Key(public), h)),
        Err(Error::WrongKey { .. })
    ));
}

/// A WAV as a real reader (hound) sees it: its header's sample count and
/// the samples it yields.
fn hound_view(wav: &[u8]) -> (u32, u16, Vec<i16>) {
    let mut r = hound::WavReader::new(std::io::Cursor::new(wav)).expect("a WAV hound reads");
    let len = r.len();
    let channels = r.spec().channels;
    let samples = r.samples::<i16>().map(|s| s.expect("sample")).collect();
    (len, channels, samples)
}

#[test]
fn the_sized_wav_says_its_true_length_whole_and_truncated() {
    for channels in [1u8, 2] {
        let (bytes, samples) = record(3, channels, true);
        let mut wav = Vec::new();
        let s = crate::stream::decrypt_sized(
            std::io::Cursor::new(&bytes),
            |h| unwrap_kek(&KEK, h),
            &mut wav,
        )
        .expect("opens");
        assert!((s.seconds - 3.0).abs() < 1e-9);
        let (len, ch, got) = hound_view(&wav);
        assert_eq!(ch, u16::from(channels));
        assert_eq!(len as usize, samples.len(), "the header's length");
        assert_eq!(got, samples);
        // The stream's own header, by contrast, claims the maximum.
        let (_, plain) = open(&bytes).expect("opens");
        assert_eq!(&plain[40..44], &(u32::MAX - 36).to_le_bytes());
    }
    // Cut in the middle of the tenth chunk: nine chunks (0.9 s) verify.
    let (bytes, samples) = record(3, 1, true);
    let offs = chunk_offsets(&bytes);
    let cut = &bytes[..offs[9] + 20];
    let mut wav = Vec::new();
    let r =
        crate::stream::decrypt_sized(std::io::Cursor::new(cut), |h| unwrap_kek(&KEK, h), &mut wav);
    assert!(
        matches!(r, Err(Error::Truncated { chunks: 9, .. })),
        "{:?}",
        r.err()
    );
    let (len, _, got) = hound_view(&wav);
    assert_eq!(len as usize, got.len(), "the header says what is there");
    assert_eq!(got, samples[..got.len()]);
    assert_eq!(
        got.len(),
        9 * 800 - 22,
        "nine chunks of audio, less the WAV header"
    );
}
