//! Prompts: decode an audio file (WAV, MP3, OGG/Vorbis, FLAC) with
//! symphonia, mix it down to mono, resample it once with rubato to the rate
//! a call needs (8 kHz or 16 kHz), and keep the PCM in a cache with a
//! memory cap that notices when a file changes on disk.
//!
//! Every failure names the file, so a flow that refers to a missing or
//! corrupt prompt is refused when it loads, not when a caller reaches it.

use std::collections::HashMap;
use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rubato::audioadapter_buffers::owned::InterleavedOwned;
use rubato::{Fft, FixedSync, Resampler};
use symphonia::core::errors::Error as SymError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream};
use symphonia::core::meta::MetadataOptions;

/// Longest prompt accepted.
pub const MAX_SECONDS: u32 = 600;
/// Largest prompt file accepted.
pub const MAX_FILE_BYTES: u64 = 64 << 20;

/// Why a prompt could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PromptError {
    /// The file cannot be opened or read.
    #[error("prompt `{}`: cannot read it: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Not audio we can decode.
    #[error("prompt `{}`: not a WAV, MP3, OGG/Vorbis or FLAC file we can decode ({message})", path.display())]
    NotAudio {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        message: String,
    },
    /// The file ends before the audio its header announces.
    #[error("prompt `{}`: truncated: {got} of {expected} samples present", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Samples (per channel) the header announces.
        expected: u64,
        /// Samples decoded.
        got: u64,
    },
    /// No samples at all.
    #[error("prompt `{}`: contains no audio", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
    },
    /// Too long or too large.
    #[error("prompt `{}`: longer than {MAX_SECONDS} s or larger than {MAX_FILE_BYTES} bytes", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// Resampling failed.
    #[error("prompt `{}`: cannot resample from {from} Hz: {message}", path.display())]
    Resample {
        /// The file.
        path: PathBuf,
        /// Its rate.
        from: u32,
        /// Why.
        message: String,
    },
}

/// Mono PCM at a known rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pcm {
    /// Samples per second.
    pub rate: u32,
    /// Samples.
    pub samples: Vec<i16>,
}

/// Decodes a file to mono PCM at its own rate.
pub fn decode_file(path: &Path) -> Result<Pcm, PromptError> {
    let meta = std::fs::metadata(path).map_err(|e| PromptError::Read {
        path: path.into(),
        message: e.to_string(),
    })?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(PromptError::TooLarge { path: path.into() });
    }
    let file = File::open(path).map_err(|e| PromptError::Read {
        path: path.into(),
        message: e.to_string(),
    })?;
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()) {
        hint.with_extension(ext);
    }
    decode(Box::new(file), &hint, path, true)
}

/// Decodes in-memory audio (e.g. text-to-speech output, whose WAV header
/// announces an "infinite" length: it is not checked); `name` is used in
/// errors.
pub fn decode_bytes(bytes: Vec<u8>, extension: &str, name: &Path) -> Result<Pcm, PromptError> {
    let mut hint = Hint::new();
    hint.with_extension(extension);
    decode(Box::new(Cursor::new(bytes)), &hint, name, false)
}

