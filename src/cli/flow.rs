//! `dhwani flow check|test|run`: the IVR language's command-line tools.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use ivr_dsl::Error;
use ivr_dsl::interp::{CallContext, Input, Interpreter, Outcome, Output, Playable, QueueOutcome};
use ivr_dsl::sim::script::run_file;
use ivr_dsl::{FsHost, load};

/// `dhwani flow ...`
#[derive(Debug, Subcommand)]
pub enum FlowCommand {
    /// Check flows: print every error and warning with its place and a
    /// hint. Exit status 1 when any flow has errors.
    Check {
        /// Flow files (`.ivr`).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Also check the queues the flows name against this tenant's
        /// `[[tenants.queues]]` (with `--config`, or the embedded default).
        #[arg(long)]
        tenant: Option<String>,
        /// TOML config file (for `--tenant`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
    },
    /// Run a flow's tests (`NAME.ivrtest` beside `NAME.ivr`) on simulated
    /// time. Exit status 1 when any test fails.
    Test {
        /// Flow files or test files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Print the transcript of passing tests too.
        #[arg(long, short)]
        verbose: bool,
    },
    /// Check every tenant's flows as the server would load them and, when
    /// all are good, tell the running server to deploy them (SIGHUP via
    /// DATA_DIR/dhwani.pid). Exit status 1 when any flow is refused (the
    /// server then keeps the live versions).
    Deploy {
        /// TOML config file (as for `serve`).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// Data directory (as for `serve`).
        #[arg(long, value_name = "DIR")]
        data_dir: Option<PathBuf>,
    },
    /// Explain a statement of the language (all of them without VERB).
    Explain {
        /// A statement, e.g. `gather`.
        verb: Option<String>,
    },
    /// Try a flow in the terminal: see what the caller would hear, type the
    /// keys they would press (real time: timeouts run while you think).
    Run {
        /// The flow file.
        file: PathBuf,
        /// The caller's number.
        #[arg(long, default_value = "+910000000000")]
        caller: String,
    },
}

/// Runs a `flow` subcommand.
pub fn run(cmd: FlowCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        FlowCommand::Check {
            files,
            tenant,
            config,
        } => {
            let queues = match tenant {
                Some(t) => {
                    let cfg = crate::cli::load_config(config.as_deref(), None)?;
                    let tenant = cfg
                        .tenants
                        .iter()
                        .find(|x| x.id == t)
                        .ok_or_else(|| anyhow::anyhow!("no tenant `{t}` in the config"))?;
                    Some(tenant.queues.clone())
                }
                None => None,
            };
            Ok(check(&files, queues.as_deref()))
        }
        FlowCommand::Test { files, verbose } => Ok(test(&files, verbose)),
        FlowCommand::Run { file, caller } => interactive(&file, &caller),
        FlowCommand::Explain { verb } => Ok(explain(verb.as_deref())),
        FlowCommand::Deploy { config, data_dir } => deploy(config.as_deref(), data_dir),
    }
}

fn deploy(config: Option<&Path>, data_dir: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = crate::cli::load_config(config, data_dir)?;
    let registry = crate::tenants::Registry::new(&cfg, &crate::cli::config_dir(config))?;
    let report = registry.reload();
    for (tenant, file, name, version, _) in &report.live {
        println!(
            "{tenant}: {}: ok, flow \"{name}\" version {version}",
            file.display()
        );
    }
    for (tenant, file, w) in &report.warnings {
        eprintln!("warning: {tenant}: {}: {w}", file.display());
    }
    for (tenant, file, why) in &report.refused {
        eprintln!("{why}");
        println!("{tenant}: {}: refused", file.display());
    }
    if !report.refused.is_empty() {
        println!("not deployed: fix the flows above (the server keeps the live versions)");
        return Ok(ExitCode::FAILURE);
    }
    println!("{}", crate::cli::signal_reload(&cfg.data_dir)?);
    Ok(ExitCode::SUCCESS)
}

