//! The dispatcher: merges incoming alerts by fingerprint, routes them through the tree into aggregation
//! groups, and flushes each group after `group_wait` and then every `group_interval`, deciding from the
//! notification log (like Alertmanager's nflog) whether a receiver must be told anything: new firing alerts,
//! newly resolved ones (with `send_resolved`), or a reminder after `repeat_interval`. Silenced, inhibited and
//! time-muted alerts are filtered at flush. Escalation policies send unacknowledged firing alerts to further
//! receivers. Every delivery runs in its own task with a timeout and retries, so a slow receiver blocks
//! neither other receivers nor rule evaluation, which only hands alerts over a channel.

use std::collections::hash_map::RandomState;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::config::{
    Config, DEFAULT_GROUP_INTERVAL, DEFAULT_GROUP_WAIT, DEFAULT_REPEAT_INTERVAL, GlobalConfig, Receiver,
    Route,
};
use super::inhibit::{CompiledInhibitRule, Inhibitor};
use super::matchers::{MatcherError, Matchers};
use super::silence::{self, Silence, SilenceError, SilenceState};
use super::store::{AckRecord, AlertRecord, EscalationRecord, NflogRecord, PipelineStore};
use super::timeinterval::CompiledTimeInterval;
use crate::{Alert, AlertSink, AlertStatus, Fingerprint, LabelSet, Notification, Notifier, NotifyError};

pub use super::config::IntegrationConfig;

/// How often housekeeping runs: silence gauges, and dropping expired silences and stray resolved alerts.
const MAINTENANCE_INTERVAL: Duration = Duration::from_secs(30);
/// How long expired silences are kept for the API, as Alertmanager's default `--data.retention`.
const SILENCE_RETENTION: Duration = Duration::from_secs(120 * 3600);
/// When an escalation is due but the alert is silenced, inhibited or muted, it is checked again this often.
const ESCALATION_RECHECK: Duration = Duration::from_secs(60);
/// The longest pause between delivery attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Builds the notifier of one integration of a receiver; the server passes one that knows webhooks, Slack,
/// PagerDuty and email.
pub trait NotifierFactory: Send + Sync {
    fn build(
        &self,
        receiver: &Receiver,
        integration: &IntegrationConfig,
        global: &GlobalConfig,
    ) -> Result<Arc<dyn Notifier>, String>;
}

/// Why the dispatcher refused a configuration or a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    #[error("invalid configuration: {0}")]
    Config(#[from] super::config::ConfigError),
    #[error("receiver {receiver:?}: cannot build its {kind} integration #{index}: {message}")]
    Integration { receiver: String, kind: &'static str, index: usize, message: String },
    #[error("invalid matchers: {0}")]
    Matcher(#[from] MatcherError),
    #[error("invalid time interval {name:?}: {message}")]
    TimeInterval { name: String, message: String },
    #[error(transparent)]
    Silence(#[from] SilenceError),
    #[error("no alert with fingerprint {0}: list alerts to find it")]
    UnknownAlert(Fingerprint),
    #[error("alert {0} is not firing: only firing alerts can be acknowledged")]
    NotFiring(Fingerprint),
    #[error("the dispatcher must be started inside a tokio runtime")]
    NoRuntime,
}

/// A transition the server records in the alert history.
#[derive(Clone, Debug, PartialEq)]
pub enum PipelineEvent {
    /// An alert the pipeline held as firing is now resolved.
    Resolved {
        fingerprint: Fingerprint,
        labels: LabelSet,
        at: SystemTime,
    },
    /// A flush found the alert muted by these silences.
    Silenced {
        fingerprint: Fingerprint,
        labels: LabelSet,
        silence_ids: Vec<String>,
        at: SystemTime,
    },
    /// A flush found the alert inhibited by these firing alerts.
    Inhibited {
        fingerprint: Fingerprint,
        labels: LabelSet,
        inhibited_by: Vec<Fingerprint>,
        at: SystemTime,
    },
    /// A previously silenced or inhibited alert is no longer suppressed.
    Unsuppressed {
        fingerprint: Fingerprint,
        labels: LabelSet,
        at: SystemTime,
    },
    Acked {
        fingerprint: Fingerprint,
        labels: LabelSet,
        by: String,
        comment: String,
        at: SystemTime,
    },
    /// Level `level` (1-based) of an escalation policy was sent to its receivers.
    Escalated {
        fingerprint: Fingerprint,
        labels: LabelSet,
        escalation: String,
        level: usize,
        receivers: Vec<String>,
        at: SystemTime,
    },
    Notified {
        receiver: String,
        integration: String,
        group_key: String,
        firing: Vec<Fingerprint>,
        resolved: Vec<Fingerprint>,
        attempts: u32,
        at: SystemTime,
    },
    DeliveryFailed {
        receiver: String,
        integration: String,
        group_key: String,
        fingerprints: Vec<Fingerprint>,
        error: String,
        attempts: u32,
        at: SystemTime,
    },
    SilenceCreated {
        silence: Silence,
    },
    SilenceExpired {
        silence: Silence,
    },
}

/// Options for [`Dispatcher::new`].
#[derive(Clone)]
pub struct DispatcherOptions {
    pub store: Arc<dyn PipelineStore>,
    /// The server's URL, put into notifications for links back.
    pub external_url: String,
    /// Where history events go.
    pub events: Option<mpsc::UnboundedSender<PipelineEvent>>,
    /// The wall-clock time that corresponds to the tokio clock at start (default: now). Wall time then
    /// advances with tokio's clock, so tests with a paused clock see silences and time intervals move too.
    pub wall_clock_start: Option<SystemTime>,
}

impl std::fmt::Debug for DispatcherOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DispatcherOptions").field("external_url", &self.external_url).finish_non_exhaustive()
    }
}

/// Whether an alert currently goes out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertState {
    Active,
    Suppressed,
}

/// One alert as `alerts()` lists it, in the shape of Alertmanager's `/api/v2/alerts`.
#[derive(Clone, Debug, PartialEq)]
pub struct AlertStatusReport {
    pub fingerprint: Fingerprint,
    pub alert: Alert,
    pub status: AlertStatus,
    pub state: AlertState,
    pub silenced_by: Vec<String>,
    pub inhibited_by: Vec<Fingerprint>,
    /// Muted by a route's time interval (for all of its routes).
    pub muted: bool,
    pub acked: Option<AckRecord>,
    pub receivers: Vec<String>,
}

