//! The media task of an answered call: a thin tokio driver around
//! [`media::call::CallMedia`], which makes every decision. It moves
//! datagrams between the call's RTP socket and the core, wakes the core on
//! its deadlines (20 ms frames, RTCP, timeouts), forwards commands (SIP
//! INFO digits), and reports what the call must act on.
//!
//! Until the IVR issue lands, an answered call hears the welcome prompt
//! (`media.welcome_prompt`, or the built-in one) and every DTMF digit is
//! logged with its source (rfc4733, info, inband).

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use media::call::{CallMedia, Command, Config, Event, Output};
use media::codec::Codec;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::ua::{CallId, CallSetup};

/// The built-in welcome prompt (8 kHz mono WAV).
pub const BUILTIN_WELCOME: &[u8] = include_bytes!("../examples/prompts/welcome.wav");

/// Why a media task asks the core to hang up.
#[derive(Debug, Clone, Copy)]
pub enum HangupReason {
    /// `calls.max_call_secs` elapsed.
    MaxDuration,
    /// No RTP for `media.timeout_secs`.
    MediaTimeout,
}

/// What every call's media shares.
#[derive(Debug)]
pub struct Settings {
    /// The welcome prompt at 8 kHz.
    pub welcome_8k: Arc<[i16]>,
    /// The welcome prompt at 16 kHz (G.722 calls).
    pub welcome_16k: Arc<[i16]>,
    /// No RTP for this long ends the call.
    pub timeout: Duration,
    /// Run the in-band DTMF detector.
    pub inband_dtmf: bool,
    /// Hang up after this long.
    pub max_duration: Duration,
}

fn clock_now() -> std::time::Instant {
    tokio::time::Instant::now().into_std()
}

/// Runs a call's media until `stop` is cancelled or the call must end.
pub async fn run(
    setup: CallSetup,
    settings: Arc<Settings>,
    mut commands: mpsc::Receiver<Command>,
    stop: CancellationToken,
    hangup: mpsc::Sender<(CallId, HangupReason)>,
) {
    let id = setup.id;
    let call_id = setup.sip_call_id.clone();
    let Some(codec) = Codec::named(&setup.negotiated.codec.encoding) else {
        tracing::warn!(call_id, codec = %setup.negotiated.codec.encoding, "no media engine for this codec");
        return;
    };
    let to_tokio = |s: StdUdpSocket| s.set_nonblocking(true).and_then(|_| UdpSocket::from_std(s));
    let (Ok(sock), Ok(rtcp_sock)) = (to_tokio(setup.socket), to_tokio(setup.rtcp_socket)) else {
        return;
    };
    let rtcp_mux = setup.rtcp_mux;
    let mut rtp = media::rtp::Config::new(
        setup.remote_rtp,
        setup.negotiated.codec.payload_type,
        codec.rtp_clock_rate(),
    );
    rtp.telephone_event = setup
        .negotiated
        .telephone_event
        .as_ref()
        .map(|t| t.payload_type);
    rtp.media_timeout = settings.timeout;
    rtp.rtcp_mux = setup.rtcp_mux;
    let cfg = Config {
        rtp,
        codec,
        inband_dtmf: settings.inband_dtmf,
        tap: false,
    };
    let started = clock_now();
    let mut core = CallMedia::new(cfg, &mut rand::rng(), started, SystemTime::now());
    let welcome = if codec.sample_rate() == 16000 {
        &settings.welcome_16k
    } else {
        &settings.welcome_8k
    };
    core.handle_command(
        started,
        Command::Play {
            prompts: vec![Arc::clone(welcome)],
            barge_in: false,
        },
    );
    let end = tokio::time::Instant::from_std(started) + settings.max_duration;
    let mut buf = vec![0u8; 2048];
    let mut rtcp_buf = vec![0u8; 1500];
    loop {
        while let Some(out) = core.poll_output() {
            match out {
                Output::Transmit { to, bytes, rtcp } => {
                    let from = if rtcp && !rtcp_mux { &rtcp_sock } else { &sock };
                    let _ = from.send_to(&bytes, to).await;
                }
                Output::Event(Event::Digit { key, source }) => {
                    tracing::info!(call_id, digit = %key, source = source.name(), "DTMF received");
                }
                Output::Event(Event::PlaybackFinished { interrupted }) => {
                    tracing::info!(call_id, interrupted, "prompt finished");
                }
                Output::Event(Event::Latched(addr)) => {
                    tracing::debug!(call_id, %addr, "RTP peer learned")
                }
                Output::Event(Event::MediaTimeout) => {
                    tracing::info!(call_id, "no RTP: media timeout");
                    let _ = hangup.send((id, HangupReason::MediaTimeout)).await;
                    return;
                }
                Output::Tap { .. } => {}
            }
        }
        let wake = tokio::time::Instant::from_std(core.poll_timeout());
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep_until(end) => {
                let _ = hangup.send((id, HangupReason::MaxDuration)).await;
                return;
            }
            _ = tokio::time::sleep_until(wake) => core.handle_timeout(clock_now()),
            got = sock.recv_from(&mut buf) => {
                if let Ok((n, from)) = got {
                    core.handle_datagram(clock_now(), from, buf.get(..n).unwrap_or(&[]));
                }
            }
            got = rtcp_sock.recv_from(&mut rtcp_buf) => {
                if let Ok((n, from)) = got {
                    core.handle_datagram(clock_now(), from, rtcp_buf.get(..n).unwrap_or(&[]));
                }
            }
            Some(cmd) = commands.recv() => core.handle_command(clock_now(), cmd),
        }
    }
}

