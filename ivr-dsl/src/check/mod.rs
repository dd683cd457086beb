//! Flow-graph checks on compiled code: steps no caller can reach, loops
//! with no way out, and loops a silent caller never leaves.
//!
//! The code is a graph of instructions. Edges follow every way control can
//! go (both sides of an `if`, every `gather` branch). The *silent* graph
//! keeps only the edges taken when the caller presses nothing (a
//! `gather`'s timeout branch), which finds menus that loop forever for a
//! caller who has put the phone down without hanging up.

mod scc;

use crate::diag::Diagnostic;
use crate::flow::{Flow, Instr, Pc};

/// Successors of `pc`, and whether the instruction can end the call.
fn successors(flow: &Flow, pc: Pc, silent: bool, out: &mut Vec<Pc>) -> bool {
    out.clear();
    let next = pc + 1;
    let entry = |s: crate::flow::StepId| flow.steps.get(s.0 as usize).map(|s| s.entry);
    let Some(instr) = flow.instr(pc) else {
        return true;
    };
    match instr {
        Instr::Enter(_)
        | Instr::Play { .. }
        | Instr::Set(..)
        | Instr::Wait(_)
        | Instr::Recording(_)
        | Instr::Log { .. }
        | Instr::Record(_)
        | Instr::Grievance(_)
        | Instr::Consent(_) => {
            out.push(next);
            false
        }
        Instr::Goto(s) => {
            out.extend(entry(*s));
            false
        }
        Instr::Jump(t) => {
            out.push(*t);
            false
        }
        Instr::JumpUnless(_, t) => {
            out.push(next);
            out.push(*t);
            false
        }
        Instr::Call(s) => {
            out.extend(entry(*s));
            out.push(next);
            false
        }
        Instr::Return => true,
        Instr::Gather(g) => {
            if silent {
                match g.on_timeout {
                    Some(s) => out.extend(entry(s)),
                    None => out.push(next),
                }
                return false;
            }
            out.extend(g.choices.iter().filter_map(|(_, s)| entry(*s)));
            match g.on_invalid {
                Some(s) => out.extend(entry(s)),
                None => out.push(next),
            }
            match g.on_timeout {
                Some(s) => out.extend(entry(s)),
                None => out.push(next),
            }
            if g.choices.is_empty() {
                out.push(next);
            }
            false
        }
        Instr::Queue(q) => {
            match q.on_overflow {
                Some(s) => out.extend(entry(s)),
                None => out.push(next),
            }
            for (_, s) in &q.keys {
                out.extend(entry(*s));
            }
            true
        }
        Instr::Transfer { on_failure, .. } => {
            match on_failure {
                Some(s) => out.extend(entry(*s)),
                None => out.push(next),
            }
            true
        }
        Instr::Fetch(f) => {
            out.push(next);
            if let Some(s) = f.on_failure {
                out.extend(entry(s));
            }
            false
        }
        Instr::Hangup(_) | Instr::FellOff => true,
    }
}

fn waits_for_caller(i: &Instr) -> bool {
    matches!(i, Instr::Gather(_) | Instr::Consent(_) | Instr::Record(_))
}

