//! The call core on fake time: each test runs a flow against the core with
//! a scripted caller (RTP packets, INFO digits, hold, BYE), recordings in
//! memory and prompts "decoded" at once, and moves `now` in exact steps.
//! No sockets, no sleeps: a minute of call takes milliseconds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use ivr_dsl::interp::Playable;
use media::call::{CallMedia, Config as MediaConfig};
use media::codec::Codec;
use media::rtp::packet;
use rand::SeedableRng;

use super::*;
use crate::ua::{Admitted, CallInfo, RecordId, SipCallId};

/// Every prompt file exists; no includes.
struct Host;

impl ivr_dsl::Host for Host {
    fn read(&self, _: &Path) -> std::io::Result<String> {
        Err(std::io::Error::other("no includes in these tests"))
    }
    fn prompt_exists(&self, _: &Path) -> bool {
        true
    }
}

fn flow(text: &str) -> Arc<ivr_dsl::Flow> {
    let loaded = ivr_dsl::load_str(Path::new("test.ivr"), text, &Host);
    match loaded.flow {
        Some(f) => f,
        None => panic!("flow does not load:\n{}", loaded.render()),
    }
}

/// A recorder in memory: samples per recording id, and which are open.
#[derive(Default)]
struct Memory {
    samples: HashMap<String, Vec<i16>>,
    stereo: HashMap<String, bool>,
    open: Vec<String>,
    /// Fail every write (a full disk).
    fail_writes: bool,
}

impl Recorders for Memory {
    type Error = std::io::Error;

    fn open(&mut self, id: &str, stereo: bool, _: Instant) -> Result<(), std::io::Error> {
        self.open.push(id.to_owned());
        self.stereo.insert(id.to_owned(), stereo);
        self.samples.entry(id.to_owned()).or_default();
        Ok(())
    }
    fn write(&mut self, id: &str, _: Instant, s: &[i16]) -> Result<(), std::io::Error> {
        if self.fail_writes {
            return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
        }
        self.samples
            .entry(id.to_owned())
            .or_default()
            .extend_from_slice(s);
        Ok(())
    }
    fn finish(&mut self, id: &str) -> Result<(), std::io::Error> {
        self.open.retain(|o| o != id);
        Ok(())
    }
}

const PEER: &str = "127.0.0.1:40000";
const AGENT: &str = "127.0.0.1:40002";

/// One call on fake time.
struct Call {
    core: Core,
    rec: Memory,
    t0: Instant,
    now: Instant,
    /// Every timeline event: (step, kind, detail).
    events: Vec<(String, String, serde_json::Value)>,
    cdrs: Vec<crate::store::CallRecord>,
    grievances: Vec<crate::store::rights::GrievanceRow>,
    hangups: Vec<(Party, String)>,
    /// RTP packets sent to the caller, with the time.
    sent: Vec<Instant>,
    /// Where each RTP packet went.
    sent_to: Vec<SocketAddr>,
    /// Prompts asked for (one entry per job).
    played: Vec<Vec<Playable>>,
    /// Seconds of audio each `say` becomes.
    prompt_secs: f64,
    caller_seq: u16,
    /// Queues the flow asked to join.
    enqueued: Vec<String>,
    /// First payload byte of each RTP packet sent to the caller / agent.
    caller_payloads: Vec<u8>,
    agent_payloads: Vec<u8>,
    /// The payload type of each RTP packet sent to the agent.
    agent_types: Vec<u8>,
    agent_seq: u16,
    defer_prompts: bool,
    /// Prompt jobs not decoded yet: (job, prompts).
    deferred: Vec<(u64, usize)>,
    /// Fetches asked for: job, POST body, URL.
    fetches: Vec<(u64, Option<serde_json::Value>, String)>,
}

struct Opts {
    confirmed: bool,
    consent_withdrawn: bool,
    max: Duration,
    media_timeout: Duration,
    prompt_secs: f64,
    max_events: u32,
    /// Prompts are not decoded until `resolve_deferred` (a slow decode).
    defer_prompts: bool,
}

impl Default for Opts {
    fn default() -> Opts {
        Opts {
            confirmed: true,
            consent_withdrawn: false,
            max: Duration::from_secs(3600),
            media_timeout: Duration::from_secs(30),
            prompt_secs: 1.0,
            max_events: 2000,
            defer_prompts: false,
        }
    }
}

impl Call {
    fn start(text: &str, o: Opts) -> Call {
        let t0 = Instant::now();
        let epoch = (
            t0,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        );
        let mut rtp = media::rtp::Config::new(
            PEER.parse().expect("addr"),
            media::rtp::PayloadType(0),
            media::rtp::ClockRate(8000),
        );
        rtp.telephone_event = Some(media::rtp::PayloadType(101));
        rtp.media_timeout = o.media_timeout;
        rtp.confirmed = o.confirmed;
        let media = CallMedia::new(
            MediaConfig {
                rtp,
                codec: Codec::Pcmu,
                inband_dtmf: false,
                tap: false,
            },
            &mut rand::rngs::StdRng::seed_from_u64(1),
            t0,
            epoch.1,
        );
        let info = CallInfo {
            record_id: RecordId("20270115-0001".into()),
            sip_call_id: SipCallId("abc@test".into()),
            admitted: Admitted {
                tenant: 0,
                tenant_id: Arc::from("acme"),
                max_calls: 10,
                flow: flow(text),
                caller: "+919800000001".into(),
                called: "1000".into(),
                trunk: "test".into(),
                feature: None,
            },
            invited_at: epoch.1,
            answered_at: Some(epoch.1),
        };
        let allow = ivr_dsl::allow::AllowList::new(["api.acme.in"]).expect("allow");
        let setup = Setup {
            info,
            media,
            rate: 8000,
            epoch,
            confirmed: o.confirmed,
            max_duration: o.max,
            consent_withdrawn: o.consent_withdrawn,
            fetch_allow: allow,
            panic_digit: None,
            beep: Arc::from(vec![1000i16; 800]),
            max_events: o.max_events,
            max_digits_per_sec: 10,
            fetch_filler: "One moment, please.".into(),
        };
        let mut rec = Memory::default();
        let core = Core::new(setup, t0, &mut rec);
        let mut c = Call {
            core,
            rec,
            t0,
            now: t0,
            events: Vec::new(),
            cdrs: Vec::new(),
            grievances: Vec::new(),
            hangups: Vec::new(),
            sent: Vec::new(),
            sent_to: Vec::new(),
            played: Vec::new(),
            prompt_secs: o.prompt_secs,
            caller_seq: 0,
            enqueued: Vec::new(),
            caller_payloads: Vec::new(),
            agent_payloads: Vec::new(),
            agent_types: Vec::new(),
            agent_seq: 0,
            defer_prompts: o.defer_prompts,
            deferred: Vec::new(),
            fetches: Vec::new(),
        };
        c.drain();
        c
    }

