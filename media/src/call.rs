//! The media of one call: a sans-IO core that joins the RTP session, the
//! jitter buffer, the codec, DTMF detection, prompt playback with 20 ms
//! pacing, and the recording tap. The server's call task only moves
//! datagrams and wakes it at [`CallMedia::poll_timeout`].
//!
//! ```text
//!  datagram ─► Session ─► JitterBuffer ─┐ every 20 ms (absolute deadlines):
//!                  │ RFC 4733 digits     ├─► decode/conceal ─► in-band DTMF ─► tap (caller)
//!                  ▼                     │
//!               events                   └─◄ player (prompts) or silence ─► encode ─► RTP out ─► tap (far end)
//! ```
//!
//! Frames are sent on absolute 20 ms deadlines from the start, so sleeping
//! late never accumulates drift; a driver that wakes more than five frames
//! late skips ahead instead of sending a burst.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use rand::Rng;

use crate::codec::{Codec, Coder};
use crate::dtmf::{Source, inband};
use crate::jitter::{self, Frame, JitterBuffer};
use crate::mix::FrameResampler;
use crate::rtp::{self, Session};

/// One frame: 20 ms.
pub const FRAME: Duration = Duration::from_millis(20);
/// Frames a late driver may catch up on before skipping ahead.
const MAX_CATCH_UP: u32 = 5;
/// Bridged frames waiting to be sent at most.
pub const MAX_FEED: usize = 4;

/// Something the call (the IVR) should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A key, and how it arrived.
    Digit {
        /// The key.
        key: char,
        /// RFC 4733, SIP INFO or in-band.
        source: Source,
    },
    /// The queued prompts finished (or were stopped).
    PlaybackFinished {
        /// Stopped by [`Command::Stop`] or barge-in rather than played out.
        interrupted: bool,
    },
    /// No RTP for the configured time.
    MediaTimeout,
    /// The RTP peer's address was learned.
    Latched(SocketAddr),
    /// Sending started: the dialog was confirmed ([`Command::Confirm`]) or
    /// the peer's own RTP latched. Until then prompts wait, as on hold.
    Confirmed,
}

/// What the call asks of its media.
#[derive(Debug, Clone)]
pub enum Command {
    /// Play these (PCM at the codec's rate) in order, after anything queued.
    Play {
        /// The prompts.
        prompts: Vec<Arc<[i16]>>,
        /// A caller's key stops the playback.
        barge_in: bool,
    },
    /// Stop playing now.
    Stop,
    /// A digit from SIP INFO.
    InfoDigit(char),
    /// Send an RFC 4733 digit.
    SendDigit(char),
    /// The dialog is confirmed (the ACK came): media may be sent.
    Confirm,
    /// A re-INVITE moved the media or renumbered its payload types.
    Remote {
        /// Where RTP goes now.
        remote: SocketAddr,
        /// The codec's payload type.
        payload_type: rtp::PayloadType,
        /// telephone-event's payload type.
        telephone_event: Option<rtp::PayloadType>,
    },
    /// Start or stop [`Output::Tap`] frames (a recording started or ended,
    /// or the call was bridged: the tap's `caller` frames are what the
    /// bridge's other legs hear).
    Tap(bool),
    /// A frame (at the codec's rate) to send when no prompt plays: the
    /// audio of a bridged leg. At most [`MAX_FEED`] wait; older ones go.
    Feed(Vec<i16>),
    /// Listen for in-band DTMF or not (when [`Config::inband_dtmf`] is
    /// on). A bridged caller's keys are audio the other party hears: the
    /// detector, the costliest part of a frame, rests meanwhile, and
    /// starts afresh when turned on again.
    InbandDtmf(bool),
    /// The negotiated direction changed (re-INVITE hold/unhold): whether
    /// we may send RTP, and whether the peer will (the media timeout
    /// sleeps while it will not).
    Direction {
        /// We send.
        send: bool,
        /// We receive.
        receive: bool,
    },
}