/// Decodes the welcome prompt (a file, or the built-in one) at `rate`.
pub fn load_welcome(path: &str, rate: u32) -> Result<Arc<[i16]>, media::prompt::PromptError> {
    let pcm = if path.is_empty() {
        media::prompt::decode_bytes(
            BUILTIN_WELCOME.to_vec(),
            "wav",
            std::path::Path::new("built-in welcome"),
        )?
    } else {
        media::prompt::decode_file(std::path::Path::new(path))?
    };
    Ok(media::prompt::resample(&pcm, rate, std::path::Path::new(path))?.into())
}

/// Binds RTP sockets on even ports of a range, round robin.
#[derive(Debug)]
pub struct RtpPorts {
    ip: std::net::IpAddr,
    low: u16,
    high: u16,
    next: u16,
}

impl RtpPorts {
    /// A range `low..=high` on `ip`.
    pub fn new(ip: std::net::IpAddr, low: u16, high: u16) -> RtpPorts {
        let low = low + (low % 2);
        RtpPorts {
            ip,
            low,
            high,
            next: low,
        }
    }
}

impl crate::ua::PortAllocator for RtpPorts {
    fn allocate(&mut self) -> Option<(StdUdpSocket, StdUdpSocket)> {
        let count = usize::from((self.high - self.low) / 2 + 1);
        for _ in 0..count {
            let port = self.next;
            self.next = if self.next + 2 > self.high {
                self.low
            } else {
                self.next + 2
            };
            let Some(rtcp_port) = port
                .checked_add(1)
                .filter(|p| *p <= self.high.max(port + 1))
            else {
                continue;
            };
            if let (Ok(rtp), Ok(rtcp)) = (
                StdUdpSocket::bind(SocketAddr::new(self.ip, port)),
                StdUdpSocket::bind(SocketAddr::new(self.ip, rtcp_port)),
            ) {
                return Some((rtp, rtcp));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ua::PortAllocator;

    #[test]
    fn ports_are_even_and_released_ports_are_reused() {
        let mut ports = RtpPorts::new("127.0.0.1".parse().unwrap(), 31001, 31005);
        let a = ports.allocate().unwrap();
        let b = ports.allocate().unwrap();
        assert_eq!(a.0.local_addr().unwrap().port(), 31002);
        assert_eq!(
            a.1.local_addr().unwrap().port(),
            31003,
            "RTCP on the next port"
        );
        assert_eq!(b.0.local_addr().unwrap().port(), 31004);
        assert!(ports.allocate().is_none(), "range exhausted");
        drop(a);
        assert_eq!(
            ports.allocate().unwrap().0.local_addr().unwrap().port(),
            31002
        );
    }
}
