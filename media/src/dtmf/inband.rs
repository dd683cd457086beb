//! In-band DTMF: a Goertzel detector for tones in the audio (ITU-T Q.23
//! frequencies, Q.24 acceptance).
//!
//! Each of the eight frequencies is measured over its own window of about
//! 20 cycles (constant Q: 229 samples at 697 Hz, 98 at 1633 Hz), so every
//! tone gets the same relative frequency resolution: a tone 1.5% off still
//! carries most of its energy into its bin, one 3.5% off does not. Every
//! 5 ms (40 samples) the detector checks, over the windows ending now:
//!
//! 1. one low-group and one high-group tone stand out (each at least
//!    [`MIN_TONE_POWER`] and 6 dB above the others in its group);
//! 2. twist: the low tone at most 8 dB above the high one (normal twist),
//!    the high at most 4 dB above the low (reverse twist), each limit with
//!    2 dB of room for the measurement's swing;
//! 3. the two tones carry most of the signal's energy (speech spreads its
//!    energy and fails this);
//!
//! and reports a digit once the same pair has held for [`MIN_HOLD`]: a
//! 40 ms tone is reported, a 30 ms one is not. The digit ends after
//! 20 ms without the pair.

use std::collections::VecDeque;

/// Sample rate this detector works at.
pub const RATE: u32 = 8000;
const LOW: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
const HIGH: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// Cycles of each tone in its window.
const CYCLES: f32 = 20.0;
/// Samples between checks.
const HOP: usize = 40;
/// Largest window (the 697 Hz tone's).
const MAX_WINDOW: usize = 230;
/// Smallest window (the 1633 Hz tone's).
const MIN_WINDOW: usize = 98;
/// The signal's power over the shortest and the longest window may differ
/// by this ratio at most: the tone fills the whole long window (onsets and
/// ends of tones fail this, so a tone is counted only while it lasts).
const STEADY: f32 = 1.15;
/// Least power of each tone (mean square, 16-bit units): a tone of
/// amplitude 700, about -35 dBm0.
pub const MIN_TONE_POWER: f32 = 700.0 * 700.0 / 2.0;
/// A window whose every sample is below this amplitude has a mean power
/// under 700² = 2 x [`MIN_TONE_POWER`], which the energy check refuses: no
/// need to compute it.
const QUIET: u16 = 700;
/// Normal twist limit (low group louder), as a power ratio: 10 dB, so that
/// the 8 dB of Q.24 passes with room for measurement error. The room is
/// needed: for `*` (941 + 1209 Hz, the closest pair across the groups) the
/// loud low tone leaks into the short 1209 Hz window and the measured
/// twist of an 8 dB tone swings between 6 and 9 dB from one check to the
/// next (measured; a 9 dB limit missed `*` at 8 dB).
const NORMAL_TWIST: f32 = 10.0;
/// Reverse twist limit (high group louder): 6 dB, for the 4 dB of Q.24,
/// with the same room.
const REVERSE_TWIST: f32 = 3.98;
/// The other tones of a group must be this far below its peak (6 dB).
const RELATIVE_PEAK: f32 = 0.25;
/// Share of the signal's power the two tones must carry.
const TONE_SHARE: f32 = 0.55;
/// Consecutive checks with the same steady pair before a digit, 5 ms
/// apart: with the 29 ms window, 40 ms tones give 3 or 4 (whatever their
/// alignment with the checks), 30 ms tones at most 2.
pub const MIN_HOLD: usize = 3;
/// Checks without the pair before the digit ends.
const RELEASE: usize = 4;

/// An in-band DTMF detector for one 8 kHz stream.
pub struct Detector {
    /// Goertzel coefficient of each tone (low group first).
    coeff: [f32; 8],
    /// Where each tone's window starts within the longest window.
    starts: [usize; 8],
    /// Window length of each tone.
    windows: [usize; 8],
    /// The last `MAX_WINDOW` samples, written twice (at `pos` and
    /// `pos + MAX_WINDOW`) so they are always one contiguous slice.
    ring: Box<[f32; 2 * MAX_WINDOW]>,
    pos: usize,
    filled: usize,
    since_check: usize,
    /// Samples since the last one loud enough to matter: once a whole
    /// window is quieter than [`QUIET`], no tone can be in it and the
    /// checks are skipped (silence, and frames concealed as zeros, cost
    /// only the copy into the ring).
    quiet_run: usize,
    candidate: Option<char>,
    hits: usize,
    misses: usize,
    /// The digit being held (already reported).
    current: Option<char>,
    out: VecDeque<char>,
}