    fn input(&mut self, input: Input<'_>) {
        self.core.handle_input(self.now, input, &mut self.rec);
        self.drain();
    }

    fn drain(&mut self) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Transmit {
                    leg: Leg::Caller,
                    rtcp: false,
                    to,
                    bytes,
                } => {
                    self.sent.push(self.now);
                    self.sent_to.push(to);
                    self.caller_payloads
                        .push(bytes.get(12).copied().unwrap_or(0));
                }
                Output::Transmit {
                    leg: Leg::Agent,
                    rtcp: false,
                    bytes,
                    ..
                } => {
                    self.agent_payloads
                        .push(bytes.get(12).copied().unwrap_or(0));
                    // The payload type (low 7 bits of the second byte).
                    self.agent_types.push(bytes.get(1).map_or(0, |b| b & 0x7f));
                }
                Output::Enqueue { name, .. } => self.enqueued.push(name),
                Output::LeaveQueue => self.enqueued.push("(left)".into()),
                Output::Transfer { target } => self.enqueued.push(format!("(transfer {target})")),
                Output::AgentNotNeeded => self.enqueued.push("(agent not needed)".into()),
                Output::SupervisorDone => self.enqueued.push("(supervisor done)".into()),
                Output::Fetch { job, post, url, .. } => self.fetches.push((job, post, url)),
                Output::Transmit { .. } | Output::CancelPrompts { .. } | Output::Finished => {}
                Output::ResolvePrompts { job, prompts, .. } if self.defer_prompts => {
                    self.deferred.push((job, prompts.len()));
                    self.played.push(prompts);
                }
                Output::ResolvePrompts { job, prompts, .. } => {
                    let samples = (self.prompt_secs * 8000.0) as usize;
                    let pcm = prompts
                        .iter()
                        .map(|_| Arc::from(vec![8000i16; samples]))
                        .collect();
                    self.played.push(prompts);
                    self.core.handle_input(
                        self.now,
                        Input::Prompts {
                            job,
                            result: Ok(pcm),
                        },
                        &mut self.rec,
                    );
                }
                Output::Record(r) => match *r {
                    Record::Event(e) => self.events.push((
                        e.step,
                        e.kind,
                        serde_json::from_str(&e.detail).expect("json detail"),
                    )),
                    Record::Call(r) => self.cdrs.push(*r),
                    Record::Grievance(g) => self.grievances.push(*g),
                },
                Output::Hangup { by, reason } => {
                    // The SIP side sends BYE and reports the end.
                    self.hangups.push((by, reason.clone()));
                    self.core.handle_input(
                        self.now,
                        Input::Sip(SipEvent::Ended { by, cause: reason }),
                        &mut self.rec,
                    );
                }
            }
        }
    }

    /// Runs timers until `now + d` (no caller audio).
    fn wait(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.core.poll_timeout() {
            if t > end {
                break;
            }
            self.now = t.max(self.now);
            self.input(Input::Timeout);
        }
        self.now = end;
    }

    /// The caller sends 20 ms RTP packets for `d`: loud speech or silence.
    fn speak(&mut self, d: Duration, loud: bool) {
        let end = self.now + d;
        while self.now < end && !self.core.is_finished() {
            let payload = [if loud { 0x10 } else { 0xFF }; 160];
            let mut b = Vec::new();
            let h = packet::Header {
                marker: false,
                payload_type: 0,
                sequence_number: self.caller_seq,
                timestamp: u32::from(self.caller_seq) * 160,
                ssrc: 0xCA11,
                csrc_count: 0,
            };
            self.caller_seq = self.caller_seq.wrapping_add(1);
            packet::write(&mut b, &h, &payload);
            let from: SocketAddr = PEER.parse().expect("addr");
            self.input(Input::Datagram {
                leg: Leg::Caller,
                from,
                bytes: &b,
            });
            self.wait(Duration::from_millis(20));
        }
    }

    /// Caller and agent both talk (loud RTP every 20 ms) for `d`.
    fn both_speak(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end && !self.core.is_finished() {
            self.agent_packet();
            self.speak(Duration::from_millis(20), true);
        }
    }

    /// One loud 20 ms RTP packet from the agent.
    fn agent_packet(&mut self) {
        {
            let mut b = Vec::new();
            let h = packet::Header {
                marker: false,
                payload_type: 0,
                sequence_number: self.agent_seq,
                timestamp: u32::from(self.agent_seq) * 160,
                ssrc: 0xA6E7,
                csrc_count: 0,
            };
            self.agent_seq = self.agent_seq.wrapping_add(1);
            packet::write(&mut b, &h, &[0x20; 160]);
            let from: SocketAddr = AGENT.parse().expect("addr");
            self.input(Input::Datagram {
                leg: Leg::Agent,
                from,
                bytes: &b,
            });
        }
    }

    /// Decoding of the deferred prompt jobs finishes now.
    fn resolve_deferred(&mut self) {
        let samples = (self.prompt_secs * 8000.0) as usize;
        for (job, n) in std::mem::take(&mut self.deferred) {
            let pcm = (0..n).map(|_| Arc::from(vec![8000i16; samples])).collect();
            self.input(Input::Prompts {
                job,
                result: Ok(pcm),
            });
        }
    }

    /// The agent answers: its leg's media joins the call.
    fn agent_answers(&mut self) {
        self.agent_answers_as("1001");
    }

    fn agent_answers_as(&mut self, ext: &str) {
        let mut rtp = media::rtp::Config::new(
            AGENT.parse().expect("addr"),
            media::rtp::PayloadType(0),
            media::rtp::ClockRate(8000),
        );
        rtp.confirmed = true;
        rtp.telephone_event = Some(media::rtp::PayloadType(101));
        let media = CallMedia::new(
            MediaConfig {
                rtp,
                codec: Codec::Pcmu,
                inband_dtmf: false,
                tap: true,
            },
            &mut rand::rngs::StdRng::seed_from_u64(2),
            self.now,
            SystemTime::UNIX_EPOCH,
        );
        self.input(Input::AgentAnswered {
            media: Box::new(media),
            agent: ext.into(),
            outside: false,
        });
    }

    /// A re-INVITE as the UA core reports it.
    fn reinvite(&mut self, direction: sip::sdp::Direction, remote: &str) {
        let remote: SocketAddr = remote.parse().expect("addr");
        let update = sip::sdp::MediaUpdate {
            remote,
            moved: remote != PEER.parse().expect("addr"),
            payload_type: 0,
            telephone_event: Some(101),
            direction,
        };
        self.input(Input::Sip(SipEvent::MediaUpdate(update)));
    }

    fn press(&mut self, key: char) {
        self.input(Input::Sip(SipEvent::InfoDigit(key)));
    }

    fn since_start(&self) -> Duration {
        self.now - self.t0
    }

    fn kinds(&self, kind: &str) -> Vec<&serde_json::Value> {
        self.events
            .iter()
            .filter(|(_, k, _)| k == kind)
            .map(|(_, _, d)| d)
            .collect()
    }

    fn cdr(&self) -> &crate::store::CallRecord {
        let last = self.cdrs.last().expect("a CDR");
        assert!(last.end_ms.is_some(), "the final CDR row");
        last
    }
}