/// Output of the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send a datagram.
    Transmit {
        /// To.
        to: SocketAddr,
        /// Bytes.
        bytes: Bytes,
        /// RTCP: from the RTCP socket unless rtcp-mux.
        rtcp: bool,
    },
    /// For the call.
    Event(Event),
    /// 20 ms of audio each way, time aligned, for a recorder: what the
    /// caller said (silence where nothing arrived) and what we sent.
    Tap {
        /// From the caller.
        caller: Vec<i16>,
        /// To the caller.
        far_end: Vec<i16>,
    },
}

/// Settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The RTP session.
    pub rtp: rtp::Config,
    /// The negotiated codec.
    pub codec: Codec,
    /// Run the in-band DTMF detector.
    pub inband_dtmf: bool,
    /// Emit [`Output::Tap`] frames.
    pub tap: bool,
}

#[derive(Debug, Default)]
struct Player {
    queue: VecDeque<(Arc<[i16]>, usize)>,
    barge_in: bool,
}

/// The media core of one call.
#[derive(Debug)]
pub struct CallMedia {
    session: Session,
    codec: Codec,
    coder: Coder,
    jitter: JitterBuffer,
    detector: Option<inband::Detector>,
    /// The detector listens ([`Command::InbandDtmf`]).
    detecting: bool,
    /// Wideband audio goes to the 8 kHz detector through this.
    detector_resampler: Option<FrameResampler>,
    player: Player,
    feed: VecDeque<Vec<i16>>,
    tap: bool,
    sending: bool,
    /// [`Event::Confirmed`] was emitted.
    confirmed_told: bool,
    next_frame: Instant,
    was_silent: bool,
    last_good: Vec<i16>,
    lost_run: u32,
    out: VecDeque<Output>,
    /// Frames whose deadline passed by more than a frame before we ran.
    pub late_frames: u64,
    /// Frames skipped because the driver was far too late.
    pub skipped_frames: u64,
    /// Frames produced.
    pub frames: u64,
    /// Frames produced more than 2 ms after their deadline.
    pub late_2ms: u64,
    /// ... more than 5 ms (also counted in `late_2ms`).
    pub late_5ms: u64,
    /// ... more than 10 ms (a listener may hear it as jitter).
    pub late_10ms: u64,
    /// ... more than 20 ms (a whole frame late).
    pub late_20ms: u64,
}

impl CallMedia {
    /// Starts a call's media at `now`.
    pub fn new(cfg: Config, rng: &mut impl Rng, now: Instant, wall: SystemTime) -> CallMedia {
        let jcfg = jitter::Config {
            clock_rate: cfg.codec.rtp_clock_rate(),
            ..jitter::Config::default()
        };
        let rate = cfg.codec.sample_rate();
        let confirmed = cfg.rtp.confirmed;
        CallMedia {
            session: Session::new(cfg.rtp, rng, now, wall),
            codec: cfg.codec,
            coder: Coder::new(cfg.codec),
            jitter: JitterBuffer::new(jcfg),
            detector: cfg.inband_dtmf.then(inband::Detector::new),
            detecting: true,
            detector_resampler: (cfg.inband_dtmf && rate != inband::RATE)
                .then(|| FrameResampler::new(rate, inband::RATE))
                .flatten(),
            player: Player::default(),
            feed: VecDeque::new(),
            tap: cfg.tap,
            sending: true,
            confirmed_told: confirmed,
            next_frame: now,
            was_silent: true,
            last_good: vec![0; cfg.codec.frame_samples()],
            lost_run: 0,
            out: VecDeque::new(),
            late_frames: 0,
            skipped_frames: 0,
            frames: 0,
            late_2ms: 0,
            late_5ms: 0,
            late_10ms: 0,
            late_20ms: 0,
        }
    }

    /// The negotiated codec.
    pub fn codec(&self) -> Codec {
        self.codec
    }

    /// The RTP session (counters, statistics).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// The jitter buffer (statistics).
    pub fn jitter(&self) -> &JitterBuffer {
        &self.jitter
    }

