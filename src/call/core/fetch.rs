//! The call's side of a flow's `fetch`: the request goes out as
//! [`Output::Fetch`] (the task runs it on the tenant's client), its answer
//! comes back as [`Input::Fetched`] and goes to the flow; a fetch still
//! running after [`FILLER_AFTER`] gets the tenant's filler said, so the
//! caller does not wait in silence. Each answer is a timeline event with
//! the status, the time taken and the outcome (the URL is logged, masked,
//! by the flow's own `fetch` event).

use std::time::{Duration, Instant};

use ivr_dsl::interp::{Input as FlowInput, Playable};
use media::call::Command;

use super::{Core, FILLER_AFTER, Output};

impl Core {
    /// The answer to fetch `job`.
    pub(super) fn fetched(
        &mut self,
        now: Instant,
        (job, status, result, elapsed): (
            u64,
            Option<u16>,
            Result<serde_json::Value, String>,
            Duration,
        ),
    ) {
        if self.fetching.as_ref().is_none_or(|f| f.job != job) {
            return;
        }
        self.end_filler(now);
        let ms = elapsed.as_millis() as u64;
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(why) => why.clone(),
        };
        tracing::info!(call_id = %self.info.sip_call_id, record_id = %self.info.record_id, status = ?status, ms, ok = result.is_ok(), "fetch answered");
        self.log(
            now,
            "",
            "fetch",
            serde_json::json!({"event": "answer", "status": status, "ms": ms, "outcome": outcome}),
        );
        self.flow_input(now, FlowInput::FetchDone(result.map_err(Into::into)));
    }

    /// Time passed: a fetch running for [`FILLER_AFTER`] gets the filler.
    pub(super) fn fetch_timer(&mut self, now: Instant) {
        // Every 20 ms: nothing is done (or copied) without a fetch.
        let Some(f) = self.fetching.as_mut() else {
            return;
        };
        if f.filler_job.is_some()
            || self.fetch_filler.is_empty()
            || now.saturating_duration_since(f.started) < FILLER_AFTER
            || self.play_job.is_some()
            || self.media.is_playing()
        {
            return;
        }
        let text = self.fetch_filler.clone();
        self.next_job += 1;
        f.filler_job = Some(self.next_job);
        self.out.push_back(Output::ResolvePrompts {
            job: self.next_job,
            prompts: vec![Playable::Say {
                text,
                voice: self.info.admitted.flow.voice.clone(),
            }],
            rate: self.rate,
        });
    }

    /// The filler's prompt is ready: it plays (no barge-in) if the fetch
    /// still runs. True if `job` was the filler's.
    pub(super) fn filler_ready(
        &mut self,
        now: Instant,
        job: u64,
        result: &Result<Vec<std::sync::Arc<[i16]>>, String>,
    ) -> bool {
        let Some(f) = self.fetching.as_ref() else {
            return false;
        };
        if f.filler_job != Some(job) {
            return false;
        }
        match result {
            Ok(pcm) => {
                self.filler_playing = true;
                self.media.handle_command(
                    now,
                    Command::Play {
                        prompts: pcm.clone(),
                        barge_in: false,
                    },
                );
            }
            Err(e) => {
                tracing::warn!(call_id = %self.info.sip_call_id, error = %e, "fetch filler cannot be said");
            }
        }
        true
    }

    /// The fetch is over: the filler stops (its end is not the flow's).
    fn end_filler(&mut self, now: Instant) {
        let Some(f) = self.fetching.take() else {
            return;
        };
        if let Some(job) = f.filler_job
            && !self.filler_playing
        {
            self.out.push_back(Output::CancelPrompts { job });
        }
        if self.filler_playing {
            self.media.handle_command(now, Command::Stop);
        }
    }
}
