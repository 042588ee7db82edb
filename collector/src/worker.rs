//! A dedicated thread that owns state whose methods block, driven from async code.
//!
//! The endpoint reporter asks conntrack over netlink before announcing a connect (up to a few
//! hundred milliseconds a lookup, plus a thread per new namespace to `setns` in), so it lives
//! on its own thread: the collector's task sends it work and awaits the answer, and the
//! runtime's threads (shared with the broker, merger and renderer under `scope up`) never
//! block on the kernel. One thread, taking jobs in the order they were sent, keeps the
//! reporter's events in the order of the spies and kernel events that caused them.

use std::{io, thread::JoinHandle};

use tokio::sync::{mpsc, oneshot};

type Job<T> = Box<dyn FnOnce(&mut T) + Send>;

/// Jobs waiting for the thread. The collector awaits each answer before sending more, so one
/// is in flight; the bound only keeps a misuse from growing memory.
const QUEUE: usize = 16;

/// The worker ended (its state panicked in a job): nothing it owned can be reached again.
#[derive(Debug, thiserror::Error)]
#[error("the {0} thread stopped")]
pub struct WorkerStopped(pub &'static str);

pub struct Worker<T> {
    name: &'static str,
    jobs: mpsc::Sender<Job<T>>,
    _thread: JoinHandle<()>,
}

impl<T: Send + 'static> Worker<T> {
    /// Starts the thread `name`, owning `state` until every handle is dropped.
    pub fn spawn(name: &'static str, mut state: T) -> io::Result<Self> {
        let (jobs, mut queue) = mpsc::channel::<Job<T>>(QUEUE);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Some(job) = queue.blocking_recv() {
                    job(&mut state);
                }
            })?;
        Ok(Self {
            name,
            jobs,
            _thread: thread,
        })
    }

    /// Runs `job` on the thread with its state and returns what it returns.
    pub async fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce(&mut T) -> R + Send + 'static,
    ) -> Result<R, WorkerStopped> {
        let (answer, answered) = oneshot::channel();
        let job: Job<T> = Box::new(move |state| {
            // The receiver is gone only when the caller stopped waiting; nothing to tell.
            let _ = answer.send(job(state));
        });
        self.jobs
            .send(job)
            .await
            .map_err(|_| WorkerStopped(self.name))?;
        answered.await.map_err(|_| WorkerStopped(self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn jobs_run_in_order_off_the_runtime_and_a_panic_stops_the_worker() {
        let worker = Worker::spawn("test-worker", Vec::new()).unwrap();
        for i in 0..3 {
            worker
                .run(move |seen: &mut Vec<i32>| seen.push(i))
                .await
                .unwrap();
        }
        let (seen, in_runtime, thread) = worker
            .run(|seen| {
                (
                    seen.clone(),
                    tokio::runtime::Handle::try_current().is_ok(),
                    std::thread::current().name().map(str::to_owned),
                )
            })
            .await
            .unwrap();
        assert_eq!(seen, [0, 1, 2]);
        assert!(
            !in_runtime,
            "a blocking job must not run on a runtime thread"
        );
        assert_eq!(thread.as_deref(), Some("test-worker"));

        let panicked = worker.run(|_| panic!("a bug in a job")).await;
        assert!(matches!(panicked, Err(WorkerStopped("test-worker"))));
        assert!(worker.run(|seen| seen.len()).await.is_err());
    }
}
