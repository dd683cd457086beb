//! Text-to-speech for `say`: an [`Engine`] trait and an espeak-ng
//! implementation (a subprocess: linking libespeak-ng would make the binary
//! GPL), bounded in time and output, with its PCM cached.
//!
//! When no engine is installed, [`EspeakNg::find`] returns None and the
//! server refuses flows that `say` anything when they load, rather than
//! leaving a caller in silence mid-call.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::prompt::{self, Pcm};

/// Why speech could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TtsError {
    /// The engine program is missing or failed to start.
    #[error("text-to-speech engine `{program}` cannot run: {message}")]
    Unavailable {
        /// The program.
        program: String,
        /// Why.
        message: String,
    },
    /// It ran longer than allowed and was killed.
    #[error("text-to-speech took longer than {0:?}")]
    Timeout(Duration),
    /// It failed or gave no audio.
    #[error("text-to-speech failed: {0}")]
    Failed(String),
    /// A voice name with characters a voice name never has.
    #[error("bad voice name `{0}`")]
    BadVoice(String),
    /// Too much text for one prompt.
    #[error("text longer than {0} characters")]
    TooLong(usize),
}

/// Something that turns text into speech.
pub trait Engine: Send + Sync + std::fmt::Debug {
    /// Short name for logs.
    fn name(&self) -> &str;
    /// Speech for `text` in `voice` (e.g. `en-IN`), mono, at the engine's
    /// own rate.
    fn synthesize(&self, text: &str, voice: Option<&str>) -> Result<Pcm, TtsError>;
}

/// The espeak-ng program.
#[derive(Debug, Clone)]
pub struct EspeakNg {
    program: PathBuf,
    /// Longest run allowed.
    pub timeout: Duration,
    /// Most text per request.
    pub max_chars: usize,
}

/// Most audio accepted from one run (22.05 kHz, 16 bit: about 2 minutes).
const MAX_OUTPUT_BYTES: usize = 6 << 20;

impl EspeakNg {
    /// Uses `program`.
    pub fn new(program: impl Into<PathBuf>) -> EspeakNg {
        EspeakNg {
            program: program.into(),
            timeout: Duration::from_secs(5),
            max_chars: 2000,
        }
    }

    /// espeak-ng (or espeak) from PATH, if installed.
    pub fn find() -> Option<EspeakNg> {
        let path = std::env::var_os("PATH")?;
        ["espeak-ng", "espeak"].iter().find_map(|name| {
            std::env::split_paths(&path)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
                .map(EspeakNg::new)
        })
    }

    /// The program this engine runs.
    pub fn program(&self) -> &Path {
        &self.program
    }
}

impl Engine for EspeakNg {
    fn name(&self) -> &str {
        "espeak-ng"
    }

    fn synthesize(&self, text: &str, voice: Option<&str>) -> Result<Pcm, TtsError> {
        if text.chars().count() > self.max_chars {
            return Err(TtsError::TooLong(self.max_chars));
        }
        let voice = voice.unwrap_or("en");
        if voice.is_empty()
            || !voice
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-_".contains(c))
        {
            return Err(TtsError::BadVoice(voice.to_owned()));
        }
        // espeak-ng knows "en" and "hi" but not every region: en-IN -> en.
        let voice = voice.to_ascii_lowercase();
        let mut child = Command::new(&self.program)
            .args(["--stdout", "--stdin", "-v", &voice])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| TtsError::Unavailable {
                program: self.program.display().to_string(),
                message: e.to_string(),
            })?;
        // The text goes in on stdin: never as an argument it could be
        // mistaken for.
        if let Some(mut stdin) = child.stdin.take() {
            let _ = stdin.write_all(text.as_bytes());
        }
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| TtsError::Failed("no output pipe".into()))?;
        let reader = std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = (&mut stdout)
                .take(MAX_OUTPUT_BYTES as u64)
                .read_to_end(&mut buf);
            buf
        });
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(TtsError::Timeout(self.timeout));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(TtsError::Failed(e.to_string())),
            }
        };
        let wav = reader
            .join()
            .map_err(|_| TtsError::Failed("reader thread".into()))?;
        if !status.success() {
            // Unknown voices make espeak-ng fail: retry once with English.
            if voice != "en" {
                return self.synthesize(text, Some("en"));
            }
            return Err(TtsError::Failed(format!("exit status {status}")));
        }
        prompt::decode_bytes(wav, "wav", Path::new("espeak-ng output"))
            .map_err(|e| TtsError::Failed(e.to_string()))
    }
}

