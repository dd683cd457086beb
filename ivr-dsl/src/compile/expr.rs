//! Lowering expressions, with their static types (mistakes like
//! `time > "nine"` or an `if` on a number are found here).

use super::emit::{Emitter, builtin_ty};
use super::types::{self, Ty};
use crate::ast::{self, ExprKind};
use crate::diag::{Diagnostic, suggest};
use crate::flow::{Builtin, Expr, Func, Piece};
use crate::source::Span;
use crate::value::Value;

/// The functions of the language.
pub(super) const FUNCS: [&str; 4] = ["open", "len", "startswith", "endswith"];

impl Emitter<'_> {
    pub(super) fn expr(&mut self, e: &ast::Expr) -> (Expr, Ty) {
        match &e.kind {
            ExprKind::Int(v) => (Expr::Const(Value::Int(*v)), Ty::Int),
            ExprKind::Bool(b) => (Expr::Const(Value::Bool(*b)), Ty::Bool),
            ExprKind::Time(t) => (Expr::Const(Value::Time(*t)), Ty::Time),
            ExprKind::Date(d) => (Expr::Const(Value::Date(*d)), Ty::Date),
            ExprKind::Str(parts) => {
                let t = self.template(
                    &ast::Text {
                        parts: parts.clone(),
                        span: e.span,
                    },
                    false,
                );
                match t.0.as_slice() {
                    [] => (Expr::Const(Value::Str(String::new())), Ty::Str),
                    [Piece::Text(s)] => (Expr::Const(Value::Str(s.clone())), Ty::Str),
                    _ => (Expr::Template(t), Ty::Str),
                }
            }
            ExprKind::Var(name) => {
                if let Some(b) = Builtin::named(name) {
                    return (Expr::Builtin(b), builtin_ty(b));
                }
                if self.hours.iter().any(|h| &h.name == name) {
                    self.diags.push(
                        Diagnostic::error(
                            "E069",
                            e.span,
                            format!("`{name}` are opening hours, not a value"),
                        )
                        .hint(format!("test them with `open({name})`")),
                    );
                    return (Expr::Const(Value::Bool(false)), Ty::Bool);
                }
                match self.var_index.get(name).copied() {
                    Some(v) => (
                        Expr::Var(v),
                        self.var_ty.get(v.0 as usize).copied().unwrap_or(Ty::Any),
                    ),
                    None => {
                        self.unknown_var(name, e.span);
                        (Expr::Const(Value::default()), Ty::Any)
                    }
                }
            }
            ExprKind::Not(inner) => {
                let (x, t) = self.expr(inner);
                if !matches!(t, Ty::Bool | Ty::Any) {
                    self.type_error(
                        inner.span,
                        format!("`not` needs a condition, this is {}", t.describe()),
                    );
                }
                (Expr::Not(Box::new(x)), Ty::Bool)
            }
            ExprKind::Neg(inner) => {
                let (x, t) = self.expr(inner);
                if !matches!(t, Ty::Int | Ty::Str | Ty::Any) {
                    self.type_error(inner.span, format!("cannot negate {}", t.describe()));
                }
                (Expr::Neg(Box::new(x)), Ty::Int)
            }
            ExprKind::Binary(op, a, b) => {
                let (x, ta) = self.expr(a);
                let (y, tb) = self.expr(b);
                let ty = match types::binary(*op, ta, tb) {
                    Ok(t) => t,
                    Err(m) => {
                        self.type_error(e.span, m);
                        Ty::Any
                    }
                };
                (Expr::Binary(*op, Box::new(x), Box::new(y)), ty)
            }
            ExprKind::Call(name, args) => self.call(name, args, e.span),
        }
    }

    pub(super) fn type_error(&mut self, span: Span, message: String) {
        self.diags.push(
            Diagnostic::error("E070", span, message)
                .hint("compare like with like: numbers with numbers, times like 09:30 with `time`, text with \"text\""),
        );
    }

    fn call(&mut self, name: &ast::Name, args: &[ast::Expr], span: Span) -> (Expr, Ty) {
        let arity = |n: &str| match n {
            "open" | "len" => 1,
            _ => 2,
        };
        if !FUNCS.contains(&name.text.as_str()) {
            let mut d = Diagnostic::error(
                "E068",
                name.span,
                format!("unknown function `{}`", name.text),
            );
            d = match suggest(&name.text, FUNCS) {
                Some(s) => d.hint(format!("did you mean `{s}`?")),
                None => d.hint("functions are open(hours), len(text), startswith(text, prefix), endswith(text, suffix)"),
            };
            self.diags.push(d);
            return (Expr::Const(Value::Bool(false)), Ty::Any);
        }
        if args.len() != arity(&name.text) {
            self.diags.push(
                Diagnostic::error("E068", span, format!("`{}` takes {} argument{}", name.text, arity(&name.text), if arity(&name.text) == 1 { "" } else { "s" }))
                    .hint("functions are open(hours), len(text), startswith(text, prefix), endswith(text, suffix)"),
            );
            return (Expr::Const(Value::Bool(false)), Ty::Any);
        }
        if name.text == "open" {
            let hours_name = match args.first().map(|a| &a.kind) {
                Some(ExprKind::Var(n)) => Some(n.as_str()),
                _ => None,
            };
            let idx = hours_name.and_then(|n| self.hours.iter().position(|h| h.name == n));
            return match idx {
                Some(i) => (
                    Expr::Call(Func::Open(u16::try_from(i).unwrap_or(u16::MAX)), Vec::new()),
                    Ty::Bool,
                ),
                None => {
                    let arg_span = args.first().map_or(span, |a| a.span);
                    let names: Vec<&str> = self.hours.iter().map(|h| h.name.as_str()).collect();
                    let mut d = Diagnostic::error("E069", arg_span, "unknown opening hours");
                    d = match hours_name.and_then(|n| suggest(n, names.iter().copied())) {
                        Some(s) => d.hint(format!("did you mean `{s}`?")),
                        None => d.hint(
                            "declare them in the flow header: `hours office mon-fri 09:00-18:00`",
                        ),
                    };
                    self.diags.push(d);
                    (Expr::Const(Value::Bool(false)), Ty::Bool)
                }
            };
        }
        let lowered: Vec<Expr> = args.iter().map(|a| self.expr(a).0).collect();
        match name.text.as_str() {
            "len" => (Expr::Call(Func::Len, lowered), Ty::Int),
            "startswith" => (Expr::Call(Func::StartsWith, lowered), Ty::Bool),
            _ => (Expr::Call(Func::EndsWith, lowered), Ty::Bool),
        }
    }
}
