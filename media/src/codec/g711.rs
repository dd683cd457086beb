//! G.711 (ITU-T, 11/1988): 8-bit logarithmic companding of 16-bit linear
//! PCM at 8 kHz. μ-law (PCMU, payload type 0) and A-law (PCMA, payload
//! type 8).
//!
//! The encoder follows the segment search of the ITU-T G.711 reference
//! (as in the G.191 software tools): μ-law adds a bias of 0x84 to the 14-bit
//! magnitude and takes the four bits below the leading one of the
//! segment; A-law works on the 13-bit magnitude with segments 0 and 1 of
//! equal step. Decoding returns the mid-point of each quantisation
//! interval, scaled to 16 bits. Both directions are tables built once:
//! 256 entries to decode, 65 536 to encode.

use std::sync::OnceLock;

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32635;

/// μ-law code of one 16-bit sample (reference algorithm, no table).
pub fn ulaw_encode_reference(sample: i16) -> u8 {
    let mut pcm = i32::from(sample);
    let sign = if pcm < 0 {
        pcm = -pcm;
        0x80
    } else {
        0x00
    };
    pcm = pcm.min(ULAW_CLIP) + ULAW_BIAS;
    // Segment: position of the leading one among bits 7..14.
    let mut exponent = 7;
    while exponent > 0 && pcm & (0x4000 >> (7 - exponent)) == 0 {
        exponent -= 1;
    }
    let mantissa = (pcm >> (exponent + 3)) & 0x0F;
    !(sign | (exponent << 4) as u8 | mantissa as u8)
}

/// Linear value of a μ-law code.
pub fn ulaw_decode_reference(code: u8) -> i16 {
    let u = !code;
    let t = ((i32::from(u & 0x0F) << 3) + ULAW_BIAS) << ((u & 0x70) >> 4);
    let v = if u & 0x80 != 0 {
        ULAW_BIAS - t
    } else {
        t - ULAW_BIAS
    };
    v as i16
}

/// A-law code of one 16-bit sample (reference algorithm, no table).
pub fn alaw_encode_reference(sample: i16) -> u8 {
    // A-law works on 13 bits.
    let mut pcm = i32::from(sample) >> 3;
    let mask = if pcm >= 0 {
        0xD5
    } else {
        pcm = -pcm - 1;
        0x55
    };
    const SEG_END: [i32; 8] = [0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF];
    let seg = SEG_END.iter().position(|&e| pcm <= e).unwrap_or(8) as i32;
    if seg >= 8 {
        return 0x7F ^ mask;
    }
    let mut aval = (seg << 4) as u8;
    aval |= if seg < 2 {
        (pcm >> 1) & 0x0F
    } else {
        (pcm >> seg) & 0x0F
    } as u8;
    aval ^ mask
}

/// Linear value of an A-law code.
pub fn alaw_decode_reference(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = i32::from(a & 0x0F) << 4;
    let seg = (a & 0x70) >> 4;
    match seg {
        0 => t += 8,
        1 => t += 0x108,
        _ => {
            t += 0x108;
            t <<= seg - 1;
        }
    }
    (if a & 0x80 != 0 { t } else { -t }) as i16
}

struct Tables {
    ulaw_dec: [i16; 256],
    alaw_dec: [i16; 256],
    /// Indexed by the sample as `u16` (64 KiB: negation makes buckets of
    /// equal code straddle any shorter index).
    ulaw_enc: Vec<u8>,
    /// Likewise.
    alaw_enc: Vec<u8>,
}

fn tables() -> &'static Tables {
    static T: OnceLock<Tables> = OnceLock::new();
    T.get_or_init(|| {
        let mut ulaw_dec = [0i16; 256];
        let mut alaw_dec = [0i16; 256];
        for c in 0..=255u8 {
            ulaw_dec[c as usize] = ulaw_decode_reference(c);
            alaw_dec[c as usize] = alaw_decode_reference(c);
        }
        let ulaw_enc = (0..=u16::MAX)
            .map(|i| ulaw_encode_reference(i as i16))
            .collect();
        let alaw_enc = (0..=u16::MAX)
            .map(|i| alaw_encode_reference(i as i16))
            .collect();
        Tables {
            ulaw_dec,
            alaw_dec,
            ulaw_enc,
            alaw_enc,
        }
    })
}

/// Encodes 16-bit samples to μ-law, appending to `out`.
pub fn ulaw_encode(samples: &[i16], out: &mut Vec<u8>) {
    let t = &tables().ulaw_enc;
    out.extend(
        samples
            .iter()
            .map(|&s| t.get(usize::from(s as u16)).copied().unwrap_or(0xFF)),
    );
}

/// Decodes μ-law to 16-bit samples, appending to `out`.
pub fn ulaw_decode(codes: &[u8], out: &mut Vec<i16>) {
    let t = &tables().ulaw_dec;
    out.extend(codes.iter().map(|&c| t[c as usize]));
}

/// Encodes 16-bit samples to A-law, appending to `out`.
pub fn alaw_encode(samples: &[i16], out: &mut Vec<u8>) {
    let t = &tables().alaw_enc;
    out.extend(
        samples
            .iter()
            .map(|&s| t.get(usize::from(s as u16)).copied().unwrap_or(0xD5)),
    );
}

