//! In-band DTMF: a Goertzel detector for tones in the audio (ITU-T Q.23
//! frequencies, Q.24 acceptance).
//!
//! Each of the eight frequencies is measured over its own window of about
//! 20 cycles (constant Q: 230 samples at 697 Hz, 98 at 1633 Hz), so every
//! tone gets the same relative frequency resolution: a tone 1.5% off still
//! carries most of its energy into its bin, one 3.5% off does not. Every
//! 5 ms (40 samples, a block) the detector checks, over the windows ending
//! now:
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
//!
//! The windows overlap (a check every 40 samples, windows of up to 230),
//! so each tone's power is not measured afresh over its window (a Goertzel
//! filter over 230 samples, eight of them, every check). Instead each
//! 40-sample block's DFT sum at the eight frequencies is computed once,
//! with the part from each tone's window start for the block where that
//! window begins, and a check adds up the window's blocks, each turned by
//! its delay's phase: the same power, |sum of x[m] e^(-jwm)|^2 over the
//! window, for about a quarter of the arithmetic. A block's sums are
//! computed only when a check gets that far (loud, steady windows), so
//! silence and most speech cost only the copy into the block.

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
/// Samples between checks: one block.
const HOP: usize = 40;
/// Largest window (the 697 Hz tone's).
const MAX_WINDOW: usize = 230;
/// Smallest window (the 1633 Hz tone's).
const MIN_WINDOW: usize = 98;
/// Blocks the largest window spans (five whole ones and the end of a
/// sixth): the blocks kept.
const BLOCKS: usize = MAX_WINDOW.div_ceil(HOP);
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

/// Where a window of `len` samples ending at a block's end begins: how
/// many blocks it spans and the offset in its oldest block.
const fn span(len: usize) -> (usize, usize) {
    let blocks = len.div_ceil(HOP);
    (blocks, blocks * HOP - len)
}

/// One block's sums, computed when a check first needs them.
#[derive(Clone, Copy, Default)]
struct BlockSums {
    /// The energies below are computed.
    energy_done: bool,
    /// Sum of squares of the whole block.
    energy: f32,
    /// Sum of squares from the longest window's offset on.
    energy_long: f32,
    /// Sum of squares from the shortest window's offset on.
    energy_short: f32,
    /// The DFT sums below are computed.
    dft_done: bool,
    /// The whole block's sum of x[m] e^(-jw m) per tone (real, imaginary).
    re: [f32; 8],
    im: [f32; 8],
    /// The same from each tone's own window offset on (for the block in
    /// which that window begins).
    tail_re: [f32; 8],
    tail_im: [f32; 8],
}

/// What every detector shares: each tone's window and phase tables
/// (computed once, not per call).
struct Tables {
    /// Window length of each tone (low group first).
    windows: [usize; 8],
    /// Blocks each tone's window spans.
    spans: [usize; 8],
    /// Where each tone's window begins in its oldest block.
    offsets: [usize; 8],
    /// cos(w m) and sin(w m) for each sample m of a block, per tone.
    cos: [[f32; 8]; HOP],
    sin: [[f32; 8]; HOP],
    /// e^(j w HOP i): the phase of the block `i` blocks before the newest.
    turn_re: [[f32; 8]; BLOCKS],
    turn_im: [[f32; 8]; BLOCKS],
}

static TABLES: std::sync::OnceLock<Tables> = std::sync::OnceLock::new();