const MENU: &str = r#"flow "Menu"
  numbers 1000

step main
  gather digits 1, timeout 5s, retries 2
    say "Press 1 for sales."
    on 1 -> sales
    on invalid -> goodbye
    on timeout -> goodbye

step sales
  say "Sales."
  hangup "sales"

step goodbye
  say "Goodbye."
  hangup "no input"
"#;

#[test]
fn a_silent_caller_gets_the_retries_and_the_goodbye() {
    let mut c = Call::start(MENU, Opts::default());
    c.wait(Duration::from_secs(60));
    assert!(c.core.is_finished());
    // The menu three times (first try and two retries), then goodbye.
    let says: Vec<String> = c
        .played
        .iter()
        .flatten()
        .map(|p| format!("{p:?}"))
        .collect();
    assert_eq!(says.len(), 4, "{says:?}");
    assert!(says[..3].iter().all(|s| s.contains("Press 1")));
    assert!(says[3].contains("Goodbye"));
    assert_eq!(
        c.hangups,
        vec![(Party::Dhwani, "flow: no input".to_owned())]
    );
    // Each try: 1 s of prompt, then the 5 s timeout; then 1 s of goodbye.
    let t = Duration::from_millis(c.cdr().duration_ms.expect("duration") as u64);
    assert!(
        (Duration::from_millis(18_900)..=Duration::from_millis(19_100)).contains(&t),
        "{t:?}"
    );
    assert_eq!(c.cdr().outcome.as_deref(), Some("hangup: no input"));
}

/// Issue 14, point 7: the CDR carries the steps visited, their times on
/// the fake clock and the choice each was left by, for the usage figures.
#[test]
fn the_cdr_carries_the_steps_visited_with_their_time_and_the_choice_out() {
    let mut c = Call::start(MENU, Opts::default());
    c.wait(Duration::from_millis(300));
    c.press('1');
    c.wait(Duration::from_secs(5));
    let path: Vec<(&str, Option<&str>)> = c
        .cdr()
        .path
        .iter()
        .map(|v| (v.step.as_str(), v.choice.as_deref()))
        .collect();
    assert_eq!(path, [("main", Some("1")), ("sales", None)]);
    let main = c.cdr().path[0].ms;
    assert!((250..=400).contains(&main), "{main} ms in main");
    // The silent caller: the menu's retries in one visit, left by timeout.
    let mut c = Call::start(MENU, Opts::default());
    c.wait(Duration::from_secs(60));
    let p = &c.cdr().path;
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(
        (p[0].step.as_str(), p[0].choice.as_deref()),
        ("main", Some("timeout"))
    );
    assert!((17_900..=18_100).contains(&p[0].ms), "{p:?}");
    assert_eq!(p[1].step, "goodbye");
    // What a caller typed is never a choice: only a key or two.
    assert_eq!(super::usage_choice("1"), "1");
    assert_eq!(super::usage_choice("*9"), "*9");
    assert_eq!(super::usage_choice("invalid"), "invalid");
    assert_eq!(super::usage_choice("739154"), "other");
    assert_eq!(super::usage_choice("****"), "other");
}

#[test]
fn a_key_takes_its_branch_and_the_timeline_names_the_step() {
    let mut c = Call::start(MENU, Opts::default());
    c.wait(Duration::from_millis(300));
    c.press('1');
    c.wait(Duration::from_secs(5));
    assert_eq!(c.hangups, vec![(Party::Dhwani, "flow: sales".to_owned())]);
    let dtmf: Vec<_> = c.events.iter().filter(|(_, k, _)| k == "dtmf").collect();
    assert_eq!(dtmf.len(), 1);
    assert_eq!(dtmf[0].0, "main");
    assert_eq!(dtmf[0].2["source"], "info");
}

#[test]
fn hold_stops_the_flow_clock_and_the_prompt_and_unhold_resumes() {
    let mut c = Call::start(MENU, Opts::default());
    c.wait(Duration::from_millis(500));
    let before = c.sent.len();
    c.reinvite(sip::sdp::Direction::Inactive, PEER);
    // A minute on hold: longer than every timeout of the flow.
    c.wait(Duration::from_secs(60));
    assert!(!c.core.is_finished(), "the flow waited on hold");
    assert_eq!(c.sent.len(), before, "no RTP to a held caller");
    assert!(c.hangups.is_empty());
    c.reinvite(sip::sdp::Direction::SendRecv, PEER);
    // The prompt's remaining half second, then the menu's 5 s timeout.
    c.wait(Duration::from_millis(5400));
    assert_eq!(c.played.len(), 1, "still the first try");
    c.wait(Duration::from_millis(200));
    assert_eq!(c.played.len(), 2, "the retry came on the flow's clock");
    let sip: Vec<_> = c.kinds("sip").iter().map(|d| d["event"].clone()).collect();
    assert_eq!(sip, vec!["answered", "hold", "unhold"]);
}

#[test]
fn before_the_ack_nothing_is_sent_and_the_flow_waits() {
    let mut c = Call::start(
        MENU,
        Opts {
            confirmed: false,
            media_timeout: Duration::from_secs(600),
            ..Opts::default()
        },
    );
    c.wait(Duration::from_secs(20));
    assert!(c.sent.is_empty());
    assert!(!c.core.is_finished(), "no timeout ran before the ACK");
    c.input(Input::Sip(SipEvent::Confirmed));
    c.wait(Duration::from_secs(1));
    assert!(c.sent.len() >= 45, "{} packets after the ACK", c.sent.len());
    c.wait(Duration::from_secs(60));
    let t = Duration::from_millis(c.cdr().duration_ms.expect("duration") as u64);
    assert!(
        t > Duration::from_millis(38_900),
        "flow time started at the ACK: {t:?}"
    );
}

const VOICEMAIL: &str = r##"flow "Voicemail"
  numbers 1000

step start
  say "Leave a message."
  record into message, max 10s, silence 2s, end "#"
  say "Thanks."
  hangup "done"
"##;

#[test]
fn a_message_ends_on_silence_after_the_caller_spoke() {
    let mut c = Call::start(VOICEMAIL, Opts::default());
    c.speak(Duration::from_secs(1), false); // the prompt plays
    c.speak(Duration::from_secs(3), true);
    c.speak(Duration::from_secs(4), false);
    let finished = c
        .events
        .iter()
        .find(|(_, k, d)| k == "record" || d.get("duration").is_some());
    let samples = c.rec.samples.get("20270115-0001-m1").map_or(0, Vec::len);
    // 3 s of speech + 2 s of silence, give or take the jitter buffer.
    let secs = samples as f64 / 8000.0;
    assert!(
        (4.8..=5.4).contains(&secs),
        "{secs} s recorded; {finished:?}"
    );
    assert_eq!(c.rec.stereo.get("20270115-0001-m1"), Some(&false));
    assert!(c.rec.open.is_empty(), "the message was closed");
}

