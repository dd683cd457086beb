//! Evaluating expressions and templates against a call's variables, the
//! caller's details and the flow's local time.

use std::time::Instant;

use crate::ast::BinOp;
use crate::flow::{Builtin, Expr, Flow, Func, Piece, Template};
use crate::value::{EvalError, Value, binary};

use super::Interpreter;

/// Local calendar facts at one instant, in the flow's time zone.
pub(crate) struct LocalTime {
    pub minutes: u16,
    /// 0 = Monday.
    pub weekday: u8,
    pub date: jiff::civil::Date,
}

impl Interpreter {
    pub(crate) fn local_time(&self, now: Instant) -> LocalTime {
        let elapsed = now.saturating_duration_since(self.started);
        let ts = jiff::SignedDuration::try_from(elapsed)
            .ok()
            .and_then(|d| self.ctx.start_time.checked_add(d).ok())
            .unwrap_or(self.ctx.start_time);
        let dt = self.flow.timezone.to_datetime(ts);
        LocalTime {
            minutes: u16::try_from(i32::from(dt.hour()) * 60 + i32::from(dt.minute())).unwrap_or(0),
            weekday: u8::try_from(dt.weekday().to_monday_zero_offset()).unwrap_or(0),
            date: dt.date(),
        }
    }

    fn builtin(&self, b: Builtin, now: Instant) -> Value {
        match b {
            Builtin::Caller => Value::Str(self.ctx.caller.clone()),
            Builtin::Called => Value::Str(self.ctx.called.clone()),
            Builtin::Time => Value::Time(self.local_time(now).minutes),
            Builtin::Weekday => {
                const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
                let d = self.local_time(now).weekday as usize;
                Value::Str(DAYS.get(d).copied().unwrap_or("mon").to_owned())
            }
            Builtin::Date => Value::Date(self.local_time(now).date),
            Builtin::Holiday => Value::Bool(is_holiday(&self.flow, self.local_time(now).date)),
            Builtin::Consent => Value::Str(
                match self.consent {
                    Some(true) => "yes",
                    Some(false) => "no",
                    None => "",
                }
                .to_owned(),
            ),
        }
    }

    pub(crate) fn eval(&self, e: &Expr, now: Instant) -> Result<Value, EvalError> {
        Ok(match e {
            Expr::Const(v) => v.clone(),
            Expr::Template(t) => Value::Str(self.render(t, now, false)),
            Expr::Var(v) => self.vars.get(v.0 as usize).cloned().unwrap_or_default(),
            Expr::Builtin(b) => self.builtin(*b, now),
            Expr::Not(x) => Value::Bool(!self.eval(x, now)?.truthy()),
            Expr::Neg(x) => {
                let v = self.eval(x, now)?;
                let n = v.as_int().ok_or(EvalError::Type("`-` needs a number"))?;
                Value::Int(n.checked_neg().ok_or(EvalError::Overflow)?)
            }
            Expr::Binary(BinOp::And, a, b) => {
                Value::Bool(self.eval(a, now)?.truthy() && self.eval(b, now)?.truthy())
            }
            Expr::Binary(BinOp::Or, a, b) => {
                Value::Bool(self.eval(a, now)?.truthy() || self.eval(b, now)?.truthy())
            }
            Expr::Binary(op, a, b) => binary(*op, &self.eval(a, now)?, &self.eval(b, now)?)?,
            Expr::Call(f, args) => {
                let arg = |i: usize| -> Result<String, EvalError> {
                    Ok(args
                        .get(i)
                        .map(|a| self.eval(a, now))
                        .transpose()?
                        .map(|v| v.to_string())
                        .unwrap_or_default())
                };
                match f {
                    Func::Open(h) => Value::Bool(self.open(*h, now)),
                    Func::Len => {
                        Value::Int(i64::try_from(arg(0)?.chars().count()).unwrap_or(i64::MAX))
                    }
                    Func::StartsWith => Value::Bool(arg(0)?.starts_with(&arg(1)?)),
                    Func::EndsWith => Value::Bool(arg(0)?.ends_with(&arg(1)?)),
                }
            }
        })
    }

    fn open(&self, hours: u16, now: Instant) -> bool {
        let Some(h) = self.flow.hours.get(hours as usize) else {
            return false;
        };
        let t = self.local_time(now);
        if is_holiday(&self.flow, t.date) {
            return false;
        }
        h.ranges.iter().any(|(days, from, to)| {
            days & (1 << t.weekday) != 0 && t.minutes >= *from && t.minutes < *to
        })
    }

    /// A template as text; `masked` hides sensitive variables (for logs).
    pub(crate) fn render(&self, t: &Template, now: Instant, masked: bool) -> String {
        let mut s = String::new();
        for p in &t.0 {
            match p {
                Piece::Text(x) => s.push_str(x),
                Piece::Var(v) => {
                    let value = self.var_text(*v);
                    if masked && self.is_sensitive(*v) {
                        s.push_str(&mask(&value));
                    } else {
                        s.push_str(&value);
                    }
                }
                Piece::Builtin(b) => s.push_str(&self.builtin(*b, now).to_string()),
            }
        }
        s
    }

    /// A variable's value as text (empty before it is set).
    pub(crate) fn var_text(&self, v: crate::flow::VarId) -> String {
        self.vars
            .get(v.0 as usize)
            .map(ToString::to_string)
            .unwrap_or_default()
    }

    pub(crate) fn is_sensitive(&self, v: crate::flow::VarId) -> bool {
        self.flow.var(v).is_some_and(|i| i.sensitive)
    }

    /// True when an expression reads a sensitive variable.
    pub(crate) fn reads_sensitive(&self, e: &Expr) -> bool {
        match e {
            Expr::Var(v) => self.is_sensitive(*v),
            Expr::Template(t) => {
                t.0.iter()
                    .any(|p| matches!(p, Piece::Var(v) if self.is_sensitive(*v)))
            }
            Expr::Not(x) | Expr::Neg(x) => self.reads_sensitive(x),
            Expr::Binary(_, a, b) => self.reads_sensitive(a) || self.reads_sensitive(b),
            Expr::Call(_, args) => args.iter().any(|a| self.reads_sensitive(a)),
            Expr::Const(_) | Expr::Builtin(_) => false,
        }
    }
}

fn is_holiday(flow: &Flow, date: jiff::civil::Date) -> bool {
    flow.holidays.contains(&date)
}

/// Every character replaced by `*` (the length is kept: it is not secret
/// and helps support staff see that something was entered).
pub fn mask(s: &str) -> String {
    "*".repeat(s.chars().count())
}
