//! The lease gate: an active node admits a commit only while its lease on the witness is
//! valid, with a safety margin, and holds commits while a planned move is in progress.
//!
//! The lease is measured on the holder's monotonic clock ([`Clock::now`]), never on the
//! wall clock: the holder notes the instant it *started* a renewal (or acquisition)
//! request, and once the witness granted it, the lease is valid until that instant plus the
//! lease duration, whatever the wall clocks do. The witness's wall-clock `lease_until`
//! (written by the holder from the same request) is what the other node decides with.
//!
//! Timing assumptions (stated in `docs/design.md`): the monotonic clocks of the nodes run
//! at the same rate (within a small drift); wall clocks of the nodes differ by at most the
//! witness's `skew` (for the other node's decision only); a commit admitted by the gate
//! finishes within `safety`, and one that does not is not acknowledged: the gate checks
//! the lease again once the commit is durable ([`CommitGate::confirm`]). The gate refuses
//! commits from `lease end - safety` on, and another node may take the witness only after
//! `lease_until + skew`.

use super::clock::{Clock, SystemClock};
use bluejet_engine::db::CommitGate;
use bluejet_engine::LogPosition;
use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The state behind the gate.
#[derive(Debug, Default)]
struct State {
    /// The lease ends here (monotonic): the start of the last granted request plus the
    /// lease. Commits are admitted until `safety` before it, and confirmed until it.
    lease_end: Option<Instant>,
    /// A switchover holds commits.
    paused: bool,
    /// The node gave the database up (a move or a newer epoch): refuse with this reason.
    closed: Option<String>,
    /// The gate closed while admitted commits were still on their way to the log: none of
    /// them may be acknowledged.
    revoked: Option<String>,
    /// Commits admitted whose records are not in the log yet.
    in_flight: usize,
}

/// The gate an active node installs in its database's options.
#[derive(Debug)]
pub struct LeaseGate {
    state: Mutex<State>,
    resumed: Condvar,
    safety: Duration,
    /// Longest a paused commit waits before it is refused, and longest a pause or a close
    /// waits for admitted commits to reach the log.
    pause_limit: Duration,
    clock: Arc<dyn Clock>,
    /// Synchronous commit, when the node commits synchronously with its passive.
    sync: Mutex<Option<Arc<super::sync_commit::SyncCommit>>>,
}

impl LeaseGate {
    /// A gate on the system's monotonic clock, admitting nothing until the first lease is
    /// noted.
    pub fn new(safety: Duration, pause_limit: Duration) -> Self {
        Self::with_clock(safety, pause_limit, Arc::new(SystemClock))
    }

    /// A gate on `clock` (tests), admitting nothing until the first lease is noted.
    pub fn with_clock(safety: Duration, pause_limit: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            state: Mutex::new(State::default()),
            resumed: Condvar::new(),
            safety,
            pause_limit,
            clock,
            sync: Mutex::new(None),
        }
    }

    /// Makes every commit wait for the passive as `sync` says.
    pub(crate) fn set_sync(&self, sync: Arc<super::sync_commit::SyncCommit>) {
        *self.sync.lock() = Some(sync);
    }

    /// Synchronous commit, if the node commits synchronously.
    pub fn sync(&self) -> Option<Arc<super::sync_commit::SyncCommit>> {
        self.sync.lock().clone()
    }

    /// The gate's monotonic time: note it *before* sending a renewal (or acquisition)
    /// request, and pass it to [`renewed`](Self::renewed) once the witness granted it.
    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    /// Notes a lease of `lease` granted by a request started at `started` (from
    /// [`now`](Self::now)). The lease never moves backwards.
    pub fn renewed(&self, started: Instant, lease: Duration) {
        let end = started + lease;
        let mut state = self.state.lock();
        state.lease_end = Some(state.lease_end.map_or(end, |old| old.max(end)));
    }

    /// Holds commits (a planned move), then waits (at most the pause limit) until no
    /// admitted commit is still on its way to the log, so that closing the generation next
    /// takes every admitted commit. Returns `false` if one still is: the move must not go on
    /// (resume, and give up the move).
    #[must_use]
    pub fn pause(&self) -> bool {
        self.state.lock().paused = true;
        self.drain()
    }

    /// Waits (at most the pause limit) until no admitted commit is still on its way to the
    /// log; returns whether none is.
    #[must_use]
    pub fn drain(&self) -> bool {
        let mut state = self.state.lock();
        !self
            .resumed
            .wait_while_for(&mut state, |state| state.in_flight > 0, self.pause_limit)
            .timed_out()
    }

    /// Lets held commits go on.
    pub fn resume(&self) {
        self.state.lock().paused = false;
        self.resumed.notify_all();
    }

    /// Refuses every commit from now on, with `reason`; held commits are refused too. Waits
    /// (at most the pause limit) for commits already admitted to reach the log; returns
    /// whether they all did. Those that did not are never acknowledged
    /// ([`DbError::NotAcknowledged`](bluejet_engine::DbError::NotAcknowledged)).
    pub fn close(&self, reason: &str) -> bool {
        {
            let mut state = self.state.lock();
            state.closed = Some(reason.to_owned());
            state.paused = false;
            self.resumed.notify_all();
        }
        let drained = self.drain();
        if !drained {
            let mut state = self.state.lock();
            if state.in_flight > 0 {
                state.revoked = Some(format!(
                    "{reason}: the commit was still on its way to the log when this node \
                     gave the database up"
                ));
            }
        }
        drained
    }

    /// Whether a commit would be admitted now.
    pub fn admitting(&self) -> bool {
        let state = self.state.lock();
        state.closed.is_none() && !state.paused && self.admit_deadline(&state).is_ok()
    }

    /// `Ok` while commits may be admitted by the lease, else how long ago that ended.
    fn admit_deadline(&self, state: &State) -> Result<(), Duration> {
        let now = self.clock.now();
        match state.lease_end {
            Some(end) if now + self.safety < end => Ok(()),
            Some(end) => Err((now + self.safety).saturating_duration_since(end)),
            None => Err(Duration::ZERO),
        }
    }
}

