//! `dhwani recordings verify|decrypt` on recordings made with the library:
//! intact, tampered, truncated, wrong key, and decrypting to WAV.

use std::process::Command;

use rand::SeedableRng;
use rand::rngs::StdRng;
use recordings::header::{Header, KeyMode};
use recordings::keys::{Key, wrap_kek};
use recordings::stream::Writer;

fn dhwani() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dhwani"))
}

/// A 2-second mono recording and its samples.
fn make(dir: &std::path::Path, kek: &Key) -> (std::path::PathBuf, Vec<i16>) {
    let mut rng = StdRng::seed_from_u64(3);
    let data_key = Key::random(&mut rng);
    let header = Header {
        key_mode: KeyMode::Kek,
        tenant: "demo".into(),
        key_id: "demo-1".into(),
        wrapped_key: wrap_kek(kek, &data_key, "demo", "demo-1", "call-7", &mut rng).expect("wrap"),
        sample_rate: 8000,
        channels: 1,
        chunk_frames: 800,
        call_id: "call-7".into(),
        nonce_prefix: [4; 7],
    };
    let samples: Vec<i16> = (0..16000).map(|i| ((i * 7) % 20000) as i16).collect();
    let mut w = Writer::new(Vec::new(), &header, &data_key).expect("writer");
    w.write_samples(&samples).expect("write");
    let path = dir.join("call-7.rec");
    std::fs::write(&path, w.finish().expect("finish")).expect("save");
    (path, samples)
}

#[test]
fn verify_and_decrypt_from_the_command_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kek = Key([9; 32]);
    let key_file = dir.path().join("demo.kek");
    std::fs::write(&key_file, hex::encode(kek.0)).expect("key file");
    let (rec, samples) = make(dir.path(), &kek);

    let out = dhwani()
        .args(["recordings", "verify"])
        .arg(&rec)
        .arg("--kek")
        .arg(&key_file)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("intact, 2.0 s, call call-7, key demo-1"),
        "{stdout}"
    );

    let out = dhwani()
        .args(["recordings", "decrypt"])
        .arg(&rec)
        .arg("--kek")
        .arg(&key_file)
        .output()
        .expect("run");
    assert!(out.status.success());
    let pcm: Vec<i16> = out.stdout[44..]
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert_eq!(pcm, samples);
    assert_eq!(&out.stdout[..4], b"RIFF");
    // Written to a pipe, the WAV's header still gives its true length, as
    // a real reader sees it.
    let r = hound::WavReader::new(std::io::Cursor::new(&out.stdout)).expect("a WAV");
    assert_eq!(r.len() as usize, samples.len(), "the header's length");
    assert!((r.duration() as f64 / 8000.0 - 2.0).abs() < 0.01);

    // A flipped bit, a cut file, a wrong key: each named, exit status 1.
    let bytes = std::fs::read(&rec).expect("read");
    let mut flipped = bytes.clone();
    let n = flipped.len();
    flipped[n - 40] ^= 1;
    let tampered = dir.path().join("tampered.rec");
    std::fs::write(&tampered, &flipped).expect("write");
    let cut = dir.path().join("cut.rec");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let wrong = dir.path().join("wrong.kek");
    std::fs::write(&wrong, [1u8; 32]).expect("write");
    let out = dhwani()
        .args(["recordings", "verify"])
        .arg(&rec)
        .arg(&tampered)
        .arg(&cut)
        .arg("--kek")
        .arg(&key_file)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("call-7.rec: intact"), "{stdout}");
    assert!(stdout.contains("tampered.rec: tampered: chunk"), "{stdout}");
    assert!(
        stdout.contains("cut.rec: truncated at 0.9 s")
            || stdout.contains("cut.rec: truncated at 1.0 s"),
        "{stdout}"
    );
    let out = dhwani()
        .args(["recordings", "verify"])
        .arg(&rec)
        .arg("--kek")
        .arg(&wrong)
        .output()
        .expect("run");
    assert!(String::from_utf8_lossy(&out.stdout).contains("wrong key: key `demo-1`"));
    // No key, or a malformed key file: clear errors, not panics.
    let empty = tempfile::tempdir().expect("tempdir");
    let out = dhwani()
        .args(["recordings", "verify"])
        .arg(&rec)
        .arg("--data-dir")
        .arg(empty.path())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("no key to open this recording") && text.contains("has no key file"),
        "{text}"
    );
    let bad = dir.path().join("bad.kek");
    std::fs::write(&bad, "not a key").expect("write");
    let out = dhwani()
        .args(["recordings", "verify"])
        .arg(&rec)
        .arg("--kek")
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("a key file holds 32 bytes"));
}
