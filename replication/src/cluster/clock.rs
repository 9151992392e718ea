//! The clock a lease is measured on: monotonic time on the holder (`Instant`), never the
//! wall clock, which an operator or NTP may step. A test clock stands in for it in tests:
//! its monotonic time only advances when told to, and its wall clock can be stepped either
//! way (the lease gate must not care).

use parking_lot::Mutex;
use std::fmt;
use std::time::{Duration, Instant};

/// A source of time for the lease gate.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Monotonic time: never goes backwards, is not stepped with the wall clock.
    fn now(&self) -> Instant;

    /// Wall-clock time (µs since the Unix epoch): for display and records only.
    fn wall_micros(&self) -> u64;
}

/// The system's clocks.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall_micros(&self) -> u64 {
        bluejet_engine::log::now_micros()
    }
}

/// A clock for tests: monotonic time starts at creation and moves only with
/// [`advance`](Self::advance); the wall clock moves with it and can be [`step`](Self::step)ped.
#[derive(Debug)]
pub struct TestClock {
    start: Instant,
    state: Mutex<(Duration, i64)>,
}

impl TestClock {
    /// A clock whose wall time starts at the system's.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            state: Mutex::new((Duration::ZERO, bluejet_engine::log::now_micros() as i64)),
        }
    }

    /// Lets `elapsed` pass (both clocks move).
    pub fn advance(&self, elapsed: Duration) {
        let mut state = self.state.lock();
        state.0 += elapsed;
        state.1 += i64::try_from(elapsed.as_micros())
            .expect("a test clock moves by less than 292,000 years");
    }

    /// Steps the wall clock by `micros` (negative: backwards); monotonic time does not move.
    pub fn step(&self, micros: i64) {
        self.state.lock().1 += micros;
    }
}

impl Default for TestClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TestClock {
    fn now(&self) -> Instant {
        self.start + self.state.lock().0
    }

    fn wall_micros(&self) -> u64 {
        self.state.lock().1.max(0) as u64
    }
}
