//! Synchronous commit: an active node acknowledges a commit only once its passive copy has
//! synced the block that holds it (block mode's acknowledgement), so that a failover to that
//! copy loses nothing that was acknowledged.
//!
//! The wait is in the commit gate's `confirm`, after the commit is durable here: group
//! commit covers it (every committer waiting for a position the passive's next sync covers
//! wakes at once). When the passive does not confirm within the timeout, the node either
//! refuses the commit (`strict`) or degrades to asynchronous commit. Degrading is announced
//! at the witness first: the active claims synchronous commit there (`WitnessRecord::
//! synchronous`) only while every acknowledged commit is on the passive, and a renewal that
//! clears the claim must succeed before any commit is acknowledged without the passive. A
//! failover whose witness record still names the new active as synchronous is therefore
//! lossless, if it holds everything it acknowledged. Back to synchronous: once the passive
//! has everything made durable up to a point after which commits wait for it again.

pub use super::block_source::Acknowledged;
use bluejet_engine::LogPosition;
use parking_lot::{Condvar, Mutex};
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The synchronous commit level of a database.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncLevel {
    /// Commits return when durable on the active (the passive follows asynchronously).
    #[default]
    Off,
    /// Commits return when the passive has received the block holding them. The passive
    /// here acknowledges a block only after it synced it, so `received` gives `flushed`'s
    /// guarantee (and costs the same).
    Received,
    /// Commits return when the passive has synced the block holding them.
    Flushed,
}

impl SyncLevel {
    /// Parses `off`, `received` or `flushed`.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "off" => Some(Self::Off),
            "received" => Some(Self::Received),
            "flushed" => Some(Self::Flushed),
            _ => None,
        }
    }
}

/// How synchronous commit is configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyncSettings {
    /// The level.
    pub level: SyncLevel,
    /// How long a commit waits for the passive before the node degrades (or, strict,
    /// refuses it). Default 5 s.
    pub timeout: Duration,
    /// Refuse commits the passive does not confirm instead of degrading.
    pub strict: bool,
}

impl Default for SyncSettings {
    fn default() -> Self {
        Self {
            level: SyncLevel::Off,
            timeout: Duration::from_secs(5),
            strict: false,
        }
    }
}

/// Where synchronous commit stands, for the status.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct SyncStatus {
    /// The level configured.
    pub level: SyncLevel,
    /// `synchronous`, `degrading`, `asynchronous` or `resuming`.
    pub state: String,
    /// Why.
    pub reason: String,
    /// Since when (µs since the Unix epoch).
    pub since_micros: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Mode {
    /// Commits wait for the passive; the claim is (or may be) at the witness.
    Synchronous,
    /// A commit timed out: commits wait until a renewal cleared the claim.
    Degrading,
    /// Commits do not wait.
    Asynchronous,
    /// Commits wait again; once the passive has everything through `from`, the claim may
    /// be made.
    Resuming { from: LogPosition },
}

struct State {
    mode: Mode,
    reason: String,
    since_micros: u64,
    /// Changes not yet in the event log.
    changes: Vec<String>,
}

/// What a commit waiting for the passive may do now ([`SyncCommit::poll`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyncDecision {
    /// Acknowledge it: the passive holds it, or the node commits asynchronously.
    Acknowledge,
    /// Not yet: the passive has not confirmed it, or a degradation awaits the witness.
    Wait,
    /// Refuse it (strict synchronous commit), with the reason.
    Refuse(String),
}

/// Synchronous commit on one active node, for one epoch.
pub struct SyncCommit {
    settings: SyncSettings,
    peer: String,
    acknowledged: Arc<Acknowledged>,
    state: Mutex<State>,
    changed: Condvar,
}

impl std::fmt::Debug for SyncCommit {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SyncCommit")
            .field("settings", &self.settings)
            .field("peer", &self.peer)
            .field("status", &self.status())
            .finish_non_exhaustive()
    }
}

impl SyncCommit {
    /// Synchronous commit with `peer`, whose acknowledgements arrive in `acknowledged`:
    /// resuming from the start (the claim is made once the passive has answered).
    pub fn new(settings: SyncSettings, peer: &str, acknowledged: Arc<Acknowledged>) -> Self {
        Self {
            settings,
            peer: peer.to_owned(),
            acknowledged,
            state: Mutex::new(State {
                mode: Mode::Resuming {
                    from: LogPosition::default(),
                },
                reason: "the node became active: waiting for the passive".into(),
                since_micros: bluejet_engine::log::now_micros(),
                changes: Vec::new(),
            }),
            changed: Condvar::new(),
        }
    }