/// The handle: cheap to clone; the background task stops when every handle is dropped.
#[derive(Clone)]
pub struct Dispatcher {
    inner: Arc<Inner>,
    tx: mpsc::UnboundedSender<Msg>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher").finish_non_exhaustive()
    }
}

enum Msg {
    Alerts(Vec<Alert>),
    Sync(oneshot::Sender<()>),
    Wake,
}

struct Inner {
    state: Mutex<State>,
    store: Arc<dyn PipelineStore>,
    factory: Arc<dyn NotifierFactory>,
    events: Option<mpsc::UnboundedSender<PipelineEvent>>,
    external_url: String,
    wall0: SystemTime,
    mono0: Instant,
}

/// One node of the routing tree with inherited settings resolved.
#[derive(Debug)]
struct RouteNode {
    id: String,
    matchers: Matchers,
    continue_matching: bool,
    receiver: String,
    group_by: Vec<String>,
    group_by_all: bool,
    group_wait: Duration,
    group_interval: Duration,
    repeat_interval: Duration,
    mute_time_intervals: Vec<String>,
    active_time_intervals: Vec<String>,
    children: Vec<usize>,
}

#[derive(Debug)]
struct IntegrationRuntime {
    key: String,
    notifier: Arc<dyn Notifier>,
    send_resolved: bool,
    max_alerts: usize,
}

#[derive(Debug)]
struct ReceiverRuntime {
    name: String,
    integrations: Vec<IntegrationRuntime>,
    timeout: Duration,
    retries: u32,
    backoff: Duration,
    max_alerts: usize,
}

#[derive(Debug)]
struct EscalationRuntime {
    name: String,
    matchers: Matchers,
    levels: Vec<(Duration, Vec<String>)>,
}

/// Everything built from one configuration.
#[derive(Debug)]
struct Runtime {
    config: Config,
    routes: Vec<RouteNode>,
    receivers: HashMap<String, Arc<ReceiverRuntime>>,
    inhibit_rules: Vec<CompiledInhibitRule>,
    intervals: HashMap<String, CompiledTimeInterval>,
    escalations: Vec<EscalationRuntime>,
}

#[derive(Debug)]
struct Group {
    route: usize,
    labels: LabelSet,
    alerts: BTreeSet<Fingerprint>,
    next_flush: Option<Instant>,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Maintenance,
    Group(String),
    Escalation(u64, usize),
}

#[derive(Clone, Debug, Default, PartialEq)]
struct Suppression {
    silenced_by: Vec<String>,
    inhibited_by: Vec<Fingerprint>,
}

struct State {
    runtime: Runtime,
    alerts: HashMap<Fingerprint, AlertRecord>,
    silences: BTreeMap<String, Silence>,
    acks: HashMap<Fingerprint, AckRecord>,
    escalation_progress: HashMap<(Fingerprint, String), usize>,
    escalation_timers: HashMap<(u64, usize), Instant>,
    groups: HashMap<String, Group>,
    alert_groups: HashMap<Fingerprint, Vec<String>>,
    suppression: HashMap<Fingerprint, Suppression>,
    timers: BTreeSet<(Instant, TimerKey)>,
    inflight: HashSet<(String, String)>,
    /// Alerts whose resolution was already reported as an event.
    resolved_noted: HashSet<Fingerprint>,
}

// === impl Dispatcher ===

