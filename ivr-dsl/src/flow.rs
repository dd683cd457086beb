//! A compiled flow: immutable, shared by every call that runs it, and
//! versioned by a hash of its sources so a call keeps the version it
//! started with when a new one is deployed.

use std::path::PathBuf;
use std::time::Duration;

use crate::ast::{BinOp, Method, RecordingOp};
use crate::source::Span;

/// Index of a variable in a flow's variable table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VarId(pub u16);

/// Index of a step or block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepId(pub u16);

/// Position in a flow's code.
pub type Pc = u32;

/// Content hash of a flow's sources: the first 16 hex digits of SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Version(pub String);

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Values computed from the call and the clock, readable by any flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Builtin {
    /// The caller's number.
    Caller,
    /// The number dialled.
    Called,
    /// Local time of day in the flow's time zone.
    Time,
    /// Local day of the week: `mon` ... `sun`.
    Weekday,
    /// Local date.
    Date,
    /// Today is in the flow's holiday list.
    Holiday,
    /// `yes`, `no`, or empty before `consent`.
    Consent,
}

impl Builtin {
    /// All, with their names.
    pub const ALL: [(&'static str, Builtin); 7] = [
        ("caller", Builtin::Caller),
        ("called", Builtin::Called),
        ("time", Builtin::Time),
        ("weekday", Builtin::Weekday),
        ("date", Builtin::Date),
        ("holiday", Builtin::Holiday),
        ("consent", Builtin::Consent),
    ];

    /// By name.
    pub fn named(name: &str) -> Option<Builtin> {
        Builtin::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, b)| *b)
    }
}

/// Functions callable in expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    /// `open(hours)`: within the named hours and not a holiday.
    Open(u16),
    /// `len(text)`
    Len,
    /// `startswith(text, prefix)`
    StartsWith,
    /// `endswith(text, suffix)`
    EndsWith,
}

/// A compiled expression.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// A constant.
    Const(crate::value::Value),
    /// A string with variables.
    Template(Template),
    /// A flow variable.
    Var(VarId),
    /// A built-in value.
    Builtin(Builtin),
    /// `not`
    Not(Box<Expr>),
    /// Unary minus.
    Neg(Box<Expr>),
    /// Binary operator.
    Binary(BinOp, Box<Expr>, Box<Expr>),
    /// Function call.
    Call(Func, Vec<Expr>),
}

/// Part of a string with variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Literal text.
    Text(String),
    /// A variable's value.
    Var(VarId),
    /// A built-in value.
    Builtin(Builtin),
}

/// A string with `{variables}`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template(pub Vec<Piece>);

/// A compiled prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    /// A file, resolved against the flow file's folder.
    File(PathBuf),
    /// Text to speak.
    Say(Template),
}

/// A compiled `gather`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gather {
    /// Where the digits go.
    pub into: VarId,
    /// Fewest digits.
    pub min: u32,
    /// Most digits.
    pub max: u32,
    /// Key that ends input.
    pub end_key: Option<char>,
    /// Wait for the first digit (after the prompt ends).
    pub timeout: Duration,
    /// Wait between digits.
    pub between: Duration,
    /// Extra attempts.
    pub retries: u32,
    /// Mask in logs, pause recording.
    pub sensitive: bool,
    /// Digits interrupt the prompt.
    pub barge_in: bool,
    /// Played first.
    pub prompts: Vec<Prompt>,
    /// Played on retries (the prompts when empty).
    pub reprompts: Vec<Prompt>,
    /// Choice digits and their steps.
    pub choices: Vec<(String, StepId)>,
    /// After the last invalid attempt (else the next statement).
    pub on_invalid: Option<StepId>,
    /// After the last silent attempt (else the next statement).
    pub on_timeout: Option<StepId>,
}

/// A compiled `record`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Where the recording id goes.
    pub into: Option<VarId>,
    /// Longest message.
    pub max: Duration,
    /// Beep first.
    pub beep: bool,
    /// Stop after this much silence.
    pub silence: Duration,
    /// Key that ends the message.
    pub end_key: Option<char>,
}

/// A compiled `consent`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The question.
    pub prompt: Prompt,
    /// Yes key.
    pub yes: char,
    /// No key.
    pub no: char,
    /// Wait for the answer.
    pub timeout: Duration,
    /// Extra attempts.
    pub retries: u32,
}

/// A compiled `queue`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queue {
    /// Queue name.
    pub name: String,
    /// Hold music or message.
    pub hold: Option<PathBuf>,
    /// Position announcements.
    pub announce_every: Option<Duration>,
    /// Longest wait.
    pub max_wait: Duration,
    /// Where to go on overflow (else the next statement).
    pub on_overflow: Option<StepId>,
    /// Keys that take the caller out of the queue, and where to.
    pub keys: Vec<(char, StepId)>,
    /// Served before callers of lower priority (0 to 9).
    pub priority: u32,
}

