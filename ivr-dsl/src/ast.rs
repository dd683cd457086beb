//! The syntax tree of a flow file, as written (before checking).

use std::time::Duration;

use crate::lexer::StrPart;
use crate::source::Span;

/// A name and where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    /// The text.
    pub text: String,
    /// Where.
    pub span: Span,
}

/// A string literal with `{variables}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    /// Pieces.
    pub parts: Vec<StrPart>,
    /// Where.
    pub span: Span,
}

impl Text {
    /// The text with variables written as `{name}`.
    pub fn template(&self) -> String {
        let mut s = String::new();
        for p in &self.parts {
            match p {
                StrPart::Text(t) => s.push_str(t),
                StrPart::Var(v, _) => {
                    s.push('{');
                    s.push_str(v);
                    s.push('}');
                }
            }
        }
        s
    }

    /// True when the string has no `{variables}`.
    pub fn is_plain(&self) -> bool {
        self.parts.iter().all(|p| matches!(p, StrPart::Text(_)))
    }
}

/// One parsed file.
#[derive(Debug, Clone, Default)]
pub struct File {
    /// The `flow` header (only the main file has one).
    pub header: Option<Header>,
    /// `include "path"` lines.
    pub includes: Vec<Text>,
    /// Steps and blocks.
    pub items: Vec<Item>,
}

/// Opening hours: `hours NAME mon-fri 09:00-18:00, sat 10:00-13:00`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hours {
    /// The name used in `open(NAME)`.
    pub name: Name,
    /// Day sets and time ranges.
    pub ranges: Vec<HoursRange>,
}

/// One `days HH:MM-HH:MM` part of an `hours` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoursRange {
    /// Days of the week, bit 0 = Monday.
    pub days: u8,
    /// Opening, in minutes after midnight.
    pub from: u16,
    /// Closing, in minutes after midnight (exclusive).
    pub to: u16,
    /// Where.
    pub span: Span,
}

/// The `flow` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Flow name.
    pub name: Text,
    /// Numbers (DIDs) it answers.
    pub numbers: Vec<Name>,
    /// TTS voice / language, e.g. `en-IN`.
    pub voice: Option<Name>,
    /// IANA time zone, e.g. `Asia/Kolkata`.
    pub timezone: Option<Name>,
    /// Default barge-in for prompts.
    pub barge_in: Option<bool>,
    /// Named opening hours.
    pub hours: Vec<Hours>,
    /// Holiday dates.
    pub holidays: Vec<(jiff::civil::Date, Span)>,
    /// Where the `flow` line is.
    pub span: Span,
}

/// `step` (a place the flow goes to) or `block` (called and returned from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// `step NAME`
    Step,
    /// `block NAME`
    Block,
}

/// A step or a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Which.
    pub kind: ItemKind,
    /// Its name.
    pub name: Name,
    /// Its statements.
    pub body: Vec<Stmt>,
}

/// A statement and its span (the whole first line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    /// What.
    pub kind: StmtKind,
    /// Where.
    pub span: Span,
}

/// A prompt: a file to play or text to speak.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// `play "file"`
    File(Text),
    /// `say "text"`
    Say(Text),
}

impl Prompt {
    /// The literal.
    pub fn text(&self) -> &Text {
        match self {
            Prompt::File(t) | Prompt::Say(t) => t,
        }
    }
}

/// What a branch leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Branch {
    /// `on` what (`1`, `"12#"`, `invalid`, `timeout`, `overflow`, `failure`).
    pub on: BranchOn,
    /// Where it was written.
    pub span: Span,
    /// The step to go to.
    pub target: Name,
}

/// The condition of a branch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchOn {
    /// Digits the caller entered.
    Choice(String),
    /// Anything that is not a choice, or too few digits.
    Invalid,
    /// Nothing entered in time.
    Timeout,
    /// Queue: waited too long or nobody can answer.
    Overflow,
    /// Transfer or fetch failed.
    Failure,
}

/// `gather`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gather {
    /// Variable for the digits.
    pub into: Option<Name>,
    /// Fewest digits.
    pub min: u32,
    /// Most digits.
    pub max: u32,
    /// Where `digits` was written.
    pub digits_span: Option<Span>,
    /// Key that ends input early.
    pub end_key: Option<(char, Span)>,
    /// Wait for the first digit.
    pub timeout: Option<(Duration, Span)>,
    /// Wait between digits.
    pub between: Option<(Duration, Span)>,
    /// Extra attempts after the first.
    pub retries: Option<(u32, Span)>,
    /// Mask digits in logs, pause recording.
    pub sensitive: bool,
    /// Barge-in override.
    pub barge_in: Option<bool>,
    /// What to play before input.
    pub prompts: Vec<Prompt>,
    /// What to play on a retry instead.
    pub reprompts: Vec<Prompt>,
    /// Branches.
    pub branches: Vec<Branch>,
}