    /// Waits, as a commit ending at `end` is confirmed, for the passive to hold it; `Err`
    /// refuses the acknowledgement (strict, or the degradation could not be announced).
    pub fn wait(&self, end: LogPosition) -> Result<(), String> {
        let started = Instant::now();
        loop {
            match self.poll(end, started.elapsed()) {
                SyncDecision::Acknowledge => return Ok(()),
                SyncDecision::Refuse(reason) => return Err(reason),
                SyncDecision::Wait if self.state.lock().mode == Mode::Degrading => {
                    self.wait_degraded()?;
                }
                SyncDecision::Wait => {
                    let left = self.settings.timeout.saturating_sub(started.elapsed());
                    self.acknowledged.wait_for(end, left);
                }
            }
        }
    }

    /// What a commit ending at `end`, which has waited `waited` for the passive so far, may
    /// do now, without blocking: [`wait`](Self::wait) is this in a loop, and a simulation
    /// drives it on its own clock. Past the timeout it refuses (strict) or starts degrading.
    ///
    /// ```
    /// use bluejet_engine::LogPosition;
    /// use bluejet_replication::cluster::sync_commit::*;
    /// use std::sync::Arc;
    /// use std::time::Duration;
    ///
    /// let settings = SyncSettings { level: SyncLevel::Flushed, ..SyncSettings::default() };
    /// let acknowledged = Arc::new(Acknowledged::default());
    /// let sync = SyncCommit::new(settings, "b", Arc::clone(&acknowledged));
    /// let end = LogPosition::new(1, 4096);
    /// assert_eq!(sync.poll(end, Duration::ZERO), SyncDecision::Wait);
    /// acknowledged.acknowledged(end);
    /// assert_eq!(sync.poll(end, Duration::ZERO), SyncDecision::Acknowledge);
    /// ```
    pub fn poll(&self, end: LogPosition, waited: Duration) -> SyncDecision {
        if self.settings.level == SyncLevel::Off {
            return SyncDecision::Acknowledge;
        }
        let mode = self.state.lock().mode.clone();
        match mode {
            Mode::Asynchronous => SyncDecision::Acknowledge,
            Mode::Degrading => SyncDecision::Wait,
            Mode::Synchronous | Mode::Resuming { .. } => {
                if self.acknowledged.flushed() >= end {
                    return SyncDecision::Acknowledge;
                }
                if waited < self.settings.timeout {
                    return SyncDecision::Wait;
                }
                let reason = format!(
                    "the passive {} did not confirm {end} within {:?}",
                    self.peer, self.settings.timeout
                );
                if self.settings.strict {
                    return SyncDecision::Refuse(format!("synchronous commit (strict): {reason}"));
                }
                self.degrade(&reason);
                SyncDecision::Wait
            }
        }
    }

    /// Starts degrading (once): commits wait until a renewal has cleared the claim.
    fn degrade(&self, reason: &str) {
        let mut state = self.state.lock();
        if matches!(state.mode, Mode::Synchronous | Mode::Resuming { .. }) {
            Self::set(&mut state, Mode::Degrading, reason);
        }
    }

    /// Waits until the claim was cleared at the witness (bounded: a witness that cannot be
    /// reached ends the lease, and the gate then refuses anyway).
    fn wait_degraded(&self) -> Result<(), String> {
        let deadline = Instant::now() + self.settings.timeout.max(Duration::from_secs(1)) * 2;
        let mut state = self.state.lock();
        while state.mode == Mode::Degrading {
            if self.changed.wait_until(&mut state, deadline).timed_out() {
                return Err("synchronous commit degrading: the witness could not be told".into());
            }
        }
        Ok(())
    }

    /// What the next renewal claims: the passive's name while every acknowledged commit is
    /// on it. Also moves a resuming node whose passive caught up to synchronous.
    pub fn claim(&self) -> Option<String> {
        if self.settings.level == SyncLevel::Off {
            return None;
        }
        let mut state = self.state.lock();
        if let Mode::Resuming { from } = state.mode {
            // From the start of an epoch (`from` 0): once the passive has answered at all.
            let flushed = self.acknowledged.flushed();
            if flushed >= from && flushed > LogPosition::default() {
                Self::set(
                    &mut state,
                    Mode::Synchronous,
                    "the passive confirms every commit",
                );
            }
        }
        (state.mode == Mode::Synchronous).then(|| self.peer.clone())
    }

