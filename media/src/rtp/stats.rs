//! Reception statistics of one source (RFC 3550 appendix A.1, A.3, A.8):
//! sequence validation with probation, extended highest sequence number,
//! cumulative and interval loss, and interarrival jitter.

/// Packets in sequence before a new source is valid (A.1).
const MIN_SEQUENTIAL: u16 = 2;
/// Largest forward jump still counted as the same sequence (A.1).
const MAX_DROPOUT: u16 = 3000;
/// Largest backward step that is a reordered packet (A.1).
const MAX_MISORDER: u16 = 100;
const SEQ_MOD: u32 = 1 << 16;

/// What the sequence check made of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqCheck {
    /// In sequence (or a tolerable gap, or reordered).
    Valid,
    /// Still on probation (a new source's first packet).
    Probation,
    /// A jump beyond `MAX_DROPOUT`: ignored unless the next one follows it.
    Bad,
}

/// Receive-side state of one SSRC.
#[derive(Debug, Clone, Default)]
pub struct RecvStats {
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    probation: u16,
    /// Packets accepted.
    pub received: u64,
    /// Payload bytes accepted.
    pub bytes: u64,
    expected_prior: u64,
    received_prior: u64,
    transit: Option<i64>,
    /// Jitter in timestamp units, times 16 (A.8).
    jitter16: u64,
    started: bool,
}

impl RecvStats {
    /// Starts tracking at `seq` (A.1 `init_seq` + probation).
    pub fn new(seq: u16) -> RecvStats {
        let mut s = RecvStats::default();
        s.init(seq);
        s.max_seq = seq.wrapping_sub(1);
        s.probation = MIN_SEQUENTIAL;
        s
    }

    fn init(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.bytes = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
        self.started = true;
    }

    /// A.1 `update_seq`.
    pub fn update_seq(&mut self, seq: u16) -> SeqCheck {
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init(seq);
                    self.received += 1;
                    return SeqCheck::Valid;
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return SeqCheck::Probation;
        } else if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles += SEQ_MOD;
            }
            self.max_seq = seq;
        } else if udelta <= u16::MAX - MAX_MISORDER {
            // A very large jump.
            if u32::from(seq) == self.bad_seq {
                // Two in a row: the other side restarted without telling us.
                self.init(seq);
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (SEQ_MOD - 1);
                return SeqCheck::Bad;
            }
        }
        // else: duplicate or reordered, counted below.
        self.received += 1;
        SeqCheck::Valid
    }

    /// A.8: `arrival` and `timestamp` in the same (RTP clock) units.
    pub fn update_jitter(&mut self, arrival: i64, timestamp: u32) {
        let transit = arrival.wrapping_sub(i64::from(timestamp));
        if let Some(prev) = self.transit {
            let d = (transit - prev).unsigned_abs();
            // Ignore absurd jumps (a timestamp reset) rather than let one
            // packet swamp the estimate.
            if d < u64::from(u32::MAX / 2) {
                self.jitter16 = self.jitter16 + d - self.jitter16 / 16;
            }
        }
        self.transit = Some(transit);
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        u32::try_from(self.jitter16 / 16).unwrap_or(u32::MAX)
    }

    /// Extended highest sequence number received (A.3).
    pub fn extended_max(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets expected so far.
    pub fn expected(&self) -> u64 {
        u64::from(self.extended_max()).saturating_sub(u64::from(self.base_seq)) + 1
    }

    /// Cumulative packets lost (may be negative with duplicates; clamped as
    /// in A.3 to 24 signed bits when reported).
    pub fn lost(&self) -> i64 {
        self.expected() as i64 - self.received as i64
    }

    /// Fraction lost since the previous call, in 1/256 (A.3), and resets
    /// the interval.
    pub fn take_fraction_lost(&mut self) -> u8 {
        let expected = self.expected();
        let expected_interval = expected.saturating_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.saturating_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            u8::try_from(((lost_interval as u64) << 8) / expected_interval).unwrap_or(255)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probation_then_counting() {
        let mut s = RecvStats::new(100);
        assert_eq!(s.update_seq(100), SeqCheck::Probation);
        assert_eq!(s.update_seq(101), SeqCheck::Valid);
        for seq in 102..=110 {
            assert_eq!(s.update_seq(seq), SeqCheck::Valid);
        }
        assert_eq!(s.expected(), 10);
        assert_eq!(s.lost(), 0);
    }

    #[test]
    fn loss_wrap_and_fraction() {
        let mut s = RecvStats::new(65530);
        s.update_seq(65530);
        for seq in [65531u16, 65532, 65534, 65535, 0, 2, 3] {
            assert_eq!(s.update_seq(seq), SeqCheck::Valid);
        }
        assert_eq!(s.extended_max(), 65536 + 3);
        assert_eq!(s.expected(), 9);
        assert_eq!(s.lost(), 2, "65533 and 1");
        assert_eq!(s.take_fraction_lost(), (2 * 256 / 9) as u8);
        assert_eq!(s.take_fraction_lost(), 0, "nothing new");
    }

    #[test]
    fn a_huge_jump_is_bad_until_confirmed() {
        let mut s = RecvStats::new(10);
        s.update_seq(10);
        s.update_seq(11);
        assert_eq!(s.update_seq(40000), SeqCheck::Bad);
        assert_eq!(s.update_seq(12), SeqCheck::Valid);
        assert_eq!(s.update_seq(50000), SeqCheck::Bad);
        assert_eq!(s.update_seq(50001), SeqCheck::Valid, "a restart, confirmed");
        assert_eq!(s.expected(), 1);
    }

    #[test]
    fn jitter_of_a_steady_stream_is_zero_and_grows_with_wobble() {
        let mut s = RecvStats::new(0);
        for i in 0..100i64 {
            s.update_jitter(i * 160 + 1000, (i * 160) as u32);
        }
        assert_eq!(s.jitter(), 0);
        for i in 100..300i64 {
            let wobble = if i % 2 == 0 { 80 } else { 0 };
            s.update_jitter(i * 160 + 1000 + wobble, (i * 160) as u32);
        }
        assert!((70..=90).contains(&s.jitter()), "{}", s.jitter());
    }
}
