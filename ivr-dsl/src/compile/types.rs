//! Static types of expressions, for mistakes like `time > "nine"` or
//! `if tries + 1` (a number where a condition belongs).

use crate::ast::BinOp;

/// What the checker knows about a value's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// Text.
    Str,
    /// Number.
    Int,
    /// Condition.
    Bool,
    /// Time of day.
    Time,
    /// Date.
    Date,
    /// Not known before the call runs (e.g. a `fetch` result).
    Any,
}

impl Ty {
    /// How it reads in a message.
    pub fn describe(self) -> &'static str {
        match self {
            Ty::Str => "text",
            Ty::Int => "a number",
            Ty::Bool => "a condition (true/false)",
            Ty::Time => "a time of day",
            Ty::Date => "a date",
            Ty::Any => "a value",
        }
    }

    /// Merge of two assignments to one variable.
    pub fn join(self, other: Ty) -> Ty {
        if self == other { self } else { Ty::Any }
    }

    fn numeric(self) -> bool {
        matches!(self, Ty::Int | Ty::Str | Ty::Any)
    }
}

/// The result type of `a op b`, or a message saying why it is wrong.
pub fn binary(op: BinOp, a: Ty, b: Ty) -> Result<Ty, String> {
    let any = a == Ty::Any || b == Ty::Any;
    match op {
        BinOp::Add => {
            if a == Ty::Str || b == Ty::Str {
                if matches!(a, Ty::Bool | Ty::Time | Ty::Date)
                    || matches!(b, Ty::Bool | Ty::Time | Ty::Date)
                {
                    return Err(format!("cannot add {} and {}", a.describe(), b.describe()));
                }
                return Ok(if a == Ty::Int || b == Ty::Int {
                    Ty::Any
                } else {
                    Ty::Str
                });
            }
            if a.numeric() && b.numeric() {
                Ok(if any { Ty::Any } else { Ty::Int })
            } else {
                Err(format!("cannot add {} and {}", a.describe(), b.describe()))
            }
        }
        BinOp::Sub | BinOp::Mul | BinOp::Div => {
            if a.numeric() && b.numeric() {
                Ok(Ty::Int)
            } else {
                Err(format!(
                    "arithmetic needs numbers, not {} and {}",
                    a.describe(),
                    b.describe()
                ))
            }
        }
        BinOp::Eq | BinOp::Ne => {
            let compatible = any || a == b || (a.numeric() && b.numeric());
            if compatible {
                Ok(Ty::Bool)
            } else {
                Err(format!(
                    "{} is never equal to {}",
                    a.describe(),
                    b.describe()
                ))
            }
        }
        BinOp::Lt | BinOp::Le | BinOp::Gt | BinOp::Ge => {
            let ok = any || (a == b && a != Ty::Bool) || (a.numeric() && b.numeric());
            if ok {
                Ok(Ty::Bool)
            } else {
                Err(format!(
                    "cannot order {} against {}",
                    a.describe(),
                    b.describe()
                ))
            }
        }
        BinOp::And | BinOp::Or => {
            for t in [a, b] {
                if !matches!(t, Ty::Bool | Ty::Any) {
                    return Err(format!("`and`/`or` join conditions, not {}", t.describe()));
                }
            }
            Ok(Ty::Bool)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        assert_eq!(binary(BinOp::Add, Ty::Int, Ty::Int), Ok(Ty::Int));
        assert_eq!(binary(BinOp::Add, Ty::Str, Ty::Str), Ok(Ty::Str));
        assert!(binary(BinOp::Lt, Ty::Time, Ty::Str).is_err());
        assert!(binary(BinOp::And, Ty::Int, Ty::Bool).is_err());
        assert_eq!(binary(BinOp::Eq, Ty::Str, Ty::Int), Ok(Ty::Bool));
        assert!(binary(BinOp::Eq, Ty::Time, Ty::Int).is_err());
    }
}