    /// A renewal claiming `claimed` succeeded. Clearing the claim ends a degradation; an
    /// asynchronous node whose passive has everything durable (`durable`) resumes: from now
    /// on commits wait again, and the claim waits for the passive to have the log's end
    /// (`end`, read once the state says so: a commit that saw the node asynchronous ends
    /// before it).
    pub fn renewed(
        &self,
        claimed: Option<&str>,
        durable: LogPosition,
        end: impl FnOnce() -> LogPosition,
    ) {
        let mut state = self.state.lock();
        match state.mode {
            Mode::Degrading if claimed.is_none() => {
                let reason = state.reason.clone();
                Self::set(&mut state, Mode::Asynchronous, &reason);
                self.changed.notify_all();
            }
            Mode::Asynchronous if self.acknowledged.flushed() >= durable => {
                Self::set(
                    &mut state,
                    Mode::Resuming {
                        from: LogPosition::new(u32::MAX, u32::MAX),
                    },
                    "the passive caught up: commits wait for it again",
                );
                // Under the state's lock: no commit reads the mode meanwhile.
                state.mode = Mode::Resuming { from: end() };
            }
            _ => {}
        }
    }

    fn set(state: &mut State, mode: Mode, reason: &str) {
        let name = mode_name(&mode);
        state.changes.push(format!("{name}: {reason}"));
        state.mode = mode;
        state.reason = reason.to_owned();
        state.since_micros = bluejet_engine::log::now_micros();
    }

    /// Changes since the last call, for the event log.
    pub fn take_changes(&self) -> Vec<String> {
        std::mem::take(&mut self.state.lock().changes)
    }

    /// The status now.
    pub fn status(&self) -> SyncStatus {
        let state = self.state.lock();
        SyncStatus {
            level: self.settings.level,
            state: mode_name(&state.mode).into(),
            reason: state.reason.clone(),
            since_micros: state.since_micros,
        }
    }
}

fn mode_name(mode: &Mode) -> &'static str {
    match mode {
        Mode::Synchronous => "synchronous",
        Mode::Degrading => "degrading",
        Mode::Asynchronous => "asynchronous",
        Mode::Resuming { .. } => "resuming",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acknowledge(acknowledged: &Acknowledged, position: LogPosition) {
        acknowledged.acknowledged(position);
    }

    fn sync(strict: bool) -> (Arc<Acknowledged>, SyncCommit) {
        let acknowledged = Arc::new(Acknowledged::default());
        let settings = SyncSettings {
            level: SyncLevel::Flushed,
            timeout: Duration::from_millis(50),
            strict,
        };
        (
            Arc::clone(&acknowledged),
            SyncCommit::new(settings, "b", acknowledged),
        )
    }

    #[test]
    fn a_commit_waits_for_the_passive_and_the_claim_follows_it() {
        let (acknowledged, sync) = sync(false);
        acknowledge(&acknowledged, LogPosition::new(1, 10));
        assert_eq!(sync.claim().as_deref(), Some("b"));
        sync.wait(LogPosition::new(1, 10)).unwrap();
        assert_eq!(sync.status().state, "synchronous");
    }

    #[test]
    fn a_silent_passive_degrades_only_after_the_claim_is_cleared() {
        let (acknowledged, sync) = sync(false);
        acknowledge(&acknowledged, LogPosition::new(1, 0));
        assert!(sync.claim().is_some());
        std::thread::scope(|scope| {
            let waiting = scope.spawn(|| sync.wait(LogPosition::new(1, 50)));
            // The commit times out and waits for the renewal that clears the claim.
            while sync.status().state != "degrading" {
                std::thread::sleep(Duration::from_millis(5));
            }
            assert!(!waiting.is_finished());
            assert_eq!(sync.claim(), None);
            sync.renewed(None, LogPosition::new(1, 50), || LogPosition::new(1, 50));
            waiting.join().unwrap().unwrap();
        });
        assert_eq!(sync.status().state, "asynchronous");
        // Caught up: resuming, then synchronous once the passive has the point.
        acknowledge(&acknowledged, LogPosition::new(1, 50));
        sync.renewed(None, LogPosition::new(1, 50), || LogPosition::new(1, 60));
        assert_eq!(sync.status().state, "resuming");
        assert_eq!(sync.claim(), None);
        acknowledge(&acknowledged, LogPosition::new(1, 60));
        assert_eq!(sync.claim().as_deref(), Some("b"));
    }

    #[test]
    fn strict_refuses_what_the_passive_does_not_confirm() {
        let (_, sync) = sync(true);
        let error = sync.wait(LogPosition::new(1, 5)).unwrap_err();
        assert!(error.contains("strict"), "{error}");
        assert_eq!(sync.status().state, "resuming");
    }
}
