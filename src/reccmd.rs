//! `dhwani recordings verify|decrypt`: checking and opening encrypted
//! recordings with a key file (a tenant's key-encryption key, or its X25519
//! private key for write-only tenants). Key files hold 32 bytes, raw or as
//! 64 hex digits. Keys and audio never go to the logs.

use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use recordings::header::{Header, KeyMode};
use recordings::keys::{Key, unwrap_kek, unwrap_private};
use recordings::{Error, stream};

/// `dhwani recordings ...`
#[derive(Debug, Subcommand)]
pub enum RecordingsCommand {
    /// Check recordings: intact, truncated (at which second) or tampered
    /// (which chunk). Exit status 1 unless every one is intact.
    Verify {
        /// Recording files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The key.
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Decrypt a recording to standard output as WAV (streaming, constant
    /// memory): `dhwani recordings decrypt REC --kek key.bin > call.wav`.
    Decrypt {
        /// The recording.
        file: PathBuf,
        /// The key.
        #[command(flatten)]
        key: KeyArgs,
    },
}

/// Which key opens the recordings.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct KeyArgs {
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

fn opener(args: &KeyArgs) -> anyhow::Result<impl Fn(&Header) -> Result<Key, Error>> {
    let kek = args.kek.as_deref().map(read_key).transpose()?;
    let private = args.private_key.as_deref().map(read_key).transpose()?;
    Ok(move |h: &Header| match (h.key_mode, kek, private) {
        (KeyMode::Kek, Some(k), _) => unwrap_kek(&Key(k), h),
        (KeyMode::PublicKey, _, Some(p)) => unwrap_private(&p, h),
        _ => Err(Error::WrongKey {
            key_id: h.key_id.clone(),
        }),
    })
}

/// Runs a `recordings` subcommand.
pub fn run(cmd: RecordingsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        RecordingsCommand::Verify { files, key } => {
            let open = opener(&key)?;
            let mut all_ok = true;
            for f in files {
                let file = std::fs::File::open(&f)
                    .with_context(|| format!("cannot open {}", f.display()))?;
                match stream::verify(BufReader::new(file), &open) {
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
        RecordingsCommand::Decrypt { file, key } => {
            let open = opener(&key)?;
            let input = std::fs::File::open(&file)
                .with_context(|| format!("cannot open {}", file.display()))?;
            let stdout = std::io::stdout();
            let mut out = BufWriter::new(stdout.lock());
            let result = stream::decrypt(BufReader::new(input), &open, &mut out);
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