/// A compiled `fetch`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch {
    /// GET or POST.
    pub method: Method,
    /// URL template.
    pub url: Template,
    /// Time limit.
    pub timeout: Duration,
    /// Variables sent, with their names.
    pub send: Vec<(String, VarId)>,
    /// Reply fields copied into variables.
    pub into: Vec<(String, VarId)>,
    /// Where to go on failure (else the next statement).
    pub on_failure: Option<StepId>,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instr {
    /// A step begins (logged).
    Enter(StepId),
    /// Play prompts; wait for them to end.
    Play {
        /// Prompts in order.
        prompts: Vec<Prompt>,
        /// Digits interrupt.
        barge_in: bool,
    },
    /// Collect digits.
    Gather(Box<Gather>),
    /// `goto`: go to a step (leaves any block being run).
    Goto(StepId),
    /// Jump within a step (`if`/`else`).
    Jump(Pc),
    /// Jump within a step unless the condition holds.
    JumpUnless(Expr, Pc),
    /// Call a block.
    Call(StepId),
    /// Return from a block.
    Return,
    /// Assign.
    Set(VarId, Expr),
    /// Pause.
    Wait(Duration),
    /// End the call.
    Hangup(Option<Template>),
    /// Record a message.
    Record(Box<Record>),
    /// Open a grievance ticket of this category with the message just
    /// recorded (the `record` before it).
    Grievance(String),
    /// Ask for recording consent.
    Consent(Box<Consent>),
    /// Control call recording.
    Recording(RecordingOp),
    /// Put the caller in a queue.
    Queue(Box<Queue>),
    /// Transfer the call.
    Transfer {
        /// Number or URI.
        target: Template,
        /// Where to go on failure (else the next statement).
        on_failure: Option<StepId>,
    },
    /// A custom interaction-log event.
    Log {
        /// Event name.
        event: Template,
        /// Fields.
        fields: Vec<(String, Expr)>,
    },
    /// Call the tenant's HTTPS endpoint.
    Fetch(Box<Fetch>),
    /// A step ran off its end (the checker forbids it; kept as a guard).
    FellOff,
}

/// What a step or block is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepInfo {
    /// Its name.
    pub name: String,
    /// Block (called) or step.
    pub is_block: bool,
    /// Where its code starts.
    pub entry: Pc,
    /// Where it is defined.
    pub span: Span,
}

/// A flow variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VarInfo {
    /// Its name.
    pub name: String,
    /// Gathered with `sensitive`: masked in logs.
    pub sensitive: bool,
}

/// Opening hours by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hours {
    /// Name.
    pub name: String,
    /// (day mask with bit 0 = Monday, from minute, to minute).
    pub ranges: Vec<(u8, u16, u16)>,
}

/// A checked, compiled flow.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Its name.
    pub name: String,
    /// Content hash.
    pub version: Version,
    /// Numbers it answers.
    pub numbers: Vec<String>,
    /// TTS voice.
    pub voice: Option<String>,
    /// Time zone.
    pub timezone: jiff::tz::TimeZone,
    /// Time zone name as written.
    pub timezone_name: String,
    /// Opening hours.
    pub hours: Vec<Hours>,
    /// Holidays.
    pub holidays: Vec<jiff::civil::Date>,
    /// The code.
    pub code: Vec<Instr>,
    /// Step of each instruction.
    pub step_of: Vec<StepId>,
    /// Source span of each instruction.
    pub spans: Vec<Span>,
    /// Steps and blocks.
    pub steps: Vec<StepInfo>,
    /// Variables.
    pub vars: Vec<VarInfo>,
    /// Every prompt file the flow can play (for preloading).
    pub prompt_files: Vec<PathBuf>,
    /// The flow says something with text-to-speech.
    pub uses_tts: bool,
}

impl Flow {
    /// The instruction at `pc`.
    pub fn instr(&self, pc: Pc) -> Option<&Instr> {
        self.code.get(pc as usize)
    }

    /// The step that holds `pc`.
    pub fn step_at(&self, pc: Pc) -> Option<&StepInfo> {
        self.step_of
            .get(pc as usize)
            .and_then(|s| self.steps.get(s.0 as usize))
    }

    /// A step by name.
    pub fn step(&self, name: &str) -> Option<&StepInfo> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// A variable's info.
    pub fn var(&self, v: VarId) -> Option<&VarInfo> {
        self.vars.get(v.0 as usize)
    }
}