    /// True while prompts are queued.
    pub fn is_playing(&self) -> bool {
        !self.player.queue.is_empty()
    }

    /// The next output.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to call [`CallMedia::handle_timeout`]: the next frame, or the
    /// session's own timers.
    pub fn poll_timeout(&self) -> Instant {
        self.session
            .poll_timeout()
            .map_or(self.next_frame, |t| t.min(self.next_frame))
    }

    /// When the next frame is due.
    pub fn next_frame(&self) -> Instant {
        self.next_frame
    }

    /// Moves the next frame's deadline to `at`: a leg joining a bridge
    /// ticks with the caller's leg, so that one wake-up of the call's
    /// task serves both.
    pub fn align_frames(&mut self, at: Instant) {
        self.next_frame = at;
    }

    /// A datagram from the RTP socket.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) {
        self.session
            .handle_input(now, rtp::Input::Datagram { from, bytes });
        self.drain_session(now);
    }

    /// A command from the call.
    pub fn handle_command(&mut self, now: Instant, cmd: Command) {
        match cmd {
            Command::Play { prompts, barge_in } => {
                self.player.queue.extend(
                    prompts
                        .into_iter()
                        .filter(|p| !p.is_empty())
                        .map(|p| (p, 0)),
                );
                self.player.barge_in = barge_in;
                if self.player.queue.is_empty() {
                    self.out.push_back(Output::Event(Event::PlaybackFinished {
                        interrupted: false,
                    }));
                }
            }
            Command::Stop => self.stop_playback(),
            Command::InfoDigit(key) => self.digit(key, Source::Info),
            Command::SendDigit(key) => {
                self.session
                    .send_digit(now, key, Duration::from_millis(100));
                self.drain_session(now);
            }
            Command::Remote {
                remote,
                payload_type,
                telephone_event,
            } => self
                .session
                .update_remote(now, remote, payload_type, telephone_event),
            Command::Confirm => {
                self.session.confirm();
                self.drain_session(now);
            }
            Command::Tap(on) => self.tap = on,
            Command::InbandDtmf(on) => {
                if on && !self.detecting && self.detector.is_some() {
                    self.detector = Some(inband::Detector::new());
                }
                self.detecting = on;
            }
            Command::Feed(frame) => {
                if self.feed.len() >= MAX_FEED {
                    self.feed.pop_front();
                }
                self.feed.push_back(frame);
            }
            Command::Direction { send, receive } => {
                self.sending = send;
                self.session.set_receiving(now, receive);
            }
        }
    }

    /// Time passed: send and receive every frame that is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.session.handle_input(now, rtp::Input::Timeout);
        self.drain_session(now);
        let mut done = 0;
        while now >= self.next_frame {
            if now >= self.next_frame + FRAME {
                self.late_frames += 1;
            }
            if done == MAX_CATCH_UP {
                // Far behind (a stalled driver): skip to now rather than
                // send a burst the peer would have to absorb.
                let behind = now.saturating_duration_since(self.next_frame);
                let skip = (behind.as_micros() / FRAME.as_micros()) as u32 + 1;
                self.skipped_frames += u64::from(skip);
                self.session
                    .skip_samples(skip * self.codec.frame_rtp_units());
                self.next_frame += FRAME * skip;
                break;
            }
            let late = now.saturating_duration_since(self.next_frame);
            if late > Duration::from_millis(2) {
                self.late_2ms += 1;
                if late > Duration::from_millis(5) {
                    self.late_5ms += 1;
                }
                if late > Duration::from_millis(10) {
                    self.late_10ms += 1;
                }
                if late > Duration::from_millis(20) {
                    self.late_20ms += 1;
                }
            }
            self.frames += 1;
            self.frame(now);
            self.next_frame += FRAME;
            done += 1;
        }
    }

    fn stop_playback(&mut self) {
        if !self.player.queue.is_empty() {
            self.player.queue.clear();
            self.out
                .push_back(Output::Event(Event::PlaybackFinished { interrupted: true }));
        }
    }

    fn digit(&mut self, key: char, source: Source) {
        self.out
            .push_back(Output::Event(Event::Digit { key, source }));
        if self.player.barge_in {
            self.stop_playback();
        }
    }

    fn drain_session(&mut self, now: Instant) {
        while let Some(o) = self.session.poll_output() {
            match o {
                rtp::Output::Transmit { to, bytes, rtcp } => {
                    self.out.push_back(Output::Transmit { to, bytes, rtcp })
                }
                rtp::Output::Audio {
                    seq,
                    timestamp,
                    payload,
                } => {
                    self.jitter.handle_packet(now, seq, timestamp, &payload);
                }
                rtp::Output::Digit(d) => self.digit(d.key, Source::Rfc4733),
                rtp::Output::Latched(a) => self.out.push_back(Output::Event(Event::Latched(a))),
                rtp::Output::MediaTimeout => self.out.push_back(Output::Event(Event::MediaTimeout)),
            }
        }
        if !self.confirmed_told && self.session.is_confirmed() {
            self.confirmed_told = true;
            self.out.push_back(Output::Event(Event::Confirmed));
        }
    }

    /// One 20 ms slot: receive side, then send side.
    fn frame(&mut self, now: Instant) {
        let n = self.codec.frame_samples();
        // Receive: the frame due now, decoded or concealed.
        let mut caller = Vec::with_capacity(n);
        match self.jitter.poll_frame(now) {
            Some(Frame::Audio(payload)) => {
                self.coder.decode(&payload, &mut caller);
                caller.resize(n, 0);
                self.last_good.clone_from(&caller);
                self.lost_run = 0;
            }
            Some(Frame::Lost) => {
                self.lost_run += 1;
                jitter::conceal(&self.last_good, self.lost_run, &mut caller);
            }
            None => caller.resize(n, 0),
        }
        let mut heard = Vec::new();
        if let Some(d) = self.detector.as_mut().filter(|_| self.detecting) {
            match self.detector_resampler.as_mut() {
                Some(r) => {
                    let mut narrow = Vec::with_capacity(160);
                    r.process(&caller, &mut narrow);
                    d.handle_samples(&narrow);
                }
                None => d.handle_samples(&caller),
            }
            heard.extend(std::iter::from_fn(|| d.poll_digit()));
        }
        for k in heard {
            self.digit(k, Source::InBand);
        }
        // Send: the next slice of the prompt, or silence. On hold, and
        // before the dialog is confirmed, the prompt waits where it is.
        let sending = self.sending && self.session.is_confirmed();
        let mut far = Vec::with_capacity(n);
        while sending && far.len() < n {
            let Some((pcm, pos)) = self.player.queue.front_mut() else {
                break;
            };
            let take = (n - far.len()).min(pcm.len() - *pos);
            far.extend_from_slice(&pcm[*pos..*pos + take]);
            *pos += take;
            if *pos >= pcm.len() {
                self.player.queue.pop_front();
                if self.player.queue.is_empty() {
                    self.out.push_back(Output::Event(Event::PlaybackFinished {
                        interrupted: false,
                    }));
                }
            }
        }
        if sending
            && far.is_empty()
            && let Some(f) = self.feed.pop_front()
        {
            far = f;
            far.truncate(n);
        }
        let silent = far.is_empty();
        far.resize(n, 0);
        let mut payload = Vec::with_capacity(n * 2);
        self.coder.encode(&far, &mut payload);
        // RFC 3551 §4.1: the marker starts a talkspurt. The timestamp moves
        // in RTP clock units (8000 Hz for G.722's 16 kHz audio).
        let units = self.codec.frame_rtp_units();
        if sending {
            self.session
                .send_audio(now, &payload, units, self.was_silent && !silent);
        } else {
            // On hold (recvonly/inactive) or not confirmed: time goes on,
            // nothing is sent.
            self.session.skip_samples(units);
        }
        self.was_silent = silent;
        self.drain_session(now);
        if self.tap {
            self.out.push_back(Output::Tap {
                caller,
                far_end: far,
            });
        }
    }
}

#[cfg(test)]
mod tests;
