//! What a flow needs from the media engine, checked when the flow loads
//! (by `dhwani flow check` now, and by the server when it loads flows):
//! every prompt file decodes (a corrupt or truncated file is named), and
//! a flow that `say`s anything has a text-to-speech engine to say it with.
//! The IVR language's checker already refuses missing files; this finds
//! the ones that exist but cannot play.

use ivr_dsl::Flow;
use media::tts::Engine;

/// Problems, one line each; empty when the flow can play.
pub fn check(flow: &Flow, tts: Option<&dyn Engine>) -> Vec<String> {
    let mut problems = Vec::new();
    if flow.uses_tts && tts.is_none() {
        problems.push(
            "the flow uses `say` but no text-to-speech engine is installed: install espeak-ng (apt-get install espeak-ng), or replace `say` with `play`"
                .to_owned(),
        );
    }
    for path in &flow.prompt_files {
        // 8 kHz is what every narrowband call needs; decoding once proves
        // the file is audio and whole.
        if let Err(e) = media::prompt::load(path, 8000) {
            problems.push(e.to_string());
        }
    }
    problems
}

/// What the flow uses that this server cannot do, one warning per
/// statement, naming its step: a `queue` its tenant does not have (when
/// the tenant's queues are known: callers take its overflow path). `fetch`
/// works (to the hosts of the tenant's `fetch_allow`), as does `transfer`
/// works (to an agent, or to a number through the tenant's
/// `transfer_trunk`; otherwise it takes its failure path at run time).
pub fn not_yet_available(
    flow: &Flow,
    queues: Option<&[crate::config::QueueConfig]>,
) -> Vec<String> {
    use ivr_dsl::flow::Instr;
    let mut out = Vec::new();
    for (pc, instr) in flow.code.iter().enumerate() {
        let step = flow
            .step_at(pc as u32)
            .map(|s| s.name.as_str())
            .unwrap_or("?");
        let what = match instr {
            Instr::Queue(q) => match queues {
                Some(list) if !list.iter().any(|c| c.name == q.name) => format!(
                    "step `{step}`: the tenant has no queue \"{}\" (add a [[tenants.queues]] with that name); callers take its overflow path",
                    q.name
                ),
                _ => continue,
            },
            _ => continue,
        };
        out.push(what);
    }
    out
}
