//! Bridging and mixing: legs at 8 kHz or 16 kHz (PCM after decoding), each
//! hearing the sum of the others. Two legs are a bridge (caller and
//! agent); more make a conference, and supervisor whisper/barge later.
//!
//! Legs whose rate differs from the mix rate (16 kHz when any leg is
//! wideband) go through a [`FrameResampler`]: rubato's synchronous FFT
//! resampler with a fixed input of one 20 ms frame.

use rubato::audioadapter_buffers::owned::InterleavedOwned;
use rubato::{Fft, FixedSync, Resampler};

/// Resamples a stream of 20 ms frames between two fixed rates.
pub struct FrameResampler {
    inner: Fft<f32>,
    from: u32,
    to: u32,
    pending: Vec<f32>,
}

impl std::fmt::Debug for FrameResampler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "FrameResampler({} -> {})", self.from, self.to)
    }
}

impl FrameResampler {
    /// From `from` Hz to `to` Hz; None when rubato refuses the pair.
    pub fn new(from: u32, to: u32) -> Option<FrameResampler> {
        let chunk = (from / 50) as usize;
        let inner = Fft::<f32>::new(from as usize, to as usize, chunk, 1, FixedSync::Input).ok()?;
        Some(FrameResampler {
            inner,
            from,
            to,
            pending: Vec::new(),
        })
    }

    /// Output samples of `frame` (one 20 ms frame at `from`), appended to
    /// `out`: exactly one 20 ms frame at `to` once the resampler's delay
    /// has filled.
    pub fn process(&mut self, frame: &[i16], out: &mut Vec<i16>) {
        let input: Vec<f32> = frame.iter().map(|s| f32::from(*s) / 32768.0).collect();
        let n = input.len();
        let Ok(buf) = InterleavedOwned::new_from(input, 1, n) else {
            return;
        };
        if let Ok(res) = self.inner.process(&buf, None) {
            self.pending.extend(res.take_data());
        }
        let want = (self.to / 50) as usize;
        let take = want.min(self.pending.len());
        // Before the delay has filled, pad the front with silence so every
        // call returns one whole frame.
        out.extend(std::iter::repeat_n(0, want - take));
        out.extend(
            self.pending
                .drain(..take)
                .map(|s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16),
        );
    }
}

/// Index of a leg in a [`Mixer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LegId(pub usize);

#[derive(Debug)]
struct Leg {
    rate: u32,
    up: Option<FrameResampler>,
    down: Option<FrameResampler>,
    /// This frame, at the mix rate.
    frame: Vec<i32>,
    present: bool,
}

/// Mixes 20 ms frames of N legs: each leg hears every other leg.
#[derive(Debug, Default)]
pub struct Mixer {
    rate: u32,
    legs: Vec<Leg>,
}

impl Mixer {
    /// A mixer working at `rate` (8000 or 16000).
    pub fn new(rate: u32) -> Mixer {
        Mixer {
            rate,
            legs: Vec::new(),
        }
    }

    /// Adds a leg whose audio is at `rate`.
    pub fn add_leg(&mut self, rate: u32) -> LegId {
        let (up, down) = if rate == self.rate {
            (None, None)
        } else {
            (
                FrameResampler::new(rate, self.rate),
                FrameResampler::new(self.rate, rate),
            )
        };
        self.legs.push(Leg {
            rate,
            up,
            down,
            frame: vec![0; (self.rate / 50) as usize],
            present: false,
        });
        LegId(self.legs.len() - 1)
    }

    /// This slot's frame from a leg (at the leg's rate). A leg that gives
    /// nothing in a slot is silent in it.
    pub fn put(&mut self, leg: LegId, frame: &[i16]) {
        let n = (self.rate / 50) as usize;
        let Some(l) = self.legs.get_mut(leg.0) else {
            return;
        };
        let mut at_mix = Vec::with_capacity(n);
        match l.up.as_mut() {
            Some(r) => r.process(frame, &mut at_mix),
            None => at_mix.extend_from_slice(frame),
        }
        at_mix.resize(n, 0);
        l.frame.clear();
        l.frame.extend(at_mix.iter().map(|s| i32::from(*s)));
        l.present = true;
    }

