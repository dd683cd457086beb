//! Audio codecs: G.711 μ-law and A-law, G.722 (16 kHz wideband, through
//! `ezk-g722`), L16, behind one interface so Opus can join later. Frames
//! are 20 ms of mono 16-bit PCM at the codec's sample rate. [`Coder`] holds
//! the state a codec needs (G.722 is adaptive).

pub mod g711;

/// A codec we can negotiate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// G.711 μ-law, 8 kHz, static payload type 0.
    Pcmu,
    /// G.711 A-law, 8 kHz, static payload type 8.
    Pcma,
    /// Linear 16-bit big-endian PCM, 8 kHz mono (dynamic payload type).
    L16,
    /// G.722 at 64 kbit/s: 16 kHz audio, static payload type 9.
    G722,
}

impl Codec {
    /// Samples per second of audio.
    pub fn sample_rate(self) -> u32 {
        match self {
            Codec::G722 => 16000,
            _ => 8000,
        }
    }

    /// The RTP clock rate: 8000 for G.722 too (RFC 3551 §4.5.2 kept an
    /// error of RFC 1890 for compatibility).
    pub fn rtp_clock_rate(self) -> u32 {
        8000
    }

    /// RTP timestamp units in one 20 ms frame.
    pub fn frame_rtp_units(self) -> u32 {
        self.rtp_clock_rate() / 50
    }

    /// Samples in one 20 ms frame.
    pub fn frame_samples(self) -> usize {
        (self.sample_rate() / 50) as usize
    }

    /// The SDP encoding name.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Pcmu => "PCMU",
            Codec::Pcma => "PCMA",
            Codec::L16 => "L16",
            Codec::G722 => "G722",
        }
    }

    /// By SDP encoding name.
    pub fn named(name: &str) -> Option<Codec> {
        match name.to_ascii_uppercase().as_str() {
            "PCMU" => Some(Codec::Pcmu),
            "PCMA" => Some(Codec::Pcma),
            "L16" => Some(Codec::L16),
            "G722" => Some(Codec::G722),
            _ => None,
        }
    }

    /// Encodes PCM samples of a stateless codec, appending the payload to
    /// `out` (G.722 needs a [`Coder`]; here it writes nothing).
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        match self {
            Codec::Pcmu => g711::ulaw_encode(pcm, out),
            Codec::Pcma => g711::alaw_encode(pcm, out),
            Codec::L16 => out.extend(pcm.iter().flat_map(|s| s.to_be_bytes())),
            Codec::G722 => {}
        }
    }

    /// Decodes a payload of a stateless codec, appending samples to `out`.
    /// An odd trailing byte of L16 is dropped.
    pub fn decode(self, payload: &[u8], out: &mut Vec<i16>) {
        match self {
            Codec::Pcmu => g711::ulaw_decode(payload, out),
            Codec::Pcma => g711::alaw_decode(payload, out),
            Codec::L16 => out.extend(
                payload
                    .chunks_exact(2)
                    .map(|b| i16::from_be_bytes([b[0], b[1]])),
            ),
            Codec::G722 => {}
        }
    }
}

/// A codec with its state, for one direction pair of one call.
pub struct Coder {
    codec: Codec,
    g722: Option<(
        ezk_g722::libg722::encoder::Encoder,
        ezk_g722::libg722::decoder::Decoder,
    )>,
}

impl std::fmt::Debug for Coder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Coder({:?})", self.codec)
    }
}

impl Coder {
    /// A fresh coder.
    pub fn new(codec: Codec) -> Coder {
        use ezk_g722::libg722::Bitrate;
        let g722 = (codec == Codec::G722).then(|| {
            (
                ezk_g722::libg722::encoder::Encoder::new(Bitrate::Mode1_64000, false, false),
                ezk_g722::libg722::decoder::Decoder::new(Bitrate::Mode1_64000, false, false),
            )
        });
        Coder { codec, g722 }
    }

    /// The codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// Encodes, appending the payload to `out`.
    pub fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) {
        match self.g722.as_mut() {
            Some((enc, _)) => out.extend(enc.encode(pcm)),
            None => self.codec.encode(pcm, out),
        }
    }

    /// Decodes, appending samples to `out`.
    pub fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) {
        match self.g722.as_mut() {
            Some((_, dec)) => out.extend(dec.decode(payload)),
            None => self.codec.decode(payload, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g722_round_trip_keeps_a_wideband_signal() {
        // 1 kHz and 5 kHz (above narrowband) at 16 kHz, one second.
        let pcm: Vec<i16> = (0..16000)
            .map(|i| {
                let t = f64::from(i) / 16000.0;
                ((2.0 * std::f64::consts::PI * 1000.0 * t).sin() * 6000.0
                    + (2.0 * std::f64::consts::PI * 5000.0 * t).sin() * 3000.0)
                    as i16
            })
            .collect();
        let mut c = Coder::new(Codec::G722);
        let (mut payload, mut back) = (Vec::new(), Vec::new());
        for frame in pcm.chunks(320) {
            let before = payload.len();
            c.encode(frame, &mut payload);
            assert_eq!(
                payload.len() - before,
                160,
                "64 kbit/s: 160 bytes per 20 ms"
            );
        }
        for p in payload.chunks(160) {
            c.decode(p, &mut back);
        }
        assert_eq!(back.len(), pcm.len());
        // The QMF filters delay the signal: find the lag, then measure.
        let snr_at = |lag: usize| {
            let (mut sig, mut err) = (0f64, 0f64);
            for i in 1000..15000 {
                let x = f64::from(pcm[i]);
                let y = f64::from(back[i + lag]);
                sig += x * x;
                err += (x - y) * (x - y);
            }
            10.0 * (sig / err).log10()
        };
        let best = (0..64).map(snr_at).fold(f64::MIN, f64::max);
        // Measured 28.6 dB on this signal; the floor leaves room.
        assert!(best > 25.0, "G.722 SNR {best:.1} dB");
    }

    #[test]
    fn a_frame_round_trips_through_each_codec() {
        let pcm: Vec<i16> = (0..160)
            .map(|i| ((i as f64 * 0.3).sin() * 8000.0) as i16)
            .collect();
        for codec in [Codec::Pcmu, Codec::Pcma, Codec::L16] {
            let mut payload = Vec::new();
            codec.encode(&pcm, &mut payload);
            assert_eq!(payload.len(), if codec == Codec::L16 { 320 } else { 160 });
            let mut back = Vec::new();
            codec.decode(&payload, &mut back);
            assert_eq!(back.len(), 160);
            let worst = pcm
                .iter()
                .zip(&back)
                .map(|(a, b)| (i32::from(*a) - i32::from(*b)).abs())
                .max();
            assert!(worst < Some(300), "{codec:?}: {worst:?}");
        }
    }
}