impl Default for Detector {
    fn default() -> Detector {
        Detector::new()
    }
}

impl std::fmt::Debug for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detector")
            .field("current", &self.current)
            .finish()
    }
}

impl Detector {
    /// A detector with no history.
    pub fn new() -> Detector {
        let mut coeff = [0f32; 8];
        let mut windows = [0usize; 8];
        let mut starts = [0usize; 8];
        for (k, &f) in LOW.iter().chain(HIGH.iter()).enumerate() {
            let window = ((CYCLES * RATE as f32 / f).round() as usize).min(MAX_WINDOW);
            if let (Some(c), Some(w), Some(st)) =
                (coeff.get_mut(k), windows.get_mut(k), starts.get_mut(k))
            {
                *c = 2.0 * (2.0 * std::f32::consts::PI * f / RATE as f32).cos();
                *w = window;
                *st = MAX_WINDOW - window;
            }
        }
        Detector {
            coeff,
            starts,
            windows,
            ring: Box::new([0.0; 2 * MAX_WINDOW]),
            pos: 0,
            filled: 0,
            since_check: 0,
            quiet_run: 0,
            candidate: None,
            hits: 0,
            misses: 0,
            current: None,
            out: VecDeque::new(),
        }
    }

    /// Feeds samples (any number).
    pub fn handle_samples(&mut self, samples: &[i16]) {
        let mut rest = samples;
        while !rest.is_empty() {
            // Up to the next check and the ring's end, in one pass.
            let n = (HOP - self.since_check)
                .min(MAX_WINDOW - self.pos)
                .min(rest.len());
            let (now, later) = rest.split_at(n);
            let (lo, hi) = self.ring.split_at_mut(MAX_WINDOW);
            let (Some(a), Some(b)) = (
                lo.get_mut(self.pos..self.pos + n),
                hi.get_mut(self.pos..self.pos + n),
            ) else {
                return;
            };
            for ((a, b), &s) in a.iter_mut().zip(b.iter_mut()).zip(now) {
                let x = f32::from(s);
                *a = x;
                *b = x;
            }
            match now.iter().rposition(|s| s.unsigned_abs() >= QUIET) {
                Some(i) => self.quiet_run = n - 1 - i,
                None => self.quiet_run += n,
            }
            self.pos = (self.pos + n) % MAX_WINDOW;
            self.filled = (self.filled + n).min(MAX_WINDOW);
            self.since_check += n;
            if self.since_check == HOP {
                self.since_check = 0;
                self.check();
            }
            rest = later;
        }
    }

    /// The next digit detected.
    pub fn poll_digit(&mut self) -> Option<char> {
        self.out.pop_front()
    }

    /// The last `MAX_WINDOW` samples, oldest first.
    fn window(&self) -> &[f32] {
        self.ring
            .get(self.pos..self.pos + MAX_WINDOW)
            .unwrap_or(&[])
    }

    /// Power of each of the eight tones over its own window ending now,
    /// scaled so a tone of amplitude A gives A²/2. The eight Goertzel
    /// recursions run side by side (the compiler vectorises the lanes); a
    /// lane is fed zeros before its window starts, which leaves its state
    /// at zero.
    fn powers(&self) -> [f32; 8] {
        let (mut s1, mut s2) = ([0f32; 8], [0f32; 8]);
        let coeff = self.coeff;
        let starts = self.starts;
        for (i, &x) in self.window().iter().enumerate() {
            // Branch-free lanes: the compiler turns this into SIMD.
            let mut xs = [0f32; 8];
            for k in 0..8 {
                xs[k] = if i >= starts[k] { x } else { 0.0 };
            }
            let mut s0 = [0f32; 8];
            for k in 0..8 {
                s0[k] = xs[k] + coeff[k] * s1[k] - s2[k];
            }
            s2 = s1;
            s1 = s0;
        }
        let mut p = [0f32; 8];
        for k in 0..8 {
            let n = self.windows[k] as f32;
            let mag2 = s1[k] * s1[k] + s2[k] * s2[k] - self.coeff[k] * s1[k] * s2[k];
            p[k] = 2.0 * mag2 / (n * n);
        }
        p
    }

