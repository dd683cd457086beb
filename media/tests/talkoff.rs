//! Talk-off: ten minutes of synthetic speech (espeak-ng, four voices,
//! including spoken digits, the classic trap) through the in-band DTMF
//! detector must give no digit. `scripts/test.sh` installs espeak-ng.

use std::process::Command;

use media::dtmf::inband::Detector;

/// Words to speak, digits among them.
const WORDS: &[&str] = &[
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "zero",
    "hash",
    "star",
    "please",
    "enter",
    "your",
    "account",
    "number",
    "followed",
    "by",
    "the",
    "key",
    "welcome",
    "to",
    "acme",
    "bank",
    "balance",
    "is",
    "rupees",
    "thank",
    "you",
    "for",
    "calling",
    "press",
    "menu",
    "support",
    "billing",
    "agent",
    "hold",
    "music",
    "minute",
    "seconds",
    "Tuesday",
    "morning",
    "evening",
    "appointment",
    "doctor",
    "clinic",
    "emergency",
    "sorry",
    "again",
    "yes",
    "no",
    "okay",
    "seventy",
    "eleven",
    "hundred",
    "thousand",
    "beautiful",
    "whistle",
    "siren",
    "beep",
    "tone",
];

fn text(seed: u32, words: usize) -> String {
    let mut x = seed;
    let mut out = String::new();
    for i in 0..words {
        x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
        out.push_str(WORDS[(x >> 8) as usize % WORDS.len()]);
        out.push(if i % 12 == 11 { '.' } else { ' ' });
        if i % 12 == 11 {
            out.push(' ');
        }
    }
    out
}

/// 22050 Hz speech to 8 kHz: a windowed-sinc low-pass at 3.4 kHz, then
/// linear interpolation (good enough for a detector test).
fn to_8k(input: &[i16]) -> Vec<i16> {
    const TAPS: usize = 63;
    let fc = 3400.0 / 22050.0;
    let h: Vec<f64> = (0..TAPS)
        .map(|i| {
            let n = i as f64 - (TAPS - 1) as f64 / 2.0;
            let sinc = if n == 0.0 {
                2.0 * fc
            } else {
                (2.0 * std::f64::consts::PI * fc * n).sin() / (std::f64::consts::PI * n)
            };
            let w = 0.54 - 0.46 * (2.0 * std::f64::consts::PI * i as f64 / (TAPS - 1) as f64).cos();
            sinc * w
        })
        .collect();
    // The filter's output only where the interpolation needs it.
    let filtered = |i: usize| -> f64 {
        h.iter()
            .enumerate()
            .map(|(k, c)| c * f64::from(*input.get(i.wrapping_sub(k)).unwrap_or(&0)))
            .sum()
    };
    let step = 22050.0 / 8000.0;
    let n = (input.len() as f64 / step) as usize;
    (0..n)
        .map(|j| {
            let pos = j as f64 * step;
            let i = pos as usize;
            let frac = pos - i as f64;
            let (a, b) = (filtered(i), filtered(i + 1));
            (a + (b - a) * frac).clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

fn speak(voice: &str, pitch: u32, speed: u32, text: &str) -> Vec<i16> {
    let out = Command::new("espeak-ng")
        .args([
            "--stdout",
            "-v",
            voice,
            "-p",
            &pitch.to_string(),
            "-s",
            &speed.to_string(),
            text,
        ])
        .output()
        .expect("espeak-ng must be installed (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "espeak-ng failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // 44-byte WAV header with "infinite" sizes; the samples follow.
    out.stdout
        .get(44..)
        .unwrap_or(&[])
        .chunks_exact(2)
        .map(|b| i16::from_le_bytes([b[0], b[1]]))
        .collect()
}

#[test]
fn ten_minutes_of_speech_give_no_digit() {
    let mut total_8k = 0usize;
    let mut digits = String::new();
    for (i, (voice, pitch, speed)) in [
        ("en", 50, 170),
        ("en+f3", 80, 150),
        ("en-us+m3", 30, 190),
        ("hi", 60, 160),
    ]
    .iter()
    .enumerate()
    {
        let speech = speak(voice, *pitch, *speed, &text(i as u32 + 1, 480));
        let pcm = to_8k(&speech);
        // Louder than a phone would send, to make talk-off harder.
        let pcm: Vec<i16> = pcm.iter().map(|s| s.saturating_mul(2)).collect();
        total_8k += pcm.len();
        let mut d = Detector::new();
        for frame in pcm.chunks(160) {
            d.handle_samples(frame);
        }
        digits.extend(std::iter::from_fn(|| d.poll_digit()));
    }
    let minutes = total_8k as f64 / 8000.0 / 60.0;
    assert!(
        minutes >= 10.0,
        "only {minutes:.1} minutes of speech generated"
    );
    assert_eq!(digits, "", "false digits in {minutes:.1} minutes of speech");
}
