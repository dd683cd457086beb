//! Expressions, by precedence climbing.
//!
//! ```text
//! expr    = and { "or" and }
//! and     = not { "and" not }
//! not     = "not" not | cmp
//! cmp     = sum [ ("==" | "!=" | "<" | "<=" | ">" | ">=") sum ]
//! sum     = product { ("+" | "-") product }
//! product = unary { ("*" | "/") unary }
//! unary   = "-" unary | atom
//! atom    = number | string | time | date | "true" | "false" | name
//!         | name "(" [ expr { "," expr } ] ")" | "(" expr ")"
//! ```

use super::Parser;
use crate::ast::{BinOp, Expr, ExprKind, Name};
use crate::diag::Diagnostic;
use crate::lexer::Tok;

/// Deepest nesting of an expression.
const MAX_DEPTH: usize = 32;

impl Parser<'_> {
    pub(crate) fn expr(&mut self) -> Option<Expr> {
        self.expr_at(0)
    }

    fn expr_at(&mut self, depth: usize) -> Option<Expr> {
        if depth > MAX_DEPTH {
            let span = self.span();
            self.diags.push(
                Diagnostic::error("E041", span, "expression is nested too deeply")
                    .hint("split it into several `set` lines"),
            );
            return None;
        }
        let mut lhs = self.and_expr(depth)?;
        while self.eat_word("or") {
            let rhs = self.and_expr(depth)?;
            lhs = binary(BinOp::Or, lhs, rhs);
        }
        Some(lhs)
    }

    fn and_expr(&mut self, depth: usize) -> Option<Expr> {
        let mut lhs = self.not_expr(depth)?;
        while self.eat_word("and") {
            let rhs = self.not_expr(depth)?;
            lhs = binary(BinOp::And, lhs, rhs);
        }
        Some(lhs)
    }

    fn not_expr(&mut self, depth: usize) -> Option<Expr> {
        if self.is_word("not") {
            let start = self.bump();
            let inner = self.not_expr(depth + 1)?;
            let span = start.to(inner.span);
            return Some(Expr {
                kind: ExprKind::Not(Box::new(inner)),
                span,
            });
        }
        self.cmp(depth)
    }

    fn cmp(&mut self, depth: usize) -> Option<Expr> {
        let lhs = self.sum(depth)?;
        let op = match self.peek() {
            Tok::EqEq => BinOp::Eq,
            Tok::NotEq => BinOp::Ne,
            Tok::Lt => BinOp::Lt,
            Tok::Le => BinOp::Le,
            Tok::Gt => BinOp::Gt,
            Tok::Ge => BinOp::Ge,
            Tok::Assign => {
                let span = self.span();
                self.diags.push(
                    Diagnostic::error("E042", span, "`=` in a condition")
                        .label("this sets, it does not compare")
                        .hint("compare with `==`"),
                );
                return None;
            }
            _ => return Some(lhs),
        };
        self.bump();
        let rhs = self.sum(depth)?;
        Some(binary(op, lhs, rhs))
    }

    fn sum(&mut self, depth: usize) -> Option<Expr> {
        let mut lhs = self.product(depth)?;
        loop {
            let op = match self.peek() {
                Tok::Plus => BinOp::Add,
                Tok::Minus => BinOp::Sub,
                _ => return Some(lhs),
            };
            self.bump();
            let rhs = self.product(depth)?;
            lhs = binary(op, lhs, rhs);
        }
    }

    fn product(&mut self, depth: usize) -> Option<Expr> {
        let mut lhs = self.unary(depth)?;
        loop {
            let op = match self.peek() {
                Tok::Star => BinOp::Mul,
                Tok::Slash => BinOp::Div,
                _ => return Some(lhs),
            };
            self.bump();
            let rhs = self.unary(depth)?;
            lhs = binary(op, lhs, rhs);
        }
    }

    fn unary(&mut self, depth: usize) -> Option<Expr> {
        if matches!(self.peek(), Tok::Minus) {
            let start = self.bump();
            let inner = self.unary(depth + 1)?;
            let span = start.to(inner.span);
            return Some(Expr {
                kind: ExprKind::Neg(Box::new(inner)),
                span,
            });
        }
        self.atom(depth)
    }

    fn atom(&mut self, depth: usize) -> Option<Expr> {
        let span = self.span();
        let kind = match self.peek() {
            Tok::Int(v) => ExprKind::Int(*v),
            Tok::Str(_) => match self.take() {
                (Tok::Str(parts), span) => {
                    return Some(Expr {
                        kind: ExprKind::Str(parts),
                        span,
                    });
                }
                _ => return None,
            },
            Tok::Time(t) => ExprKind::Time(*t),
            Tok::Date(d) => ExprKind::Date(*d),
            Tok::Word(w) if *w == "true" => ExprKind::Bool(true),
            Tok::Word(w) if *w == "false" => ExprKind::Bool(false),
            Tok::Word(w) if matches!(*w, "and" | "or" | "not") => {
                self.expected("a value", "an operator needs a value on each side");
                return None;
            }
            Tok::Word(_) => {
                let (Tok::Word(w), _) = self.take() else {
                    return None;
                };
                if self.eat(&Tok::LParen) {
                    let mut args = Vec::new();
                    if !self.eat(&Tok::RParen) {
                        loop {
                            args.push(self.expr_at(depth + 1)?);
                            if self.eat(&Tok::RParen) {
                                break;
                            }
                            if !self.eat(&Tok::Comma) {
                                self.expected(
                                    "`,` or `)`",
                                    "separate arguments with commas and close with `)`",
                                );
                                return None;
                            }
                        }
                    }
                    let call_span = span.to(self.prev_span());
                    return Some(Expr {
                        kind: ExprKind::Call(
                            Name {
                                text: w.to_owned(),
                                span,
                            },
                            args,
                        ),
                        span: call_span,
                    });
                }
                return Some(Expr {
                    kind: ExprKind::Var(w.to_owned()),
                    span,
                });
            }
            Tok::LParen => {
                self.bump();
                let inner = self.expr_at(depth + 1)?;
                if !self.eat(&Tok::RParen) {
                    self.expected("`)`", "close the parenthesis");
                    return None;
                }
                return Some(Expr {
                    kind: inner.kind,
                    span: span.to(self.prev_span()),
                });
            }
            _ => {
                self.expected(
                    "a value",
                    "values are numbers, \"strings\", times like 09:30, variables, true or false",
                );
                return None;
            }
        };
        self.bump();
        Some(Expr { kind, span })
    }
}

fn binary(op: BinOp, lhs: Expr, rhs: Expr) -> Expr {
    let span = lhs.span.to(rhs.span);
    Expr {
        kind: ExprKind::Binary(op, Box::new(lhs), Box::new(rhs)),
        span,
    }
}