/// `record`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Variable for the recording id.
    pub into: Option<Name>,
    /// Longest message.
    pub max: Option<(Duration, Span)>,
    /// Beep before recording.
    pub beep: bool,
    /// Stop after this much silence.
    pub silence: Option<(Duration, Span)>,
    /// Key that ends the message.
    pub end_key: Option<(char, Span)>,
}

/// `grievance`: a complaint the caller leaves by phone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grievance {
    /// Its category (`"billing"`, `"privacy"`, ...).
    pub category: Text,
    /// Longest message.
    pub max: Option<(Duration, Span)>,
}

/// `consent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The question.
    pub prompt: Prompt,
    /// Key for yes.
    pub yes: (char, Span),
    /// Key for no.
    pub no: (char, Span),
    /// Wait for the answer.
    pub timeout: Option<(Duration, Span)>,
    /// Extra attempts.
    pub retries: Option<(u32, Span)>,
}

/// `recording start|stop|pause|resume`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordingOp {
    /// Start recording the call (needs consent).
    Start,
    /// Stop.
    Stop,
    /// Pause.
    Pause,
    /// Resume.
    Resume,
}

impl RecordingOp {
    /// What happened, in the words of the timeline: `started`, `stopped`,
    /// `paused`, `resumed`.
    pub fn event(self) -> &'static str {
        match self {
            RecordingOp::Start => "started",
            RecordingOp::Stop => "stopped",
            RecordingOp::Pause => "paused",
            RecordingOp::Resume => "resumed",
        }
    }
}

/// `queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// Queue name.
    pub name: Text,
    /// Music / message while waiting.
    pub hold: Option<Text>,
    /// Announce the position this often.
    pub announce: Option<(Duration, Span)>,
    /// Longest wait.
    pub max_wait: Option<(Duration, Span)>,
    /// Served before callers of lower priority (0 to 9).
    pub priority: Option<(u32, Span)>,
    /// Branches (`on overflow`, keys).
    pub branches: Vec<Branch>,
}

/// `transfer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Number or SIP URI.
    pub target: Text,
    /// Branches (`on failure`).
    pub branches: Vec<Branch>,
}

/// HTTP method for `fetch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET (sent variables become query parameters).
    Get,
    /// POST (sent variables become a JSON object).
    Post,
}

/// `fetch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// GET or POST.
    pub method: Method,
    /// `https://` URL, may contain `{variables}`.
    pub url: Text,
    /// Time limit.
    pub timeout: Option<(Duration, Span)>,
    /// Variables sent.
    pub send: Vec<Name>,
    /// Fields copied from the JSON reply into variables.
    pub into: Vec<Name>,
    /// Branches (`on failure`).
    pub branches: Vec<Branch>,
}

/// An `if` arm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arm {
    /// Condition.
    pub cond: Expr,
    /// Body.
    pub body: Vec<Stmt>,
}

/// Statements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StmtKind {
    /// `play` / `say`: one or more prompts.
    Play {
        /// The prompts.
        prompts: Vec<Prompt>,
        /// Barge-in override.
        barge_in: Option<bool>,
    },
    /// `gather`
    Gather(Box<Gather>),
    /// `goto STEP`
    Goto(Name),
    /// `call BLOCK`
    Call(Name),
    /// `return`
    Return,
    /// `if` / `else if` / `else`
    If {
        /// Conditional arms in order.
        arms: Vec<Arm>,
        /// `else` body.
        otherwise: Option<Vec<Stmt>>,
    },
    /// `set NAME = EXPR`
    Set {
        /// Variable.
        var: Name,
        /// Value.
        value: Expr,
    },
    /// `wait DURATION`
    Wait(Duration),
    /// `hangup ["reason"]`
    Hangup(Option<Text>),
    /// `record`
    Record(Record),
    /// `grievance "CATEGORY"[, max D]`.
    Grievance(Grievance),
    /// `consent`
    Consent(Box<Consent>),
    /// `recording OP`
    Recording(RecordingOp),
    /// `queue`
    Queue(Box<Queue>),
    /// `transfer`
    Transfer(Box<Transfer>),
    /// `log "event" key=value ...`
    Log {
        /// Event name.
        event: Text,
        /// Fields.
        fields: Vec<(Name, Expr)>,
    },
    /// `fetch`
    Fetch(Box<Fetch>),
}

/// Binary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    /// `+`
    Add,
    /// `-`
    Sub,
    /// `*`
    Mul,
    /// `/`
    Div,
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
    /// `and`
    And,
    /// `or`
    Or,
}

/// Expressions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    /// What.
    pub kind: ExprKind,
    /// Where.
    pub span: Span,
}

/// Expression kinds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExprKind {
    /// Whole number.
    Int(i64),
    /// String (with `{variables}`).
    Str(Vec<StrPart>),
    /// `true` / `false`.
    Bool(bool),
    /// `09:30`.
    Time(u16),
    /// `2026-08-15`.
    Date(jiff::civil::Date),
    /// A variable.
    Var(String),
    /// `not x`
    Not(Box<Expr>),
    /// `-x`
    Neg(Box<Expr>),
    /// `a OP b`
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// `name(args)`
    Call(Name, Vec<Expr>),
}