#[test]
fn a_message_ends_on_the_end_key_and_on_its_maximum() {
    let mut c = Call::start(VOICEMAIL, Opts::default());
    c.speak(Duration::from_secs(1), false);
    c.speak(Duration::from_secs(2), true);
    c.press('#');
    let secs = c.rec.samples["20270115-0001-m1"].len() as f64 / 8000.0;
    assert!((1.9..=2.1).contains(&secs), "{secs}");
    assert!(c.rec.open.is_empty());

    let mut c = Call::start(VOICEMAIL, Opts::default());
    c.speak(Duration::from_secs(1), false);
    c.speak(Duration::from_secs(15), true);
    let secs = c.rec.samples["20270115-0001-m1"].len() as f64 / 8000.0;
    assert!((9.9..=10.1).contains(&secs), "max 10s: {secs}");
}

/// Issue 14, point 6: `grievance` records the caller's message and opens
/// a ticket with it, naming the caller by pseudonym.
#[test]
fn a_grievance_by_phone_records_the_message_and_opens_a_ticket() {
    const FLOW: &str = r#"flow "Complaints"
  numbers 1000

step start
  say "Please tell us what went wrong after the beep."
  grievance "billing", max 20s
  say "Thank you. We will answer within thirty days."
  hangup "grievance"
"#;
    crate::redact::set_key(
        "acme",
        std::sync::Arc::new(|n: &str| format!("anon-test-{}", n.len())),
    );
    let mut c = Call::start(FLOW, Opts::default());
    c.wait(Duration::from_secs(4));
    c.speak(Duration::from_secs(3), true);
    c.press('#');
    c.wait(Duration::from_secs(5));
    assert_eq!(c.grievances.len(), 1);
    let g = &c.grievances[0];
    assert_eq!(g.category, "billing");
    assert_eq!(g.channel, "phone");
    assert_eq!(
        g.subject, "anon-test-13",
        "the caller by pseudonym, never the number"
    );
    assert_eq!(g.recording_id.as_deref(), Some("20270115-0001-m1"));
    assert!(c.rec.samples.contains_key("20270115-0001-m1"));
    assert_eq!(g.ack_due_ms - g.opened_ms, 24 * 3600 * 1000);
    assert_eq!(g.resolve_due_ms - g.opened_ms, 30 * 24 * 3600 * 1000);
    assert!(g.grievance_id.starts_with('G') && g.grievance_id.len() == 9);
    let opened = c.kinds("grievance");
    assert!(
        opened
            .iter()
            .any(|d| d["ticket"] == g.grievance_id.as_str()),
        "{opened:?}"
    );
    assert_eq!(c.cdr().outcome.as_deref(), Some("hangup: grievance"));
}

const CONSENT: &str = r#"flow "Consent"
  numbers 1000

step start
  consent say "May we record? Press 1 for yes, 2 for no."
  if consent == "yes"
    recording start
  gather into card, digits 4, timeout 5s, sensitive
    say "Enter the last four digits of your card."
  say "Thank you."
  hangup "done"
"#;

#[test]
fn no_consent_no_recording() {
    let mut c = Call::start(CONSENT, Opts::default());
    c.wait(Duration::from_millis(1100));
    c.press('2');
    c.wait(Duration::from_secs(20));
    assert!(
        c.rec.stereo.is_empty(),
        "nothing was opened: {:?}",
        c.rec.stereo
    );
    assert_eq!(c.cdr().recording_id, None);
}

#[test]
fn consent_records_in_stereo_and_a_sensitive_gather_pauses_it_and_masks_keys() {
    let mut c = Call::start(CONSENT, Opts::default());
    c.speak(Duration::from_millis(1100), false);
    c.press('1');
    c.speak(Duration::from_millis(1100), true); // the card prompt
    let before = c.rec.samples["20270115-0001-call"].len();
    for k in ['4', '2', '4', '2'] {
        c.speak(Duration::from_millis(200), true);
        c.press(k);
    }
    let during = c.rec.samples["20270115-0001-call"].len() - before;
    c.speak(Duration::from_secs(3), true);
    assert_eq!(c.rec.stereo.get("20270115-0001-call"), Some(&true));
    // Paused for the whole gather (one frame each way of slack).
    assert!(
        during <= 2 * 320,
        "{during} samples recorded while collecting"
    );
    assert!(
        c.rec.samples["20270115-0001-call"].len() > before + 12_000,
        "recording resumed after the gather"
    );
    let timeline = serde_json::to_string(&c.events).expect("json");
    assert!(
        !timeline.contains("4242"),
        "the card digits leaked: {timeline}"
    );
    assert_eq!(c.cdr().recording_id.as_deref(), Some("20270115-0001-call"));
}

#[test]
fn a_caller_who_withdrew_consent_is_never_recorded() {
    let mut c = Call::start(
        CONSENT,
        Opts {
            consent_withdrawn: true,
            ..Opts::default()
        },
    );
    c.wait(Duration::from_millis(1100));
    c.press('1');
    c.wait(Duration::from_secs(20));
    assert!(c.rec.stereo.is_empty());
    assert!(
        c.kinds("recording").iter().any(|d| d["event"] == "refused"),
        "{:?}",
        c.events
    );
    let mut c = Call::start(
        VOICEMAIL,
        Opts {
            consent_withdrawn: true,
            ..Opts::default()
        },
    );
    c.speak(Duration::from_secs(5), true);
    assert!(c.rec.stereo.is_empty(), "no message either");
}

#[test]
fn a_full_disk_fails_the_recording_not_the_call() {
    let text = CONSENT.replace("sensitive", "timeout 5s");
    let mut c = Call::start(&text, Opts::default());
    c.wait(Duration::from_millis(1100));
    c.press('1');
    c.rec.fail_writes = true;
    c.wait(Duration::from_millis(500));
    assert!(
        c.kinds("error").iter().any(|d| d["what"] == "call"),
        "{:?}",
        c.events
    );
    assert!(!c.core.is_finished());
    c.wait(Duration::from_secs(30));
    assert_eq!(c.cdr().outcome.as_deref(), Some("hangup: done"));
}

#[test]
fn max_call_secs_ends_the_call() {
    let mut c = Call::start(
        "flow \"W\"\n  numbers 1000\n\nstep a\n  wait 10m\n  hangup \"x\"\n",
        Opts {
            max: Duration::from_secs(90),
            ..Opts::default()
        },
    );
    c.speak(Duration::from_secs(100), false);
    assert_eq!(
        c.hangups,
        vec![(Party::System, "max_call_secs reached".to_owned())]
    );
    assert_eq!(c.cdr().duration_ms, Some(90_000));
}

