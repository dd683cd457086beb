//! Retention: what to delete, pseudonymise or keep, decided by a sans-IO
//! sweeper from the tenants' policies, the legal holds and the current
//! time (an input, so tests move it freely). The store carries the
//! decisions out, recordings first by destroying their wrapped key
//! (crypto-shredding) and then the file.
//!
//! | data class | default | allowed |
//! |---|---|---|
//! | recordings | 90 days | 1 day to 10 years |
//! | interaction logs | 180 days | 180 to 365 days (TRAI/DoT) |
//! | CDRs | 8 years, caller number pseudonymised once the interaction-log period has passed | 1 to 10 years |
//! | anonymised statistics | kept | |

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Seconds in a day.
pub const DAY: u64 = 86_400;

/// What kind of data an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataClass {
    /// An encrypted call recording.
    Recording,
    /// The interaction log of a call.
    InteractionLog,
    /// A call detail record.
    Cdr,
}

/// A tenant's retention periods, in days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Recordings.
    pub recordings_days: u64,
    /// Interaction logs.
    pub interaction_log_days: u64,
    /// CDRs.
    pub cdr_days: u64,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            recordings_days: 90,
            interaction_log_days: 180,
            cdr_days: 8 * 365,
        }
    }
}

/// A retention period outside what the rules allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{class} retention {days} days: {rule}")]
pub struct OutOfBounds {
    /// Which data class.
    pub class: &'static str,
    /// The configured period.
    pub days: u64,
    /// The allowed range and why.
    pub rule: &'static str,
}

impl Policy {
    /// Checks the periods against what the rules allow.
    pub fn validate(&self) -> Result<(), OutOfBounds> {
        let checks = [
            (
                "recordings",
                self.recordings_days,
                1..=3650,
                "use 1 to 3650",
            ),
            (
                "interaction log",
                self.interaction_log_days,
                180..=365,
                "TRAI/DoT require 180 to 365",
            ),
            ("CDR", self.cdr_days, 365..=3650, "use 365 to 3650"),
        ];
        for (class, days, range, rule) in checks {
            if !range.contains(&days) {
                return Err(OutOfBounds { class, days, rule });
            }
        }
        Ok(())
    }

    fn period(&self, class: DataClass) -> u64 {
        match class {
            DataClass::Recording => self.recordings_days,
            DataClass::InteractionLog => self.interaction_log_days,
            DataClass::Cdr => self.cdr_days,
        }
    }
}

/// Something held about a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    /// Its id in the store.
    pub id: String,
    /// Tenant.
    pub tenant: String,
    /// Class.
    pub class: DataClass,
    /// When it was made (Unix seconds).
    pub created: u64,
    /// The call.
    pub call_id: String,
    /// The caller's number (None once pseudonymised).
    pub caller: Option<String>,
    /// The caller's pseudonym (what a hold on a number names), when known.
    pub pseudonym: Option<String>,
}

/// What a legal hold covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HoldScope {
    /// One call.
    Call(String),
    /// Every call from a number, of a tenant, named by the pseudonyms its
    /// calls may be stored under (holds never keep the number).
    Number {
        /// Tenant.
        tenant: String,
        /// The number's pseudonyms.
        pseudonyms: Vec<String>,
    },
    /// Everything of a tenant.
    Tenant(String),
}

/// A legal hold: held data is never swept or erased while it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hold {
    /// What it covers.
    pub scope: HoldScope,
    /// Why (required).
    pub reason: String,
    /// Lifted holds no longer protect anything.
    pub lifted: bool,
}

impl Hold {
    /// True when the hold stands over `item`.
    pub fn covers(&self, item: &Item) -> bool {
        !self.lifted
            && match &self.scope {
                HoldScope::Call(c) => *c == item.call_id,
                HoldScope::Number { tenant, pseudonyms } => {
                    *tenant == item.tenant
                        && item
                            .pseudonym
                            .as_ref()
                            .is_some_and(|p| pseudonyms.contains(p))
                }
                HoldScope::Tenant(t) => *t == item.tenant,
            }
    }
}

/// What the sweeper decided for an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Delete it (a recording: destroy its wrapped key, then the file).
    Delete(String),
    /// Replace the caller number of this CDR with a pseudonym.
    Pseudonymise(String),
}

/// Decides what is due at `now`. Items under a standing hold are left
/// alone; the decisions are idempotent (run twice, the second finds
/// nothing new once the first was carried out).
pub fn sweep(
    now: u64,
    policy_of: impl Fn(&str) -> Policy,
    holds: &[Hold],
    items: &[Item],
) -> Vec<Decision> {
    let mut out = Vec::new();
    for item in items {
        if holds.iter().any(|h| h.covers(item)) {
            continue;
        }
        let p = policy_of(&item.tenant);
        let age = now.saturating_sub(item.created);
        if age >= p.period(item.class) * DAY {
            out.push(Decision::Delete(item.id.clone()));
        } else if item.class == DataClass::Cdr
            && item.caller.is_some()
            && age >= p.interaction_log_days * DAY
        {
            out.push(Decision::Pseudonymise(item.id.clone()));
        }
    }
    out
}