    /// The pair present in the windows ending now, if any.
    fn pair(&self) -> Option<char> {
        if self.filled < MAX_WINDOW || self.quiet_run >= MAX_WINDOW {
            return None;
        }
        // Cheap checks first: loud enough, and steady (mean power over the
        // longest window against the shortest). Silence and most speech
        // stop here, before any Goertzel runs.
        let w = self.window();
        let total: f32 = w.iter().map(|x| x * x).sum::<f32>() / MAX_WINDOW as f32;
        if total < 2.0 * MIN_TONE_POWER {
            return None;
        }
        let short: f32 = w
            .iter()
            .skip(MAX_WINDOW - MIN_WINDOW)
            .map(|x| x * x)
            .sum::<f32>()
            / MIN_WINDOW as f32;
        if short > total * STEADY || total > short * STEADY {
            return None;
        }
        let p = self.powers();
        let (low, high) = p.split_at(4);
        let (li, lp) = peak(low)?;
        let (hi, hp) = peak(high)?;
        if lp < MIN_TONE_POWER || hp < MIN_TONE_POWER {
            return None;
        }
        if lp > hp * NORMAL_TWIST || hp > lp * REVERSE_TWIST {
            return None;
        }
        let stands_out = |group: &[f32], i: usize, peak: f32| {
            group
                .iter()
                .enumerate()
                .all(|(j, &x)| j == i || x <= peak * RELATIVE_PEAK)
        };
        if !stands_out(low, li, lp) || !stands_out(high, hi, hp) {
            return None;
        }
        if lp + hp < TONE_SHARE * total {
            return None;
        }
        KEYS.get(li).and_then(|r| r.get(hi)).copied()
    }

    fn check(&mut self) {
        let pair = self.pair();
        match pair {
            Some(k) if Some(k) == self.candidate => self.hits += 1,
            Some(k) => {
                self.candidate = Some(k);
                self.hits = 1;
            }
            None => {
                self.candidate = None;
                self.hits = 0;
            }
        }
        if pair.is_some() && pair == self.current {
            self.misses = 0;
            return;
        }
        if let Some(k) = pair
            && self.hits >= MIN_HOLD
            && self.current.is_none()
        {
            self.current = Some(k);
            self.misses = 0;
            self.out.push_back(k);
            return;
        }
        if self.current.is_some() {
            self.misses += 1;
            if self.misses >= RELEASE {
                self.current = None;
            }
        }
    }
}

fn peak(group: &[f32]) -> Option<(usize, f32)> {
    group
        .iter()
        .copied()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

/// Frequencies of a key (low, high), for generating test tones.
pub fn frequencies(key: char) -> Option<(f32, f32)> {
    KEYS.iter().enumerate().find_map(|(r, row)| {
        row.iter()
            .position(|k| *k == key.to_ascii_uppercase())
            .map(|c| (LOW[r], HIGH[c]))
    })
}

/// Generates a DTMF tone: `ms` of the key's two frequencies (times
/// `detune`), with the low tone at `low_amp` and the high at `high_amp`.
pub fn tone(key: char, ms: u32, detune: f32, low_amp: f32, high_amp: f32, phase: f32) -> Vec<i16> {
    let Some((fl, fh)) = frequencies(key) else {
        return Vec::new();
    };
    let n = (RATE * ms / 1000) as usize;
    (0..n)
        .map(|i| {
            let t = i as f32 / RATE as f32;
            let v = low_amp * (2.0 * std::f32::consts::PI * fl * detune * t + phase).sin()
                + high_amp * (2.0 * std::f32::consts::PI * fh * detune * t + 2.0 * phase).sin();
            v.clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

#[cfg(test)]
mod tests;