#[test]
fn no_rtp_for_the_media_timeout_ends_the_call() {
    let mut c = Call::start(
        "flow \"W\"\n  numbers 1000\n\nstep a\n  wait 10m\n  hangup \"x\"\n",
        Opts {
            media_timeout: Duration::from_secs(10),
            ..Opts::default()
        },
    );
    c.speak(Duration::from_secs(3), false);
    c.wait(Duration::from_secs(20));
    assert_eq!(c.hangups, vec![(Party::System, "media timeout".to_owned())]);
    let t = c.cdr().duration_ms.expect("duration");
    assert!((12_900..=13_100).contains(&t), "{t}");
}

#[test]
fn a_bye_in_the_middle_of_a_prompt_ends_the_flow_and_writes_the_cdr() {
    let mut c = Call::start(
        MENU,
        Opts {
            prompt_secs: 10.0,
            ..Opts::default()
        },
    );
    c.wait(Duration::from_secs(3));
    c.input(Input::Sip(SipEvent::Ended {
        by: Party::Caller,
        cause: "BYE".into(),
    }));
    assert!(c.core.is_finished());
    assert_eq!(c.core.poll_timeout(), None);
    let r = c.cdr();
    assert_eq!(r.hangup_by.as_deref(), Some("caller"));
    assert_eq!(r.outcome.as_deref(), Some("caller hung up"));
    assert_eq!(r.duration_ms, Some(3000));
    assert!(c.hangups.is_empty(), "we sent no BYE of our own");
    let last = c.events.last().expect("events");
    assert_eq!(last.2["event"], "ended");
    assert_eq!(c.since_start(), Duration::from_secs(3));
}

#[test]
fn queue_overflow_transfer_and_fetch_take_their_failure_paths() {
    let text = r#"flow "Q"
  numbers 1000

step start
  queue "support", max wait 10m
    on overflow -> t

step t
  transfer "+911140000000"
    on failure -> f

step f
  fetch get "https://api.acme.in/balance"
    into balance
    on failure -> g
  goto g

step g
  fetch get "https://evil.example/x"
    into balance
    on failure -> done
  goto done

step done
  hangup "all failed"
"#;
    let mut c = Call::start(text, Opts::default());
    assert_eq!(c.enqueued, vec!["support".to_owned()]);
    c.wait(Duration::from_secs(1));
    assert!(c.hangups.is_empty(), "the caller waits in the queue");
    c.input(Input::Sip(SipEvent::Queue(QueueEvent::Overflow {
        why: "no agents".into(),
    })));
    c.wait(Duration::from_secs(1));
    assert_eq!(
        c.enqueued.last().map(String::as_str),
        Some("(transfer +911140000000)")
    );
    assert!(c.hangups.is_empty(), "the transfer is under way");
    c.input(Input::Sip(SipEvent::Queue(QueueEvent::TransferFailed {
        why: "no agent of this tenant has that extension".into(),
    })));
    // The allowed fetch goes out; its endpoint answers 503.
    assert_eq!(c.fetches.len(), 1);
    assert_eq!(c.fetches[0].2, "https://api.acme.in/balance");
    let job = c.fetches[0].0;
    c.input(Input::Fetched {
        job,
        status: Some(503),
        result: Err("HTTP 503".into()),
        elapsed: Duration::from_millis(40),
    });
    c.wait(Duration::from_secs(1));
    assert_eq!(c.fetches.len(), 1, "the off-list one is never sent");
    assert_eq!(
        c.hangups,
        vec![(Party::Dhwani, "flow: all failed".to_owned())]
    );
    let q = c.kinds("queue");
    assert!(
        q.iter()
            .any(|d| d["event"] == "overflow" && d["why"] == "no agents"),
        "{:?}",
        c.events
    );
    let all = serde_json::to_string(&c.events).expect("json");
    assert!(
        all.contains("no agent of this tenant has that extension"),
        "{all}"
    );
    let answers: Vec<&serde_json::Value> = c
        .kinds("fetch")
        .into_iter()
        .filter(|d| d["event"] == "answer")
        .collect();
    assert_eq!(answers.len(), 1, "{:?}", c.events);
    assert_eq!(
        (
            &answers[0]["status"],
            &answers[0]["ms"],
            &answers[0]["outcome"]
        ),
        (
            &serde_json::json!(503),
            &serde_json::json!(40),
            &serde_json::json!("HTTP 503")
        )
    );
    assert!(
        all.contains("not on the tenant"),
        "the off-list one's refusal: {all}"
    );
}

#[test]
fn a_reinvite_that_moves_the_media_is_followed() {
    let mut c = Call::start(MENU, Opts::default());
    c.speak(Duration::from_millis(500), false);
    assert!(
        c.sent_to
            .iter()
            .all(|a| *a == PEER.parse::<SocketAddr>().expect("addr"))
    );
    let n = c.sent_to.len();
    // An SBC moves the caller's media to another port.
    c.reinvite(sip::sdp::Direction::SendRecv, "127.0.0.1:40100");
    c.wait(Duration::from_millis(200));
    let moved: Vec<_> = c.sent_to[n..].to_vec();
    assert!(moved.len() >= 9, "{} packets after the move", moved.len());
    assert!(
        moved
            .iter()
            .all(|a| *a == "127.0.0.1:40100".parse::<SocketAddr>().expect("addr")),
        "{moved:?}"
    );
    // The old address is no longer the caller: its last packets, even a
    // run in sequence, neither count nor pull the media back.
    let from: SocketAddr = PEER.parse().expect("addr");
    let before = c.core.media().session().counters.rtp_received;
    for seq in 9000..9010u16 {
        let mut b = Vec::new();
        let h = packet::Header {
            marker: false,
            payload_type: 0,
            sequence_number: seq,
            timestamp: u32::from(seq) * 160,
            ssrc: 0xCA11,
            csrc_count: 0,
        };
        packet::write(&mut b, &h, &[0xFF; 160]);
        c.input(Input::Datagram {
            leg: Leg::Caller,
            from,
            bytes: &b,
        });
    }
    assert_eq!(c.core.media().session().counters.rtp_received, before);
    let n = c.sent_to.len();
    c.wait(Duration::from_millis(100));
    assert!(
        c.sent_to[n..]
            .iter()
            .all(|a| *a == "127.0.0.1:40100".parse::<SocketAddr>().expect("addr")),
        "media went back to the old address"
    );
}

const LOOP: &str = r#"flow "Loop"
  numbers 1000

step a
  gather into k, digits 1, timeout 5s
    say "Press a key."
    on timeout -> done
  goto a

step done
  hangup "done"
"#;