impl Dispatcher {
    /// Builds the pipeline from a checked configuration and starts its background task (call inside a
    /// tokio runtime). State in the store (alerts, silences, acks, escalation progress) is picked up.
    pub fn new(
        config: Config,
        factory: Arc<dyn NotifierFactory>,
        options: DispatcherOptions,
    ) -> Result<Self, DispatchError> {
        let tokio = tokio::runtime::Handle::try_current().map_err(|_| DispatchError::NoRuntime)?;
        config.validate()?;
        let runtime = Runtime::build(config, factory.as_ref())?;
        let mono0 = Instant::now();
        let inner = Arc::new(Inner {
            state: Mutex::new(State {
                runtime,
                alerts: HashMap::new(),
                silences: BTreeMap::new(),
                acks: HashMap::new(),
                escalation_progress: HashMap::new(),
                escalation_timers: HashMap::new(),
                groups: HashMap::new(),
                alert_groups: HashMap::new(),
                suppression: HashMap::new(),
                timers: BTreeSet::new(),
                inflight: HashSet::new(),
                resolved_noted: HashSet::new(),
            }),
            store: options.store,
            factory,
            events: options.events,
            external_url: options.external_url,
            wall0: options.wall_clock_start.unwrap_or_else(SystemTime::now),
            mono0,
        });
        {
            let mut state = inner.lock();
            let now = inner.now();
            for silence in inner.store.silences() {
                state.silences.insert(silence.id.clone(), silence);
            }
            for ack in inner.store.acks() {
                state.acks.insert(Fingerprint(ack.fingerprint), ack);
            }
            for record in inner.store.escalations() {
                state
                    .escalation_progress
                    .insert((Fingerprint(record.fingerprint), record.escalation), record.levels_sent);
            }
            for record in inner.store.alerts() {
                state.alerts.insert(record.fingerprint(), record);
            }
            let fingerprints: Vec<Fingerprint> = state.alerts.keys().copied().collect();
            for fp in fingerprints {
                inner.route_alert(&mut state, fp, now);
                inner.schedule_escalations(&mut state, fp);
            }
            state.timers.insert((mono0, TimerKey::Maintenance));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio.spawn(run(inner.clone(), rx));
        Ok(Self { inner, tx })
    }

    /// Waits until the background task has handled everything sent before this call.
    pub async fn sync(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Sync(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// The current wall-clock time as the pipeline sees it.
    pub fn now(&self) -> SystemTime {
        self.inner.now()
    }

    /// Replaces the configuration, keeping silences, acks, the notification log, escalation progress and
    /// the groups whose route still exists; alerts are routed anew.
    pub fn apply_config(&self, config: Config) -> Result<(), DispatchError> {
        config.validate()?;
        let runtime = Runtime::build(config, self.inner.factory.as_ref())?;
        let mut state = self.inner.lock();
        let now = self.inner.now();
        let old_routes: Vec<String> = state.runtime.routes.iter().map(|r| r.id.clone()).collect();
        state.runtime = runtime;
        let new_index: HashMap<String, usize> =
            state.runtime.routes.iter().enumerate().map(|(i, r)| (r.id.clone(), i)).collect();
        let mut kept = HashMap::new();
        let mut dropped = Vec::new();
        for (key, mut group) in std::mem::take(&mut state.groups) {
            match old_routes.get(group.route).and_then(|id| new_index.get(id)) {
                Some(&index) => {
                    group.route = index;
                    group.alerts.clear();
                    kept.insert(key, group);
                }
                None => dropped.push((key, group.next_flush)),
            }
        }
        for (key, next) in dropped {
            if let Some(at) = next {
                state.timers.remove(&(at, TimerKey::Group(key)));
            }
        }
        state.groups = kept;
        state.alert_groups.clear();
        let timers: Vec<_> = state.escalation_timers.drain().collect();
        for ((fp, index), at) in timers {
            state.timers.remove(&(at, TimerKey::Escalation(fp, index)));
        }
        let fingerprints: Vec<Fingerprint> = state.alerts.keys().copied().collect();
        for fp in fingerprints {
            self.inner.route_alert(&mut state, fp, now);
            self.inner.schedule_escalations(&mut state, fp);
        }
        // Groups of a surviving route that no alert lands in any more are dropped.
        let empty: Vec<(String, Option<Instant>)> = state
            .groups
            .iter()
            .filter(|(_, g)| g.alerts.is_empty())
            .map(|(k, g)| (k.clone(), g.next_flush))
            .collect();
        for (key, next) in empty {
            state.groups.remove(&key);
            if let Some(at) = next {
                state.timers.remove(&(at, TimerKey::Group(key)));
            }
        }
        drop(state);
        let _ = self.tx.send(Msg::Wake);
        Ok(())
    }

    /// Creates a silence, or updates the one with the given id while it has not expired. Returns its id.
    pub fn add_silence(&self, mut silence: Silence) -> Result<String, DispatchError> {
        let now = self.inner.now();
        let mut state = self.inner.lock();
        let existing = (!silence.id.is_empty()).then(|| state.silences.get(&silence.id).cloned());
        match existing {
            Some(None) => return Err(SilenceError::NotFound(silence.id).into()),
            Some(Some(old)) if old.state(now) == SilenceState::Expired => silence.id = silence::new_id(),
            Some(Some(_)) => {}
            None => silence.id = silence::new_id(),
        }
        if silence.starts_at < now {
            silence.starts_at = now;
        }
        silence.updated_at = now;
        silence.validate()?;
        state.silences.insert(silence.id.clone(), silence.clone());
        self.inner.store.put_silence(silence.clone());
        update_silence_gauges(&state, now);
        drop(state);
        let id = silence.id.clone();
        self.inner.emit(PipelineEvent::SilenceCreated { silence });
        Ok(id)
    }

    /// Expires a silence now (a pending one never starts).
    pub fn expire_silence(&self, id: &str) -> Result<(), DispatchError> {
        let now = self.inner.now();
        let mut state = self.inner.lock();
        let silence = state.silences.get_mut(id).ok_or_else(|| SilenceError::NotFound(id.to_owned()))?;
        match silence.state(now) {
            SilenceState::Expired => return Err(SilenceError::AlreadyExpired(id.to_owned()).into()),
            SilenceState::Pending => {
                silence.starts_at = now;
                silence.ends_at = now;
            }
            SilenceState::Active => silence.ends_at = now,
        }
        silence.updated_at = now;
        let silence = silence.clone();
        self.inner.store.put_silence(silence.clone());
        update_silence_gauges(&state, now);
        drop(state);
        self.inner.emit(PipelineEvent::SilenceExpired { silence });
        Ok(())
    }

    /// All silences kept (expired ones for a retention period), with their state now.
    pub fn silences(&self) -> Vec<(Silence, SilenceState)> {
        let now = self.inner.now();
        let state = self.inner.lock();
        state.silences.values().map(|s| (s.clone(), s.state(now))).collect()
    }

    /// Acknowledges a firing alert: escalation stops, and reminders too when `acknowledgement.stops_reminders`.
    pub fn ack(&self, fingerprint: Fingerprint, by: &str, comment: &str) -> Result<AckRecord, DispatchError> {
        let now = self.inner.now();
        let mut state = self.inner.lock();
        let alert = state.alerts.get(&fingerprint).ok_or(DispatchError::UnknownAlert(fingerprint))?;
        if alert.is_resolved_at(now) {
            return Err(DispatchError::NotFiring(fingerprint));
        }
        let labels = alert.labels.clone();
        let record =
            AckRecord { fingerprint: fingerprint.0, by: by.to_owned(), comment: comment.to_owned(), at: now };
        state.acks.insert(fingerprint, record.clone());
        self.inner.store.put_ack(record.clone());
        drop(state);
        self.inner.emit(PipelineEvent::Acked {
            fingerprint,
            labels,
            by: by.to_owned(),
            comment: comment.to_owned(),
            at: now,
        });
        Ok(record)
    }

    /// Withdraws an acknowledgement; reminders and escalation resume.
    pub fn unack(&self, fingerprint: Fingerprint) -> Result<(), DispatchError> {
        let mut state = self.inner.lock();
        if state.acks.remove(&fingerprint).is_none() {
            return Err(DispatchError::UnknownAlert(fingerprint));
        }
        self.inner.store.delete_ack(fingerprint.0);
        self.inner.schedule_escalations(&mut state, fingerprint);
        drop(state);
        let _ = self.tx.send(Msg::Wake);
        Ok(())
    }

    /// Every alert the pipeline holds, with whether it is silenced, inhibited, muted or acknowledged.
    pub fn alerts(&self) -> Vec<AlertStatusReport> {
        let now = self.inner.now();
        let state = self.inner.lock();
        let inhibitor = build_inhibitor(&state, now);
        let mut out: Vec<AlertStatusReport> = state
            .alerts
            .values()
            .map(|record| {
                let fp = record.fingerprint();
                let suppression = suppression_of(&state, &inhibitor, record, now);
                let groups = state.alert_groups.get(&fp).map_or(&[][..], Vec::as_slice);
                let mut receivers: Vec<String> = groups
                    .iter()
                    .filter_map(|g| state.groups.get(g))
                    .map(|g| state.runtime.routes[g.route].receiver.clone())
                    .collect();
                receivers.sort();
                receivers.dedup();
                let muted = !groups.is_empty()
                    && groups
                        .iter()
                        .filter_map(|g| state.groups.get(g))
                        .all(|g| route_muted(&state.runtime, g.route, now));
                let suppressed =
                    !suppression.silenced_by.is_empty() || !suppression.inhibited_by.is_empty() || muted;
                AlertStatusReport {
                    fingerprint: fp,
                    alert: record.to_alert(now),
                    status: if record.is_resolved_at(now) {
                        AlertStatus::Resolved
                    } else {
                        AlertStatus::Firing
                    },
                    state: if suppressed { AlertState::Suppressed } else { AlertState::Active },
                    silenced_by: suppression.silenced_by,
                    inhibited_by: suppression.inhibited_by,
                    muted,
                    acked: state.acks.get(&fp).cloned(),
                    receivers,
                }
            })
            .collect();
        out.sort_by(|a, b| a.alert.labels.cmp(&b.alert.labels));
        out
    }
}

impl AlertSink for Dispatcher {
    /// Hands the alerts to the background task; never blocks.
    fn send(&self, alerts: Vec<Alert>) {
        if !alerts.is_empty() {
            let _ = self.tx.send(Msg::Alerts(alerts));
        }
    }
}

// === impl Runtime ===

impl Runtime {
    fn build(config: Config, factory: &dyn NotifierFactory) -> Result<Self, DispatchError> {
        let mut routes = Vec::new();
        if let Some(root) = &config.route {
            let defaults = RouteNode {
                id: String::new(),
                matchers: Matchers::default(),
                continue_matching: false,
                receiver: String::new(),
                group_by: Vec::new(),
                group_by_all: false,
                group_wait: DEFAULT_GROUP_WAIT,
                group_interval: DEFAULT_GROUP_INTERVAL,
                repeat_interval: DEFAULT_REPEAT_INTERVAL,
                mute_time_intervals: Vec::new(),
                active_time_intervals: Vec::new(),
                children: Vec::new(),
            };
            flatten_route(root, &defaults, "{}".to_owned(), &mut routes)?;
        }
        let mut receivers = HashMap::new();
        for receiver in &config.receivers {
            let mut integrations = Vec::new();
            for (index, integration) in receiver.integrations().into_iter().enumerate() {
                let notifier = factory.build(receiver, &integration, &config.global).map_err(|message| {
                    DispatchError::Integration {
                        receiver: receiver.name.clone(),
                        kind: integration.kind(),
                        index,
                        message,
                    }
                })?;
                integrations.push(IntegrationRuntime {
                    key: format!("{}/{}/{index}", receiver.name, integration.kind()),
                    notifier,
                    send_resolved: integration.send_resolved(),
                    max_alerts: integration.max_alerts(),
                });
            }
            receivers.insert(
                receiver.name.clone(),
                Arc::new(ReceiverRuntime {
                    name: receiver.name.clone(),
                    integrations,
                    timeout: receiver.timeout(),
                    retries: receiver.retries(),
                    backoff: receiver.retry_backoff(),
                    max_alerts: receiver.max_alerts.unwrap_or(0),
                }),
            );
        }
        let inhibit_rules = config.inhibit_rules.iter().map(CompiledInhibitRule::from_config).collect();
        let mut intervals = HashMap::new();
        for interval in config.all_time_intervals() {
            let compiled = interval.compile().map_err(|e| DispatchError::TimeInterval {
                name: interval.name.clone(),
                message: e.to_string(),
            })?;
            intervals.insert(interval.name.clone(), compiled);
        }
        let escalations = config
            .escalations
            .iter()
            .map(|e| {
                Ok(EscalationRuntime {
                    name: e.name.clone(),
                    matchers: e.all_matchers()?,
                    levels: e.levels.iter().map(|l| (l.after.0, l.receivers.clone())).collect(),
                })
            })
            .collect::<Result<_, MatcherError>>()?;
        Ok(Self { config, routes, receivers, inhibit_rules, intervals, escalations })
    }

    /// The routes an alert goes to: Alertmanager's depth-first match with `continue`.
    fn match_routes(&self, labels: &LabelSet) -> Vec<usize> {
        let mut out = Vec::new();
        if !self.routes.is_empty() {
            self.match_node(0, labels, &mut out);
        }
        out
    }

    fn match_node(&self, index: usize, labels: &LabelSet, out: &mut Vec<usize>) -> bool {
        let node = &self.routes[index];
        if !node.matchers.matches(labels) {
            return false;
        }
        let mut any = false;
        for &child in &node.children {
            if self.match_node(child, labels, out) {
                any = true;
                if !self.routes[child].continue_matching {
                    break;
                }
            }
        }
        if !any {
            out.push(index);
        }
        true
    }
}

/// Adds a route and its children to `out` with settings inherited from the parent, returning its index.
fn flatten_route(
    route: &Route,
    parent: &RouteNode,
    id: String,
    out: &mut Vec<RouteNode>,
) -> Result<usize, MatcherError> {
    let matchers = route.all_matchers()?;
    let (group_by, group_by_all) = match &route.group_by {
        Some(labels) if labels.iter().any(|l| l == "...") => (Vec::new(), true),
        Some(labels) => (labels.clone(), false),
        None => (parent.group_by.clone(), parent.group_by_all),
    };
    let index = out.len();
    out.push(RouteNode {
        id: id.clone(),
        matchers,
        continue_matching: route.continue_matching,
        receiver: route.receiver.clone().unwrap_or_else(|| parent.receiver.clone()),
        group_by,
        group_by_all,
        group_wait: route.group_wait.map_or(parent.group_wait, |d| d.0),
        group_interval: route.group_interval.map_or(parent.group_interval, |d| d.0),
        repeat_interval: route.repeat_interval.map_or(parent.repeat_interval, |d| d.0),
        // Time intervals are not inherited, as in Alertmanager.
        mute_time_intervals: route.mute_time_intervals.clone(),
        active_time_intervals: route.active_time_intervals.clone(),
        children: Vec::new(),
    });
    for (i, child) in route.routes.iter().enumerate() {
        let child_matchers = child.all_matchers()?;
        let child_id = format!("{id}/{i}{child_matchers}");
        // The parent node is read back from `out` so the child inherits resolved settings.
        let child_index = {
            let parent_node = clone_settings(&out[index]);
            flatten_route(child, &parent_node, child_id, out)?
        };
        out[index].children.push(child_index);
    }
    Ok(index)
}

/// The inheritable settings of a node (receiver, grouping and timing), for its children.
fn clone_settings(node: &RouteNode) -> RouteNode {
    RouteNode {
        id: String::new(),
        matchers: Matchers::default(),
        continue_matching: false,
        receiver: node.receiver.clone(),
        group_by: node.group_by.clone(),
        group_by_all: node.group_by_all,
        group_wait: node.group_wait,
        group_interval: node.group_interval,
        repeat_interval: node.repeat_interval,
        mute_time_intervals: Vec::new(),
        active_time_intervals: Vec::new(),
        children: Vec::new(),
    }
}

/// Whether a route's time intervals mute it at `now`.
fn route_muted(runtime: &Runtime, route: usize, now: SystemTime) -> bool {
    let node = &runtime.routes[route];
    let active = |name: &String| runtime.intervals.get(name).is_some_and(|i| i.contains(now));
    node.mute_time_intervals.iter().any(active)
        || (!node.active_time_intervals.is_empty() && !node.active_time_intervals.iter().any(active))
}

fn build_inhibitor(state: &State, now: SystemTime) -> Inhibitor {
    if state.runtime.inhibit_rules.is_empty() {
        return Inhibitor::default();
    }
    let firing =
        state.alerts.values().filter(|a| !a.is_resolved_at(now)).map(|a| (a.fingerprint(), &a.labels));
    Inhibitor::new(&state.runtime.inhibit_rules, firing)
}

fn suppression_of(
    state: &State,
    inhibitor: &Inhibitor,
    record: &AlertRecord,
    now: SystemTime,
) -> Suppression {
    Suppression {
        silenced_by: state
            .silences
            .values()
            .filter(|s| s.mutes(&record.labels, now))
            .map(|s| s.id.clone())
            .collect(),
        inhibited_by: inhibitor.inhibited_by(record.fingerprint(), &record.labels),
    }
}

fn update_silence_gauges(state: &State, now: SystemTime) {
    let mut counts = [0usize; 3];
    for silence in state.silences.values() {
        counts[silence.state(now) as usize] += 1;
    }
    for (state_name, count) in [("pending", counts[0]), ("active", counts[1]), ("expired", counts[2])] {
        metrics::gauge!("sightline_silences", "state" => state_name).set(count as f64);
    }
}

/// Alertmanager's nflog decision: notify on new firing alerts, on all alerts resolving, on newly resolved
/// ones (with `send_resolved`), or when the repeat interval has passed since the last notification.
fn needs_update(
    entry: Option<&NflogRecord>,
    firing: &BTreeSet<u64>,
    resolved: &BTreeSet<u64>,
    send_resolved: bool,
    reminder_due: impl FnOnce(&NflogRecord) -> bool,
) -> bool {
    let Some(entry) = entry else {
        return !firing.is_empty();
    };
    if !firing.is_subset(&entry.firing) {
        return true;
    }
    if firing.is_empty() {
        return !entry.firing.is_empty();
    }
    if send_resolved && !resolved.is_subset(&entry.resolved) {
        return true;
    }
    reminder_due(entry)
}

fn label_string(labels: &LabelSet) -> String {
    let mut out = String::from("{");
    for (i, (k, v)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("{k}={v:?}"));
    }
    out.push('}');
    out
}

/// A random factor in [0.5, 1.5) for backoff jitter, from std's randomly keyed hasher.
fn jitter() -> f64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u8(0);
    0.5 + (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The pairs every map has in common; clones only the first map.
fn common<'a>(mut maps: impl Iterator<Item = &'a LabelSet>) -> LabelSet {
    let Some(first) = maps.next() else { return LabelSet::new() };
    let mut acc = first.clone();
    for map in maps {
        if acc.is_empty() {
            break;
        }
        acc.retain(|k, v| map.get(k) == Some(v));
    }
    acc
}

// === impl Inner ===

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn now(&self) -> SystemTime {
        self.wall0 + Instant::now().saturating_duration_since(self.mono0)
    }

    /// The tokio instant at which the wall clock reads `at` (now when that has passed).
    fn instant_at(&self, at: SystemTime) -> Instant {
        let now = Instant::now();
        match at.duration_since(self.now()) {
            Ok(ahead) => now + ahead,
            Err(_) => now,
        }
    }

    fn emit(&self, event: PipelineEvent) {
        if let Some(events) = &self.events {
            let _ = events.send(event);
        }
    }

    fn ingest(&self, alerts: Vec<Alert>) {
        let now = self.now();
        let mut state = self.lock();
        let resolve_timeout = state.runtime.config.resolve_timeout();
        for alert in alerts {
            let fp = alert.fingerprint();
            let (ends_at, timeout) = match alert.ends_at {
                Some(end) => (end, false),
                None => (now + resolve_timeout, true),
            };
            let resolved = ends_at <= now;
            let existing = state.alerts.get(&fp);
            let was_firing = existing.is_some_and(|e| !e.is_resolved_at(now));
            if existing.is_none() && resolved {
                // A resolved alert the pipeline never saw firing has nothing to tell anyone.
                continue;
            }
            let firing_since = match existing {
                Some(e) if was_firing => e.firing_since,
                _ => now,
            };
            let starts_at = match existing {
                Some(e) if was_firing => e.starts_at.min(alert.starts_at),
                _ => alert.starts_at,
            };
            let record = AlertRecord {
                fingerprint: fp.0,
                labels: alert.labels,
                annotations: alert.annotations,
                starts_at,
                ends_at,
                timeout,
                generator_url: alert.generator_url,
                updated_at: now,
                firing_since,
            };
            if !was_firing && !resolved {
                // Firing anew: acknowledgements and escalation progress belong to the previous episode.
                if state.acks.remove(&fp).is_some() {
                    self.store.delete_ack(fp.0);
                }
                if state.escalation_progress.keys().any(|(f, _)| *f == fp) {
                    state.escalation_progress.retain(|(f, _), _| *f != fp);
                    self.store.delete_escalations(fp.0);
                }
            }
            if resolved {
                self.note_resolved(&mut state, fp, &record.labels, now);
            } else {
                state.resolved_noted.remove(&fp);
            }
            self.store.put_alert(record.clone());
            state.alerts.insert(fp, record);
            self.route_alert(&mut state, fp, now);
            if !resolved && !was_firing {
                self.schedule_escalations(&mut state, fp);
            }
        }
    }

    /// Puts an alert into the groups of the routes it matches, making groups (and their first flush timer)
    /// as needed.
    fn route_alert(&self, state: &mut State, fp: Fingerprint, now: SystemTime) {
        // Borrowing the fields apart lets the alert's labels be read in place while groups change.
        let State { alerts, runtime, groups, timers, alert_groups, .. } = state;
        let Some(record) = alerts.get(&fp) else { return };
        let labels = &record.labels;
        for route in runtime.match_routes(labels) {
            let node = &runtime.routes[route];
            let group_labels: LabelSet = if node.group_by_all {
                labels.clone()
            } else {
                node.group_by.iter().filter_map(|l| labels.get(l).map(|v| (l.clone(), v.clone()))).collect()
            };
            let key = format!("{}:{}", node.id, label_string(&group_labels));
            let group = groups.entry(key.clone()).or_insert_with(|| {
                // Alertmanager flushes at once when the alert has been firing for longer than group_wait.
                let wait =
                    if record.starts_at + node.group_wait < now { Duration::ZERO } else { node.group_wait };
                let at = Instant::now() + wait;
                timers.insert((at, TimerKey::Group(key.clone())));
                Group { route, labels: group_labels, alerts: BTreeSet::new(), next_flush: Some(at) }
            });
            group.alerts.insert(fp);
            let memberships = alert_groups.entry(fp).or_default();
            if !memberships.contains(&key) {
                memberships.push(key);
            }
        }
    }

    /// Arms the timer of the next escalation level of each policy the firing alert matches.
    fn schedule_escalations(&self, state: &mut State, fp: Fingerprint) {
        let Some(record) = state.alerts.get(&fp) else { return };
        if state.acks.contains_key(&fp) {
            return;
        }
        let mut arm = Vec::new();
        for (index, escalation) in state.runtime.escalations.iter().enumerate() {
            if !escalation.matchers.matches(&record.labels) {
                continue;
            }
            let sent = state.escalation_progress.get(&(fp, escalation.name.clone())).copied().unwrap_or(0);
            if let Some((after, _)) = escalation.levels.get(sent) {
                arm.push((index, self.instant_at(record.firing_since + *after)));
            }
        }
        for (index, at) in arm {
            if let Some(old) = state.escalation_timers.insert((fp.0, index), at) {
                state.timers.remove(&(old, TimerKey::Escalation(fp.0, index)));
            }
            state.timers.insert((at, TimerKey::Escalation(fp.0, index)));
        }
    }

    /// Runs every timer that is due.
    fn run_due(self: &Arc<Self>) {
        let mut state = self.lock();
        let now_instant = Instant::now();
        let now = self.now();
        let mut inhibitor = None;
        while let Some((at, _)) = state.timers.first() {
            if *at > now_instant {
                break;
            }
            let Some((_, key)) = state.timers.pop_first() else { break };
            match key {
                TimerKey::Maintenance => {
                    self.maintain(&mut state, now);
                    state.timers.insert((now_instant + MAINTENANCE_INTERVAL, TimerKey::Maintenance));
                }
                TimerKey::Group(key) => {
                    let inhibitor = inhibitor.get_or_insert_with(|| build_inhibitor(&state, now));
                    self.flush(&mut state, &key, inhibitor, now);
                }
                TimerKey::Escalation(fp, index) => {
                    state.escalation_timers.remove(&(fp, index));
                    let inhibitor = inhibitor.get_or_insert_with(|| build_inhibitor(&state, now));
                    self.escalate(&mut state, Fingerprint(fp), index, inhibitor, now);
                }
            }
        }
    }

    fn maintain(&self, state: &mut State, now: SystemTime) {
        let stale: Vec<String> = state
            .silences
            .values()
            .filter(|s| s.ends_at + SILENCE_RETENTION < now)
            .map(|s| s.id.clone())
            .collect();
        for id in stale {
            state.silences.remove(&id);
            self.store.delete_silence(&id);
        }
        // Resolved alerts that no group holds (their routes went away on reload) are forgotten.
        let orphans: Vec<Fingerprint> = state
            .alerts
            .iter()
            .filter(|(fp, a)| a.is_resolved_at(now) && state.alert_groups.get(fp).is_none_or(Vec::is_empty))
            .map(|(fp, _)| *fp)
            .collect();
        for fp in orphans {
            self.forget_alert(state, fp);
        }
        update_silence_gauges(state, now);
    }

    /// Reports an alert's resolution once, whether the sender said so or its resolve timeout passed.
    fn note_resolved(&self, state: &mut State, fp: Fingerprint, labels: &LabelSet, now: SystemTime) {
        if state.resolved_noted.insert(fp) {
            self.emit(PipelineEvent::Resolved { fingerprint: fp, labels: labels.clone(), at: now });
        }
    }

    fn forget_alert(&self, state: &mut State, fp: Fingerprint) {
        state.resolved_noted.remove(&fp);
        state.alerts.remove(&fp);
        state.alert_groups.remove(&fp);
        state.suppression.remove(&fp);
        self.store.delete_alert(fp.0);
        if state.acks.remove(&fp).is_some() {
            self.store.delete_ack(fp.0);
        }
        state.escalation_progress.retain(|(f, _), _| *f != fp);
        self.store.delete_escalations(fp.0);
    }

    /// Records suppression changes as events and returns whether the alert is suppressed.
    fn note_suppression(
        &self,
        state: &mut State,
        fp: Fingerprint,
        suppression: Suppression,
        now: SystemTime,
    ) {
        let unchanged = match state.suppression.get(&fp) {
            None => suppression.silenced_by.is_empty() && suppression.inhibited_by.is_empty(),
            Some(previous) => *previous == suppression,
        };
        if unchanged {
            return;
        }
        let previous = state.suppression.get(&fp).cloned().unwrap_or_default();
        let Some(record) = state.alerts.get(&fp) else { return };
        if !suppression.silenced_by.is_empty() && previous.silenced_by != suppression.silenced_by {
            self.emit(PipelineEvent::Silenced {
                fingerprint: fp,
                labels: record.labels.clone(),
                silence_ids: suppression.silenced_by.clone(),
                at: now,
            });
        }
        if !suppression.inhibited_by.is_empty() && previous.inhibited_by != suppression.inhibited_by {
            self.emit(PipelineEvent::Inhibited {
                fingerprint: fp,
                labels: record.labels.clone(),
                inhibited_by: suppression.inhibited_by.clone(),
                at: now,
            });
        }
        let was = !previous.silenced_by.is_empty() || !previous.inhibited_by.is_empty();
        let is = !suppression.silenced_by.is_empty() || !suppression.inhibited_by.is_empty();
        if was && !is {
            self.emit(PipelineEvent::Unsuppressed {
                fingerprint: fp,
                labels: record.labels.clone(),
                at: now,
            });
        }
        if is {
            state.suppression.insert(fp, suppression);
        } else {
            state.suppression.remove(&fp);
        }
    }

    fn flush(self: &Arc<Self>, state: &mut State, key: &str, inhibitor: &Inhibitor, now: SystemTime) {
        let Some(group) = state.groups.get(key) else { return };
        let route = group.route;
        let group_labels = group.labels.clone();
        let members: Vec<Fingerprint> = group.alerts.iter().copied().collect();
        let node = &state.runtime.routes[route];
        let (receiver_name, group_interval, repeat_interval) =
            (node.receiver.clone(), node.group_interval, node.repeat_interval);
        let next = Instant::now() + group_interval;
        if let Some(group) = state.groups.get_mut(key) {
            group.next_flush = Some(next);
        }
        state.timers.insert((next, TimerKey::Group(key.to_owned())));

        let muted = route_muted(&state.runtime, route, now);
        let send_resolved_while_silenced = state.runtime.config.silencing.send_resolved_while_silenced;
        let stops_reminders = state.runtime.config.acknowledgement.stops_reminders;
        let mut included: Vec<(AlertStatus, Fingerprint)> = Vec::new();
        let mut resolved_members = Vec::new();
        for fp in &members {
            let Some(record) = state.alerts.get(fp) else { continue };
            let resolved = record.is_resolved_at(now);
            let suppression = suppression_of(state, inhibitor, record, now);
            if resolved {
                resolved_members.push(*fp);
                if !state.resolved_noted.contains(fp) {
                    let labels = record.labels.clone();
                    self.note_resolved(state, *fp, &labels, now);
                }
            }
            let silenced = !suppression.silenced_by.is_empty();
            let inhibited = !suppression.inhibited_by.is_empty();
            self.note_suppression(state, *fp, suppression, now);
            let keep = match (silenced || inhibited, resolved) {
                (false, _) => true,
                (true, true) => send_resolved_while_silenced && !inhibited,
                (true, false) => false,
            };
            if keep {
                included.push((if resolved { AlertStatus::Resolved } else { AlertStatus::Firing }, *fp));
            }
        }
        let included_set: HashSet<Fingerprint> = included.iter().map(|(_, fp)| *fp).collect();
        let Some(receiver) = state.runtime.receivers.get(&receiver_name).cloned() else { return };
        if !muted && !included.is_empty() {
            let firing: BTreeSet<u64> =
                included.iter().filter(|(s, _)| *s == AlertStatus::Firing).map(|(_, fp)| fp.0).collect();
            let resolved: BTreeSet<u64> =
                included.iter().filter(|(s, _)| *s == AlertStatus::Resolved).map(|(_, fp)| fp.0).collect();
            let all_acked =
                stops_reminders && firing.iter().all(|fp| state.acks.contains_key(&Fingerprint(*fp)));
            for integration in &receiver.integrations {
                let inflight_key = (key.to_owned(), integration.key.clone());
                if state.inflight.contains(&inflight_key) {
                    continue;
                }
                let entry = self.store.nflog(key, &integration.key);
                let due = |e: &NflogRecord| !all_acked && e.sent_at + repeat_interval <= now;
                if !needs_update(entry.as_ref(), &firing, &resolved, integration.send_resolved, due) {
                    continue;
                }
                let log = NflogRecord {
                    group_key: key.to_owned(),
                    integration: integration.key.clone(),
                    firing: firing.clone(),
                    resolved: resolved.clone(),
                    sent_at: now,
                };
                // A resolution this integration was already told of is not repeated: the alert stays in
                // the group until the flush after the one that sent it, and a change in between (another
                // alert resolving) must not carry it again. Alertmanager drops it from the group as soon
                // as the notification that carried it succeeded.
                let told_resolved = |fp: &Fingerprint| {
                    entry.as_ref().is_some_and(|e| e.resolved.contains(&fp.0) && !e.firing.contains(&fp.0))
                };
                let mut alerts: Vec<(AlertStatus, Alert)> = included
                    .iter()
                    .filter(|(s, fp)| {
                        *s == AlertStatus::Firing || (integration.send_resolved && !told_resolved(fp))
                    })
                    .filter_map(|(s, fp)| state.alerts.get(fp).map(|r| (*s, r.to_alert(now))))
                    .collect();
                if alerts.is_empty() {
                    // Only resolved alerts and the integration doesn't want them: log, so they aren't
                    // considered again, as Alertmanager does.
                    self.store.put_nflog(log);
                    continue;
                }
                alerts.sort_by(|a, b| a.1.labels.cmp(&b.1.labels));
                let notification = self.notification(&receiver, integration, key, &group_labels, alerts);
                state.inflight.insert(inflight_key);
                self.spawn_delivery(
                    receiver.clone(),
                    integration.notifier.clone(),
                    integration.key.clone(),
                    notification,
                    Some(log),
                );
            }
        }
        // Resolved alerts leave the group once no integration still believes them firing (or they were not
        // to be sent at all); an alert in no group any more is forgotten.
        for fp in resolved_members {
            let pending = !muted
                && included_set.contains(&fp)
                && receiver.integrations.iter().any(|i| {
                    state.inflight.contains(&(key.to_owned(), i.key.clone()))
                        || self.store.nflog(key, &i.key).is_some_and(|e| e.firing.contains(&fp.0))
                });
            if pending {
                continue;
            }
            if let Some(group) = state.groups.get_mut(key) {
                group.alerts.remove(&fp);
            }
            if let Some(memberships) = state.alert_groups.get_mut(&fp) {
                memberships.retain(|g| g != key);
                if memberships.is_empty() {
                    self.forget_alert(state, fp);
                }
            }
        }
        if state.groups.get(key).is_some_and(|g| g.alerts.is_empty()) {
            state.groups.remove(key);
            state.timers.remove(&(next, TimerKey::Group(key.to_owned())));
            for integration in &receiver.integrations {
                if !state.inflight.contains(&(key.to_owned(), integration.key.clone())) {
                    self.store.delete_nflog(key, &integration.key);
                }
            }
        }
    }

    fn escalate(
        self: &Arc<Self>,
        state: &mut State,
        fp: Fingerprint,
        index: usize,
        inhibitor: &Inhibitor,
        now: SystemTime,
    ) {
        let Some(record) = state.alerts.get(&fp).cloned() else { return };
        if record.is_resolved_at(now) || state.acks.contains_key(&fp) {
            return;
        }
        let Some(escalation) = state.runtime.escalations.get(index) else { return };
        let name = escalation.name.clone();
        let sent = state.escalation_progress.get(&(fp, name.clone())).copied().unwrap_or(0);
        let Some((after, receivers)) = escalation.levels.get(sent).cloned() else { return };
        if record.firing_since + after > now {
            // Timer fired early (re-armed after a reload); wait for the real deadline.
            self.schedule_escalations(state, fp);
            return;
        }
        let suppression = suppression_of(state, inhibitor, &record, now);
        let groups = state.alert_groups.get(&fp).cloned().unwrap_or_default();
        let muted = !groups.is_empty()
            && groups
                .iter()
                .filter_map(|g| state.groups.get(g))
                .all(|g| route_muted(&state.runtime, g.route, now));
        if !suppression.silenced_by.is_empty() || !suppression.inhibited_by.is_empty() || muted {
            let at = Instant::now() + ESCALATION_RECHECK;
            state.escalation_timers.insert((fp.0, index), at);
            state.timers.insert((at, TimerKey::Escalation(fp.0, index)));
            return;
        }
        let level = sent + 1;
        let group_key = format!("escalation/{name}/{level}/{fp}");
        for receiver_name in &receivers {
            let Some(receiver) = state.runtime.receivers.get(receiver_name).cloned() else { continue };
            for integration in &receiver.integrations {
                let alerts = vec![(AlertStatus::Firing, record.to_alert(now))];
                let notification =
                    self.notification(&receiver, integration, &group_key, &record.labels, alerts);
                self.spawn_delivery(
                    receiver.clone(),
                    integration.notifier.clone(),
                    integration.key.clone(),
                    notification,
                    None,
                );
            }
        }
        state.escalation_progress.insert((fp, name.clone()), level);
        self.store.put_escalation(EscalationRecord {
            fingerprint: fp.0,
            escalation: name.clone(),
            levels_sent: level,
            updated_at: now,
        });
        self.emit(PipelineEvent::Escalated {
            fingerprint: fp,
            labels: record.labels.clone(),
            escalation: name,
            level,
            receivers,
            at: now,
        });
        self.schedule_escalations(state, fp);
    }

    fn notification(
        &self,
        receiver: &ReceiverRuntime,
        integration: &IntegrationRuntime,
        group_key: &str,
        group_labels: &LabelSet,
        mut alerts: Vec<(AlertStatus, Alert)>,
    ) -> Notification {
        let status = if alerts.iter().any(|(s, _)| *s == AlertStatus::Firing) {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        };
        let common_labels = common(alerts.iter().map(|(_, a)| &a.labels));
        let common_annotations = common(alerts.iter().map(|(_, a)| &a.annotations));
        let limit = match (integration.max_alerts, receiver.max_alerts) {
            (0, 0) => usize::MAX,
            (0, n) | (n, 0) => n,
            (a, b) => a.min(b),
        };
        let truncated_alerts = alerts.len().saturating_sub(limit);
        alerts.truncate(limit);
        Notification {
            receiver: receiver.name.clone(),
            group_key: group_key.to_owned(),
            group_labels: group_labels.clone(),
            common_labels,
            common_annotations,
            status,
            alerts,
            truncated_alerts,
            external_url: self.external_url.clone(),
        }
    }

    /// Delivers in a task of its own: attempts with a timeout, retries with exponential backoff and jitter
    /// for retryable errors, then records the outcome.
    fn spawn_delivery(
        self: &Arc<Self>,
        receiver: Arc<ReceiverRuntime>,
        notifier: Arc<dyn Notifier>,
        integration: String,
        notification: Notification,
        log: Option<NflogRecord>,
    ) {
        let inner = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let mut backoff = receiver.backoff;
            let mut attempts = 0u32;
            let outcome = loop {
                attempts += 1;
                let result =
                    match tokio::time::timeout(receiver.timeout, notifier.notify(&notification)).await {
                        Ok(result) => result,
                        Err(_) => Err(NotifyError::retryable(format!(
                            "timed out after {}",
                            super::duration::format(receiver.timeout)
                        ))),
                    };
                match result {
                    Ok(()) => break Ok(()),
                    Err(e) if e.retryable && attempts <= receiver.retries => {
                        tracing::debug!(receiver = %receiver.name, %integration, attempt = attempts, error = %e, "notification failed, retrying");
                        tokio::time::sleep(backoff.mul_f64(jitter())).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                    }
                    Err(e) => break Err(e),
                }
            };
            let elapsed = started.elapsed().as_secs_f64();
            metrics::histogram!("sightline_notification_latency_seconds", "receiver" => receiver.name.clone()).record(elapsed);
            let at = inner.now();
            // Fingerprints are hashed only when someone listens for events.
            let fingerprints = |status| {
                if inner.events.is_none() {
                    return Vec::new();
                }
                notification
                    .alerts
                    .iter()
                    .filter(|(s, _)| *s == status)
                    .map(|(_, a)| a.fingerprint())
                    .collect::<Vec<_>>()
            };
            match outcome {
                Ok(()) => {
                    metrics::counter!("sightline_notifications_total", "receiver" => receiver.name.clone(), "outcome" => "success").increment(1);
                    if let Some(log) = log {
                        inner.store.put_nflog(log);
                    }
                    inner.emit(PipelineEvent::Notified {
                        receiver: receiver.name.clone(),
                        integration: integration.clone(),
                        group_key: notification.group_key.clone(),
                        firing: fingerprints(AlertStatus::Firing),
                        resolved: fingerprints(AlertStatus::Resolved),
                        attempts,
                        at,
                    });
                }
                Err(e) => {
                    metrics::counter!("sightline_notifications_total", "receiver" => receiver.name.clone(), "outcome" => "failure").increment(1);
                    tracing::warn!(receiver = %receiver.name, %integration, attempts, error = %e, "notification failed; will try again at the next group interval");
                    let mut all = fingerprints(AlertStatus::Firing);
                    all.extend(fingerprints(AlertStatus::Resolved));
                    inner.emit(PipelineEvent::DeliveryFailed {
                        receiver: receiver.name.clone(),
                        integration: integration.clone(),
                        group_key: notification.group_key.clone(),
                        fingerprints: all,
                        error: e.message,
                        attempts,
                        at,
                    });
                }
            }
            inner.lock().inflight.remove(&(notification.group_key.clone(), integration));
        });
    }
}

/// The background task: ingests alerts and runs timers until every handle is gone.
async fn run(inner: Arc<Inner>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    loop {
        let next = inner.lock().timers.first().map(|(at, _)| *at);
        let sleep =
            tokio::time::sleep_until(next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)));
        tokio::select! {
            biased;
            msg = rx.recv() => match msg {
                None => break,
                Some(Msg::Alerts(alerts)) => inner.ingest(alerts),
                Some(Msg::Sync(done)) => {
                    let _ = done.send(());
                }
                Some(Msg::Wake) => {}
            },
            () = sleep => inner.run_due(),
        }
    }
}