    /// Ends the slot: what each leg hears (at its own rate), in leg order.
    pub fn mix(&mut self) -> Vec<Vec<i16>> {
        let n = (self.rate / 50) as usize;
        let mut total = vec![0i32; n];
        for l in self.legs.iter().filter(|l| l.present) {
            for (t, s) in total.iter_mut().zip(&l.frame) {
                *t += *s;
            }
        }
        let mut out = Vec::with_capacity(self.legs.len());
        for l in &mut self.legs {
            let own: &[i32] = if l.present { &l.frame } else { &[] };
            let heard: Vec<i16> = total
                .iter()
                .enumerate()
                .map(|(i, t)| (t - own.get(i).copied().unwrap_or(0)).clamp(-32768, 32767) as i16)
                .collect();
            let mut at_leg = Vec::with_capacity((l.rate / 50) as usize);
            match l.down.as_mut() {
                Some(r) => r.process(&heard, &mut at_leg),
                None => at_leg = heard,
            }
            out.push(at_leg);
            l.present = false;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f64, rate: u32, frames: usize, amp: f64) -> Vec<Vec<i16>> {
        let n = (rate / 50) as usize;
        (0..frames)
            .map(|f| {
                (0..n)
                    .map(|i| {
                        ((2.0 * std::f64::consts::PI * freq * (f * n + i) as f64 / f64::from(rate))
                            .sin()
                            * amp) as i16
                    })
                    .collect()
            })
            .collect()
    }

    fn freq_of(s: &[i16], rate: u32) -> f64 {
        let crossings = s.windows(2).filter(|w| (w[0] < 0) != (w[1] < 0)).count();
        crossings as f64 / 2.0 / (s.len() as f64 / f64::from(rate))
    }

    #[test]
    fn a_frame_resampler_keeps_frequency_across_8_and_16_khz() {
        for (from, to) in [(8000u32, 16000u32), (16000, 8000)] {
            let mut r = FrameResampler::new(from, to).expect("pair");
            let mut out = Vec::new();
            for f in sine(700.0, from, 50, 10000.0) {
                let before = out.len();
                r.process(&f, &mut out);
                assert_eq!(
                    out.len() - before,
                    (to / 50) as usize,
                    "one frame per frame"
                );
            }
            let tail = &out[out.len() / 2..];
            assert!(
                (freq_of(tail, to) - 700.0).abs() < 10.0,
                "{from}->{to}: {}",
                freq_of(tail, to)
            );
        }
    }

    #[test]
    fn a_bridge_between_narrowband_and_wideband_legs() {
        let mut m = Mixer::new(16000);
        let caller = m.add_leg(8000);
        let agent = m.add_leg(16000);
        let c = sine(500.0, 8000, 40, 8000.0);
        let a = sine(1500.0, 16000, 40, 8000.0);
        let mut caller_hears = Vec::new();
        let mut agent_hears = Vec::new();
        for i in 0..40 {
            m.put(caller, &c[i]);
            m.put(agent, &a[i]);
            let out = m.mix();
            caller_hears.extend_from_slice(&out[0]);
            agent_hears.extend_from_slice(&out[1]);
        }
        assert_eq!(caller_hears.len(), 40 * 160);
        assert_eq!(agent_hears.len(), 40 * 320);
        assert!(
            (freq_of(&caller_hears[3200..], 8000) - 1500.0).abs() < 20.0,
            "the caller hears the agent"
        );
        assert!(
            (freq_of(&agent_hears[6400..], 16000) - 500.0).abs() < 10.0,
            "the agent hears the caller"
        );
    }

    #[test]
    fn each_of_three_legs_hears_the_other_two_not_itself() {
        let mut m = Mixer::new(8000);
        let legs: Vec<_> = (0..3).map(|_| m.add_leg(8000)).collect();
        for (i, l) in legs.iter().enumerate() {
            m.put(*l, &[100 * (i as i16 + 1); 160]);
        }
        let out = m.mix();
        assert_eq!(out[0][0], 200 + 300);
        assert_eq!(out[1][0], 100 + 300);
        assert_eq!(out[2][0], 100 + 200);
        // A silent slot for leg 2: the others hear only each other.
        m.put(legs[0], &[100; 160]);
        m.put(legs[1], &[200; 160]);
        let out = m.mix();
        assert_eq!((out[0][0], out[1][0], out[2][0]), (200, 100, 300));
        // Sums saturate instead of wrapping.
        m.put(legs[0], &[30000; 160]);
        m.put(legs[1], &[30000; 160]);
        assert_eq!(m.mix()[2][0], 32767);
    }
}