impl Tables {
    fn get() -> &'static Tables {
        TABLES.get_or_init(Tables::new)
    }

    fn new() -> Tables {
        let mut windows = [0usize; 8];
        let mut spans = [0usize; 8];
        let mut offsets = [0usize; 8];
        let mut omega = [0f32; 8];
        for (k, &f) in LOW.iter().chain(HIGH.iter()).enumerate() {
            let window = ((CYCLES * RATE as f32 / f).round() as usize).min(MAX_WINDOW);
            let (blocks, offset) = span(window);
            if let (Some(w), Some(b), Some(o), Some(om)) = (
                windows.get_mut(k),
                spans.get_mut(k),
                offsets.get_mut(k),
                omega.get_mut(k),
            ) {
                *w = window;
                *b = blocks;
                *o = offset;
                *om = 2.0 * std::f32::consts::PI * f / RATE as f32;
            }
        }
        // The tables in f64, rounded once.
        let mut cos = [[0f32; 8]; HOP];
        let mut sin = [[0f32; 8]; HOP];
        for (m, (c, s)) in cos.iter_mut().zip(sin.iter_mut()).enumerate() {
            for k in 0..8 {
                let a = f64::from(omega[k]) * m as f64;
                c[k] = a.cos() as f32;
                s[k] = a.sin() as f32;
            }
        }
        let mut turn_re = [[0f32; 8]; BLOCKS];
        let mut turn_im = [[0f32; 8]; BLOCKS];
        for (i, (re, im)) in turn_re.iter_mut().zip(turn_im.iter_mut()).enumerate() {
            for k in 0..8 {
                let a = f64::from(omega[k]) * (HOP * i) as f64;
                re[k] = a.cos() as f32;
                im[k] = a.sin() as f32;
            }
        }
        Tables {
            windows,
            spans,
            offsets,
            cos,
            sin,
            turn_re,
            turn_im,
        }
    }
}