#[test]
fn a_key_flood_reaches_the_flow_at_the_rate_limit_with_one_limit_event() {
    let mut c = Call::start(
        LOOP,
        Opts {
            prompt_secs: 0.1,
            ..Opts::default()
        },
    );
    c.wait(Duration::from_millis(200));
    // 1,000 INFO digits in half a second (within one second's bucket).
    for i in 0..1000u32 {
        c.press(char::from(b'0' + (i % 10) as u8));
        c.wait(Duration::from_micros(500));
    }
    let dtmf = c.kinds("dtmf").len();
    assert_eq!(dtmf, 10, "ten keys a second reach the flow");
    assert_eq!(c.kinds("limit").len(), 1, "{:?}", c.kinds("limit"));
    // A second later keys flow again.
    c.wait(Duration::from_secs(1));
    c.press('5');
    assert_eq!(c.kinds("dtmf").len(), 11);
}

#[test]
fn the_timeline_of_one_call_is_capped_with_one_limit_event_and_its_end() {
    let mut c = Call::start(
        LOOP,
        Opts {
            prompt_secs: 0.1,
            max_events: 100,
            ..Opts::default()
        },
    );
    // 400 keys at five a second: under the key limit, far over the cap.
    for i in 0..400u32 {
        c.wait(Duration::from_millis(200));
        c.press(char::from(b'0' + (i % 10) as u8));
    }
    c.input(Input::Sip(SipEvent::Ended {
        by: Party::Caller,
        cause: "BYE".into(),
    }));
    assert!(c.events.len() <= 102, "{} events", c.events.len());
    assert_eq!(c.kinds("limit").len(), 1);
    assert_eq!(
        c.events.last().map(|e| e.2["event"].clone()),
        Some("ended".into())
    );
    assert_eq!(c.cdr().outcome.as_deref(), Some("caller hung up"));
}

const QUEUED: &str = r#"flow "Q"
  numbers 1000

step start
  queue "support", hold "hold.wav", max wait 10m
    on overflow -> gone

step gone
  hangup "overflow"
"#;

#[test]
fn a_queued_caller_hears_looped_hold_music_then_is_bridged_both_ways() {
    // Hold music of 1 s, so 3 s of waiting loops it.
    let mut c = Call::start(QUEUED, Opts::default());
    assert_eq!(c.enqueued, vec!["support".to_owned()]);
    c.speak(Duration::from_secs(3), false);
    assert_eq!(c.played.len(), 1, "the hold music is decoded once");
    let heard = &c.caller_payloads[c.caller_payloads.len() - 50..];
    assert!(
        heard.iter().all(|b| *b != 0xFF),
        "still hold music after its first second: {heard:?}"
    );
    c.agent_answers();
    assert!(
        c.hangups.is_empty(),
        "the flow's end does not hang up a bridged call"
    );
    // Both speak for a second: each hears the other.
    c.both_speak(Duration::from_secs(1));
    let to_agent = &c.agent_payloads[c.agent_payloads.len() - 20..];
    assert!(
        to_agent.iter().all(|b| *b != 0xFF && *b != 0x7F),
        "the agent hears the caller: {to_agent:?}"
    );
    let to_caller = &c.caller_payloads[c.caller_payloads.len() - 20..];
    assert!(
        to_caller.iter().all(|b| *b != 0xFF && *b != 0x7F),
        "the caller hears the agent: {to_caller:?}"
    );
    // The agent holds: the caller hears the hold music again.
    let update = sip::sdp::MediaUpdate {
        remote: AGENT.parse().expect("addr"),
        moved: false,
        payload_type: 0,
        telephone_event: None,
        direction: sip::sdp::Direction::RecvOnly,
    };
    c.input(Input::Sip(SipEvent::Queue(QueueEvent::AgentMedia(update))));
    c.speak(Duration::from_millis(200), false);
    assert!(c.kinds("queue").iter().any(|d| d["event"] == "agent hold"));
    // The agent hangs up: the call ends, by the agent.
    c.input(Input::Sip(SipEvent::Queue(QueueEvent::AgentLeft)));
    assert_eq!(c.hangups, vec![(Party::Agent, "agent hung up".to_owned())]);
    let q = c.kinds("queue");
    let events: Vec<&str> = q.iter().filter_map(|d| d["event"].as_str()).collect();
    assert_eq!(
        events,
        vec![
            "joined",
            "bridged",
            "answered",
            "agent hold",
            "bridge ended"
        ],
        "{q:?}"
    );
    let r = c.cdr();
    assert_eq!(r.hangup_by.as_deref(), Some("agent"));
    assert_eq!(
        (r.queue.as_deref(), r.agent.as_deref()),
        (Some("support"), Some("1001"))
    );
    assert_eq!(r.wait_ms, Some(3000));
    assert!(
        r.talk_ms.is_some_and(|t| (1200..=1300).contains(&t)),
        "{:?}",
        r.talk_ms
    );
}

#[test]
fn a_caller_who_hangs_up_in_the_queue_ends_the_call_without_a_bridge() {
    let mut c = Call::start(QUEUED, Opts::default());
    c.speak(Duration::from_millis(500), false);
    c.input(Input::Sip(SipEvent::Ended {
        by: Party::Caller,
        cause: "BYE from caller".into(),
    }));
    assert!(c.core.is_finished());
    assert!(c.agent_payloads.is_empty());
    // An agent answering a moment too late changes nothing.
    c.agent_answers();
    assert!(c.agent_payloads.is_empty());
}

#[test]
fn a_consented_recording_holds_the_caller_left_and_the_agent_right_once_bridged() {
    let text = r#"flow "Q"
  numbers 1000

step start
  consent say "Press 1 to agree."
  if consent == "yes"
    recording start
  queue "support", hold "hold.wav", max wait 10m
    on overflow -> gone

step gone
  hangup "overflow"
"#;
    let mut c = Call::start(text, Opts::default());
    c.wait(Duration::from_millis(1100));
    c.press('1');
    c.speak(Duration::from_millis(500), false);
    assert_eq!(c.enqueued, vec!["support".to_owned()]);
    c.agent_answers();
    c.both_speak(Duration::from_secs(1));
    let (id, samples) = c
        .rec
        .samples
        .iter()
        .find(|(id, _)| id.ends_with("-call"))
        .map(|(id, s)| (id.clone(), s.clone()))
        .expect("the call recording");
    assert_eq!(c.rec.stereo.get(&id), Some(&true), "recorded in stereo");
    let mut coder = media::codec::Coder::new(Codec::Pcmu);
    let mut decoded = Vec::new();
    coder.decode(&[0x10, 0x20], &mut decoded);
    let (caller_level, agent_level) = (decoded[0], decoded[1]);
    // The last 200 ms: left is the caller's voice, right the agent's.
    let tail = &samples[samples.len() - 2 * 1600..];
    let left: Vec<i16> = tail.iter().step_by(2).copied().collect();
    let right: Vec<i16> = tail.iter().skip(1).step_by(2).copied().collect();
    assert!(left.iter().all(|s| *s == caller_level), "left: the caller");
    assert!(
        right.iter().all(|s| *s == agent_level),
        "right: the agent, not the hold music"
    );
}

