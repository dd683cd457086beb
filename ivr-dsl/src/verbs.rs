//! The statements of the language, documented once: this table feeds
//! `dhwani flow explain`, and a test checks that docs/ivr-dsl.md covers every
//! entry and that every example parses.

/// One statement's documentation.
#[derive(Debug, Clone, Copy)]
pub struct Verb {
    /// Its keyword.
    pub name: &'static str,
    /// Syntax, one line.
    pub syntax: &'static str,
    /// What it does, timeouts, hang-up behaviour, what it logs.
    pub about: &'static str,
    /// A snippet that parses inside a step.
    pub example: &'static str,
}

/// Every statement.
pub const VERBS: &[Verb] = &[
    Verb {
        name: "say",
        syntax: "say \"text with {variables}\"[, \"more\"...][, barge-in on|off]",
        about: "Speaks text with the flow's voice (text-to-speech) and waits until it ends. With barge-in (the default), a key stops it and counts towards the next gather. Logs `prompt`.",
        example: "say \"Your balance is {balance} rupees.\"",
    },
    Verb {
        name: "play",
        syntax: "play \"file.wav\"[, \"file2.wav\"...][, barge-in on|off]",
        about: "Plays audio files in order (WAV, MP3, OGG or FLAC; paths relative to the flow file). Every file must exist when the flow loads. Waits until they end; barge-in as for `say`. Logs `prompt`.",
        example: "play \"../prompts/chime.wav\", barge-in off",
    },
    Verb {
        name: "gather",
        syntax: "gather [into VAR][, digits N|MIN-MAX][, end KEY][, timeout D][, between D][, retries N][, sensitive][, barge-in on|off]",
        about: "Plays its prompt lines (`say`/`play`), then collects keys. Input ends at MAX digits, at the end key, when a choice matches, or `between` (3s) after the last key. Nothing pressed within `timeout` (5s) after the prompt: a timeout. Too few digits or no matching choice: invalid. Both retry (default 2 retries) with the `reprompt` lines (or the prompt again); after the last try the `on timeout`/`on invalid` branch is taken, or the next line. Digits go into VAR (default `digits`). `sensitive` masks them in every log and pauses call recording while collecting. Logs `digits` and `branch`.",
        example: "gather into choice, digits 1, timeout 5s, retries 2\n    say \"For sales press 1.\"\n    reprompt say \"Sorry. For sales press 1.\"\n    on 1 -> bye\n    on invalid -> bye\n    on timeout -> bye",
    },
    Verb {
        name: "goto",
        syntax: "goto STEP",
        about: "Goes to a step. Leaves any block being run. Logs `step` on arrival.",
        example: "goto bye",
    },
    Verb {
        name: "call",
        syntax: "call BLOCK",
        about: "Runs a block and comes back to the next line. Blocks may call blocks, never themselves.",
        example: "call greet",
    },
    Verb {
        name: "return",
        syntax: "return",
        about: "Ends the block being run early (a block also returns at its end).",
        example: "return",
    },
    Verb {
        name: "if",
        syntax: "if CONDITION / else if CONDITION / else   (each with an indented block)",
        about: "Runs the first block whose condition holds. Conditions compare values (== != < <= > >=), join with and/or/not, and use open(HOURS), holiday, time, weekday, caller.",
        example: "if open(office) and not holiday\n    say \"We are open.\"\n  else\n    say \"We are closed.\"",
    },
    Verb {
        name: "set",
        syntax: "set VAR = EXPRESSION",
        about: "Gives a variable a value: text, a number, a time, true/false, or arithmetic (+ - * /) on them. A variable not yet set is empty text, which counts as 0 in arithmetic.",
        example: "set tries = tries + 1",
    },
    Verb {
        name: "wait",
        syntax: "wait DURATION",
        about: "Pauses (100ms to 10m) in silence. Keys pressed meanwhile count towards the next gather.",
        example: "wait 2s",
    },
    Verb {
        name: "hangup",
        syntax: "hangup [\"reason\"]",
        about: "Ends the call with a reason for the call record (default `completed`). Logs `hangup`.",
        example: "hangup \"completed\"",
    },
    Verb {
        name: "record",
        syntax: "record [into VAR][, max D][, beep][, silence D][, end KEY]",
        about: "Records a message from the caller (voicemail): up to `max` (2m, at most 10m), stopping after `silence` (5s) or at the end key; beeps first with `beep`. The recording's id goes into VAR. Logs `record`.",
        example: "record into message, max 2m, beep, silence 5s, end \"#\"",
    },
    Verb {
        name: "grievance",
        syntax: "grievance \"CATEGORY\"[, max D]",
        about: "Takes a complaint by phone (DPDP Act §13): beeps, records the caller's message (up to `max`, 2m by default; 5 s of silence or `#` ends it) and opens a grievance ticket of CATEGORY with it (acknowledgement due in 24 hours, resolution in 30 days; `dhwani grievance list`). Logs `record` and `grievance`.",
        example: "grievance \"billing\", max 3m",
    },
    Verb {
        name: "consent",
        syntax: "consent say|play \"...\"[, yes KEY][, no KEY][, timeout D][, retries N]",
        about: "Asks whether the call may be recorded (yes 1, no 2 by default) and records the answer (`consent` becomes \"yes\" or \"no\"; silence or wrong keys after the retries count as no). Call recording can start only after a yes. Logs `consent`.",
        example: "consent say \"This call may be recorded. Press 1 to agree, 2 to decline.\"",
    },
    Verb {
        name: "recording",
        syntax: "recording start|stop|pause|resume",
        about: "Controls recording of the call. `start` does nothing (and logs `recording refused`) unless the caller said yes to `consent`. Logs `recording`.",
        example: "recording start",
    },
    Verb {
        name: "queue",
        syntax: "queue \"NAME\"[, hold \"file\"][, announce every D][, max wait D]   (indented: on overflow -> STEP)",
        about: "Puts the caller in a queue of agents with hold music and position announcements. When an agent answers, the flow is over. After `max wait` (10m, at most 2h), or when nobody can answer, `on overflow` is taken, or the next line. Logs `queue`.",
        example: "queue \"support\", hold \"../prompts/hold-music.wav\", announce every 30s, max wait 10m\n    on overflow -> bye",
    },
    Verb {
        name: "transfer",
        syntax: "transfer \"NUMBER or sip:URI\"   (indented: on failure -> STEP)",
        about: "Transfers the call; when it connects the flow is over. If it fails, `on failure` is taken, or the next line. Logs `transfer`.",
        example: "transfer \"+911140000000\"\n    on failure -> bye",
    },
    Verb {
        name: "log",
        syntax: "log \"event\" [key=VALUE ...]",
        about: "Writes a custom event to the call's interaction log. Values read from `sensitive` variables are masked.",
        example: "log \"balance.told\" account=account",
    },
    Verb {
        name: "fetch",
        syntax: "fetch get|post \"https://host/path?x={var}\"[, timeout D]   (indented: send VARS / into VARS / on failure -> STEP)",
        about: "Calls the business's HTTPS endpoint (the host must be on the tenant's allow-list in the server config). `send` variables go as query parameters (get) or a JSON object (post). The reply must be a JSON object; `into` copies its fields into variables of the same names. An error, a timeout (3s, at most 10s) or a missing field takes `on failure`, or the next line. Logs `fetch`.",
        example: "fetch post \"https://api.example.in/balance\", timeout 3s\n    send account\n    into balance\n    on failure -> bye",
    },
];