/// Speech cached by (text, voice, rate), at most `max_bytes` of PCM.
#[derive(Debug)]
pub struct Cache {
    engine: Arc<dyn Engine>,
    max_bytes: usize,
    used: usize,
    entries: HashMap<(String, Option<String>, u32), Arc<[i16]>>,
    /// Syntheses run (misses).
    pub runs: u64,
}

impl Cache {
    /// A cache in front of `engine`.
    pub fn new(engine: Arc<dyn Engine>, max_bytes: usize) -> Cache {
        Cache {
            engine,
            max_bytes,
            used: 0,
            entries: HashMap::new(),
            runs: 0,
        }
    }

    /// Speech for `text` at `rate`.
    pub fn get(
        &mut self,
        text: &str,
        voice: Option<&str>,
        rate: u32,
    ) -> Result<Arc<[i16]>, TtsError> {
        let key = (text.to_owned(), voice.map(str::to_owned), rate);
        if let Some(s) = self.entries.get(&key) {
            return Ok(Arc::clone(s));
        }
        let pcm = self.engine.synthesize(text, voice)?;
        self.runs += 1;
        let samples: Arc<[i16]> = prompt::resample(&pcm, rate, Path::new("speech"))
            .map_err(|e| TtsError::Failed(e.to_string()))?
            .into();
        let bytes = samples.len() * 2;
        if self.used + bytes > self.max_bytes {
            // Speech is cheap to make again: start over rather than track use.
            self.entries.clear();
            self.used = 0;
        }
        if bytes <= self.max_bytes {
            self.used += bytes;
            self.entries.insert(key, Arc::clone(&samples));
        }
        Ok(samples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> EspeakNg {
        EspeakNg::find().expect("espeak-ng must be installed (scripts/test.sh installs it)")
    }

    #[test]
    fn speech_comes_out_and_is_cached_per_rate() {
        let e = engine();
        let pcm = e
            .synthesize("Welcome to Acme Bank", Some("en-IN"))
            .expect("speech");
        assert_eq!(pcm.rate, 22050);
        let secs = pcm.samples.len() as f64 / 22050.0;
        assert!((0.8..5.0).contains(&secs), "{secs} s");
        assert!(pcm.samples.iter().any(|s| s.abs() > 3000), "audible");
        let mut c = Cache::new(Arc::new(e), 1 << 20);
        let a = c.get("Press one", None, 8000).expect("8 kHz");
        let b = c.get("Press one", None, 8000).expect("cached");
        assert!(Arc::ptr_eq(&a, &b));
        c.get("Press one", None, 16000).expect("16 kHz");
        assert_eq!(c.runs, 2);
    }

    #[test]
    fn text_that_looks_like_options_is_only_spoken() {
        // As arguments these would print a version and no audio at all.
        let pcm = engine()
            .synthesize("--version --help", None)
            .expect("spoken, not obeyed");
        assert!(pcm.samples.len() > 22050, "about a second of speech");
    }

    #[test]
    fn failures_are_clear() {
        let missing = EspeakNg::new("/nonexistent/espeak-ng").synthesize("hi", None);
        assert!(
            matches!(missing, Err(TtsError::Unavailable { .. })),
            "{missing:?}"
        );
        assert!(matches!(
            engine().synthesize("hi", Some("en; rm -rf /")),
            Err(TtsError::BadVoice(_))
        ));
        let dir = tempfile::tempdir().expect("tempdir");
        let slow = dir.path().join("slow-tts");
        std::fs::write(&slow, "#!/bin/sh\nsleep 10\n").expect("write");
        std::process::Command::new("chmod")
            .arg("+x")
            .arg(&slow)
            .status()
            .expect("chmod");
        let mut e = EspeakNg::new(&slow);
        e.timeout = Duration::from_millis(200);
        let started = Instant::now();
        assert_eq!(
            e.synthesize("hi", None),
            Err(TtsError::Timeout(Duration::from_millis(200)))
        );
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "killed, not waited for"
        );
    }
}