#[test]
fn a_waiting_caller_hears_its_place_then_the_hold_music_again() {
    let text = r#"flow "Q"
  numbers 1000

step start
  queue "support", hold "hold.wav", announce every 30s, max wait 10m
    on overflow -> gone

step gone
  hangup "overflow"
"#;
    let mut c = Call::start(text, Opts::default());
    c.speak(Duration::from_millis(500), false);
    c.input(Input::Sip(SipEvent::Queue(QueueEvent::Position {
        position: 2,
        estimated_wait_secs: Some(70),
    })));
    let said = c.played.last().expect("an announcement").clone();
    assert_eq!(
        said,
        vec![Playable::Say {
            text: "You are caller number 2 in the queue. Your estimated wait is about 2 minutes. Thank you for waiting.".into(),
            voice: None,
        }]
    );
    // The announcement (1 s here), then the hold music again: never silence.
    c.speak(Duration::from_secs(3), false);
    let heard = &c.caller_payloads[c.caller_payloads.len() - 150..];
    assert!(heard.iter().all(|b| *b != 0xFF), "{heard:?}");
    assert_eq!(c.played.len(), 2, "the hold music is not decoded again");
    assert!(
        c.kinds("queue")
            .iter()
            .any(|d| d["event"] == "position" && d["position"] == 2)
    );
    assert!(c.hangups.is_empty());
}

#[test]
fn a_queue_key_takes_the_caller_out_and_other_keys_do_nothing() {
    let text = r#"flow "Q"
  numbers 1000

step start
  queue "support", hold "hold.wav", max wait 10m
    on overflow -> gone
    on 0 -> voicemail

step voicemail
  hangup "voicemail"

step gone
  hangup "overflow"
"#;
    let mut c = Call::start(text, Opts::default());
    c.speak(Duration::from_millis(300), false);
    c.press('5');
    c.speak(Duration::from_millis(300), false);
    assert!(c.hangups.is_empty(), "5 is not a key of the queue");
    assert_eq!(c.enqueued, vec!["support".to_owned()]);
    c.press('0');
    c.wait(Duration::from_millis(100));
    assert_eq!(c.enqueued, vec!["support".to_owned(), "(left)".to_owned()]);
    assert_eq!(
        c.hangups,
        vec![(Party::Dhwani, "flow: voicemail".to_owned())]
    );
    let q = c.kinds("queue");
    assert!(
        q.iter().any(|d| d["event"] == "left" && d["key"] == "0"),
        "{q:?}"
    );
    assert_eq!(c.cdr().queue.as_deref(), Some("support"));
    assert_eq!(c.cdr().agent, None);
}

#[test]
fn hold_music_still_being_decoded_never_plays_over_an_agent_who_answered_at_once() {
    let mut c = Call::start(
        QUEUED,
        Opts {
            defer_prompts: true,
            ..Opts::default()
        },
    );
    assert_eq!(c.deferred.len(), 1, "the hold music is being decoded");
    c.agent_answers();
    // Its decoding ends after the bridge.
    c.resolve_deferred();
    c.both_speak(Duration::from_secs(1));
    let to_caller = &c.caller_payloads[c.caller_payloads.len() - 20..];
    let mut pcm = Vec::new();
    media::codec::Coder::new(Codec::Pcmu).decode(&[0x20], &mut pcm);
    let mut agent_byte = Vec::new();
    media::codec::Coder::new(Codec::Pcmu).encode(&pcm, &mut agent_byte);
    assert!(
        to_caller.iter().all(|b| *b == agent_byte[0]),
        "the caller hears the agent, not the hold music: {to_caller:?}"
    );
}

#[test]
fn an_agent_who_answers_after_the_queue_gave_up_is_released() {
    let text = r#"flow "Q"
  numbers 1000

step start
  queue "support", hold "hold.wav", max wait 10m
    on overflow -> later

step later
  wait 10m
  hangup "done"
"#;
    let mut c = Call::start(text, Opts::default());
    c.input(Input::Sip(SipEvent::Queue(QueueEvent::Overflow {
        why: "max wait".into(),
    })));
    c.agent_answers();
    assert_eq!(
        c.enqueued.last().map(String::as_str),
        Some("(agent not needed)")
    );
    c.speak(Duration::from_millis(200), true);
    assert!(c.agent_payloads.is_empty(), "nothing is sent to the agent");
}

#[test]
fn a_key_the_caller_presses_while_bridged_goes_on_to_the_agent_as_rfc_4733() {
    let mut c = Call::start(QUEUED, Opts::default());
    c.agent_answers();
    c.both_speak(Duration::from_millis(200));
    assert!(!c.agent_types.contains(&101), "no event before the key");
    let events_before = c.kinds("dtmf").len();
    c.press('7');
    c.both_speak(Duration::from_millis(300));
    assert!(
        c.agent_types.contains(&101),
        "telephone-event packets to the agent: {:?}",
        c.agent_types
    );
    assert_eq!(
        c.kinds("dtmf").len(),
        events_before,
        "the flow is over: the key is the agent's, not logged as the caller's menu choice"
    );
}

#[test]
fn a_transferred_caller_hears_hold_music_until_the_next_agent_and_the_cdr_adds_both_talks() {
    let mut c = Call::start(QUEUED, Opts::default());
    c.speak(Duration::from_secs(2), false);
    c.agent_answers();
    c.both_speak(Duration::from_secs(1));
    let to_first = c.agent_payloads.len();
    assert!(to_first > 40);
    c.input(Input::Sip(SipEvent::Queue(QueueEvent::Transferred {
        to: "1002".into(),
        kind: TransferTo::Agent,
    })));
    // The first agent's leg gets nothing more; the caller hears the hold
    // music, and the flow's end does not hang the waiting caller up.
    c.both_speak(Duration::from_secs(3));
    assert!(
        c.agent_payloads.len() <= to_first + 1,
        "{} packets to the agent after the transfer",
        c.agent_payloads.len() - to_first
    );
    assert!(c.hangups.is_empty(), "{:?}", c.hangups);
    let heard = &c.caller_payloads[c.caller_payloads.len() - 50..];
    assert!(
        heard.iter().all(|b| *b != 0xFF),
        "hold music after the transfer: {heard:?}"
    );
    c.agent_answers_as("1002");
    c.both_speak(Duration::from_secs(2));
    let to_caller = &c.caller_payloads[c.caller_payloads.len() - 20..];
    assert!(
        to_caller.iter().all(|b| *b != 0xFF && *b != 0x7F),
        "the caller hears the second agent: {to_caller:?}"
    );
    c.input(Input::Sip(SipEvent::Queue(QueueEvent::AgentLeft)));
    assert_eq!(c.hangups, vec![(Party::Agent, "agent hung up".to_owned())]);
    let q = c.kinds("queue");
    let events: Vec<&str> = q.iter().filter_map(|d| d["event"].as_str()).collect();
    assert_eq!(
        events,
        vec![
            "joined",
            "bridged",
            "answered",
            "transferred",
            "bridged",
            "bridge ended"
        ],
        "{q:?}"
    );
    let t = q
        .iter()
        .find(|d| d["event"] == "transferred")
        .expect("transferred");
    assert_eq!(
        (t["agent"].as_str(), t["to"].as_str()),
        (Some("1001"), Some("1002"))
    );
    let r = c.cdr();
    assert_eq!(
        (r.queue.as_deref(), r.agent.as_deref()),
        (Some("support"), Some("1002")),
        "the first queue, the last agent"
    );
    assert_eq!(
        r.wait_ms,
        Some(5000),
        "2 s in the queue, 3 s after the transfer"
    );
    assert!(
        r.talk_ms.is_some_and(|t| (2900..=3200).contains(&t)),
        "1 s with the first agent, 2 s with the second: {:?}",
        r.talk_ms
    );
}

