//! The simulated disk's ownership locks, kept in memory: a simulated crash ends the process
//! that held one, as the kernel releases a dead holder's `flock` on the real disk.

use super::lock::{Holder, LockAttempt, LockProbe, OwnershipLock};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The simulated disk's locks: held paths, each with the disk's crash epoch it was taken
/// in (a simulated crash ends the process that held it) and a token naming its holder.
#[derive(Default)]
pub struct SimulatedLocks {
    held: Mutex<BTreeMap<PathBuf, (u64, u64, Holder)>>,
    next_token: Mutex<u64>,
}

impl SimulatedLocks {
    /// Takes `path` unless it is held in `epoch`.
    pub fn lock(self: &Arc<Self>, path: &Path, holder: &Holder, epoch: u64) -> LockAttempt {
        let mut held = self.held.lock();
        if let Some((held_epoch, _, holder)) = held.get(path) {
            if *held_epoch == epoch {
                return LockAttempt::Held(Some(holder.clone()));
            }
        }
        let token = {
            let mut next = self.next_token.lock();
            *next += 1;
            *next
        };
        held.insert(path.to_owned(), (epoch, token, holder.clone()));
        let guard = SimulatedGuard {
            locks: Arc::clone(self),
            path: path.to_owned(),
            token,
        };
        LockAttempt::Taken(OwnershipLock::new(path, Box::new(guard)))
    }

    /// Whether `path` is held in `epoch`.
    pub fn probe(&self, path: &Path, epoch: u64) -> LockProbe {
        match self.held.lock().get(path) {
            Some((held_epoch, _, holder)) if *held_epoch == epoch => {
                LockProbe::Held(Some(holder.clone()))
            }
            _ => LockProbe::Free,
        }
    }
}

struct SimulatedGuard {
    locks: Arc<SimulatedLocks>,
    path: PathBuf,
    token: u64,
}

impl Drop for SimulatedGuard {
    fn drop(&mut self) {
        let mut held = self.locks.held.lock();
        // Only this holder's entry: after a crash the path may be held by a new one.
        if held
            .get(&self.path)
            .is_some_and(|entry| entry.1 == self.token)
        {
            held.remove(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_locks_end_with_a_crash() {
        let locks = Arc::new(SimulatedLocks::default());
        let path = Path::new("/db/bluejet.lock");
        let holder = Holder::current();
        let first = locks.lock(path, &holder, 0);
        assert!(matches!(first, LockAttempt::Taken(_)));
        assert!(matches!(locks.lock(path, &holder, 0), LockAttempt::Held(_)));
        let after_crash = locks.lock(path, &holder, 1);
        drop(first);
        assert!(matches!(locks.probe(path, 1), LockProbe::Held(_)));
        drop(after_crash);
        assert_eq!(locks.probe(path, 1), LockProbe::Free);
    }
}
