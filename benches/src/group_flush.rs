//! The raw group-flush baseline: committer threads queue records and wait; one flusher thread
//! loops taking everything queued, writing it with one `pwrite`, syncing once, and releasing
//! the waiters. The best a group commit can do on this disk, with no log format at all.

use crate::baseline::RecordFile;
use parking_lot::{Condvar, Mutex};
use std::io;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

struct Queue {
    bytes: Vec<u8>,
    /// Records queued so far.
    queued: u64,
    /// Records durable so far.
    durable: u64,
    syncs: u64,
    error: Option<String>,
    stop: bool,
}

struct Inner {
    queue: Mutex<Queue>,
    /// Wakes the flusher.
    work: Condvar,
    /// Wakes the committers.
    done: Condvar,
}

/// A running flusher over one record file.
pub struct GroupFlush {
    inner: Arc<Inner>,
    flusher: Option<JoinHandle<()>>,
}

impl GroupFlush {
    /// Starts the flusher thread writing into `file`.
    pub fn start(file: RecordFile) -> Self {
        let inner = Arc::new(Inner {
            queue: Mutex::new(Queue {
                bytes: Vec::new(),
                queued: 0,
                durable: 0,
                syncs: 0,
                error: None,
                stop: false,
            }),
            work: Condvar::new(),
            done: Condvar::new(),
        });
        let shared = Arc::clone(&inner);
        let flusher = std::thread::Builder::new()
            .name("raw-flusher".into())
            .spawn(move || flush_loop(&shared, file))
            .expect("spawn the flusher");
        Self {
            inner,
            flusher: Some(flusher),
        }
    }

    /// Queues `record` and waits until it is durable.
    pub fn commit(&self, record: &[u8]) -> io::Result<()> {
        let mut queue = self.inner.queue.lock();
        queue.bytes.extend_from_slice(record);
        queue.queued += 1;
        let mine = queue.queued;
        self.inner.work.notify_one();
        while queue.durable < mine {
            if let Some(error) = &queue.error {
                return Err(io::Error::other(error.clone()));
            }
            self.inner.done.wait(&mut queue);
        }
        Ok(())
    }

    /// Syncs issued so far.
    pub fn syncs(&self) -> u64 {
        self.inner.queue.lock().syncs
    }

    /// `count` commits of `record` spread over `threads` threads; the time they took.
    pub fn run(&self, record: &[u8], threads: u64, count: u64) -> io::Result<Duration> {
        let start = Instant::now();
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|index| {
                    let share = count / threads + u64::from(index < count % threads);
                    scope.spawn(move || (0..share).try_for_each(|_| self.commit(record)))
                })
                .collect();
            workers
                .into_iter()
                .try_for_each(|worker| worker.join().expect("committer panicked"))
        })?;
        Ok(start.elapsed())
    }
}

impl Drop for GroupFlush {
    fn drop(&mut self) {
        self.inner.queue.lock().stop = true;
        self.inner.work.notify_one();
        if let Some(flusher) = self.flusher.take() {
            if flusher.join().is_err() {
                eprintln!("the flusher thread panicked");
            }
        }
    }
}

fn flush_loop(inner: &Inner, mut file: RecordFile) {
    let mut batch = Vec::new();
    let mut queue = inner.queue.lock();
    loop {
        while queue.bytes.is_empty() && !queue.stop {
            inner.work.wait(&mut queue);
        }
        if queue.bytes.is_empty() {
            return;
        }
        batch.clear();
        std::mem::swap(&mut batch, &mut queue.bytes);
        let target = queue.queued;
        drop(queue);
        let offset = file.reserve(batch.len());
        let result = file
            .handle()
            .write_at(&batch, offset)
            .and_then(|()| file.handle().sync_data());
        queue = inner.queue.lock();
        queue.syncs += 1;
        match result {
            Ok(()) => queue.durable = target,
            Err(error) => queue.error = Some(error.to_string()),
        }
        inner.done.notify_all();
    }
}
