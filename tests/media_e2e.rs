//! The media engine end to end: the real server, SIPp as the caller.
//! The caller hears the welcome prompt paced at 20 ms, and digits sent as
//! RFC 4733 events (SIPp's own `dtmf_2833_*.pcap`), as in-band tones
//! (`rtp_stream` of a μ-law file we generate) and in SIP INFO all show up
//! in the server's log with their source.

mod common;

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use common::{Server, run_sipp};

const HEAD: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="media">
  <send retrans="500">
    <![CDATA[

      INVITE sip:1000@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:1000@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 INVITE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP4 [local_ip]
      s=-
      c=IN IP4 [media_ip]
      t=0 0
      m=audio MEDIA_PORT RTP/AVP CODEC_PT 101
      a=rtpmap:CODEC_PT CODEC_NAME/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15

    ]]>
  </send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send>
    <![CDATA[

      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
"#;

const TAIL: &str = r#"
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 3 BYE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#;

fn scenario(dir: &std::path::Path, media_port: &str, middle: &str) -> String {
    scenario_with(dir, media_port, (0, "PCMU"), middle)
}

fn scenario_with(
    dir: &std::path::Path,
    media_port: &str,
    codec: (u8, &str),
    middle: &str,
) -> String {
    let path = dir.join("scenario.xml");
    let head = HEAD
        .replace("MEDIA_PORT", media_port)
        .replace("CODEC_PT", &codec.0.to_string())
        .replace("CODEC_NAME", codec.1);
    std::fs::write(&path, format!("{head}{middle}{TAIL}")).expect("write scenario");
    path.display().to_string()
}

/// The server logged `DTMF received digit=D source="S"`.
fn assert_digit_logged(server: &mut Server, digit: char, source: &str) {
    let line = format!("digit={digit} source=\"{source}\"");
    assert!(
        server.wait_for_log(&line, Duration::from_secs(5)),
        "no `{line}` in:\n{}",
        server.log.join("\n")
    );
}

/// A server whose log shows the keys it detects (`[log] personal_data`:
/// these tests check which key each method of signalling delivered).
fn start() -> Server {
    Server::start("[log]\nfilter = \"info\"\npersonal_data = true\n[calls]\nmax_call_secs = 20\n")
}

/// Calls with `codec` offered, and checks the server's RTP: count,
/// pacing, payload size, and that it carries the prompt.
fn hear_the_prompt(server: Server, codec: (u8, &str), payload_len: usize) {
    let rtp = UdpSocket::bind("127.0.0.1:0").expect("bind");
    rtp.set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let port = rtp.local_addr().expect("addr").port().to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let sc = scenario_with(
        dir.path(),
        &port,
        codec,
        r#"  <pause milliseconds="3000"/>"#,
    );
    let target = server.addr("udp");
    let sipp = std::thread::spawn(move || {
        run_sipp(target, &["-sf", &sc, "-m", "1"], Duration::from_secs(20))
    });
    // Receive the server's RTP while the call lasts.
    let mut coder = media::codec::Coder::new(media::codec::Codec::named(codec.1).expect("codec"));
    let mut arrivals = Vec::new();
    let mut loud = 0usize;
    let started = Instant::now();
    let mut buf = [0u8; 2048];
    while started.elapsed() < Duration::from_secs(6) {
        if let Ok((n, _)) = rtp.recv_from(&mut buf) {
            let Some(p) = media::rtp::session::parse_rtp(&buf[..n]) else {
                continue;
            };
            if p.header.payload_type != codec.0 {
                continue;
            }
            arrivals.push(Instant::now());
            assert_eq!(
                p.payload.len(),
                payload_len,
                "{} bytes per 20 ms",
                payload_len
            );
            let mut pcm = Vec::new();
            coder.decode(p.payload, &mut pcm);
            if pcm.iter().any(|s| s.abs() > 2000) {
                loud += 1;
            }
        } else if !arrivals.is_empty()
            && arrivals
                .last()
                .is_some_and(|t| t.elapsed() > Duration::from_millis(500))
        {
            break; // the call ended
        }
    }
    let run = sipp.join().expect("sipp thread");
    assert_eq!(run.successful, 1, "{}", run.output);
    assert!(
        arrivals.len() >= 120,
        "only {} packets in a 3 s call",
        arrivals.len()
    );
    let gaps: Vec<Duration> = arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    let mean = gaps.iter().sum::<Duration>() / gaps.len() as u32;
    let worst = gaps.iter().max().copied().unwrap_or_default();
    // Pacing, not scheduling: on this 2-core VM two debug servers and their
    // SIPp peers share the cores, and a thread is now and then descheduled
    // for a few tens of ms (seen: one 47 ms gap in about one run of four).
    // A pacing bug (bursts, a wrong ptime, a stall) shows in the mean, in
    // many late gaps, or in one long one; one descheduling does not.
    let late = gaps
        .iter()
        .filter(|g| **g > Duration::from_millis(40))
        .count();
    assert!(
        (Duration::from_micros(19_000)..=Duration::from_micros(21_000)).contains(&mean),
        "mean interval {mean:?}"
    );
    assert!(
        late * 100 <= gaps.len(),
        "{late} of {} gaps over 40 ms (worst {worst:?})",
        gaps.len()
    );
    assert!(worst <= Duration::from_millis(100), "a gap of {worst:?}");
    assert!(
        loud >= 50,
        "the prompt (speech) is in the packets: {loud} loud packets"
    );
}

#[test]
fn the_caller_hears_the_welcome_prompt_paced_at_20_ms() {
    hear_the_prompt(start(), (0, "PCMU"), 160);
}

#[test]
fn a_g722_caller_hears_the_prompt_in_wideband() {
    let server =
        Server::start("[media]\ncodecs = [\"G722\", \"PCMU\"]\n[calls]\nmax_call_secs = 20\n");
    hear_the_prompt(server, (9, "G722"), 160);
}

#[test]
fn an_rfc4733_digit_from_sipp_is_logged() {
    let pcap = "/usr/share/sip-tester/dtmf_2833_1.pcap";
    assert!(
        std::path::Path::new(pcap).exists(),
        "SIPp's DTMF pcap files come with the sip-tester package"
    );
    let mut server = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let sc = scenario(
        dir.path(),
        "[media_port]",
        &format!(
            r#"  <nop><action><exec play_pcap_audio="{pcap}"/></action></nop>
  <pause milliseconds="2000"/>"#
        ),
    );
    let run = run_sipp(
        server.addr("udp"),
        &["-sf", &sc, "-m", "1"],
        Duration::from_secs(20),
    );
    assert_eq!(run.successful, 1, "{}", run.output);
    assert_digit_logged(&mut server, '1', "rfc4733");
}

#[test]
fn in_band_tones_from_sipp_are_logged() {
    let mut server = start();
    let dir = tempfile::tempdir().expect("tempdir");
    // 300 ms of silence, 80 ms of '5', 120 ms of silence, 80 ms of '9', then silence; μ-law.
    let mut pcm = vec![0i16; 2400];
    pcm.extend(media::dtmf::inband::tone('5', 80, 1.0, 6000.0, 6000.0, 0.0));
    pcm.extend(vec![0i16; 960]);
    pcm.extend(media::dtmf::inband::tone('9', 80, 1.0, 6000.0, 6000.0, 0.0));
    pcm.extend(vec![0i16; 4000]);
    let mut ulaw = Vec::new();
    media::codec::Codec::Pcmu.encode(&pcm, &mut ulaw);
    let file = dir.path().join("tones.ulaw");
    std::fs::write(&file, &ulaw).expect("write");
    let sc = scenario(
        dir.path(),
        "[media_port]",
        &format!(
            r#"  <nop><action><exec rtp_stream="{},1,0"/></action></nop>
  <pause milliseconds="2500"/>"#,
            file.display()
        ),
    );
    let run = run_sipp(
        server.addr("udp"),
        &["-sf", &sc, "-m", "1"],
        Duration::from_secs(20),
    );
    assert_eq!(run.successful, 1, "{}", run.output);
    for d in ['5', '9'] {
        assert_digit_logged(&mut server, d, "inband");
    }
}

#[test]
fn a_sip_info_digit_is_logged() {
    let mut server = start();
    let dir = tempfile::tempdir().expect("tempdir");
    let sc = scenario(
        dir.path(),
        "[media_port]",
        r#"  <send retrans="500">
    <![CDATA[

      INFO [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 2 INFO
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal=7
      Duration=160

    ]]>
  </send>
  <recv response="200"/>"#,
    );
    let run = run_sipp(
        server.addr("udp"),
        &["-sf", &sc, "-m", "1"],
        Duration::from_secs(20),
    );
    assert_eq!(run.successful, 1, "{}", run.output);
    assert_digit_logged(&mut server, '7', "info");
}
