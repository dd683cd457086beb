//! Runtime values and the expressions of a compiled flow.

use std::fmt;

use crate::ast::BinOp;

/// A value held by a flow variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// Text (gathered digits are text too: "0042" keeps its zeros).
    Str(String),
    /// Whole number.
    Int(i64),
    /// Yes or no.
    Bool(bool),
    /// Time of day, minutes after midnight.
    Time(u16),
    /// A calendar date.
    Date(jiff::civil::Date),
}

impl Default for Value {
    fn default() -> Value {
        Value::Str(String::new())
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Str(s) => f.write_str(s),
            Value::Int(i) => write!(f, "{i}"),
            Value::Bool(b) => write!(f, "{}", if *b { "true" } else { "false" }),
            Value::Time(t) => write!(f, "{:02}:{:02}", t / 60, t % 60),
            Value::Date(d) => write!(f, "{d}"),
        }
    }
}

impl Value {
    /// A number, if this is one or is text that spells one. A variable
    /// not set yet (empty text) counts as 0, so `set tries = tries + 1`
    /// works from the first round.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            Value::Str(s) if s.is_empty() => Some(0),
            Value::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    /// Truth: `false`, `0` and `""` are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::Str(s) => !s.is_empty(),
            Value::Time(_) | Value::Date(_) => true,
        }
    }

    /// Converts a JSON value from a `fetch` reply. Objects and arrays are
    /// kept as their JSON text.
    pub fn from_json(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => match n.as_i64() {
                Some(i) => Value::Int(i),
                None => Value::Str(n.to_string()),
            },
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Null => Value::Str(String::new()),
            other => Value::Str(other.to_string()),
        }
    }

    /// As JSON, for `fetch` bodies.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Str(s) => serde_json::Value::String(s.clone()),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Bool(b) => serde_json::Value::Bool(*b),
            other => serde_json::Value::String(other.to_string()),
        }
    }
}

/// Why an expression could not be evaluated at run time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvalError {
    /// An operator met values it does not work on.
    Type(&'static str),
    /// Division by zero.
    DivideByZero,
    /// A number grew too large.
    Overflow,
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EvalError::Type(m) => f.write_str(m),
            EvalError::DivideByZero => f.write_str("division by zero"),
            EvalError::Overflow => f.write_str("number too large"),
        }
    }
}

/// Applies a binary operator (not `and`/`or`, which short-circuit).
pub fn binary(op: BinOp, a: &Value, b: &Value) -> Result<Value, EvalError> {
    use std::cmp::Ordering;
    let arith = |f: fn(i64, i64) -> Option<i64>| -> Result<Value, EvalError> {
        match (a.as_int(), b.as_int()) {
            (Some(x), Some(y)) => f(x, y).map(Value::Int).ok_or(EvalError::Overflow),
            _ => Err(EvalError::Type("arithmetic needs numbers")),
        }
    };
    let order = || -> Result<Ordering, EvalError> {
        match (a, b) {
            (Value::Time(x), Value::Time(y)) => Ok(x.cmp(y)),
            (Value::Date(x), Value::Date(y)) => Ok(x.cmp(y)),
            (Value::Str(x), Value::Str(y))
                if x.parse::<i64>().is_err() || y.parse::<i64>().is_err() =>
            {
                Ok(x.cmp(y))
            }
            _ => match (a.as_int(), b.as_int()) {
                (Some(x), Some(y)) => Ok(x.cmp(&y)),
                _ => Err(EvalError::Type("these values cannot be ordered")),
            },
        }
    };
    match op {
        BinOp::Add => match (a, b) {
            (Value::Str(x), _) if a.as_int().is_none() || b.as_int().is_none() => {
                Ok(Value::Str(format!("{x}{b}")))
            }
            (_, Value::Str(y)) if a.as_int().is_none() || b.as_int().is_none() => {
                Ok(Value::Str(format!("{a}{y}")))
            }
            _ => arith(i64::checked_add),
        },
        BinOp::Sub => arith(i64::checked_sub),
        BinOp::Mul => arith(i64::checked_mul),
        BinOp::Div => {
            if b.as_int() == Some(0) {
                return Err(EvalError::DivideByZero);
            }
            arith(i64::checked_div)
        }
        BinOp::Eq | BinOp::Ne => {
            let eq = match (a.as_int(), b.as_int(), a, b) {
                (_, _, Value::Str(x), Value::Str(y)) => x == y,
                (Some(x), Some(y), _, _) => x == y,
                _ => a == b,
            };
            Ok(Value::Bool(if op == BinOp::Eq { eq } else { !eq }))
        }
        BinOp::Lt => order().map(|o| Value::Bool(o == Ordering::Less)),
        BinOp::Le => order().map(|o| Value::Bool(o != Ordering::Greater)),
        BinOp::Gt => order().map(|o| Value::Bool(o == Ordering::Greater)),
        BinOp::Ge => order().map(|o| Value::Bool(o != Ordering::Less)),
        BinOp::And => Ok(Value::Bool(a.truthy() && b.truthy())),
        BinOp::Or => Ok(Value::Bool(a.truthy() || b.truthy())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digits_compare_as_numbers_and_text() {
        let s = |x: &str| Value::Str(x.into());
        assert_eq!(
            binary(BinOp::Eq, &s("1"), &Value::Int(1)),
            Ok(Value::Bool(true))
        );
        assert_eq!(binary(BinOp::Eq, &s("01"), &s("1")), Ok(Value::Bool(false)));
        assert_eq!(binary(BinOp::Lt, &s("9"), &s("10")), Ok(Value::Bool(true)));
        assert_eq!(
            binary(BinOp::Add, &s("Hi "), &s("there")),
            Ok(Value::Str("Hi there".into()))
        );
        assert_eq!(
            binary(BinOp::Add, &s("2"), &Value::Int(3)),
            Ok(Value::Int(5))
        );
        assert_eq!(
            binary(BinOp::Div, &Value::Int(1), &Value::Int(0)),
            Err(EvalError::DivideByZero)
        );
        assert_eq!(
            binary(BinOp::Mul, &Value::Int(i64::MAX), &Value::Int(2)),
            Err(EvalError::Overflow)
        );
        assert!(binary(BinOp::Lt, &Value::Time(60), &s("x")).is_err());
    }
}