/// The pseudonym of a caller number under a tenant's secret: HMAC-SHA256,
/// hex, so the same number stays linkable within the tenant (statistics)
/// but cannot be read back or guessed without the secret.
pub fn pseudonym(secret: &[u8], number: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(number.as_bytes());
    let tag = mac.finalize().into_bytes();
    let hex: String = tag.iter().take(16).map(|b| format!("{b:02x}")).collect();
    format!("anon-{hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(id: &str, class: DataClass, created_day: u64, caller: &str, call: &str) -> Item {
        Item {
            id: id.into(),
            tenant: "acme".into(),
            class,
            created: created_day * DAY,
            call_id: call.into(),
            caller: Some(caller.into()),
            pseudonym: Some(format!("anon-{caller}")),
        }
    }

    fn items() -> Vec<Item> {
        vec![
            item("rec-1", DataClass::Recording, 0, "+911", "c1"),
            item("log-1", DataClass::InteractionLog, 0, "+911", "c1"),
            item("cdr-1", DataClass::Cdr, 0, "+911", "c1"),
            item("rec-2", DataClass::Recording, 0, "+912", "c2"),
        ]
    }

    #[test]
    fn time_moves_and_each_class_goes_when_its_period_ends() {
        let p = |_: &str| Policy::default();
        assert_eq!(sweep(89 * DAY, p, &[], &items()), vec![]);
        assert_eq!(
            sweep(90 * DAY, p, &[], &items()),
            vec![
                Decision::Delete("rec-1".into()),
                Decision::Delete("rec-2".into())
            ]
        );
        let after_logs = sweep(180 * DAY, p, &[], &items());
        assert!(after_logs.contains(&Decision::Delete("log-1".into())));
        assert!(after_logs.contains(&Decision::Pseudonymise("cdr-1".into())));
        let mut pseudonymised = items();
        pseudonymised[2].caller = None;
        assert!(
            !sweep(181 * DAY, p, &[], &pseudonymised)
                .contains(&Decision::Pseudonymise("cdr-1".into())),
            "idempotent"
        );
        assert!(
            sweep(8 * 365 * DAY, p, &[], &pseudonymised)
                .contains(&Decision::Delete("cdr-1".into()))
        );
    }

    #[test]
    fn holds_protect_until_lifted() {
        let p = |_: &str| Policy::default();
        let mut holds = vec![
            Hold {
                scope: HoldScope::Number {
                    tenant: "acme".into(),
                    pseudonyms: vec!["anon-other".into(), "anon-+911".into()],
                },
                reason: "court order 17/2026".into(),
                lifted: false,
            },
            Hold {
                scope: HoldScope::Call("c2".into()),
                reason: "complaint".into(),
                lifted: false,
            },
        ];
        assert_eq!(sweep(400 * DAY, p, &holds, &items()), vec![]);
        // A CDR whose number was pseudonymised is still its number's.
        let mut pseudonymised = items();
        pseudonymised[2].caller = None;
        let cdr_gone = Decision::Delete("cdr-1".into());
        assert!(sweep(4000 * DAY, p, &[], &pseudonymised).contains(&cdr_gone));
        assert!(!sweep(4000 * DAY, p, &holds[..1], &pseudonymised).contains(&cdr_gone));
        holds[1].lifted = true;
        assert_eq!(
            sweep(400 * DAY, p, &holds, &items()),
            vec![Decision::Delete("rec-2".into())]
        );
        let tenant_hold = [Hold {
            scope: HoldScope::Tenant("acme".into()),
            reason: "audit".into(),
            lifted: false,
        }];
        assert_eq!(sweep(4000 * DAY, p, &tenant_hold, &items()), vec![]);
    }

    #[test]
    fn policies_are_checked_against_the_rules() {
        assert!(Policy::default().validate().is_ok());
        assert!(
            Policy {
                interaction_log_days: 90,
                ..Policy::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Policy {
                interaction_log_days: 400,
                ..Policy::default()
            }
            .validate()
            .is_err()
        );
        assert!(
            Policy {
                recordings_days: 0,
                ..Policy::default()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn pseudonyms_are_stable_per_secret_and_unreadable() {
        let a = pseudonym(b"tenant-secret", "+919812345678");
        assert_eq!(a, pseudonym(b"tenant-secret", "+919812345678"));
        assert_ne!(a, pseudonym(b"other-secret", "+919812345678"));
        assert!(!a.contains("9812345678"));
    }
}
