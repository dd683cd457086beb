//! The recording tap's consumers: a [`Sink`] takes the time-aligned frames
//! of [`crate::call::Output::Tap`]. [`WavSink`] writes a stereo WAV (caller
//! left, far end right) with hound; the encrypted recorder of the
//! `recordings` crate is another sink.

use std::io::{Seek, Write};

/// Takes 20 ms of audio each way.
pub trait Sink {
    /// Error type.
    type Error;
    /// One frame: what the caller said and what they heard, same length.
    fn write_frame(&mut self, caller: &[i16], far_end: &[i16]) -> Result<(), Self::Error>;
    /// Ends the recording.
    fn finish(self) -> Result<(), Self::Error>;
}

/// A stereo 16-bit WAV: caller on the left, far end on the right.
pub struct WavSink<W: Write + Seek> {
    writer: hound::WavWriter<W>,
}

impl<W: Write + Seek> WavSink<W> {
    /// A WAV at `rate` into `out`.
    pub fn new(out: W, rate: u32) -> Result<WavSink<W>, hound::Error> {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        Ok(WavSink {
            writer: hound::WavWriter::new(out, spec)?,
        })
    }
}

impl<W: Write + Seek> Sink for WavSink<W> {
    type Error = hound::Error;

    fn write_frame(&mut self, caller: &[i16], far_end: &[i16]) -> Result<(), hound::Error> {
        let n = caller.len().max(far_end.len());
        for i in 0..n {
            self.writer
                .write_sample(caller.get(i).copied().unwrap_or(0))?;
            self.writer
                .write_sample(far_end.get(i).copied().unwrap_or(0))?;
        }
        Ok(())
    }

    fn finish(self) -> Result<(), hound::Error> {
        self.writer.finalize()
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Arc;
    use std::time::{Instant, SystemTime};

    use rand::SeedableRng;
    use rand::rngs::StdRng;
    use webrtc_util::marshal::Marshal;

    use super::*;
    use crate::call::{CallMedia, Command, Config, FRAME, Output};
    use crate::codec::Codec;

    #[test]
    fn a_call_records_to_a_stereo_wav_with_both_sides_aligned() {
        let peer: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
        let cfg = Config {
            rtp: crate::rtp::Config::new(
                peer,
                crate::rtp::PayloadType(0),
                crate::rtp::ClockRate(8000),
            )
            .already_confirmed(),
            codec: Codec::Pcmu,
            inband_dtmf: false,
            tap: true,
        };
        let t0 = Instant::now();
        let mut m = CallMedia::new(
            cfg,
            &mut StdRng::seed_from_u64(3),
            t0,
            SystemTime::UNIX_EPOCH,
        );
        // We play 200 ms of a loud tone; the caller talks (another level)
        // from 100 ms to 300 ms.
        m.handle_command(
            t0,
            Command::Play {
                prompts: vec![Arc::from(vec![8000i16; 1600])],
                barge_in: false,
            },
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("call.wav");
        let mut sink = WavSink::new(
            std::io::BufWriter::new(std::fs::File::create(&path).expect("create")),
            8000,
        )
        .expect("wav");
        for i in 0..50u32 {
            let now = t0 + FRAME * i;
            if (5..15).contains(&i) {
                let mut payload = Vec::new();
                Codec::Pcmu.encode(&[-4000i16; 160], &mut payload);
                let pkt = ::rtp::packet::Packet {
                    header: ::rtp::header::Header {
                        version: 2,
                        payload_type: 0,
                        sequence_number: i as u16,
                        timestamp: i * 160,
                        ssrc: 5,
                        ..Default::default()
                    },
                    payload: bytes::Bytes::from(payload),
                };
                m.handle_datagram(now, peer, &pkt.marshal().expect("marshal"));
            }
            m.handle_timeout(now);
            while let Some(o) = m.poll_output() {
                if let Output::Tap { caller, far_end } = o {
                    sink.write_frame(&caller, &far_end).expect("write");
                }
            }
        }
        sink.finish().expect("finish");
        let mut r = hound::WavReader::open(&path).expect("open");
        assert_eq!(r.spec().channels, 2);
        let samples: Vec<i16> = r.samples::<i16>().map(|s| s.expect("sample")).collect();
        assert_eq!(
            samples.len(),
            50 * 160 * 2,
            "one second, both channels, no gaps"
        );
        let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
        let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
        let level = |v: &[i16]| v.iter().map(|s| i32::from(*s).abs()).max().unwrap_or(0);
        // Far end: the prompt in the first 200 ms, silence after.
        assert!(level(&right[..1600]) > 7000 && level(&right[1600..]) == 0);
        // Caller: silence before 100 ms, their voice (delayed by the jitter
        // buffer) in the middle, silence again at the end.
        assert_eq!(level(&left[..800]), 0);
        assert!(level(&left[800..4000]) > 3000);
        assert!(level(&left[6400..]) < 1500, "concealment fades to silence");
    }
}
