//! Silences: matchers that mute matching alerts between a start and an end, with who created them and why,
//! as Alertmanager's silences.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::matchers::Matcher;
use crate::LabelSet;

/// Why a silence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SilenceError {
    #[error("silence has no matchers: add at least one, e.g. alertname=\"DiskFull\"")]
    NoMatchers,
    #[error(
        "silence matchers all match the empty string and so would mute every alert: add one that needs a label value"
    )]
    MatchesEverything,
    #[error("silence ends at or before it starts: set endsAt after startsAt")]
    EndBeforeStart,
    #[error("silence has no creator: set createdBy")]
    NoCreator,
    #[error("silence has no comment: say why alerts are silenced")]
    NoComment,
    #[error("no silence with id {0:?}")]
    NotFound(String),
    #[error("silence {0} has already expired")]
    AlreadyExpired(String),
}

/// Where a silence is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    Pending,
    Active,
    Expired,
}

impl SilenceState {
    pub fn as_str(self) -> &'static str {
        match self {
            SilenceState::Pending => "pending",
            SilenceState::Active => "active",
            SilenceState::Expired => "expired",
        }
    }
}

/// One silence, serialisable for the store and the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Silence {
    /// A random UUID-shaped id; empty when creating, filled in by the dispatcher.
    #[serde(default)]
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: SystemTime,
    pub ends_at: SystemTime,
    pub created_by: String,
    pub comment: String,
    pub updated_at: SystemTime,
}

// === impl Silence ===

impl Silence {
    /// The silence's state at `now`: pending before its start, active until its end, then expired.
    pub fn state(&self, now: SystemTime) -> SilenceState {
        if now < self.starts_at {
            SilenceState::Pending
        } else if now < self.ends_at {
            SilenceState::Active
        } else {
            SilenceState::Expired
        }
    }

    /// Checks the silence as Alertmanager does before storing it.
    pub fn validate(&self) -> Result<(), SilenceError> {
        if self.matchers.is_empty() {
            return Err(SilenceError::NoMatchers);
        }
        if self.matchers.iter().all(|m| m.matches_value("")) {
            return Err(SilenceError::MatchesEverything);
        }
        if self.ends_at <= self.starts_at {
            return Err(SilenceError::EndBeforeStart);
        }
        if self.created_by.trim().is_empty() {
            return Err(SilenceError::NoCreator);
        }
        if self.comment.trim().is_empty() {
            return Err(SilenceError::NoComment);
        }
        Ok(())
    }

    /// Whether the silence's matchers all match the labels (regardless of time).
    pub fn matches(&self, labels: &LabelSet) -> bool {
        self.matchers.iter().all(|m| m.matches(labels))
    }

    /// Whether the silence mutes the labels at `now`.
    pub fn mutes(&self, labels: &LabelSet, now: SystemTime) -> bool {
        self.state(now) == SilenceState::Active && self.matches(labels)
    }
}

/// A fresh random id in UUID v4 form. Randomness comes from std's per-process randomly keyed hasher,
/// which is enough for unguessable-in-practice ids without a dependency on a random number crate.
pub fn new_id() -> String {
    let word = || {
        let mut h = RandomState::new().build_hasher();
        h.write_u128(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
        h.finish()
    };
    let (a, b) = (word(), word());
    let hi = (a & 0xffff_ffff_ffff_0fff) | 0x4000;
    let lo = (b & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn silence(matchers: &[&str], start: u64, end: u64) -> Silence {
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        Silence {
            id: new_id(),
            matchers: matchers.iter().map(|m| Matcher::parse(m).expect("matcher")).collect(),
            starts_at: t(start),
            ends_at: t(end),
            created_by: "ops".into(),
            comment: "maintenance".into(),
            updated_at: t(start),
        }
    }

    #[test]
    fn states_and_validation() {
        let s = silence(&[r#"alertname="A""#, r#"env!="dev""#], 100, 200);
        s.validate().expect("valid");
        let t = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(s.state(t(50)), SilenceState::Pending);
        assert_eq!(s.state(t(100)), SilenceState::Active);
        assert_eq!(s.state(t(200)), SilenceState::Expired);
        let labels: LabelSet = [("alertname".to_owned(), "A".to_owned())].into();
        assert!(s.mutes(&labels, t(150)));
        assert!(!s.mutes(&labels, t(250)));
        assert_eq!(silence(&[r#"env=~".*""#], 1, 2).validate(), Err(SilenceError::MatchesEverything));
        assert_eq!(silence(&[], 1, 2).validate(), Err(SilenceError::NoMatchers));
        assert_eq!(silence(&[r#"a="b""#], 2, 1).validate(), Err(SilenceError::EndBeforeStart));
        assert_ne!(new_id(), new_id());
        assert_eq!(new_id().len(), 36);
    }
}
