//! The audit log: append-only and hash-chained. Every entry carries the
//! SHA-256 of the previous entry's line, so editing, removing or reordering
//! any entry breaks the chain at that point, and [`verify`] says where.
//!
//! One entry per line: `seq<TAB>time<TAB>actor<TAB>action<TAB>subject<TAB>prev<TAB>hash`,
//! where `hash` = SHA-256 over the line up to and including `prev`. Fields
//! may not contain tabs or newlines (they are replaced by spaces). Time is
//! an input (Unix seconds): the log never reads a clock.
//!
//! A chain cannot show that entries were cut from its end: the store keeps
//! the last hash and count beside it (an anchor), and `verify` callers
//! compare the result with it.

use std::io::{BufRead, Write};

use sha2::{Digest, Sha256};

use crate::error::Error;

/// The `prev` of the first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One thing that happened to protected data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Position, from 1.
    pub seq: u64,
    /// Unix seconds.
    pub time: u64,
    /// Who (a user, `sweeper`, `server`).
    pub actor: String,
    /// What: `recording.decrypt`, `recording.erase`, `hold.place`, `key.rewrap`, `sweep`...
    pub action: String,
    /// On what (a recording id, a number, a tenant).
    pub subject: String,
}

fn clean(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

fn line_body(seq: u64, time: u64, actor: &str, action: &str, subject: &str, prev: &str) -> String {
    format!(
        "{seq}\t{time}\t{}\t{}\t{}\t{prev}",
        clean(actor),
        clean(action),
        clean(subject)
    )
}

fn hash(body: &str) -> String {
    Sha256::digest(body.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Appends entries to a log whose last line was `last` (None: empty).
#[derive(Debug)]
pub struct Appender {
    seq: u64,
    prev: String,
}

impl Appender {
    /// Continues after the last line of an existing log, or starts one.
    pub fn resume(last_line: Option<&str>) -> Result<Appender, Error> {
        match last_line {
            None => Ok(Appender {
                seq: 0,
                prev: GENESIS.to_owned(),
            }),
            Some(l) => {
                let fields: Vec<&str> = l.split('\t').collect();
                let (Some(seq), Some(h)) =
                    (fields.first().and_then(|s| s.parse().ok()), fields.get(6))
                else {
                    return Err(Error::Io("audit log: last line is malformed".into()));
                };
                Ok(Appender {
                    seq,
                    prev: (*h).to_owned(),
                })
            }
        }
    }

    /// Continues after entry `seq` whose hash was `prev` (from an anchor).
    pub fn at(seq: u64, prev: &str) -> Appender {
        Appender {
            seq,
            prev: prev.to_owned(),
        }
    }

    /// Entries so far and the last hash (the anchor to keep).
    pub fn anchor(&self) -> (u64, &str) {
        (self.seq, &self.prev)
    }

    /// Writes one entry (one line) and returns it.
    pub fn append(
        &mut self,
        out: &mut impl Write,
        time: u64,
        actor: &str,
        action: &str,
        subject: &str,
    ) -> Result<Entry, Error> {
        let seq = self.seq + 1;
        let body = line_body(seq, time, actor, action, subject, &self.prev);
        let h = hash(&body);
        out.write_all(format!("{body}\t{h}\n").as_bytes())?;
        out.flush()?;
        self.seq = seq;
        self.prev = h;
        Ok(Entry {
            seq,
            time,
            actor: clean(actor),
            action: clean(action),
            subject: clean(subject),
        })
    }
}

/// Where a log breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// A line is not an entry.
    Malformed {
        /// Line number, from 1.
        line: u64,
    },
    /// An entry's hash does not match its contents (edited).
    Edited {
        /// Line number.
        line: u64,
    },
    /// An entry does not follow the previous one (removed, inserted or
    /// reordered entries).
    ChainBroken {
        /// Line number.
        line: u64,
    },
}

/// Checks a whole log; Ok with the number of entries.
pub fn verify(input: impl BufRead) -> Result<Result<u64, Broken>, Error> {
    let mut prev = GENESIS.to_owned();
    let mut n = 0u64;
    for line in input.lines() {
        let line = line?;
        n += 1;
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != 7 {
            return Ok(Err(Broken::Malformed { line: n }));
        }
        let body = fields[..6].join("\t");
        if hash(&body) != fields[6] {
            return Ok(Err(Broken::Edited { line: n }));
        }
        if fields[5] != prev || fields[0].parse::<u64>().ok() != Some(n) {
            return Ok(Err(Broken::ChainBroken { line: n }));
        }
        prev = fields[6].to_owned();
    }
    Ok(Ok(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(n: u64) -> String {
        let mut out = Vec::new();
        let mut a = Appender::resume(None).expect("new");
        for i in 0..n {
            a.append(
                &mut out,
                1_800_000_000 + i,
                "ops@acme",
                "recording.decrypt",
                &format!("rec-{i}"),
            )
            .expect("append");
        }
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn a_clean_log_verifies_and_resumes() {
        let text = log(5);
        assert_eq!(verify(text.as_bytes()).expect("io"), Ok(5));
        let mut a = Appender::resume(text.lines().last()).expect("resume");
        let mut more = text.clone().into_bytes();
        a.append(&mut more, 1, "sweeper", "sweep", "tenant acme\twith\ttabs")
            .expect("append");
        assert_eq!(verify(&more[..]).expect("io"), Ok(6));
    }

    #[test]
    fn an_edited_removed_or_reordered_entry_is_found() {
        let text = log(5);
        let lines: Vec<&str> = text.lines().collect();
        let edited = text.replacen("rec-2", "rec-X", 1);
        assert_eq!(
            verify(edited.as_bytes()).expect("io"),
            Err(Broken::Edited { line: 3 })
        );
        let removed = [lines[0], lines[1], lines[3], lines[4]].join("\n");
        assert_eq!(
            verify(removed.as_bytes()).expect("io"),
            Err(Broken::ChainBroken { line: 3 })
        );
        let swapped = [lines[0], lines[2], lines[1], lines[3]].join("\n");
        assert_eq!(
            verify(swapped.as_bytes()).expect("io"),
            Err(Broken::ChainBroken { line: 2 })
        );
        let truncated_head = lines[1..].join("\n");
        assert_eq!(
            verify(truncated_head.as_bytes()).expect("io"),
            Err(Broken::ChainBroken { line: 1 })
        );
        assert_eq!(
            verify("garbage".as_bytes()).expect("io"),
            Err(Broken::Malformed { line: 1 })
        );
    }
}