#[test]
fn a_transferred_caller_no_agent_takes_is_hung_up_when_the_queue_gives_up() {
    let mut c = Call::start(QUEUED, Opts::default());
    c.speak(Duration::from_millis(500), false);
    c.agent_answers();
    c.both_speak(Duration::from_millis(500));
    c.input(Input::Sip(SipEvent::Queue(QueueEvent::Transferred {
        to: "sales".into(),
        kind: TransferTo::Queue,
    })));
    c.speak(Duration::from_secs(1), false);
    assert!(c.hangups.is_empty());
    c.input(Input::Sip(SipEvent::Queue(QueueEvent::Overflow {
        why: "max wait".into(),
    })));
    c.speak(Duration::from_millis(100), false);
    assert_eq!(c.hangups.len(), 1, "{:?}", c.hangups);
    let r = c.cdr();
    assert_eq!(r.agent.as_deref(), Some("1001"), "who talked to the caller");
}

#[test]
fn a_flows_transfer_to_an_agent_bridges_the_caller_and_ends_the_flow() {
    let text = r#"flow "T"
  numbers 1000

step start
  transfer "sip:1001@pbx"
    on failure -> sorry

step sorry
  hangup "transfer failed"
"#;
    let mut c = Call::start(text, Opts::default());
    c.wait(Duration::from_millis(200));
    assert_eq!(c.enqueued, vec!["(transfer sip:1001@pbx)".to_owned()]);
    c.speak(Duration::from_secs(2), false);
    assert!(
        c.hangups.is_empty(),
        "the caller waits while the agent rings"
    );
    c.agent_answers();
    c.both_speak(Duration::from_secs(1));
    assert!(c.hangups.is_empty(), "{:?}", c.hangups);
    let to_caller = &c.caller_payloads[c.caller_payloads.len() - 20..];
    assert!(
        to_caller.iter().all(|b| *b != 0xFF && *b != 0x7F),
        "the caller hears the agent: {to_caller:?}"
    );
    let t: Vec<String> = c
        .kinds("transfer")
        .iter()
        .filter_map(|d| d["event"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(t, vec!["started", "connected"]);
    c.input(Input::Sip(SipEvent::Queue(QueueEvent::AgentLeft)));
    assert_eq!(c.hangups, vec![(Party::Agent, "agent hung up".to_owned())]);
    let r = c.cdr();
    assert_eq!(
        (r.queue.as_deref(), r.agent.as_deref()),
        (None, Some("1001"))
    );
    assert!(
        r.wait_ms.is_some_and(|w| (1900..=2300).contains(&w)),
        "{:?}",
        r.wait_ms
    );
    assert_eq!(r.outcome.as_deref(), Some("transferred: sip:1001@pbx"));
}

#[test]
fn a_prompts_end_is_logged_under_the_step_that_played_it() {
    let text = r#"flow "B"
  numbers 1000

step welcome
  say "Welcome."
  goto main_menu

step main_menu
  gather digits 1, timeout 5s
    say "Press 1 for sales."
    on 1 -> sales
    on invalid -> sales
    on timeout -> sales

step sales
  say "Sales."
  hangup "sales"
"#;
    let mut c = Call::start(
        text,
        Opts {
            prompt_secs: 3.0,
            ..Opts::default()
        },
    );
    c.wait(Duration::from_millis(500));
    // A key during the welcome: barge-in stops it and the flow moves on.
    c.press('1');
    c.wait(Duration::from_millis(500));
    c.wait(Duration::from_secs(10));
    let played: Vec<(&str, bool)> = c
        .events
        .iter()
        .filter(|(_, k, _)| k == "played")
        .map(|(s, _, d)| (s.as_str(), d["interrupted"].as_bool().unwrap_or(false)))
        .collect();
    assert_eq!(
        played.first(),
        Some(&("welcome", true)),
        "the welcome's end belongs to the welcome: {played:?}"
    );
    assert_eq!(
        played.last(),
        Some(&("sales", false)),
        "the next prompt plays to its end: {played:?}"
    );
}

#[test]
fn a_slow_fetch_gets_the_filler_said_and_the_flow_goes_on_with_its_reply() {
    let text = r#"flow "F"
  numbers 1000

step start
  fetch get "https://api.acme.in/balance"
    into balance
    on failure -> bad
  say "Your balance is {balance}."
  hangup "done"

step bad
  hangup "fetch failed"
"#;
    let said = |c: &Call| -> Vec<String> {
        c.played
            .iter()
            .flatten()
            .filter_map(|p| match p {
                Playable::Say { text, .. } => Some(text.clone()),
                _ => None,
            })
            .collect()
    };
    let mut c = Call::start(text, Opts::default());
    assert_eq!(c.fetches.len(), 1);
    c.wait(Duration::from_millis(500));
    assert!(
        said(&c).is_empty(),
        "no filler before 700 ms: {:?}",
        said(&c)
    );
    c.wait(Duration::from_millis(300));
    assert_eq!(said(&c), ["One moment, please."]);
    // The reply comes while the filler (1 s) plays: it stops, and the
    // flow's own prompt plays in full after it.
    let job = c.fetches[0].0;
    c.input(Input::Fetched {
        job,
        status: Some(200),
        result: Ok(serde_json::json!({"balance": 42})),
        elapsed: Duration::from_millis(850),
    });
    assert_eq!(said(&c), ["One moment, please.", "Your balance is 42."]);
    c.wait(Duration::from_millis(600));
    assert!(
        c.hangups.is_empty(),
        "the filler's end was taken for the flow's prompt: {:?}",
        c.hangups
    );
    c.wait(Duration::from_secs(1));
    assert_eq!(c.hangups, vec![(Party::Dhwani, "flow: done".to_owned())]);
    // A reply for another job (a cancelled fetch) changes nothing.
    c.input(Input::Fetched {
        job: job + 100,
        status: Some(200),
        result: Ok(serde_json::json!({})),
        elapsed: Duration::ZERO,
    });
    assert_eq!(
        c.kinds("fetch")
            .iter()
            .filter(|d| d["event"] == "answer")
            .count(),
        1
    );
}
