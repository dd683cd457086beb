//! Statements the host carries out for the flow: `record`, `consent`,
//! `recording`, `queue`, `transfer`, `log` and `fetch`.

use super::Parser;
use crate::ast::{
    Consent, Fetch, Grievance, Method, Name, Queue, Record, RecordingOp, StmtKind, Transfer,
};
use crate::lexer::Tok;
use crate::source::Span;

impl Parser<'_> {
    pub(super) fn record(&mut self) -> Option<Record> {
        let mut r = Record {
            into: None,
            max: None,
            beep: false,
            silence: None,
            end_key: None,
        };
        const KEYS: [&str; 5] = ["into", "max", "beep", "silence", "end"];
        self.options(|p| {
            if p.eat_word("into") {
                r.into = Some(p.name("a variable name", "write `into message`")?);
            } else if p.eat_word("max") {
                r.max = Some(p.duration("a duration", "write `max 2m`")?);
            } else if p.eat_word("beep") {
                r.beep = true;
            } else if p.eat_word("silence") {
                r.silence = Some(p.duration("a duration", "write `silence 5s`")?);
            } else if p.eat_word("end") {
                r.end_key = Some(p.key()?);
            } else {
                return p.unknown_option("record", &KEYS);
            }
            Some(())
        })?;
        Some(r)
    }

    pub(super) fn grievance(&mut self) -> Option<Grievance> {
        let category = self.text("a category in quotes", "write `grievance \"billing\"`")?;
        let mut g = Grievance {
            category,
            max: None,
        };
        if self.eat(&Tok::Comma) {
            const KEYS: [&str; 1] = ["max"];
            self.options(|p| {
                if p.eat_word("max") {
                    g.max = Some(p.duration("a duration", "write `max 2m`")?);
                } else {
                    return p.unknown_option("grievance", &KEYS);
                }
                Some(())
            })?;
        }
        Some(g)
    }

    pub(super) fn consent(&mut self, start: Span) -> Option<Consent> {
        let prompt = self.prompt()?;
        let mut c = Consent {
            prompt,
            yes: ('1', start),
            no: ('2', start),
            timeout: None,
            retries: None,
        };
        if self.eat(&Tok::Comma) {
            const KEYS: [&str; 4] = ["yes", "no", "timeout", "retries"];
            self.options(|p| {
                if p.eat_word("yes") {
                    c.yes = p.key()?;
                } else if p.eat_word("no") {
                    c.no = p.key()?;
                } else if p.eat_word("timeout") {
                    c.timeout = Some(p.duration("a duration", "write `timeout 5s`")?);
                } else if p.eat_word("retries") {
                    c.retries = Some(p.count("retries run from 0 to 10")?);
                } else {
                    return p.unknown_option("consent", &KEYS);
                }
                Some(())
            })?;
        }
        Some(c)
    }

    pub(super) fn recording_op(&mut self) -> Option<StmtKind> {
        let op = if self.eat_word("start") {
            RecordingOp::Start
        } else if self.eat_word("stop") {
            RecordingOp::Stop
        } else if self.eat_word("pause") {
            RecordingOp::Pause
        } else if self.eat_word("resume") {
            RecordingOp::Resume
        } else {
            self.expected(
                "`start`, `stop`, `pause` or `resume`",
                "write `recording start` (after a `consent`)",
            );
            return None;
        };
        Some(StmtKind::Recording(op))
    }

    pub(super) fn queue(&mut self) -> Option<Queue> {
        let name = self.text("the queue name in quotes", "write `queue \"support\"`")?;
        let mut q = Queue {
            name,
            hold: None,
            announce: None,
            max_wait: None,
            priority: None,
            branches: Vec::new(),
        };
        if self.eat(&Tok::Comma) {
            const KEYS: [&str; 4] = ["hold", "announce every", "max wait", "priority"];
            self.options(|p| {
                if p.eat_word("hold") {
                    q.hold = Some(p.text(
                        "a file name in quotes",
                        "write `hold \"prompts/music.wav\"`",
                    )?);
                } else if p.is_word("announce")
                    && matches!(p.peek_at(1), Tok::Word(w) if *w == "every")
                {
                    p.bump();
                    p.bump();
                    q.announce = Some(p.duration("a duration", "write `announce every 30s`")?);
                } else if p.is_word("max") && matches!(p.peek_at(1), Tok::Word(w) if *w == "wait") {
                    p.bump();
                    p.bump();
                    q.max_wait = Some(p.duration("a duration", "write `max wait 10m`")?);
                } else if p.eat_word("priority") {
                    q.priority = Some(p.count("a priority from 0 to 9, e.g. `priority 5`")?);
                } else {
                    return p.unknown_option("queue", &KEYS);
                }
                Some(())
            })?;
        }
        self.end_line("the `queue` options");
        self.body("queue", |p| {
            if p.is_word("on") {
                q.branches.extend(p.branch(&["overflow"], true)?);
                Some(())
            } else {
                p.unknown_body_line("queue", "`on overflow -> step` or a key, `on 0 -> step`")
            }
        });
        Some(q)
    }

    pub(super) fn transfer(&mut self) -> Option<Transfer> {
        let target = self.text(
            "a number or SIP URI in quotes",
            "write `transfer \"+911140000000\"` or `transfer \"sip:desk@pbx.example\"`",
        )?;
        let mut t = Transfer {
            target,
            branches: Vec::new(),
        };
        self.end_line("the transfer target");
        self.body("transfer", |p| {
            if p.is_word("on") {
                t.branches.extend(p.branch(&["failure"], false)?);
                Some(())
            } else {
                p.unknown_body_line("transfer", "`on failure -> step`")
            }
        });
        Some(t)
    }

    pub(super) fn log(&mut self) -> Option<StmtKind> {
        let event = self.text(
            "the event name in quotes",
            "write `log \"balance.checked\" account=account`",
        )?;
        let mut fields = Vec::new();
        loop {
            self.eat(&Tok::Comma);
            if self.at_line_end() {
                break;
            }
            let key = self.name("a field name", "write fields as `key=value`")?;
            if !self.eat(&Tok::Assign) {
                self.expected("`=`", "write fields as `key=value`");
                return None;
            }
            let value = self.expr()?;
            fields.push((key, value));
        }
        Some(StmtKind::Log { event, fields })
    }

    pub(super) fn fetch(&mut self) -> Option<Fetch> {
        let method = if self.eat_word("get") {
            Method::Get
        } else if self.eat_word("post") {
            Method::Post
        } else {
            self.expected(
                "`get` or `post`",
                "write `fetch get \"https://api.example.in/x\"`",
            );
            return None;
        };
        let url = self.text(
            "the URL in quotes",
            "write `fetch get \"https://api.example.in/balance?account={account}\"`",
        )?;
        let mut f = Fetch {
            method,
            url,
            timeout: None,
            send: Vec::new(),
            into: Vec::new(),
            branches: Vec::new(),
        };
        if self.eat(&Tok::Comma) {
            self.options(|p| {
                if p.eat_word("timeout") {
                    f.timeout = Some(p.duration("a duration", "write `timeout 3s`")?);
                    Some(())
                } else {
                    p.unknown_option("fetch", &["timeout"])
                }
            })?;
        }
        self.end_line("the `fetch` options");
        self.body("fetch", |p| {
            let list = |p: &mut Parser<'_>, out: &mut Vec<Name>| -> Option<()> {
                loop {
                    out.push(p.name("a variable name", "list variables like `send account, pin`")?);
                    if !p.eat(&Tok::Comma) {
                        return Some(());
                    }
                }
            };
            if p.eat_word("send") {
                list(p, &mut f.send)
            } else if p.eat_word("into") {
                list(p, &mut f.into)
            } else if p.is_word("on") {
                f.branches.extend(p.branch(&["failure"], false)?);
                Some(())
            } else {
                p.unknown_body_line("fetch", "`send a, b`, `into x, y` or `on failure -> step`")
            }
        });
        Some(f)
    }
}
