//! A bridge: N call legs, each with its own 20 ms clock and sample rate,
//! and a matrix of who hears whom. A two-party call is the bridge where
//! each leg hears the other; a supervisor's listen, whisper and barge are
//! other matrices of the same bridge, not special cases:
//!
//! | mode    | caller hears   | agent hears          | supervisor hears |
//! |---------|----------------|----------------------|------------------|
//! | listen  | agent          | caller               | caller, agent    |
//! | whisper | agent          | caller, supervisor   | caller, agent    |
//! | barge   | agent, sup.    | caller, supervisor   | caller, agent    |
//!
//! Legs tick independently (each leg's media sends on its own deadlines),
//! so a frame a leg produced waits in a short queue per listener, already
//! resampled to the listener's rate, until the listener's next frame takes
//! it. A queue holds at most [`MAX_QUEUED`] frames (80 ms): a listener
//! that stalls loses the oldest audio rather than falling behind for good.

use std::collections::VecDeque;

use crate::mix::FrameResampler;

/// Frames waiting per (speaker, listener) pair at most.
pub const MAX_QUEUED: usize = 4;

/// Index of a leg in a [`Bridge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BridgeLeg(pub usize);

#[derive(Debug)]
struct Path {
    queue: VecDeque<Vec<i16>>,
    resampler: Option<FrameResampler>,
}

#[derive(Debug)]
struct LegState {
    rate: u32,
    /// `from[s]`: what this leg hears of leg `s`, if it hears it.
    from: Vec<Option<Path>>,
}

/// The bridge.
#[derive(Debug, Default)]
pub struct Bridge {
    legs: Vec<LegState>,
    /// Frames dropped because a listener fell behind.
    pub dropped: u64,
}

impl Bridge {
    /// An empty bridge.
    pub fn new() -> Bridge {
        Bridge::default()
    }

    /// Adds a leg whose audio is at `rate` (8000 or 16000); it hears no
    /// one until [`Bridge::hear`].
    pub fn add_leg(&mut self, rate: u32) -> BridgeLeg {
        for l in &mut self.legs {
            l.from.push(None);
        }
        let n = self.legs.len() + 1;
        self.legs.push(LegState {
            rate,
            from: (0..n).map(|_| None).collect(),
        });
        BridgeLeg(n - 1)
    }

    /// Whether `listener` hears `speaker`.
    pub fn hear(&mut self, listener: BridgeLeg, speaker: BridgeLeg, yes: bool) {
        if listener == speaker {
            return;
        }
        let Some(speaker_rate) = self.legs.get(speaker.0).map(|l| l.rate) else {
            return;
        };
        let Some(l) = self.legs.get_mut(listener.0) else {
            return;
        };
        let rate = l.rate;
        if let Some(slot) = l.from.get_mut(speaker.0) {
            *slot = yes.then(|| Path {
                queue: VecDeque::new(),
                resampler: (speaker_rate != rate)
                    .then(|| FrameResampler::new(speaker_rate, rate))
                    .flatten(),
            });
        }
    }

    /// Does `listener` hear `speaker`?
    pub fn hears(&self, listener: BridgeLeg, speaker: BridgeLeg) -> bool {
        self.legs
            .get(listener.0)
            .and_then(|l| l.from.get(speaker.0))
            .is_some_and(Option::is_some)
    }

    /// A 20 ms frame `speaker` produced (at its rate).
    pub fn put(&mut self, speaker: BridgeLeg, frame: &[i16]) {
        for l in &mut self.legs {
            let rate = l.rate;
            let Some(Some(p)) = l.from.get_mut(speaker.0) else {
                continue;
            };
            let mut out = Vec::with_capacity((rate / 50) as usize);
            match p.resampler.as_mut() {
                Some(r) => r.process(frame, &mut out),
                None => out.extend_from_slice(frame),
            }
            out.resize((rate / 50) as usize, 0);
            if p.queue.len() >= MAX_QUEUED {
                p.queue.pop_front();
                self.dropped += 1;
            }
            p.queue.push_back(out);
        }
    }

    /// What `listener` hears in its next frame: the sum of one queued
    /// frame of every leg it hears, or `None` when none has one.
    pub fn take(&mut self, listener: BridgeLeg) -> Option<Vec<i16>> {
        let l = self.legs.get_mut(listener.0)?;
        let n = (l.rate / 50) as usize;
        let mut sum: Option<Vec<i32>> = None;
        for p in l.from.iter_mut().flatten() {
            if let Some(f) = p.queue.pop_front() {
                let s = sum.get_or_insert_with(|| vec![0; n]);
                for (t, x) in s.iter_mut().zip(&f) {
                    *t += i32::from(*x);
                }
            }
        }
        sum.map(|s| {
            s.into_iter()
                .map(|x| x.clamp(-32768, 32767) as i16)
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_legs_hear_each_other_across_rates_and_not_themselves() {
        let mut b = Bridge::new();
        let caller = b.add_leg(8000);
        let agent = b.add_leg(16000);
        b.hear(caller, agent, true);
        b.hear(agent, caller, true);
        b.put(caller, &[1000; 160]);
        assert_eq!(b.take(caller), None, "the caller does not hear itself");
        let heard = b.take(agent).expect("agent hears the caller");
        assert_eq!(heard.len(), 320);
        b.put(agent, &[-500; 320]);
        assert_eq!(b.take(caller).map(|f| f.len()), Some(160));
        assert_eq!(b.take(agent), None, "each frame is heard once");
    }

    #[test]
    fn whisper_is_heard_by_the_agent_only_and_barge_by_both() {
        let mut b = Bridge::new();
        let (c, a, s) = (b.add_leg(8000), b.add_leg(8000), b.add_leg(8000));
        for (l, sp) in [(c, a), (a, c), (s, c), (s, a), (a, s)] {
            b.hear(l, sp, true);
        }
        b.put(s, &[300; 160]);
        b.put(c, &[100; 160]);
        assert_eq!(
            b.take(a).map(|f| f[0]),
            Some(400),
            "agent: caller + supervisor"
        );
        assert_eq!(b.take(c), None, "the caller does not hear the whisper");
        b.put(a, &[200; 160]);
        b.put(c, &[100; 160]);
        assert_eq!(
            b.take(s).map(|f| f[0]),
            Some(300),
            "supervisor: caller + agent"
        );
        // Barge: the caller hears the supervisor too.
        b.hear(c, s, true);
        b.put(s, &[300; 160]);
        b.put(a, &[200; 160]);
        assert_eq!(b.take(c).map(|f| f[0]), Some(500));
    }

    #[test]
    fn a_stalled_listener_keeps_only_the_newest_frames() {
        let mut b = Bridge::new();
        let (x, y) = (b.add_leg(8000), b.add_leg(8000));
        b.hear(y, x, true);
        for i in 0..10 {
            b.put(x, &[i; 160]);
        }
        assert_eq!(b.dropped, 6);
        assert_eq!(b.take(y).map(|f| f[0]), Some(6));
    }
}
