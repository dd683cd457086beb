//! `dhwani recordings list|verify|decrypt`: finding, checking and opening
//! encrypted recordings. A recording is named by its id (the file
//! `DATA_DIR/recordings/TENANT/ID.dhwrec`, found with the same
//! `--config`/`--data-dir` as `serve`) or by a path.
//!
//! Keys: a server-held tenant key (KEK mode) is read from
//! `DATA_DIR/keys/TENANT.kek` unless `--key`/`--kek` names a file; a
//! write-only tenant (public-key mode) needs its X25519 private key with
//! `--key` (or `--private-key`). Key files hold 32 bytes, raw or as 64 hex
//! digits. Keys and audio never go to the logs.

use crate::privacy::layout::{EXTENSION, stored};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use recordings::header::{Header, KeyMode};
use recordings::keys::{Key, unwrap_kek, unwrap_private};
use recordings::{Error, stream};

use crate::config::Config;

/// `dhwani recordings ...`
#[derive(Debug, Subcommand)]
pub enum RecordingsCommand {
    /// List stored recordings (newest first): id, tenant, call, key, size.
    List {
        /// Only this tenant's.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Check recordings: intact, truncated (at which second) or tampered
    /// (which chunk). With no ID, every stored recording. Exit status 1
    /// unless every one is intact.
    Verify {
        /// Recording ids or files.
        recordings: Vec<String>,
        /// The key.
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Decrypt a recording to standard output as WAV (streaming, constant
    /// memory): `dhwani recordings decrypt ID > call.wav`.
    Decrypt {
        /// The recording id or file.
        recording: String,
        /// The key.
        #[command(flatten)]
        key: KeyArgs,
    },
}

/// Which key opens the recordings (default: the tenant's key file in the
/// data directory).
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct KeyArgs {
    /// A key file: the tenant's key-encryption key, or for a write-only
    /// tenant its X25519 private key.
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// The tenant's key-encryption key (key mode 2).
    #[arg(long, value_name = "FILE")]
    kek: Option<PathBuf>,
    /// The tenant's X25519 private key (key mode 1).
    #[arg(long, value_name = "FILE")]
    private_key: Option<PathBuf>,
}

fn read_key(path: &Path) -> anyhow::Result<[u8; 32]> {
    let bytes =
        std::fs::read(path).with_context(|| format!("cannot read key file {}", path.display()))?;
    if let Ok(k) = <[u8; 32]>::try_from(bytes.as_slice()) {
        return Ok(k);
    }
    let text = String::from_utf8_lossy(&bytes);
    let v = hex::decode(text.trim()).ok().filter(|v| v.len() == 32);
    v.and_then(|v| <[u8; 32]>::try_from(v.as_slice()).ok())
        .with_context(|| {
            format!(
                "{}: a key file holds 32 bytes, raw or as 64 hex digits",
                path.display()
            )
        })
}

/// The key that opens `header`: the named file, or the tenant's key file
/// in the data directory.
fn open_key(args: &KeyArgs, data_dir: &Path, h: &Header) -> Result<Key, Error> {
    let named = args
        .key
        .as_ref()
        .or(args.kek.as_ref())
        .or(args.private_key.as_ref());
    let wrong = || Error::WrongKey {
        key_id: h.key_id.clone(),
    };
    let bytes = match named {
        Some(p) => read_key(p).map_err(|e| Error::MissingKey(format!("{e:#}")))?,
        None => {
            if h.key_mode == KeyMode::PublicKey {
                return Err(Error::MissingKey(format!(
                    "tenant `{}` records write-only (public-key mode): give its private key with --key FILE",
                    h.tenant
                )));
            }
            // The current key (file or environment), or the archived one
            // the header names.
            match crate::privacy::keys::find(data_dir, &h.tenant, &h.key_id) {
                Some(k) => k.kek().0,
                None => {
                    let p = crate::privacy::keys::key_path(data_dir, &h.tenant);
                    return Err(Error::MissingKey(if p.exists() {
                        format!(
                            "key `{}` is neither tenant `{}`'s current key nor archived in {}",
                            h.key_id,
                            h.tenant,
                            crate::privacy::keys::archive_path(data_dir, &h.tenant, &h.key_id)
                                .display()
                        )
                    } else {
                        format!(
                            "tenant `{}` has no key file at {} nor {} set (check --data-dir, or give the key with --key FILE)",
                            h.tenant,
                            p.display(),
                            crate::privacy::keys::env_var(&h.tenant)
                        )
                    }));
                }
            }
        }
    };
    match (h.key_mode, args.kek.is_some(), args.private_key.is_some()) {
        (KeyMode::Kek, _, false) => unwrap_kek(&Key(bytes), h),
        (KeyMode::PublicKey, false, _) => unwrap_private(&bytes, h),
        _ => Err(wrong()),
    }
}

/// A recording id or path to its file.
pub fn resolve(data_dir: &Path, what: &str) -> anyhow::Result<PathBuf> {
    let p = Path::new(what);
    if p.is_file() {
        return Ok(p.to_path_buf());
    }
    let name = format!("{what}.{EXTENSION}");
    stored(data_dir, None)
        .into_iter()
        .find(|f| f.file_name().is_some_and(|n| n.to_string_lossy() == name))
        .with_context(|| {
            format!(
                "no recording `{what}` in {}",
                data_dir.join("recordings").display()
            )
        })
}

/// The tenant whose folder holds `path` (`DATA_DIR/recordings/TENANT/`).
fn folder_tenant(data_dir: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(data_dir.join("recordings")).ok()?;
    let mut parts = rel.components();
    let tenant = parts.next()?.as_os_str().to_string_lossy().into_owned();
    parts.next().is_some().then_some(tenant)
}

/// Opens `path`'s key, refusing a recording filed under another tenant.
fn checked_key(args: &KeyArgs, data_dir: &Path, path: &Path, h: &Header) -> Result<Key, Error> {
    if let Some(expected) = folder_tenant(data_dir, path)
        && expected != h.tenant
    {
        return Err(Error::WrongTenant {
            expected,
            found: h.tenant.clone(),
        });
    }
    open_key(args, data_dir, h)
}

fn header_of(path: &Path) -> Result<Header, Error> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::Io(e.to_string()))?;
    stream::read_header(&mut f).map(|(h, _)| h)
}

/// Runs a `recordings` subcommand.
pub fn run(cmd: RecordingsCommand, cfg: &Config, reason: Option<&str>) -> anyhow::Result<ExitCode> {
    let data_dir = cfg.data_dir.as_path();
    match cmd {
        RecordingsCommand::List { tenant } => {
            let files = stored(data_dir, tenant.as_deref());
            let ids: Vec<String> = files
                .iter()
                .map(|f| {
                    f.file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default()
                })
                .collect();
            crate::privacy::Audit::new(data_dir).append(
                &crate::privacy::cli_actor(),
                "recordings.list",
                &format!(
                    "tenant {}; {} recordings: {}; reason: {}",
                    tenant.as_deref().unwrap_or("any"),
                    ids.len(),
                    ids.iter().take(100).cloned().collect::<Vec<_>>().join(" "),
                    reason.unwrap_or("none given")
                ),
            )?;
            println!(
                "{:<36} {:<10} {:<8} {:<18} {:>10}",
                "RECORDING", "TENANT", "CHANNELS", "KEY", "BYTES"
            );
            for f in files {
                let id = f
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let size = std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0);
                match header_of(&f) {
                    Ok(h) => println!(
                        "{id:<36} {:<10} {:<8} {:<18} {size:>10}",
                        h.tenant,
                        if h.channels == 2 { "stereo" } else { "mono" },
                        h.key_id
                    ),
                    Err(e) => println!("{id:<36} unreadable: {e}"),
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RecordingsCommand::Verify { recordings, key } => {
            let files = if recordings.is_empty() {
                stored(data_dir, None)
            } else {
                recordings
                    .iter()
                    .map(|r| resolve(data_dir, r))
                    .collect::<anyhow::Result<Vec<_>>>()?
            };
            let mut all_ok = true;
            let audit = crate::privacy::Audit::new(data_dir);
            for f in files {
                let id = f
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                audit.append(
                    &crate::privacy::cli_actor(),
                    "recording.verify",
                    &crate::privacy::recording_subject(&id, reason),
                )?;
                let file = std::fs::File::open(&f)
                    .with_context(|| format!("cannot open {}", f.display()))?;
                match stream::verify(BufReader::new(file), |h| checked_key(&key, data_dir, &f, h)) {
                    Ok(s) => println!(
                        "{}: intact, {:.1} s, call {}, key {}",
                        f.display(),
                        s.seconds,
                        s.header.call_id,
                        s.header.key_id
                    ),
                    Err(e) => {
                        all_ok = false;
                        println!("{}: {e}", f.display());
                    }
                }
            }
            Ok(if all_ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        RecordingsCommand::Decrypt { recording, key } => {
            let file = resolve(data_dir, &recording)?;
            let id = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            crate::privacy::Audit::new(data_dir).append(
                &crate::privacy::cli_actor(),
                "recording.decrypt",
                &crate::privacy::recording_subject(&id, reason),
            )?;
            let input = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let result = stream::decrypt_sized(
                BufReader::new(input),
                |h| checked_key(&key, data_dir, &file, h),
                &mut out,
            );
            out.flush().context("stdout")?;
            match result {
                Ok(s) => {
                    eprintln!("{}: {:.1} s decrypted", file.display(), s.seconds);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    // What verified was written: a truncated recording still
                    // yields its audio up to the cut.
                    eprintln!("{}: {e}", file.display());
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
