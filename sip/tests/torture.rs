//! The torture cases of RFC 4475 (and the IPv6 ones of RFC 5118), re-typed
//! from the RFCs' descriptions, run through the parser and the UAS checks
//! in-process: nothing here touches a network. The RFC 4475 messages
//! byte for byte, on the wire, are `tests/torture_wire.rs`'s. Each case says what an
//! endpoint must do: accept, or answer with a given status (400, 505, 416,
//! 420, 415, 501, 513...).
//!
//! `{len}` in a message is replaced by the length of its body.

use bytes::Bytes;
use sip::message::{Limits, Message, parse_message};
use sip::uas::{Policy, check_request};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A valid request an endpoint processes.
    Accept,
    /// Answered with this status (from the parser or the UAS checks).
    Status(u16),
    /// A valid response (matched, or dropped as stray).
    Response,
    /// Not answerable at all: dropped.
    Drop,
}

fn outcome(raw: &str) -> Want {
    let raw = if let Some((head, body)) = raw.split_once("\n\n") {
        let head = head.replace("{len}", &body.replace('\n', "\r\n").len().to_string());
        format!("{head}\n\n{body}")
    } else {
        raw.to_owned()
    };
    let raw = raw.replace('\n', "\r\n");
    match parse_message(Bytes::from(raw), &Limits::default()) {
        Ok(Message::Request(r)) => match check_request(&r, &Policy::default()) {
            Ok(()) => Want::Accept,
            Err(rej) => Want::Status(rej.status.as_u16()),
        },
        Ok(Message::Response(r)) => {
            if r.validate().is_ok() {
                Want::Response
            } else {
                Want::Drop
            }
        }
        Err(e) => e
            .status_code()
            .map_or(Want::Drop, |s| Want::Status(s.as_u16())),
    }
}

const SDP: &str = "v=0\no=mhandley 29739 7272939 IN IP4 192.0.2.3\ns=-\nc=IN IP4 192.0.2.3\nt=0 0\nm=audio 49217 RTP/AVP 0 12\nm=video 3227 RTP/AVP 31\na=rtpmap:31 LPC\n";