fn explain(verb: Option<&str>) -> ExitCode {
    use ivr_dsl::verbs::{VERBS, verb as find};
    let show = |v: &ivr_dsl::verbs::Verb| {
        println!(
            "{}\n  {}\n\n  {}\n\n  example:\n    {}\n",
            v.name,
            v.syntax,
            v.about,
            v.example.replace('\n', "\n  ")
        );
    };
    match verb {
        None => {
            println!("Statements of the IVR language (docs/ivr-dsl.md has the full reference):\n");
            for v in VERBS {
                println!("  {:<10} {}", v.name, v.syntax);
            }
            println!("\n`dhwani flow explain VERB` explains one.");
            ExitCode::SUCCESS
        }
        Some(name) => match find(name) {
            Some(v) => {
                show(v);
                ExitCode::SUCCESS
            }
            None => {
                eprintln!("no statement `{name}`; `dhwani flow explain` lists them");
                ExitCode::FAILURE
            }
        },
    }
}

fn check(files: &[PathBuf], queues: Option<&[crate::config::QueueConfig]>) -> ExitCode {
    let mut failed = false;
    let tts = media::tts::EspeakNg::find();
    for f in files {
        let loaded = load(f, &FsHost);
        eprint!("{}", loaded.render());
        let (errors, warnings) = loaded.counts();
        let media_problems = loaded.flow.as_ref().map_or_else(Vec::new, |flow| {
            crate::tenants::flowmedia::check(
                flow,
                tts.as_ref().map(|e| e as &dyn media::tts::Engine),
            )
        });
        for p in &media_problems {
            eprintln!("error: {}: {p}", f.display());
        }
        let not_yet = loaded.flow.as_ref().map_or_else(Vec::new, |flow| {
            crate::tenants::flowmedia::not_yet_available(flow, queues)
        });
        for w in &not_yet {
            eprintln!("warning: {}: {w}", f.display());
        }
        if !media_problems.is_empty() {
            failed = true;
            println!(
                "{}: {} media problem{}; the flow cannot be used",
                f.display(),
                media_problems.len(),
                if media_problems.len() == 1 { "" } else { "s" }
            );
            continue;
        }
        match &loaded.flow {
            Some(flow) => println!(
                "{}: ok, flow \"{}\" version {} ({} steps, {} warning{})",
                f.display(),
                flow.name,
                flow.version,
                flow.steps.len(),
                warnings,
                if warnings == 1 { "" } else { "s" }
            ),
            None => {
                failed = true;
                println!(
                    "{}: {errors} error{}, {warnings} warning{}; the flow cannot be used",
                    f.display(),
                    if errors == 1 { "" } else { "s" },
                    if warnings == 1 { "" } else { "s" }
                );
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn test(files: &[PathBuf], verbose: bool) -> ExitCode {
    let mut failed = false;
    for f in files {
        let test_path = if f.extension().is_some_and(|e| e == "ivr") {
            f.with_extension("ivrtest")
        } else {
            f.clone()
        };
        match run_file(&test_path, &FsHost) {
            Ok(report) => {
                print!("{}", report.render(verbose));
                failed |= report.failed() > 0 || report.results.is_empty();
            }
            Err(Error::InvalidFlow { rendered, .. }) => {
                eprint!("{rendered}");
                eprintln!("error: the flow under test has errors");
                failed = true;
            }
            Err(e) => {
                eprintln!("error: {e}");
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn interactive(file: &Path, caller: &str) -> anyhow::Result<ExitCode> {
    let loaded = load(file, &FsHost);
    eprint!("{}", loaded.render());
    let Some(flow) = loaded.flow.clone() else {
        return Ok(ExitCode::FAILURE);
    };
    let (tx, rx) = mpsc::channel::<Option<String>>();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            if tx.send(line.ok()).is_err() {
                return;
            }
        }
        let _ = tx.send(None);
    });
    println!(
        "Calling \"{}\" (version {}) as {caller}.",
        flow.name, flow.version
    );
    println!("Type keys (0-9 * #) and Enter to press them, `hangup` to hang up.\n");
    let ctx = CallContext {
        call_id: "terminal".into(),
        caller: caller.to_owned(),
        called: flow.numbers.first().cloned().unwrap_or_default(),
        start_time: jiff::Timestamp::now(),
    };
    let mut it = Interpreter::start(Arc::clone(&flow), ctx, Instant::now());
    let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut out = std::io::stdout();
    loop {
        let mut inputs = Vec::new();
        while let Some(o) = it.poll_output() {
            match o {
                Output::Play { prompts, .. } => {
                    for p in prompts {
                        match p {
                            Playable::File(f) => {
                                println!("  ♪ {}", f.strip_prefix(&dir).unwrap_or(&f).display())
                            }
                            Playable::Say { text, .. } => println!("  \"{text}\""),
                        }
                    }
                    inputs.push(Input::PromptFinished);
                }
                Output::Log(ev) if ev.kind == "step" => {
                    let name = ev.fields.first().map(|(_, v)| v.as_str()).unwrap_or("");
                    println!("[step {name}]");
                }
                Output::Log(ev) if ev.kind == "error" => {
                    let fields: Vec<String> =
                        ev.fields.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                    println!("[error: {}]", fields.join(", "))
                }
                Output::Log(_) | Output::StopPlayback | Output::StopRecord => {}
                Output::Consent { granted } => {
                    println!("[consent: {}]", if granted { "yes" } else { "no" })
                }
                Output::Recording(op) => println!("[call recording {}]", op.event()),
                Output::Grievance { category, .. } => {
                    println!("[grievance \"{category}\": a ticket would be opened]")
                }
                Output::Record { max, .. } => {
                    println!(
                        "[recording a message, up to {}s: press Enter when done]",
                        max.as_secs()
                    );
                    wait_line(&rx, None);
                    inputs.push(Input::RecordingFinished {
                        id: "terminal-1".into(),
                        duration: Duration::from_secs(5),
                    });
                }
                Output::Queue { name, .. } => {
                    println!("[queue \"{name}\": no agents in this terminal session]");
                    inputs.push(Input::QueueDone(QueueOutcome::Unavailable));
                }
                Output::Transfer { target } => {
                    println!("[transfer to {target}]");
                    inputs.push(Input::TransferDone(Ok(())));
                }
                Output::Fetch {
                    method, url, body, ..
                } => {
                    println!(
                        "[fetch {method:?} {url} {}]",
                        body.map(|b| b.to_string()).unwrap_or_default()
                    );
                    print!("  type the JSON reply (empty: the request fails): ");
                    out.flush().context("stdout")?;
                    let reply = wait_line(&rx, None).flatten().unwrap_or_default();
                    inputs.push(Input::FetchDone(if reply.trim().is_empty() {
                        Err("no reply".into())
                    } else {
                        serde_json::from_str(&reply).map_err(|e| e.to_string().into())
                    }));
                }
                Output::Hangup { reason } => println!("[hangup: {reason}]"),
            }
        }
        for i in inputs.drain(..) {
            it.handle_input(Instant::now(), i);
        }
        if it.is_ended() {
            match it.outcome() {
                Some(Outcome::CallerHungUp) => println!("You hung up."),
                Some(o) => println!("Call ended: {}", crate::call::cdr::outcome_text(Some(o))),
                None => {}
            }
            return Ok(ExitCode::SUCCESS);
        }
        if it.poll_output_pending() {
            continue;
        }
        let deadline = it.poll_timeout();
        match wait_line(&rx, deadline) {
            Some(Some(line)) => {
                let line = line.trim();
                if line == "hangup" {
                    it.handle_input(Instant::now(), Input::HangUp);
                    continue;
                }
                for k in line.chars().filter(|c| !c.is_whitespace()) {
                    if k.is_ascii_digit() || k == '*' || k == '#' {
                        it.handle_input(Instant::now(), Input::Digit(k));
                    } else {
                        println!("  (`{k}` is not a phone key)");
                    }
                }
            }
            Some(None) => {
                it.handle_input(Instant::now(), Input::HangUp);
            }
            None => it.handle_input(Instant::now(), Input::Timeout),
        }
    }
}

/// Next line from stdin, or None at the deadline. `Some(None)`: stdin closed.
fn wait_line(
    rx: &mpsc::Receiver<Option<String>>,
    deadline: Option<Instant>,
) -> Option<Option<String>> {
    match deadline {
        Some(d) => rx
            .recv_timeout(d.saturating_duration_since(Instant::now()))
            .ok(),
        None => Some(rx.recv().ok().flatten()),
    }
}