/// An in-band DTMF detector for one 8 kHz stream.
pub struct Detector {
    /// The tones' windows and phases (the same for every detector).
    t: &'static Tables,
    /// The last [`BLOCKS`] blocks of samples (a ring, by block), the one
    /// at `head` being filled.
    blocks: Box<[[f32; HOP]; BLOCKS]>,
    sums: Box<[BlockSums; BLOCKS]>,
    head: usize,
    /// Samples in the block being filled (samples since the last check).
    fill: usize,
    filled: usize,
    /// Samples since the last one loud enough to matter: once a whole
    /// window is quieter than [`QUIET`], no tone can be in it and the
    /// checks are skipped (silence, and frames concealed as zeros, cost
    /// only the copy into the block).
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
        Detector {
            t: Tables::get(),
            blocks: Box::new([[0.0; HOP]; BLOCKS]),
            sums: Box::new([BlockSums::default(); BLOCKS]),
            head: 0,
            fill: 0,
            filled: 0,
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
            // Up to the block's end (the next check), in one pass.
            let n = (HOP - self.fill).min(rest.len());
            let (now, later) = rest.split_at(n);
            let Some(to) = self
                .blocks
                .get_mut(self.head)
                .and_then(|b| b.get_mut(self.fill..self.fill + n))
            else {
                return;
            };
            for (d, &s) in to.iter_mut().zip(now) {
                *d = f32::from(s);
            }
            match now.iter().rposition(|s| s.unsigned_abs() >= QUIET) {
                Some(i) => self.quiet_run = n - 1 - i,
                None => self.quiet_run += n,
            }
            self.filled = (self.filled + n).min(MAX_WINDOW);
            self.fill += n;
            if self.fill == HOP {
                self.check();
                // The next block takes the oldest one's place.
                self.head = (self.head + 1) % BLOCKS;
                self.fill = 0;
                if let Some(s) = self.sums.get_mut(self.head) {
                    s.energy_done = false;
                    s.dft_done = false;
                }
            }
            rest = later;
        }
    }

    /// The next digit detected.
    pub fn poll_digit(&mut self) -> Option<char> {
        self.out.pop_front()
    }

    /// The ring index of the block `back` blocks before the newest.
    fn block_at(&self, back: usize) -> usize {
        (self.head + BLOCKS - back % BLOCKS) % BLOCKS
    }

    /// The energies of block `b`, computed on first use.
    fn energies(&mut self, b: usize) -> BlockSums {
        let (Some(sums), Some(x)) = (self.sums.get_mut(b), self.blocks.get(b)) else {
            return BlockSums::default();
        };
        if !sums.energy_done {
            let (_, long_off) = span(MAX_WINDOW);
            let (_, short_off) = span(MIN_WINDOW);
            let (mut all, mut long, mut short) = (0f32, 0f32, 0f32);
            for (m, &v) in x.iter().enumerate() {
                let e = v * v;
                all += e;
                if m >= long_off {
                    long += e;
                }
                if m >= short_off {
                    short += e;
                }
            }
            sums.energy = all;
            sums.energy_long = long;
            sums.energy_short = short;
            sums.energy_done = true;
        }
        *sums
    }

    /// Mean power over the last `len` samples (`len` is the longest or the
    /// shortest window).
    fn mean_power(&mut self, len: usize) -> f32 {
        let (blocks, _) = span(len);
        let mut sum = 0.0;
        for back in 0..blocks {
            let s = self.energies(self.block_at(back));
            sum += if back + 1 < blocks {
                s.energy
            } else if len == MAX_WINDOW {
                s.energy_long
            } else {
                s.energy_short
            };
        }
        sum / len as f32
    }

    /// The DFT sums of block `b` at the eight tones, computed on first
    /// use. The eight lanes run side by side (the compiler vectorises
    /// them); each lane's tail sum is the whole sum up to its offset taken
    /// away at the end.
    fn dft(&mut self, b: usize) -> BlockSums {
        let t = self.t;
        let offsets = t.offsets;
        let (Some(sums), Some(x)) = (self.sums.get_mut(b), self.blocks.get(b)) else {
            return BlockSums::default();
        };
        if !sums.dft_done {
            let (mut re, mut im) = ([0f32; 8], [0f32; 8]);
            let (mut head_re, mut head_im) = ([0f32; 8], [0f32; 8]);
            for (m, ((&v, c), s)) in x.iter().zip(t.cos.iter()).zip(t.sin.iter()).enumerate() {
                for k in 0..8 {
                    // The sum before the lane's offset, kept as it passes.
                    let at = m == offsets[k];
                    head_re[k] = if at { re[k] } else { head_re[k] };
                    head_im[k] = if at { im[k] } else { head_im[k] };
                    re[k] += v * c[k];
                    im[k] -= v * s[k];
                }
            }
            for k in 0..8 {
                // (An offset of 0 keeps nothing back: the whole block.)
                sums.tail_re[k] = re[k] - head_re[k];
                sums.tail_im[k] = im[k] - head_im[k];
            }
            sums.re = re;
            sums.im = im;
            sums.dft_done = true;
        }
        *sums
    }

    /// Power of each of the eight tones over its own window ending now,
    /// scaled so a tone of amplitude A gives A²/2: the window's block
    /// sums, each turned back by its block's delay.
    fn powers(&mut self) -> [f32; 8] {
        let (mut re, mut im) = ([0f32; 8], [0f32; 8]);
        let t = self.t;
        let spans = t.spans;
        for back in 0..BLOCKS {
            let s = self.dft(self.block_at(back));
            let (Some(tr), Some(ti)) = (t.turn_re.get(back), t.turn_im.get(back)) else {
                break;
            };
            for k in 0..8 {
                let (br, bi) = if back + 1 < spans[k] {
                    (s.re[k], s.im[k])
                } else if back + 1 == spans[k] {
                    (s.tail_re[k], s.tail_im[k])
                } else {
                    (0.0, 0.0)
                };
                re[k] += br * tr[k] - bi * ti[k];
                im[k] += br * ti[k] + bi * tr[k];
            }
        }
        let mut p = [0f32; 8];
        for k in 0..8 {
            let n = t.windows[k] as f32;
            p[k] = 2.0 * (re[k] * re[k] + im[k] * im[k]) / (n * n);
        }
        p
    }

    /// The pair present in the windows ending now, if any.
    fn pair(&mut self) -> Option<char> {
        if self.filled < MAX_WINDOW || self.quiet_run >= MAX_WINDOW {
            return None;
        }
        // Cheap checks first: loud enough, and steady (mean power over the
        // longest window against the shortest). Silence and most speech
        // stop here, before any tone's sums are computed.
        let total = self.mean_power(MAX_WINDOW);
        if total < 2.0 * MIN_TONE_POWER {
            return None;
        }
        let short = self.mean_power(MIN_WINDOW);
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