fn cases() -> Vec<(&'static str, String, Want)> {
    vec![
        // 3.1.1.1 wsinv: folding, escapes in quotes, LWS everywhere, compact and long forms mixed.
        ("wsinv", format!("INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\nTO :\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\nfrom   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\n  ;\n  tag = 98asjd8\nMaX-fOrWaRdS: 0068\nCall-ID: wsinv.ndaksdj@192.0.2.1\nContent-Length   : {{len}}\ncseq: 0009\n  INVITE\nVia  : SIP  /   2.0\n /UDP\n    192.0.2.2;branch=390skdjuw\ns :\nNewFangledHeader:   newfangled value\n continued newfangled value\nUnknownHeaderWithUnusualValue: ;;,,;;,;\nContent-Type: application/sdp\nRoute:\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\nv:  SIP  / 2.0  / TCP     spindle.example.com   ;\n  branch  =   z9hG4bK9ikj8  ,\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\n z9hG4bK30239\nm:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\n      newvalue ;\n  secondparam ; q = 0.33\n\n{SDP}"), Want::Accept),
        // 3.1.1.2 intmeth: an unknown method with odd but legal tokens: well-formed,
        // so a UAS answers 501 Not Implemented.
        ("intmeth", "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0\nVia: SIP/2.0/TCP host1.example.com;branch=z9hG4bK-.!%66*_+`'~\nTo: \"BEL:\\\u{7} NUL:\\\u{0} DEL:\\\u{7f}\" <sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*@example.com>\nFrom: token1~` token2'+_ token3*%!.- <sip:mundane@example.com>;fromParam''~+*_!.-%=\"\u{440}\u{430}\u{431}\u{43e}\u{442}\u{430}\u{44e}\u{449}\u{438}\u{439}\";tag=_token~1'+`*%!-.\nCall-ID: intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{\nCSeq: 139122385 !interesting-Method0123456789_*+`.%indeed'~\nMax-Forwards: 255\nextensionHeader-!.%*+_`'~:\u{feff}\u{5927}\u{505c}\u{96fb}\nContent-Length: 0\n\n".to_owned(), Want::Status(501)),
        // 3.1.1.3 esc01: escaped characters in the Request-URI user part.
        ("esc01", "OPTIONS sip:%73ip%3Auser%40example.com@example.net SIP/2.0\nTo: sip:%73ip%3Auser%40example.com@example.net\nFrom: <sip:I%20have%20spaces@example.net>;tag=938\nMax-Forwards: 87\ni: esc01.239409asdfakjkn23onasd0-3234\nCSeq: 234234 OPTIONS\nVia: SIP/2.0/UDP host5.example.net;branch=z9hG4bKkdjuw\nl: 0\n\n".to_owned(), Want::Accept),
        // 3.1.1.4 escnull: an escaped NUL in the user part is legal.
        ("escnull", "REGISTER sip:example.com SIP/2.0\nTo: sip:null-%00-null@example.com\nFrom: sip:null-%00-null@example.com;tag=839923423\nMax-Forwards: 70\nCall-ID: escnull.39203ndfvkjdasfkq3w4otrq0adsfdfnavd\nCSeq: 14398234 REGISTER\nVia: SIP/2.0/UDP host5.example.com;branch=z9hG4bKkdjuw\nContact: <sip:%00@host5.example.com>\nContact: <sip:%00%00@host5.example.com>\nL:0\n\n".to_owned(), Want::Status(405)),
        // 3.1.1.6 lwsdisp: no LWS between display name and <.
        ("lwsdisp", "OPTIONS sip:user@example.com SIP/2.0\nTo: sip:user@example.com\nFrom: caller<sip:caller@example.com>;tag=323\nMax-Forwards: 70\nCall-ID: lwsdisp.1234abcd@funky.example.com\nCSeq: 60 OPTIONS\nVia: SIP/2.0/UDP funky.example.com;branch=z9hG4bKkdjuw\nl: 0\n\n".to_owned(), Want::Accept),
        // 3.1.1.8 dblreq: only the first of two requests in a datagram counts (Content-Length 0).
        ("dblreq", "REGISTER sip:example.com SIP/2.0\nTo: sip:j.user@example.com\nFrom: sip:j.user@example.com;tag=43251j3j324\nMax-Forwards: 8\nI: dblreq.0ha0isndaksdj99sdfafnl3lk233412\nContact: sip:j.user@host.example.com\nCSeq: 8 REGISTER\nVia: SIP/2.0/UDP 192.0.2.125;branch=z9hG4bKkdjuw23492\nContent-Length: 0\n\nINVITE sip:joe@example.com SIP/2.0\nt: sip:joe@example.com\n\n".to_owned(), Want::Status(405)),
        // 3.1.1.9 semiuri: a semicolon-separated user part.
        ("semiuri", "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0\nTo: sip:j_user@example.com\nFrom: sip:caller@example.org;tag=33242\nMax-Forwards: 3\nCall-ID: semiuri.0ha0isndaksdj\nCSeq: 8 OPTIONS\nAccept: application/sdp, application/pkcs7-mime,\n        multipart/mixed, multipart/signed,\n        message/sip, message/sipfrag\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKkdjuw\nl: 0\n\n".to_owned(), Want::Accept),
        // 3.1.1.10 transports: unknown Via transports are fine.
        ("transports", "OPTIONS sip:user@example.com SIP/2.0\nTo: sip:user@example.com\nFrom: <sip:caller@example.com>;tag=323\nMax-Forwards: 70\nCall-ID:  transports.kijh4akdnaqjkwendsasfdj\nAccept: application/sdp\nCSeq: 60 OPTIONS\nVia: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\nVia: SIP/2.0/SCTP t2.example.com;branch=z9hG4bKklasjdhf\nVia: SIP/2.0/TLS t3.example.com;branch=z9hG4bK2980unddj\nVia: SIP/2.0/UNKNOWN t4.example.com;branch=z9hG4bKasd0f3en\nVia: SIP/2.0/TCP t5.example.com;branch=z9hG4bK0a9idfnee\nl: 0\n\n".to_owned(), Want::Accept),
        // 3.1.1.12 unreason: a reason phrase with UTF-8 and odd characters.
        ("unreason", "SIP/2.0 200 = 2**3 * 5**2 \u{43d}\u{43e} \u{441}\u{442}\u{43e} \u{434}\u{435}\u{432}\u{44f}\u{43d}\u{43e}\u{441}\u{442}\u{43e} \u{434}\u{435}\u{432}\u{44f}\u{442}\u{44c} - \u{43f}\u{440}\u{43e}\u{441}\u{442}\u{43e}\u{435}\nVia: SIP/2.0/UDP 192.0.2.198;branch=z9hG4bK1324923\nCall-ID: unreason.1234ksdfak3j2erwedfsASdf\nCSeq: 35 INVITE\nFrom: sip:user@example.com;tag=11141343\nTo: sip:user@example.edu;tag=2229\nContent-Length: 0\n\n".to_owned(), Want::Response),
        // 3.1.1.13 noreason: an empty reason phrase.
        ("noreason", "SIP/2.0 100 \nVia: SIP/2.0/UDP 192.0.2.105;branch=z9hG4bK2398ndaoe\nCall-ID: noreason.asndj203insdf99223ndf\nCSeq: 35 INVITE\nFrom: <sip:user@example.com>;tag=39ansfi3\nTo: <sip:user@example.edu>;tag=902jndnke3\nContent-Length: 0\n\n".to_owned(), Want::Response),
        // 3.1.2.1 badinv01: Content-Length bigger than the body.
        ("badinv01", "INVITE sip:user@example.com SIP/2.0\nTo: sip:j.user@example.com\nFrom: sip:caller@example.net;tag=134161461246\nMax-Forwards: 7\nCall-ID: badinv01.0ha0isndaksdjasdf3234nas\nCSeq: 8 INVITE\nVia: SIP/2.0/UDP 192.0.2.15;branch=z9hG4bKkdjuw\nContent-Type: application/sdp\nl: 9999\n\nv=0\n".to_owned(), Want::Status(400)),
        // 3.1.2.2 clerr: negative Content-Length.
        ("clerr", "INVITE sip:user@example.com SIP/2.0\nMax-Forwards: 80\nTo: sip:j.user@example.com\nFrom: sip:caller@example.net;tag=93942939o2\nContact: <sip:caller@hungry.example.net>\nCall-ID: clerr.0ha0isndaksdjweiafasdk3\nCSeq: 8 INVITE\nVia: SIP/2.0/UDP host5.example.com;branch=z9hG4bK-39234-23523\nContent-Type: application/sdp\nContent-Length: -999\n\nv=0\n".to_owned(), Want::Status(400)),
        // 3.1.2.3 scalar02: Max-Forwards and Expires out of range.
        ("scalar02", "REGISTER sip:example.com SIP/2.0\nVia: SIP/2.0/TCP host129.example.com;branch=z9hG4bK342sdfoi3\nTo: <sip:user@example.com>\nFrom: <sip:user@example.com>;tag=239232jh3\nCSeq: 36893 REGISTER\nCall-ID: scalar02.23o0pd9vanlq3wnrlnewofjas9ui32\nMax-Forwards: 300\nExpires: 1293949493949493949493949493949\nContact: <sip:user@host129.example.com>\n  ;expires=280297596632815\nContent-Length: 0\n\n".to_owned(), Want::Status(400)),
        // 3.1.2.4 scalarlg: CSeq too big.
        ("scalarlg", "OPTIONS sip:user@example.com SIP/2.0\nTo: sip:user@example.com\nFrom: <sip:caller@example.com>;tag=323\nMax-Forwards: 70\nCall-ID: scalarlg.kijh4akdnaqjkwendsasfdj\nCSeq: 36893701861 OPTIONS\nVia: SIP/2.0/UDP t1.example.com;branch=z9hG4bKkdjuw\nl: 0\n\n".to_owned(), Want::Status(400)),
        // 3.1.2.5 quotbal: unterminated quoted display name.
        ("quotbal", "INVITE sip:user@example.com SIP/2.0\nTo: \"Mr. J. User <sip:j.user@example.com>\nFrom: sip:caller@example.net;tag=93334\nMax-Forwards: 10\nCall-ID: quotbal.aksdj\nContact: <sip:caller@host59.example.net>\nCSeq: 8 INVITE\nVia: SIP/2.0/UDP 192.0.2.59:5050;branch=z9hG4bKkdjuw39234\nContent-Type: application/sdp\nContent-Length: {len}\n\nv=0\n".to_owned(), Want::Status(400)),
        // 3.1.2.6 ltgtruri: a Request-URI in angle brackets.
        ("ltgtruri", "INVITE <sip:user@example.com> SIP/2.0\nTo: sip:user@example.com\nFrom: sip:caller@example.net;tag=39291\nMax-Forwards: 23\nCall-ID: ltgtruri.1@192.0.2.5\nCSeq: 1 INVITE\nVia: SIP/2.0/UDP 192.0.2.5\nContact: <sip:caller@host5.example.net>\nContent-Type: application/sdp\nContent-Length: {len}\n\nv=0\n".to_owned(), Want::Status(400)),
        // 3.1.2.7 lwsruri: whitespace inside the Request-URI.
        ("lwsruri", "INVITE sip:user@example.com; lr SIP/2.0\nTo: sip:user@example.com;tag=3xfe-9921883-z9f\nFrom: sip:caller@example.net;tag=231413434\nMax-Forwards: 5\nCall-ID: lwsruri.asdfasdoeoi2323-asdfwrn23-asd834rk423\nCSeq: 2130706432 INVITE\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKhjhjqw32c\nContent-Type: application/sdp\nContent-Length: {len}\n\nv=0\n".to_owned(), Want::Status(400)),
        // 3.1.2.8 lwsstart: several spaces between request-line elements.
        ("lwsstart", "INVITE  sip:user@example.com  SIP/2.0\nMax-Forwards: 8\nTo: sip:user@example.com\nFrom: sip:caller@example.net;tag=8814\nCall-ID: lwsstart.dfknq234oi243099adsdfnawe3@example.com\nCSeq: 1893884 INVITE\nVia: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw3923\nContact: <sip:caller@host1.example.net>\nContent-Type: application/sdp\nContent-Length: {len}\n\nv=0\n".to_owned(), Want::Status(400)),
        // 3.1.2.10 escruri: an unescaped space in the Request-URI.
        ("escruri", "INVITE sip:user@example.com?Route=%3Csip:example.com%3E SIP/2.0\nTo: sip:user@example.com\nFrom: sip:caller@example.net;tag=341518\nMax-Forwards: 7\nContact: <sip:caller@host39923.example.net>\nCall-ID: escruri.23940-asdfhj-aje3br-234q098w-fawerh2q-h4n5\nCSeq: 149209342 INVITE\nVia: SIP/2.0/UDP host-of-the-hour.example.com;branch=z9hG4bKkdjuw\nContent-Type: application/sdp\nContent-Length: {len}\n\nv=0\no=mhandley 29739 7272939 IN IP4 192.0.2.3\ns=-\nc=IN IP4 192.0.2.3\nt=0 0\nm=audio 49217 RTP/AVP 0\n".to_owned(), Want::Accept),
        // 3.1.2.12 regbadct: an escaped '>' in a Contact URI outside brackets is legal;
        // here an unquoted URI with a '?' forces 400 for REGISTER via 405 (we do not register yet).
        ("badaspec", "OPTIONS sip:user@example.org SIP/2.0\nVia: SIP/2.0/UDP host4.example.com:5060;branch=z9hG4bKkdju43234\nMax-Forwards: 70\nFrom: \"Bell, Alexander\" <sip:a.g.bell@example.com>;tag=433423\nTo: \"Watson, Thomas\" < sip:t.watson@example.org >\nCall-ID: badaspec.sdf0234n2nds0a099u23h3hnnw009cdkne3\nAccept: application/sdp\nCSeq: 3923239 OPTIONS\nl: 0\n\n".to_owned(), Want::Status(400)),
        // 3.1.2.14 baddn: an unquoted display name with non-token characters.
        ("baddn", "OPTIONS sip:t.watson@example.org SIP/2.0\nVia:     SIP/2.0/UDP c.example.com:5060;branch=z9hG4bKkdjw\nMax-Forwards:      70\nFrom:    Bell, Alexander <sip:a.g.bell@example.com>;tag=43\nTo:      Watson, Thomas <sip:t.watson@example.org>\nCall-ID: baddn.31415@c.example.com\nAccept: application/sdp\nCSeq:    3923239 OPTIONS\nl: 0\n\n".to_owned(), Want::Status(400)),
        // 3.1.2.15 badvers: SIP/7.0.
        ("badvers", "OPTIONS sip:t.watson@example.org SIP/7.0\nVia:     SIP/7.0/UDP c.example.com;branch=z9hG4bKkdjw\nMax-Forwards:     70\nFrom:    A. Bell <sip:a.g.bell@example.com>;tag=qweoiqpe\nTo:      T. Watson <sip:t.watson@example.org>\nCall-ID: badvers.31417@c.example.com\nCSeq:    1 OPTIONS\nl: 0\n\n".to_owned(), Want::Status(505)),
        // 3.1.2.16 mismatch01: CSeq method differs from the request method.
        ("mismatch01", "OPTIONS sip:user@example.com SIP/2.0\nTo: sip:j.user@example.com\nFrom: sip:caller@example.net;tag=34525\nMax-Forwards: 6\nCall-ID: mismatch01.dj0234sxdfl3\nCSeq: 8 INVITE\nVia: SIP/2.0/UDP host.example.com;branch=z9hG4bKkdjuw\nl: 0\n\n".to_owned(), Want::Status(400)),
        // 3.1.2.17 mismatch02: an unknown method with a CSeq of another: 501 or 400; ours says 400 (CSeq).
        ("mismatch02", "NEWMETHOD sip:user@example.com SIP/2.0\nTo: sip:j.user@example.com\nFrom: sip:caller@example.net;tag=34525\nMax-Forwards: 6\nCall-ID: mismatch02.dj0234sxdfl3\nCSeq: 8 INVITE\nContact: <sip:caller@host.example.net>\nVia: SIP/2.0/UDP host.example.net;branch=z9hG4bKkdjuw\nContent-Type: application/sdp\nl: 0\n\n".to_owned(), Want::Status(400)),
        // 3.1.2.19 multi01: two From, two To, two Call-ID, two CSeq.
        ("multi01", "INVITE sip:user@company.com SIP/2.0\nContact: <sip:caller@host25.example.net>\nVia: SIP/2.0/UDP 192.0.2.25;branch=z9hG4bKkdjuw\nMax-Forwards: 70\nCSeq: 5 INVITE\nCall-ID: multi01.98asdh@192.0.2.1\nCSeq: 59 INVITE\nCall-ID: multi01.98asdh@192.0.2.2\nFrom: sip:caller@example.com;tag=3413415\nTo: sip:user@example.com\nTo: sip:other@example.net\nFrom: sip:caller@example.net;tag=2923420123\nContent-Type: application/sdp\nl: 0\n\n".to_owned(), Want::Status(400)),
        // 3.3.1 inv2543: an RFC 2543 INVITE (no branch cookie, no Max-Forwards) is accepted.
        ("inv2543", "INVITE sip:UserB@example.com SIP/2.0\nVia: SIP/2.0/UDP iftgw.example.com\nFrom: <sip:+13035551111@ift.client.example.net;user=phone>\nRecord-Route: <sip:UserB@example.com;maddr=ss1.example.com>\nTo: sip:+16505552222@ss1.example.net;user=phone\nCall-ID: inv2543.1717@ift.client.example.com\nCSeq: 56 INVITE\nContent-Type: application/sdp\n\nv=0\no=mhandley 29739 7272939 IN IP4 192.0.2.5\ns=-\nc=IN IP4 192.0.2.5\nt=0 0\nm=audio 49217 RTP/AVP 0\n".to_owned(), Want::Accept),
        // 3.3.2 unksm: an unknown URI scheme in the Request-URI: 416.
        ("unksm", "OPTIONS nobodyKnowsThisScheme:totallyopaquecontent SIP/2.0\nTo: sip:user@example.com\nFrom: sip:caller@example.net;tag=384\nMax-Forwards: 3\nCall-ID: unksm.nasdfasser0q239nwsdfasdkl34\nCSeq: 3923423 OPTIONS\nVia: SIP/2.0/TCP host9.example.com;branch=z9hG4bKkdjuw39234\nContent-Length: 0\n\n".to_owned(), Want::Status(416)),
        // 3.3.3 unksm2: unknown scheme in To only: accepted.
        ("unksm2", "REGISTER sip:example.com SIP/2.0\nTo: isbn:2983792873\nFrom: <http://www.example.com>;tag=3234233\nCall-ID: unksm2.daksdj@hyphenated-host.example.com\nCSeq: 234902 REGISTER\nMax-Forwards: 70\nVia: SIP/2.0/UDP 192.0.2.21:5060;branch=z9hG4bKkdjuw\nContact: <name@example.com>\nl: 0\n\n".to_owned(), Want::Status(400)),
        // 3.3.4 bext01: an unknown Require: 420.
        ("bext01", "OPTIONS sip:user@example.com SIP/2.0\nTo: sip:j_user@example.com\nFrom: sip:caller@example.net;tag=242etr\nMax-Forwards: 6\nCall-ID: bext01.0ha0isndaksdj\nRequire: nothingSupportsThis, nothingSupportsThisEither\nProxy-Require: noProxiesSupportThis, norDoAnyProxiesSupportThis\nCSeq: 8 OPTIONS\nVia: SIP/2.0/TLS fold-and-staple.example.com;branch=z9hG4bKkdjuw\nContent-Length: 0\n\n".to_owned(), Want::Status(420)),
        // 3.3.5 invut: an unknown body type: 415.
        ("invut", "INVITE sip:user@example.com SIP/2.0\nContact: <sip:caller@host5.example.net>\nTo: sip:j.user@example.com\nFrom: sip:caller@example.net;tag=8392034\nMax-Forwards: 70\nCall-ID: invut.0ha0isndaksdjadsfij34n23d\nCSeq: 235448 INVITE\nVia: SIP/2.0/UDP somehost.example.com;branch=z9hG4bKkdjuw\nContent-Type: application/unknownformat\nContent-Length: {len}\n\n<audio>\n <pcmu port=\"443\"/>\n</audio>\n".to_owned(), Want::Status(415)),
        // 3.3.8 zeromf: Max-Forwards 0 on OPTIONS is answered by the endpoint.
        ("zeromf", "OPTIONS sip:user@example.com SIP/2.0\nTo: sip:user@example.com\nFrom: sip:caller@example.net;tag=3ghsd41\nCall-ID: zeromf.jfasdlfnm2o2l43r5u0asdfas\nCSeq: 39234321 OPTIONS\nVia: SIP/2.0/UDP host1.example.com;branch=z9hG4bKkdjuw2349i\nMax-Forwards: 0\nContent-Length: 0\n\n".to_owned(), Want::Accept),
        // 3.3.12 unkscm / novelsc: a novel scheme in Contact of a 200 is a valid response.
        // 3.1.2.9 / 3.3.14: a response with no reason and a stray branch is parsed (and then dropped as stray by the layer).
        ("stray", "SIP/2.0 200 OK\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKnotours\nFrom: <sip:a@example.com>;tag=1\nTo: <sip:b@example.com>;tag=2\nCall-ID: stray.1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n".to_owned(), Want::Response),
        // RFC 5118 §4.1 ipv6-good: an IPv6 reference in the Request-URI and Via.
        ("ipv6-good", "REGISTER sip:[2001:db8::10] SIP/2.0\nTo: sip:user@example.com\nFrom: sip:user@example.com;tag=81x2\nVia: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111\nCall-ID: SSG9559905523997077@hlau_4100\nMax-Forwards: 70\nContact: \"Caller\" <sip:caller@[2001:db8::1]>\nCSeq: 98176 REGISTER\nContent-Length: 0\n\n".to_owned(), Want::Status(405)),
        // RFC 5118 §4.2 ipv6-bad: an IPv6 address without brackets.
        ("ipv6-bad", "REGISTER sip:2001:db8::10 SIP/2.0\nTo: sip:user@example.com\nFrom: sip:user@example.com;tag=90x3\nVia: SIP/2.0/UDP [2001:db8::9:1];branch=z9hG4bKas3-111\nCall-ID: SSG9559905523997077@hlau_4100\nMax-Forwards: 70\nContact: \"Caller\" <sip:caller@[2001:db8::1]>\nCSeq: 98176 REGISTER\nContent-Length: 0\n\n".to_owned(), Want::Status(400)),
        // RFC 5118 §4.3 port-ambiguous: a port after the IPv6 reference.
        ("ipv6-port", "OPTIONS sip:[2001:db8::10]:5070 SIP/2.0\nTo: sip:user@example.com\nFrom: sip:user@example.com;tag=81x2\nVia: SIP/2.0/UDP [2001:db8::9:1]:5060;branch=z9hG4bKas3-111\nCall-ID: port-amb.1\nMax-Forwards: 70\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n".to_owned(), Want::Accept),
        // RFC 5118 §4.6 ipv4-mapped: an IPv4-mapped IPv6 address.
        ("ipv4-mapped", "OPTIONS sip:user@[::ffff:192.0.2.1] SIP/2.0\nTo: sip:user@[::ffff:192.0.2.1]\nFrom: sip:user@example.com;tag=141334\nMax-Forwards: 70\nCall-ID: mapped.1\nVia: SIP/2.0/UDP [::ffff:192.0.2.1];branch=z9hG4bKas3\nCSeq: 1 OPTIONS\nl: 0\n\n".to_owned(), Want::Accept),
        // Garbage: nothing to answer.
        ("garbage", "\u{1}\u{2}hello there\n\n".to_owned(), Want::Drop),
    ]
}

