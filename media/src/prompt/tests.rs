//! Prompt decoding, resampling and caching on real files (made with sox,
//! in `media/tests/data/`).

use super::*;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Frequency from zero crossings, and RMS level.
fn measure(s: &[i16], rate: u32) -> (f64, f64) {
    // Skip the edges (resampler fades, MP3 encoder delay).
    let s = &s[s.len() / 5..s.len() * 4 / 5];
    let crossings = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
    let secs = s.len() as f64 / f64::from(rate);
    let rms = (s.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>() / s.len() as f64).sqrt();
    (crossings as f64 / 2.0 / secs, rms)
}

#[test]
fn every_format_decodes_and_resamples_to_8_and_16_khz() {
    // sox wrote a 1 kHz sine at half scale (RMS 0.5/sqrt(2) of full scale).
    let expected_rms = 0.5 / 2f64.sqrt() * 32768.0;
    for file in [
        "tone1k-44k1-stereo.wav",
        "tone1k-48k.flac",
        "tone1k-22k.ogg",
        "tone1k-16k.mp3",
    ] {
        for rate in [8000, 16000] {
            let pcm = load(&data(file), rate).unwrap_or_else(|e| panic!("{e}"));
            let secs = pcm.len() as f64 / f64::from(rate);
            // MP3 carries its encoder delay and padding (about 70 ms here).
            assert!((0.45..=0.62).contains(&secs), "{file} at {rate}: {secs} s");
            let (freq, rms) = measure(&pcm, rate);
            assert!((freq - 1000.0).abs() < 10.0, "{file} at {rate}: {freq} Hz");
            assert!(
                (rms / expected_rms - 1.0).abs() < 0.06,
                "{file} at {rate}: level {rms} vs {expected_rms}"
            );
        }
    }
}

#[test]
fn a_1khz_sine_at_44_1_and_48_khz_keeps_frequency_and_level_at_8_khz() {
    for in_rate in [44_100u32, 48_000] {
        let samples: Vec<i16> = (0..in_rate)
            .map(|i| {
                (f64::sin(2.0 * std::f64::consts::PI * 1000.0 * f64::from(i) / f64::from(in_rate))
                    * 16384.0) as i16
            })
            .collect();
        let out = resample(
            &Pcm {
                rate: in_rate,
                samples,
            },
            8000,
            Path::new("sine"),
        )
        .expect("resamples");
        assert!((7900..=8100).contains(&out.len()), "{}", out.len());
        let (freq, rms) = measure(&out, 8000);
        assert!((freq - 1000.0).abs() < 2.0, "{in_rate}: {freq} Hz");
        let want = 16384.0 / 2f64.sqrt();
        assert!(
            (rms / want - 1.0).abs() < 0.02,
            "{in_rate}: rms {rms} (want {want}, within 2%)"
        );
    }
}

#[test]
fn bad_files_fail_with_their_name() {
    for (file, kind) in [
        ("missing.wav", "cannot read"),
        ("not-audio.wav", "not a WAV"),
        ("truncated.wav", ""),
    ] {
        match load(&data(file), 8000) {
            Err(e) => {
                let m = e.to_string();
                assert!(m.contains(file), "{m}");
                assert!(m.contains(kind), "{m}");
            }
            // A truncated WAV keeps what it has: the samples before the cut.
            Ok(pcm) => assert!(kind.is_empty() && !pcm.is_empty(), "{file} decoded"),
        }
    }
}

#[test]
fn the_cache_reuses_evicts_and_notices_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let a = dir.path().join("a.wav");
    let b = dir.path().join("b.wav");
    std::fs::copy(data("short.wav"), &a).expect("copy");
    std::fs::copy(data("short.wav"), &b).expect("copy");
    // short.wav: 0.2 s at 8 kHz = 1600 samples = 3200 bytes.
    let mut c = Cache::new(5000);
    let first = c.get(&a, 8000).expect("a");
    let again = c.get(&a, 8000).expect("a again");
    assert!(Arc::ptr_eq(&first, &again));
    assert_eq!(c.loads, 1);
    c.get(&b, 8000).expect("b");
    assert_eq!(c.loads, 2);
    assert!(c.used_bytes() <= 5000, "a was evicted to make room");
    c.get(&a, 8000).expect("a reloaded");
    assert_eq!(c.loads, 3);
    // Change a file: decoded again.
    std::fs::copy(data("tone1k-44k1-stereo.wav"), &a).expect("replace");
    let changed = c.get(&a, 8000).expect("a changed");
    assert_ne!(changed.len(), first.len());
    assert_eq!(c.loads, 4);
}