/// Decodes A-law to 16-bit samples, appending to `out`.
pub fn alaw_decode(codes: &[u8], out: &mut Vec<i16>) {
    let t = &tables().alaw_dec;
    out.extend(codes.iter().map(|&c| t[c as usize]));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points of the G.711 tables (Table 1a/2a, "decoder output" column,
    /// in the 14-bit (μ) and 13-bit (A) units of the standard, times 4 and
    /// 8 for 16-bit samples), one per segment edge plus signs and zero.
    #[test]
    fn decoding_matches_the_itu_tables() {
        // μ-law: code (after the standard's bit inversion is applied by us)
        // -> decoder output in 14-bit units.
        let ulaw = [
            (0xFF, 0),  // positive zero
            (0x7F, 0),  // negative zero
            (0xFE, 2),  // segment 0, first step
            (0xF0, 30), // segment 0, last step: 30
            (0xEF, 33), // segment 1 starts at 33
            (0xDF, 99), // segment 2
            (0xCF, 231),
            (0xBF, 495),
            (0xAF, 1023),
            (0x9F, 2079),
            (0x8F, 4191),
            (0x80, 8031), // largest
            (0x00, -8031),
        ];
        for (code, out14) in ulaw {
            assert_eq!(
                ulaw_decode_reference(code),
                (out14 * 4) as i16,
                "μ-law {code:#04x}"
            );
        }
        // A-law: transmitted code -> decoder output in 13-bit units.
        let alaw = [
            (0xD5, 1), // +, segment 0, step 0
            (0x55, -1),
            (0xD4, 3),
            (0xC5, 33), // segment 1 (same step as segment 0)
            (0xF5, 66),
            (0xE5, 132),
            (0x95, 264),
            (0x85, 528),
            (0xB5, 1056),
            (0xA5, 2112),
            (0xAA, 4032), // largest
            (0x2A, -4032),
        ];
        for (code, out13) in alaw {
            assert_eq!(
                alaw_decode_reference(code),
                (out13 * 8) as i16,
                "A-law {code:#04x}"
            );
        }
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for c in 0..=255u8 {
            let u = ulaw_decode_reference(c);
            let back = ulaw_encode_reference(u);
            // Negative zero encodes as positive zero.
            assert!(
                back == c || (c == 0x7F && back == 0xFF),
                "μ {c:#04x} -> {u} -> {back:#04x}"
            );
            let a = alaw_decode_reference(c);
            assert_eq!(alaw_encode_reference(a), c, "A {c:#04x} -> {a}");
        }
    }

    #[test]
    fn encoding_is_monotonic_and_saturates() {
        let mut prev_u = i32::MIN;
        let mut prev_a = i32::MIN;
        for s in (i16::MIN..=i16::MAX).step_by(7) {
            let u = i32::from(ulaw_decode_reference(ulaw_encode_reference(s)));
            let a = i32::from(alaw_decode_reference(alaw_encode_reference(s)));
            assert!(u >= prev_u && a >= prev_a, "not monotonic at {s}");
            prev_u = u;
            prev_a = a;
        }
        assert_eq!(ulaw_encode_reference(i16::MAX), 0x80);
        assert_eq!(ulaw_encode_reference(i16::MIN), 0x00);
        assert_eq!(alaw_encode_reference(i16::MAX), 0xAA);
        assert_eq!(alaw_encode_reference(i16::MIN), 0x2A);
    }

    #[test]
    fn tables_agree_with_the_reference_for_every_sample() {
        let all: Vec<i16> = (i16::MIN..=i16::MAX).collect();
        let (mut u, mut a) = (Vec::new(), Vec::new());
        ulaw_encode(&all, &mut u);
        alaw_encode(&all, &mut a);
        for (i, &s) in all.iter().enumerate() {
            assert_eq!(u[i], ulaw_encode_reference(s), "μ {s}");
            assert_eq!(a[i], alaw_encode_reference(s), "A {s}");
        }
        let codes: Vec<u8> = (0..=255).collect();
        let mut d = Vec::new();
        ulaw_decode(&codes, &mut d);
        assert_eq!(d[0x80], 32124);
    }

    #[test]
    fn quantisation_error_is_within_half_a_step() {
        // Signal-to-quantisation noise of a full-scale sine: G.711 gives
        // about 38 dB; require 35.
        for (enc, dec) in [
            (
                ulaw_encode_reference as fn(i16) -> u8,
                ulaw_decode_reference as fn(u8) -> i16,
            ),
            (alaw_encode_reference, alaw_decode_reference),
        ] {
            let (mut sig, mut noise) = (0f64, 0f64);
            for n in 0..8000 {
                let x = (f64::sin(2.0 * std::f64::consts::PI * 1004.0 * n as f64 / 8000.0)
                    * 20000.0) as i16;
                let y = dec(enc(x));
                sig += f64::from(x).powi(2);
                noise += (f64::from(x) - f64::from(y)).powi(2);
            }
            let snr = 10.0 * (sig / noise).log10();
            assert!(snr > 35.0, "SNR {snr:.1} dB");
        }
    }
}
