//! Q.24 acceptance tests of the in-band detector on generated tones.

use super::*;

const KEYS_ALL: &str = "123A456B789C*0#D";
/// About -10 dBm0 per tone.
const AMP: f32 = 7000.0;

fn detect(signal: &[i16]) -> String {
    let mut d = Detector::new();
    // Feed in odd-sized chunks, as RTP would (20 ms) but misaligned.
    for chunk in signal.chunks(137) {
        d.handle_samples(chunk);
    }
    std::iter::from_fn(|| d.poll_digit()).collect()
}

fn silence(ms: u32) -> Vec<i16> {
    vec![0; (RATE * ms / 1000) as usize]
}

fn with_gaps(parts: &[Vec<i16>]) -> Vec<i16> {
    let mut v = silence(50);
    for p in parts {
        v.extend_from_slice(p);
        v.extend(silence(60));
    }
    v
}

#[test]
fn every_key_at_nominal_frequency() {
    for k in KEYS_ALL.chars() {
        assert_eq!(
            detect(&with_gaps(&[tone(k, 60, 1.0, AMP, AMP, 0.3)])),
            k.to_string(),
            "{k}"
        );
    }
}

#[test]
fn a_sequence_of_digits_is_reported_in_order_once_each() {
    let parts: Vec<_> = "0123456789*#"
        .chars()
        .map(|k| tone(k, 80, 1.0, AMP, AMP, 0.0))
        .collect();
    assert_eq!(detect(&with_gaps(&parts)), "0123456789*#");
    // The same key twice needs the pause between.
    let parts = vec![
        tone('5', 80, 1.0, AMP, AMP, 0.0),
        tone('5', 80, 1.0, AMP, AMP, 1.0),
    ];
    assert_eq!(detect(&with_gaps(&parts)), "55");
}

#[test]
fn within_one_and_a_half_percent_is_accepted() {
    for k in KEYS_ALL.chars() {
        for detune in [1.014, 0.986] {
            assert_eq!(
                detect(&with_gaps(&[tone(k, 60, detune, AMP, AMP, 0.0)])),
                k.to_string(),
                "{k} x{detune}"
            );
        }
    }
}

#[test]
fn beyond_three_and_a_half_percent_is_rejected() {
    for k in KEYS_ALL.chars() {
        for detune in [1.036, 0.964] {
            assert_eq!(
                detect(&with_gaps(&[tone(k, 60, detune, AMP, AMP, 0.0)])),
                "",
                "{k} x{detune}"
            );
        }
    }
}

#[test]
fn twist_up_to_eight_db_normal_and_four_db_reverse() {
    let db = |d: f32| 10f32.powf(d / 20.0);
    for k in "159#".chars() {
        // Normal twist: low group louder.
        assert_eq!(
            detect(&with_gaps(&[tone(k, 60, 1.0, AMP, AMP / db(7.9), 0.0)])),
            k.to_string(),
            "{k} normal 7.9 dB"
        );
        // Reverse twist: high group louder.
        assert_eq!(
            detect(&with_gaps(&[tone(k, 60, 1.0, AMP / db(3.9), AMP, 0.0)])),
            k.to_string(),
            "{k} reverse 3.9 dB"
        );
        // Far beyond: one tone alone is not a digit.
        assert_eq!(
            detect(&with_gaps(&[tone(k, 60, 1.0, AMP, AMP / db(20.0), 0.0)])),
            "",
            "{k} 20 dB"
        );
    }
}

#[test]
fn forty_ms_fires_and_thirty_ms_does_not() {
    for k in KEYS_ALL.chars() {
        for phase in [0.0, 1.3, 2.9] {
            for lead in [0, 13, 27] {
                let mut s = silence(50 + lead);
                s.extend(tone(k, 40, 1.0, AMP, AMP, phase));
                s.extend(silence(60));
                assert_eq!(detect(&s), k.to_string(), "{k} 40 ms, lead {lead}");
                let mut s = silence(50 + lead);
                s.extend(tone(k, 30, 1.0, AMP, AMP, phase));
                s.extend(silence(60));
                assert_eq!(detect(&s), "", "{k} 30 ms, lead {lead}");
            }
        }
    }
}

#[test]
fn quiet_tones_and_silence_and_noise_do_not_fire() {
    assert_eq!(
        detect(&with_gaps(&[tone('5', 80, 1.0, 300.0, 300.0, 0.0)])),
        "",
        "about -42 dBm0"
    );
    assert_eq!(detect(&silence(1000)), "");
    // White-ish noise from a linear congruential generator.
    let mut x: u32 = 12345;
    let noise: Vec<i16> = (0..8000 * 5)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((x >> 16) as i16) / 4
        })
        .collect();
    assert_eq!(detect(&noise), "");
}

#[test]
fn a_single_tone_or_a_chord_of_three_is_not_a_digit() {
    let one: Vec<i16> = (0..800)
        .map(|i| (AMP * (2.0 * std::f32::consts::PI * 770.0 * i as f32 / 8000.0).sin()) as i16)
        .collect();
    assert_eq!(detect(&with_gaps(&[one])), "");
    let a = tone('1', 80, 1.0, AMP, AMP, 0.0);
    let b = tone('5', 80, 1.0, AMP, 0.0, 0.0);
    let chord: Vec<i16> = a
        .iter()
        .zip(&b)
        .map(|(x, y)| x.saturating_add(*y))
        .collect();
    assert_eq!(detect(&with_gaps(&[chord])), "", "two low tones at once");
}