#[test]
fn every_torture_case_gets_the_answer_the_rfcs_ask_for() {
    let mut failures = Vec::new();
    for (name, raw, want) in cases() {
        let got = outcome(&raw);
        if got != want {
            failures.push(format!("{name}: want {want:?}, got {got:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_tortuous_invite_keeps_its_values() {
    let (_, raw, _) = cases().into_iter().next().unwrap();
    let (head, body) = raw.split_once("\n\n").unwrap();
    let head = head.replace("{len}", &body.replace('\n', "\r\n").len().to_string());
    let raw = format!("{head}\n\n{body}").replace('\n', "\r\n");
    let Ok(Message::Request(r)) = parse_message(Bytes::from(raw), &Limits::default()) else {
        panic!()
    };
    assert_eq!(r.cseq().unwrap().seq, 9);
    assert_eq!(r.headers.max_forwards().unwrap(), Some(68));
    assert_eq!(r.headers.vias().unwrap().len(), 3);
    assert_eq!(&r.from().unwrap().tag().unwrap()[..], b"98asjd8");
    assert_eq!(&r.from().unwrap().display.unwrap()[..], b"J Rosenberg \\\"");
    assert_eq!(&r.to().unwrap().tag().unwrap()[..], b"1918181833n");
    let contacts = r.headers.contacts().unwrap();
    assert_eq!(
        contacts.first().unwrap().params.get(b"q"),
        Some(Some(Bytes::from_static(b"0.33")))
    );
    // Serialize and parse again: the same message (we always write
    // Content-Length last, so compare without it).
    let Ok(Message::Request(again)) = parse_message(r.to_bytes(), &Limits::default()) else {
        panic!()
    };
    let without_cl = |h: &sip::message::Headers| {
        h.iter()
            .filter(|x| x.name != sip::message::HeaderName::ContentLength)
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        (&again.method, &again.uri, &again.body),
        (&r.method, &r.uri, &r.body)
    );
    assert_eq!(without_cl(&again.headers), without_cl(&r.headers));
    assert_eq!(again.headers.content_length().unwrap(), Some(r.body.len()));
}

#[test]
fn a_datagram_ending_after_its_last_header_line_is_whole_but_a_stream_waits() {
    // RFC 4475's own `baddn` (its archive's bytes) ends with `l: 0\r\n`,
    // without the empty line.
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/rfc4475/baddn.dat"
    ))
    .expect("the RFC 4475 archive in sip/tests/data/rfc4475");
    assert!(raw.ends_with(b"l: 0\r\n"));
    let bytes = Bytes::from(raw);
    assert!(matches!(
        parse_message(bytes.clone(), &Limits::default()),
        Err(sip::Error::Incomplete)
    ));
    let Ok(Message::Request(r)) = sip::message::parse_datagram(bytes, &Limits::default()) else {
        panic!("a datagram is one whole message")
    };
    assert!(r.body.is_empty());
    // Then the UAS checks refuse its unquoted display names.
    assert_eq!(
        check_request(&r, &Policy::default()).map_err(|e| e.status.as_u16()),
        Err(400)
    );
}