fn decode(
    source: Box<dyn MediaSource>,
    hint: &Hint,
    path: &Path,
    check_length: bool,
) -> Result<Pcm, PromptError> {
    let not_audio = |e: SymError| PromptError::NotAudio {
        path: path.into(),
        message: e.to_string(),
    };
    let mss = MediaSourceStream::new(source, Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(
            hint,
            mss,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .map_err(not_audio)?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| PromptError::NotAudio {
            path: path.into(),
            message: "no audio track".into(),
        })?;
    let track_id = track.id;
    let announced = track.num_frames;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| PromptError::NotAudio {
            path: path.into(),
            message: "no audio codec".into(),
        })?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &Default::default())
        .map_err(not_audio)?;
    let mut rate = 0u32;
    let mut mono: Vec<f32> = Vec::new();
    let mut interleaved: Vec<f32> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            // espeak-ng and other streaming writers leave "infinite" sizes:
            // the end of the data shows up as an unexpected end of file.
            Err(SymError::IoError(_)) => break,
            Err(e) => return Err(not_audio(e)),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buf = match decoder.decode(&packet) {
            Ok(b) => b,
            Err(SymError::DecodeError(_)) => continue,
            Err(e) => return Err(not_audio(e)),
        };
        let spec = buf.spec();
        rate = spec.rate();
        let channels = spec.channels().count().max(1);
        interleaved.resize(buf.samples_interleaved(), 0.0);
        buf.copy_to_slice_interleaved(&mut interleaved);
        mono.extend(
            interleaved
                .chunks(channels)
                .map(|f| f.iter().sum::<f32>() / channels as f32),
        );
        if rate > 0 && mono.len() as u64 > u64::from(MAX_SECONDS) * u64::from(rate) {
            return Err(PromptError::TooLarge { path: path.into() });
        }
    }
    if mono.is_empty() || rate == 0 {
        return Err(PromptError::Empty { path: path.into() });
    }
    // A file cut short (an interrupted upload or copy) plays a prompt
    // that stops mid-word: refuse it. Compressed formats may announce a
    // length that includes encoder padding, so allow 5% slack.
    if check_length
        && let Some(expected) = announced
        && (mono.len() as u64) < expected - expected / 20
    {
        return Err(PromptError::Truncated {
            path: path.into(),
            expected,
            got: mono.len() as u64,
        });
    }
    let samples = mono
        .iter()
        .map(|s| (s * 32767.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect();
    Ok(Pcm { rate, samples })
}

/// Resamples mono PCM to `rate` (whole clip, once, with rubato's
/// synchronous FFT resampler and its delay trimmed).
pub fn resample(pcm: &Pcm, rate: u32, path: &Path) -> Result<Vec<i16>, PromptError> {
    if pcm.rate == rate {
        return Ok(pcm.samples.clone());
    }
    let err = |m: String| PromptError::Resample {
        path: path.into(),
        from: pcm.rate,
        message: m,
    };
    let input: Vec<f32> = pcm
        .samples
        .iter()
        .map(|s| f32::from(*s) / 32768.0)
        .collect();
    let len = input.len();
    let buf = InterleavedOwned::new_from(input, 1, len).map_err(|e| err(e.to_string()))?;
    let mut r = Fft::<f32>::new(pcm.rate as usize, rate as usize, 1024, 1, FixedSync::Input)
        .map_err(|e| err(e.to_string()))?;
    let out = r
        .process_all(&buf, len, None)
        .map_err(|e| err(e.to_string()))?;
    Ok(out
        .take_data()
        .iter()
        .map(|s| (s * 32768.0).round().clamp(-32768.0, 32767.0) as i16)
        .collect())
}

/// Loads a prompt file as mono PCM at `rate`.
pub fn load(path: &Path, rate: u32) -> Result<Vec<i16>, PromptError> {
    let pcm = decode_file(path)?;
    resample(&pcm, rate, path)
}

#[derive(Debug)]
struct Entry {
    samples: Arc<[i16]>,
    modified: Option<SystemTime>,
    len: u64,
    last_used: u64,
}

/// Decoded prompts by (file, rate), at most `max_bytes` of PCM; the least
/// recently used go first. A file whose size or modification time changed
/// is decoded again.
#[derive(Debug)]
pub struct Cache {
    max_bytes: usize,
    used: usize,
    tick: u64,
    entries: HashMap<(PathBuf, u32), Entry>,
    /// Decodes done (misses).
    pub loads: u64,
}

impl Cache {
    /// An empty cache holding at most `max_bytes` of samples.
    pub fn new(max_bytes: usize) -> Cache {
        Cache {
            max_bytes,
            used: 0,
            tick: 0,
            entries: HashMap::new(),
            loads: 0,
        }
    }

    /// Bytes of PCM held.
    pub fn used_bytes(&self) -> usize {
        self.used
    }

    /// The prompt at `rate`, from the cache or decoded now.
    pub fn get(&mut self, path: &Path, rate: u32) -> Result<Arc<[i16]>, PromptError> {
        self.tick += 1;
        let meta = std::fs::metadata(path).map_err(|e| PromptError::Read {
            path: path.into(),
            message: e.to_string(),
        })?;
        let (modified, len) = (meta.modified().ok(), meta.len());
        let key = (path.to_path_buf(), rate);
        if let Some(e) = self.entries.get_mut(&key)
            && e.modified == modified
            && e.len == len
        {
            e.last_used = self.tick;
            return Ok(Arc::clone(&e.samples));
        }
        if let Some(old) = self.entries.remove(&key) {
            self.used -= old.samples.len() * 2;
        }
        let samples: Arc<[i16]> = load(path, rate)?.into();
        self.loads += 1;
        let bytes = samples.len() * 2;
        while self.used + bytes > self.max_bytes {
            let Some(victim) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(e) = self.entries.remove(&victim) {
                self.used -= e.samples.len() * 2;
            }
        }
        if bytes <= self.max_bytes {
            self.used += bytes;
            self.entries.insert(
                key,
                Entry {
                    samples: Arc::clone(&samples),
                    modified,
                    len,
                    last_used: self.tick,
                },
            );
        }
        Ok(samples)
    }
}

#[cfg(test)]
mod tests;