/// Back to back, 50 ms on and 50 ms off (the nominal dialling rate).
fn nominal(parts: &[Vec<i16>]) -> Vec<i16> {
    let gap = vec![0i16; (RATE * 50 / 1000) as usize];
    let mut out = gap.clone();
    for p in parts {
        out.extend_from_slice(p);
        out.extend_from_slice(&gap);
    }
    out.extend_from_slice(&gap);
    out
}

#[test]
fn all_sixteen_keys_in_a_nominal_sequence_with_q24_twist() {
    let db = |d: f32| 10f32.powf(d / 20.0);
    for (name, low, high) in [
        ("no twist", AMP, AMP),
        ("8 dB normal", AMP, AMP / db(8.0)),
        ("4 dB reverse", AMP / db(4.0), AMP),
    ] {
        let parts: Vec<_> = KEYS_ALL
            .chars()
            .map(|k| tone(k, 50, 1.0, low, high, 0.0))
            .collect();
        assert_eq!(detect(&nominal(&parts)), KEYS_ALL, "{name}");
    }
}

#[test]
fn the_last_key_of_a_sequence_is_heard_with_no_silence_after_it() {
    let db = |d: f32| 10f32.powf(d / 20.0);
    for (low, high) in [(AMP, AMP), (AMP, AMP / db(8.0)), (AMP / db(4.0), AMP)] {
        for last in ['*', '#', 'D'] {
            let gap = vec![0i16; (RATE * 50 / 1000) as usize];
            let mut sig = gap.clone();
            for k in ['1', '5', last] {
                sig.extend(tone(k, 50, 1.0, low, high, 0.7));
                if k != last {
                    sig.extend_from_slice(&gap);
                }
            }
            assert_eq!(detect(&sig), format!("15{last}"), "{low}/{high}");
        }
    }
}

/// Each tone's power from the block sums equals the power measured
/// directly over its window (the DFT at the tone's frequency, in f64),
/// and the mean powers equal the direct mean squares, at every check of
/// a signal of tones, noise and steps, fed in pieces of all sizes.
#[test]
fn block_sums_give_the_power_measured_over_each_window() {
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 20_001) as f32 - 10_000.0
    };
    let mut signal: Vec<i16> = Vec::new();
    for part in 0..12 {
        let (f1, f2) = (300.0 + 110.0 * part as f32, 1250.0 + 37.0 * part as f32);
        for i in 0..(517 + 61 * part) {
            let t = i as f32 / RATE as f32;
            let v = 6000.0 * (2.0 * std::f32::consts::PI * f1 * t).sin()
                + 3000.0 * (2.0 * std::f32::consts::PI * f2 * t).sin()
                + if part % 3 == 0 { noise() } else { 0.0 };
            signal.push(v.clamp(-32768.0, 32767.0) as i16);
        }
    }
    let freqs: Vec<f64> = LOW
        .iter()
        .chain(HIGH.iter())
        .map(|&f| f64::from(f))
        .collect();
    let mut d = Detector::new();
    let mut fed = 0;
    let mut checks = 0;
    let mut size = 1;
    while fed < signal.len() {
        // Up to the next check, in pieces of 1, 2, ... samples.
        let to_check = HOP - d.fill;
        let n = size.min(to_check).min(signal.len() - fed);
        size = size % 97 + 1;
        d.handle_samples(&signal[fed..fed + n]);
        fed += n;
        if d.fill != 0 || fed < MAX_WINDOW {
            continue;
        }
        // Just checked: look at the windows that check saw (the newest
        // block's sums were dropped for the next one; its samples stay).
        d.head = (d.head + BLOCKS - 1) % BLOCKS;
        let got = d.powers();
        let mean_long = d.mean_power(MAX_WINDOW);
        let mean_short = d.mean_power(MIN_WINDOW);
        d.head = (d.head + 1) % BLOCKS;
        d.sums[d.head].energy_done = false;
        d.sums[d.head].dft_done = false;
        checks += 1;
        let window = |len: usize| &signal[fed - len..fed];
        let mean = |len: usize| {
            window(len)
                .iter()
                .map(|&x| f64::from(x).powi(2))
                .sum::<f64>()
                / len as f64
        };
        let (long, short) = (mean(MAX_WINDOW), mean(MIN_WINDOW));
        assert!(
            (f64::from(mean_long) - long).abs() <= long * 1e-4 + 1.0,
            "{mean_long} vs {long}"
        );
        assert!(
            (f64::from(mean_short) - short).abs() <= short * 1e-4 + 1.0,
            "{mean_short} vs {short}"
        );
        for (k, &f) in freqs.iter().enumerate() {
            let w = d.t.windows[k];
            let omega = 2.0 * std::f64::consts::PI * f / f64::from(RATE);
            let (mut re, mut im) = (0f64, 0f64);
            for (m, &x) in window(w).iter().enumerate() {
                re += f64::from(x) * (omega * m as f64).cos();
                im -= f64::from(x) * (omega * m as f64).sin();
            }
            let want = 2.0 * (re * re + im * im) / (w * w) as f64;
            let err = (f64::from(got[k]) - want).abs();
            assert!(
                err <= want * 1e-3 + long * 1e-5 + 1.0,
                "tone {f} Hz after {fed} samples: {} from the blocks, {want} directly",
                got[k]
            );
        }
    }
    assert!(checks > 100, "{checks} checks");
}