impl CommitGate for LeaseGate {
    fn admit(&self) -> Result<(), String> {
        let mut state = self.state.lock();
        if state.paused {
            let timed_out = self
                .resumed
                .wait_while_for(&mut state, |state| state.paused, self.pause_limit)
                .timed_out();
            if timed_out {
                return Err("commits are held by a database move that did not finish".into());
            }
        }
        if let Some(reason) = &state.closed {
            return Err(reason.clone());
        }
        if let Err(ago) = self.admit_deadline(&state) {
            return Err(format!(
                "this node's lease on the witness ended {:.1} s ago (or could not be renewed): \
                 it may no longer accept commits",
                ago.as_secs_f64()
            ));
        }
        state.in_flight += 1;
        Ok(())
    }

    fn appended(&self) {
        let mut state = self.state.lock();
        state.in_flight = state.in_flight.saturating_sub(1);
        if state.in_flight == 0 {
            self.resumed.notify_all();
        }
    }

    fn confirm(&self, end: LogPosition) -> Result<(), String> {
        // The passive first (group commit shares its round trip), then the lease, which may
        // have ended meanwhile.
        if let Some(sync) = self.sync() {
            sync.wait(end)?;
        }
        let state = self.state.lock();
        if let Some(reason) = &state.revoked {
            return Err(reason.clone());
        }
        let now = self.clock.now();
        match state.lease_end {
            Some(end) if now < end => Ok(()),
            end => Err(format!(
                "the commit became durable {:.3} s after this node's lease may have ended: \
                 another node may hold the database",
                end.map_or(0.0, |end| now.saturating_duration_since(end).as_secs_f64())
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::clock::TestClock;

    fn gate(clock: &Arc<TestClock>, safety_ms: u64, pause_limit: Duration) -> Arc<LeaseGate> {
        Arc::new(LeaseGate::with_clock(
            Duration::from_millis(safety_ms),
            pause_limit,
            Arc::clone(clock) as Arc<dyn Clock>,
        ))
    }

    #[test]
    fn commits_stop_before_the_lease_ends() {
        let clock = Arc::new(TestClock::new());
        let gate = gate(&clock, 100, Duration::from_secs(1));
        assert!(gate.admit().is_err(), "no lease yet");
        gate.renewed(gate.now(), Duration::from_secs(1));
        assert!(gate.admit().is_ok());
        gate.appended();
        clock.advance(Duration::from_millis(950));
        assert!(gate.admit().is_err(), "within the safety margin");
        gate.renewed(gate.now(), Duration::from_secs(1));
        gate.close("moved");
        assert_eq!(gate.admit().unwrap_err(), "moved");
    }

    /// Finding 4 of issue 14: the lease was compared with the wall clock, so a backward
    /// step kept a partitioned active admitting long after its lease ended.
    #[test]
    fn a_wall_clock_step_neither_extends_nor_cuts_the_lease() {
        let clock = Arc::new(TestClock::new());
        let gate = gate(&clock, 100, Duration::from_secs(1));
        // The renewal request starts, takes 300 ms at the witness, and is granted.
        let started = gate.now();
        clock.advance(Duration::from_millis(300));
        gate.renewed(started, Duration::from_secs(3));
        // NTP steps the wall clock back by a minute: nothing changes.
        clock.step(-60_000_000);
        clock.advance(Duration::from_millis(2_500));
        assert!(
            gate.admit().is_ok(),
            "2.8 s into a 3 s lease, 100 ms margin"
        );
        gate.appended();
        // 2.95 s after the request started: within the safety margin, though the wall clock
        // says the lease has almost a minute left.
        clock.advance(Duration::from_millis(150));
        assert!(!gate.admitting());
        assert!(gate.admit().is_err());
        // A forward step does not end a valid lease either.
        let started = gate.now();
        gate.renewed(started, Duration::from_secs(3));
        clock.step(3_600_000_000);
        assert!(gate.admit().is_ok());
        gate.appended();
        assert!(gate.confirm(LogPosition::default()).is_ok());
    }

    /// Finding 4 of issue 14: nothing checked the lease once a commit was durable, so a
    /// commit stalled past the lease end was acknowledged.
    #[test]
    fn a_commit_durable_after_the_lease_may_have_ended_is_not_acknowledged() {
        use bluejet_engine::{Database, DbError, Gate, Options};
        /// The lease gate, with a stall of the commit between admission and the log.
        #[derive(Debug)]
        struct Stalled(Arc<LeaseGate>, Arc<TestClock>);
        impl CommitGate for Stalled {
            fn admit(&self) -> Result<(), String> {
                self.0.admit()
            }
            fn appended(&self) {
                self.1.advance(Duration::from_secs(2));
                self.0.appended()
            }
            fn confirm(&self, end: LogPosition) -> Result<(), String> {
                self.0.confirm(end)
            }
        }
        let clock = Arc::new(TestClock::new());
        let lease = gate(&clock, 100, Duration::from_secs(1));
        lease.renewed(lease.now(), Duration::from_secs(3));
        let directory = tempfile::tempdir().unwrap();
        let options = Options {
            commit_gate: Gate(Some(Arc::new(Stalled(
                Arc::clone(&lease),
                Arc::clone(&clock),
            )))),
            ..Options::default()
        };
        let db = Database::open(directory.path(), options).unwrap();
        let commit = |key: &[u8]| {
            let mut write = db.begin_write().unwrap();
            write.create_table("t").unwrap();
            write.insert("t", key, b"v").unwrap();
            write.commit()
        };
        // Admitted at 0 s, durable at 2 s: acknowledged.
        commit(b"a").unwrap();
        // Admitted at 2 s (0.9 s left), durable at 4 s: the lease may have ended.
        let error = commit(b"b").unwrap_err();
        assert!(matches!(error, DbError::NotAcknowledged(_)), "{error}");
        drop(db);
    }

    #[test]
    fn a_pause_waits_for_admitted_commits_and_holds_new_ones() {
        let gate = Arc::new(LeaseGate::new(
            Duration::from_millis(10),
            Duration::from_secs(5),
        ));
        gate.renewed(gate.now(), Duration::from_secs(10));
        gate.admit().unwrap();
        let appended = Arc::clone(&gate);
        let appender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            appended.appended();
        });
        let started = std::time::Instant::now();
        assert!(gate.pause());
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "the pause returned before the admitted commit reached the log"
        );
        appender.join().unwrap();
        let held = Arc::clone(&gate);
        let waiter = std::thread::spawn(move || held.admit());
        std::thread::sleep(Duration::from_millis(100));
        assert!(!waiter.is_finished(), "a new commit is held");
        gate.resume();
        assert!(waiter.join().unwrap().is_ok());
    }

    /// Finding 4 of issue 14: a pause or a close whose drain timed out went on as if every
    /// admitted commit had reached the log.
    #[test]
    fn an_unaccounted_commit_fails_the_pause_and_is_never_acknowledged_after_a_close() {
        let gate = Arc::new(LeaseGate::new(
            Duration::from_millis(10),
            Duration::from_millis(100),
        ));
        gate.renewed(gate.now(), Duration::from_secs(10));
        gate.admit().unwrap();
        assert!(!gate.pause(), "a commit is still on its way to the log");
        gate.resume();
        assert!(!gate.close("the database moved to b"));
        // The stalled commit reaches the log at last: it is not acknowledged.
        gate.appended();
        let refused = gate.confirm(LogPosition::default()).unwrap_err();
        assert!(refused.contains("moved to b"), "{refused}");
    }
}
