//! `node run --load RATE`: a steady write load on the node's database while it is active
//! (1 KiB values in table `load`, RATE commits a second), so that tools and tests can watch a
//! cluster that is busy without a mail server in front of it.

use bluejet_engine::{Database, DbError};
use bluejet_replication::cluster::Node;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// A running load; stopped (and joined) when dropped.
pub struct Load {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Starts committing `rate` transactions a second through `node` whenever it is active.
pub fn spawn(node: Arc<Node>, rate: u32) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let pause = Duration::from_secs(1) / rate.max(1);
    let thread = std::thread::Builder::new()
        .name("bluejet-load".into())
        .spawn(move || {
            let mut sequence = 0u64;
            while !flag.load(Ordering::Relaxed) {
                // A passive node has no database; a fenced one refuses: both just wait.
                if let Some(Ok(())) = node.with_database(|db| commit(db, sequence)) {
                    sequence += 1;
                }
                std::thread::sleep(pause);
            }
        })
        .ok();
    Load { stop, thread }
}

fn commit(db: &Database, sequence: u64) -> Result<(), DbError> {
    let mut write = db.begin_write()?;
    write.create_table("load")?;
    let value = vec![(sequence % 251) as u8; 1024];
    write.insert("load", format!("{sequence:012}").as_bytes(), &value)?;
    write.commit().map(|_| ())
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the load thread panicked");
            }
        }
    }
}
