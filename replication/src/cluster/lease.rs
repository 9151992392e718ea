//! The lease gate: an active node admits a commit only while its lease on the witness is
//! valid, with a safety margin, and holds commits while a planned move is in progress.
//!
//! Timing assumptions (stated in `docs/design.md`): clocks of the nodes and the share differ
//! by at most the witness's `skew`; a commit admitted by the gate finishes (or is lost with
//! the node) within `safety`. The gate refuses commits from `lease_until - safety` on, and
//! another node may take the witness only after `lease_until + skew`: so the old active's
//! last commit precedes the new active's first by at least `safety + skew`.

use bluejet_engine::db::CommitGate;
use bluejet_engine::log::now_micros;
use parking_lot::{Condvar, Mutex};
use std::time::Duration;

/// The state behind the gate.
#[derive(Debug, Default)]
struct State {
    /// Commits are admitted until this time (µs): the lease end minus the safety margin.
    admit_until: u64,
    /// A switchover holds commits.
    paused: bool,
    /// The node gave the database up (a move or a newer epoch): refuse with this reason.
    closed: Option<String>,
    /// Commits admitted whose records are not in the log yet.
    in_flight: usize,
}

/// The gate an active node installs in its database's options.
#[derive(Debug)]
pub struct LeaseGate {
    state: Mutex<State>,
    resumed: Condvar,
    safety: Duration,
    /// Longest a paused commit waits before it is refused.
    pause_limit: Duration,
}

impl LeaseGate {
    /// A gate admitting nothing until the first lease is noted.
    pub fn new(safety: Duration, pause_limit: Duration) -> Self {
        Self {
            state: Mutex::new(State::default()),
            resumed: Condvar::new(),
            safety,
            pause_limit,
        }
    }

    /// Notes a lease granted (or renewed) until `lease_until` (µs).
    pub fn lease_until(&self, lease_until: u64) {
        let mut state = self.state.lock();
        state.admit_until = lease_until.saturating_sub(self.safety.as_micros() as u64);
    }

    /// Holds commits (a planned move), then waits until no admitted commit is still on its
    /// way to the log, so that closing the generation next takes every admitted commit.
    pub fn pause(&self) {
        self.state.lock().paused = true;
        self.drain();
    }

    /// Waits (at most the pause limit) until no admitted commit is still on its way to the
    /// log; returns whether none is.
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
    /// for commits already admitted to reach the log.
    pub fn close(&self, reason: &str) {
        {
            let mut state = self.state.lock();
            state.closed = Some(reason.to_owned());
            state.paused = false;
            self.resumed.notify_all();
        }
        self.drain();
    }

    /// Whether a commit would be admitted now.
    pub fn admitting(&self) -> bool {
        let state = self.state.lock();
        state.closed.is_none() && !state.paused && now_micros() < state.admit_until
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
        let now = now_micros();
        if now >= state.admit_until {
            return Err(format!(
                "this node's lease on the witness ended {:.1} s ago (or could not be renewed): \
                 it may no longer accept commits",
                now.saturating_sub(state.admit_until) as f64 / 1e6
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn commits_stop_before_the_lease_ends() {
        let gate = LeaseGate::new(Duration::from_millis(100), Duration::from_secs(1));
        assert!(gate.admit().is_err(), "no lease yet");
        gate.lease_until(now_micros() + 1_000_000);
        assert!(gate.admit().is_ok());
        gate.appended();
        gate.lease_until(now_micros() + 50_000);
        assert!(gate.admit().is_err(), "within the safety margin");
        gate.lease_until(now_micros() + 1_000_000);
        gate.close("moved");
        assert_eq!(gate.admit().unwrap_err(), "moved");
    }

    #[test]
    fn a_pause_waits_for_admitted_commits_and_holds_new_ones() {
        let gate = Arc::new(LeaseGate::new(
            Duration::from_millis(10),
            Duration::from_secs(5),
        ));
        gate.lease_until(now_micros() + 10_000_000);
        gate.admit().unwrap();
        let appended = Arc::clone(&gate);
        let appender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(200));
            appended.appended();
        });
        let started = std::time::Instant::now();
        gate.pause();
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
}
