//! SIPp scenario text shared by the end-to-end tests: a caller's INVITE
//! (PCMU and telephone-event, From +919800000001) and ACK, its BYE or the
//! wait for ours, digits by SIP INFO, pauses.

/// The caller's INVITE (PCMU, telephone-event) and its ACK after the 200.
pub const INVITE: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="ivr">
  <send retrans="500">
    <![CDATA[

      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: "Test Caller" <sip:+919800000001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
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
      m=audio [media_port] RTP/AVP 0 101
      a=rtpmap:0 PCMU/8000
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
      From: "Test Caller" <sip:+919800000001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
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

/// The caller hangs up.
pub const CALLER_BYE: &str = r#"
  <send retrans="500">
    <![CDATA[

      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: "Test Caller" <sip:+919800000001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: 30 BYE
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Length: 0

    ]]>
  </send>
  <recv response="200"/>
</scenario>
"#;

/// The flow hangs up: receive its BYE, answer 200.
pub const SERVER_BYE: &str = r#"
  <recv request="BYE" timeout="60000"/>
  <send>
    <![CDATA[

      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]>
  </send>
</scenario>
"#;

/// A digit by SIP INFO (application/dtmf-relay) and its 200.
pub fn info(digit: char, cseq: u32) -> String {
    format!(
        r#"  <send retrans="500">
    <![CDATA[

      INFO [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch];rport
      From: "Test Caller" <sip:+919800000001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      [routes]
      Call-ID: [call_id]
      CSeq: {cseq} INFO
      Contact: <sip:sipp@[local_ip]:[local_port]>
      Max-Forwards: 70
      Content-Type: application/dtmf-relay
      Content-Length: [len]

      Signal={digit}
      Duration=160

    ]]>
  </send>
  <recv response="200"/>
"#
    )
}

/// A pause of `ms`.
pub fn pause(ms: u32) -> String {
    format!("  <pause milliseconds=\"{ms}\"/>\n")
}

/// Writes INVITE + `middle` + `tail` to `dir/scenario.xml`; its path.
pub fn write_scenario(dir: &std::path::Path, middle: &str, tail: &str) -> String {
    let p = dir.join("scenario.xml");
    std::fs::write(&p, format!("{INVITE}{middle}{tail}")).expect("write scenario");
    p.display().to_string()
}