/// Runs the graph checks, pushing diagnostics.
pub fn graph(flow: &Flow, diags: &mut Vec<Diagnostic>) {
    let n = flow.code.len();
    if n == 0 {
        return;
    }
    let mut buf = Vec::new();
    // Reachability from the first step.
    let mut reached = vec![false; n];
    let mut stack: Vec<Pc> = vec![0];
    while let Some(pc) = stack.pop() {
        match reached.get_mut(pc as usize) {
            Some(r) if !*r => *r = true,
            _ => continue,
        }
        successors(flow, pc, false, &mut buf);
        stack.extend(buf.iter().copied());
    }
    for s in &flow.steps {
        // Shared files define more steps than each flow uses.
        let included = s.span.file.0 != 0;
        if !included && !reached.get(s.entry as usize).copied().unwrap_or(true) {
            let d = if s.is_block {
                Diagnostic::warning(
                    "W057",
                    s.span,
                    format!("block `{}` is never called", s.name),
                )
                .hint("call it with `call` or remove it")
            } else {
                Diagnostic::warning(
                    "W057",
                    s.span,
                    format!("step `{}` can never be reached", s.name),
                )
                .hint("no `goto` or branch leads here from the first step; link it or remove it")
            };
            diags.push(d);
        }
    }
    // Nodes already reported as a loop with no way out: the silent-caller
    // warning would only repeat it.
    let mut reported = vec![false; n];
    for silent in [false, true] {
        let mut graph = scc::Graph::with_capacity(n);
        for pc in 0..n {
            let pc = Pc::try_from(pc).unwrap_or(Pc::MAX);
            let ends = successors(flow, pc, silent, &mut buf);
            graph.push(&buf, ends);
        }
        for comp in scc::components(&graph) {
            let Some(&first) = comp.first() else { continue };
            let looping = comp.len() > 1 || graph.successors(first as usize).contains(&first);
            if !looping || !reached.get(first as usize).copied().unwrap_or(false) {
                continue;
            }
            let inside = |pc: &Pc| comp.binary_search(pc).is_ok();
            let has_exit = comp.iter().any(|pc| {
                graph.ends(*pc as usize)
                    || graph.successors(*pc as usize).iter().any(|s| !inside(s))
            });
            if has_exit {
                continue;
            }
            let waits = comp
                .iter()
                .any(|pc| flow.instr(*pc).is_some_and(waits_for_caller));
            if silent
                && (!waits
                    || comp
                        .iter()
                        .all(|pc| reported.get(*pc as usize).copied().unwrap_or(false)))
            {
                continue; // reported (or fine) in the full graph
            }
            if !silent {
                for pc in &comp {
                    if let Some(r) = reported.get_mut(*pc as usize) {
                        *r = true;
                    }
                }
            }
            let mut steps: Vec<usize> = comp
                .iter()
                .filter_map(|pc| flow.step_of.get(*pc as usize).map(|s| s.0 as usize))
                .collect();
            steps.sort_unstable();
            steps.dedup();
            let names = step_list(
                &steps
                    .iter()
                    .filter_map(|s| flow.steps.get(*s).map(|i| format!("`{}`", i.name)))
                    .collect::<Vec<_>>(),
            );
            let Some(head) = steps.first().and_then(|s| flow.steps.get(*s)) else {
                continue;
            };
            let mut d = if silent {
                Diagnostic::warning("W061", head.span, format!("a caller who presses nothing loops through {names} forever"))
                    .label("loop starts here")
                    .hint("send `on timeout` to a step that says goodbye and hangs up, or count attempts with `set` and leave with `if`")
            } else if waits {
                Diagnostic::error("E060", head.span, format!("{names} loop with no way out"))
                    .label("loop starts here")
                    .hint("give the caller an exit: a branch to a step that hangs up, transfers or queues")
            } else {
                Diagnostic::error(
                    "E060",
                    head.span,
                    format!("{names} loop forever without waiting for the caller"),
                )
                .label("loop starts here")
                .hint("add a `gather` to the loop, or leave it with `if` after a number of rounds")
            };
            for s in steps
                .iter()
                .skip(1)
                .take(4)
                .filter_map(|s| flow.steps.get(*s))
            {
                d = d.related(s.span, "part of the loop");
            }
            diags.push(d);
        }
    }
}

/// "step `a`", "steps `a` and `b`", "steps `a`, `b` and `c`".
fn step_list(names: &[String]) -> String {
    match names {
        [] => "steps".to_owned(),
        [one] => format!("step {one}"),
        [init @ .., last] => format!("steps {} and {last}", init.join(", ")),
    }
}
