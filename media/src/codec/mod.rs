//! Audio codecs: G.711 μ-law and A-law, L16, (G.722 next), behind one
//! interface so Opus can join later. Frames are 20 ms of mono 16-bit PCM at
//! the codec's clock rate.

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
}

impl Codec {
    /// Samples per second of audio (also the RTP clock rate here).
    pub fn sample_rate(self) -> u32 {
        8000
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
        }
    }

    /// Encodes PCM samples, appending the payload to `out`.
    pub fn encode(self, pcm: &[i16], out: &mut Vec<u8>) {
        match self {
            Codec::Pcmu => g711::ulaw_encode(pcm, out),
            Codec::Pcma => g711::alaw_encode(pcm, out),
            Codec::L16 => out.extend(pcm.iter().flat_map(|s| s.to_be_bytes())),
        }
    }

    /// Decodes a payload, appending samples to `out`. An odd trailing byte
    /// of L16 is dropped.
    pub fn decode(self, payload: &[u8], out: &mut Vec<i16>) {
        match self {
            Codec::Pcmu => g711::ulaw_decode(payload, out),
            Codec::Pcma => g711::alaw_decode(payload, out),
            Codec::L16 => out.extend(
                payload
                    .chunks_exact(2)
                    .map(|b| i16::from_be_bytes([b[0], b[1]])),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
