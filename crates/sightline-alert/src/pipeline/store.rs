//! The pipeline's durable state (alerts, silences, acknowledgements, the notification log and escalation
//! progress) behind one trait, so the server can back it with SQL; [`MemoryStore`] keeps it in memory.
//! Records are serde-serialisable so a backend can store them as JSON or map their fields to columns.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use super::silence::Silence;
use crate::{Alert, Fingerprint, LabelSet};

/// An alert as the pipeline keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub fingerprint: u64,
    pub labels: LabelSet,
    pub annotations: LabelSet,
    pub starts_at: SystemTime,
    /// When it ends (resolved once this has passed).
    pub ends_at: SystemTime,
    /// Whether `ends_at` is only the resolve timeout's guess, not the sender's word.
    pub timeout: bool,
    pub generator_url: String,
    pub updated_at: SystemTime,
    /// When the pipeline first saw this alert firing (escalation counts from here).
    pub firing_since: SystemTime,
}

/// Who acknowledged a firing alert, when and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AckRecord {
    pub fingerprint: u64,
    pub by: String,
    pub comment: String,
    pub at: SystemTime,
}

/// What one integration of one receiver was last told about one group (Alertmanager's nflog entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NflogRecord {
    pub group_key: String,
    /// `receiver/kind/index`.
    pub integration: String,
    pub firing: BTreeSet<u64>,
    pub resolved: BTreeSet<u64>,
    pub sent_at: SystemTime,
}

/// The escalation levels already sent for one alert under one policy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscalationRecord {
    pub fingerprint: u64,
    pub escalation: String,
    /// Number of levels sent (level indexes below this are done).
    pub levels_sent: usize,
    pub updated_at: SystemTime,
}

/// Durable pipeline state. Calls are synchronous and cheap so the dispatcher can call them under its lock; a
/// SQL backend is expected to write through a cache (or a background writer) rather than block here.
pub trait PipelineStore: Send + Sync + std::fmt::Debug {
    fn put_alert(&self, alert: AlertRecord);
    fn delete_alert(&self, fingerprint: u64);
    fn alerts(&self) -> Vec<AlertRecord>;

    fn put_silence(&self, silence: Silence);
    fn delete_silence(&self, id: &str);
    fn silences(&self) -> Vec<Silence>;

    fn put_ack(&self, ack: AckRecord);
    fn delete_ack(&self, fingerprint: u64);
    fn acks(&self) -> Vec<AckRecord>;

    fn put_nflog(&self, entry: NflogRecord);
    fn nflog(&self, group_key: &str, integration: &str) -> Option<NflogRecord>;
    fn delete_nflog(&self, group_key: &str, integration: &str);
    fn nflog_entries(&self) -> Vec<NflogRecord>;

    fn put_escalation(&self, record: EscalationRecord);
    fn delete_escalations(&self, fingerprint: u64);
    fn escalations(&self) -> Vec<EscalationRecord>;
}

#[derive(Debug, Default)]
struct MemoryState {
    alerts: HashMap<u64, AlertRecord>,
    silences: BTreeMap<String, Silence>,
    acks: HashMap<u64, AckRecord>,
    nflog: HashMap<(String, String), NflogRecord>,
    escalations: HashMap<(u64, String), EscalationRecord>,
}

/// The in-memory store: state lives as long as the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<MemoryState>,
}

// === impl MemoryStore ===

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut MemoryState) -> R) -> R {
        // A panic elsewhere while holding the lock leaves plain data behind, still consistent per record.
        let mut guard = self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }
}

impl PipelineStore for MemoryStore {
    fn put_alert(&self, alert: AlertRecord) {
        self.with(|s| s.alerts.insert(alert.fingerprint, alert));
    }
    fn delete_alert(&self, fingerprint: u64) {
        self.with(|s| s.alerts.remove(&fingerprint));
    }
    fn alerts(&self) -> Vec<AlertRecord> {
        self.with(|s| s.alerts.values().cloned().collect())
    }
    fn put_silence(&self, silence: Silence) {
        self.with(|s| s.silences.insert(silence.id.clone(), silence));
    }
    fn delete_silence(&self, id: &str) {
        self.with(|s| s.silences.remove(id));
    }
    fn silences(&self) -> Vec<Silence> {
        self.with(|s| s.silences.values().cloned().collect())
    }
    fn put_ack(&self, ack: AckRecord) {
        self.with(|s| s.acks.insert(ack.fingerprint, ack));
    }
    fn delete_ack(&self, fingerprint: u64) {
        self.with(|s| s.acks.remove(&fingerprint));
    }
    fn acks(&self) -> Vec<AckRecord> {
        self.with(|s| s.acks.values().cloned().collect())
    }
    fn put_nflog(&self, entry: NflogRecord) {
        self.with(|s| s.nflog.insert((entry.group_key.clone(), entry.integration.clone()), entry));
    }
    fn nflog(&self, group_key: &str, integration: &str) -> Option<NflogRecord> {
        self.with(|s| s.nflog.get(&(group_key.to_owned(), integration.to_owned())).cloned())
    }
    fn delete_nflog(&self, group_key: &str, integration: &str) {
        self.with(|s| s.nflog.remove(&(group_key.to_owned(), integration.to_owned())));
    }
    fn nflog_entries(&self) -> Vec<NflogRecord> {
        self.with(|s| s.nflog.values().cloned().collect())
    }
    fn put_escalation(&self, record: EscalationRecord) {
        self.with(|s| s.escalations.insert((record.fingerprint, record.escalation.clone()), record));
    }
    fn delete_escalations(&self, fingerprint: u64) {
        self.with(|s| s.escalations.retain(|(fp, _), _| *fp != fingerprint));
    }
    fn escalations(&self) -> Vec<EscalationRecord> {
        self.with(|s| s.escalations.values().cloned().collect())
    }
}

// === impl AlertRecord ===

impl AlertRecord {
    pub fn fingerprint(&self) -> Fingerprint {
        Fingerprint(self.fingerprint)
    }

    pub fn is_resolved_at(&self, now: SystemTime) -> bool {
        self.ends_at <= now
    }

    /// The model alert, with its end shown only once it has resolved or when the sender gave it.
    pub fn to_alert(&self, now: SystemTime) -> Alert {
        Alert {
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            starts_at: self.starts_at,
            ends_at: (!self.timeout || self.is_resolved_at(now)).then_some(self.ends_at),
            generator_url: self.generator_url.clone(),
        }
    }
}