/// A verb by name.
pub fn verb(name: &str) -> Option<&'static Verb> {
    VERBS.iter().find(|v| v.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diag::Diagnostic;
    use crate::parser::stmt::VERBS as PARSED;
    use crate::source::FileId;

    #[test]
    fn every_statement_is_documented_and_its_example_parses() {
        for name in PARSED {
            assert!(verb(name).is_some(), "`{name}` has no documentation");
        }
        for v in VERBS {
            let src = format!(
                "step s\n  set account = 1\n  set balance = 1\n  set choice = 1\n  {}\n  hangup\nstep bye\n  hangup\nblock greet\n  say \"hi\"\n",
                v.example
            );
            let mut d: Vec<Diagnostic> = Vec::new();
            crate::parser::parse(FileId(0), &src, &mut d);
            assert!(d.is_empty(), "{}: {d:#?}", v.name);
        }
    }

    #[test]
    fn the_reference_has_a_section_for_every_statement() {
        let doc = include_str!("../../docs/ivr-dsl.md");
        for v in VERBS {
            assert!(
                doc.contains(&format!("### `{}`", v.name))
                    || doc.contains(&format!("### `{}` and", v.name))
                    || doc.contains(&format!("and `{}`\n", v.name)),
                "docs/ivr-dsl.md has no section for `{}`",
                v.name
            );
        }
    }
}
