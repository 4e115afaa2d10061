//! Deletes finished messages, up to ten per call, without holding any back:
//! a delete goes out as soon as the previous call returned, with every
//! other one that finished meanwhile. A lone message is deleted at once;
//! under load the deletes that arrive during one call make the next batch
//! (the way a database groups commits), so batching costs no waiting.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::queue::Queue;

/// SQS's most entries in one `DeleteMessageBatch`.
const MAX_BATCH: usize = 10;

#[derive(Clone)]
pub struct Deleter {
    sender: mpsc::Sender<Command>,
}

enum Command {
    Delete(String),
    Stop(oneshot::Sender<()>),
}

impl Deleter {
    pub fn start(queue: Arc<dyn Queue>) -> Self {
        let (sender, receiver) = mpsc::channel(1_000);
        tokio::spawn(run(queue, receiver));
        Self { sender }
    }

    pub async fn delete(&self, receipt: &str) {
        let _ = self.sender.send(Command::Delete(receipt.to_string())).await;
    }

    /// Delete what is pending, then stop.
    pub async fn flush_and_stop(&self) {
        let (done, wait) = oneshot::channel();
        if self.sender.send(Command::Stop(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

/// A failed delete only means the message comes back: every step of the
/// flow is idempotent, so the queue logs it and nothing retries here.
async fn run(queue: Arc<dyn Queue>, mut receiver: mpsc::Receiver<Command>) {
    let mut stopping = None;
    while stopping.is_none() {
        let Some(first) = receiver.recv().await else {
            return;
        };
        let mut batch = Vec::with_capacity(MAX_BATCH);
        let mut next = Some(first);
        // The first, and whatever else is waiting already.
        while let Some(command) = next.take() {
            match command {
                Command::Delete(receipt) => batch.push(receipt),
                Command::Stop(done) => stopping = Some(done),
            }
            if batch.len() == MAX_BATCH {
                queue.delete(&std::mem::take(&mut batch)).await;
            }
            if stopping.is_none() {
                next = receiver.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            queue.delete(&batch).await;
        }
    }
    // Deletes sent before the stop are all in: the senders are done.
    let mut rest = Vec::new();
    while let Ok(Command::Delete(receipt)) = receiver.try_recv() {
        rest.push(receipt);
    }
    for batch in rest.chunks(MAX_BATCH) {
        queue.delete(batch).await;
    }
    if let Some(done) = stopping {
        let _ = done.send(());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::time::Duration;

    use async_trait::async_trait;

    use super::*;
    use crate::queue::{Attribute, DeadLetter, Deferral, QueueState, Received, ReceivedDeadLetter};

    /// A queue that notes each delete call's receipts.
    #[derive(Default)]
    struct Deletes(Mutex<Vec<Vec<String>>>);

    #[async_trait]
    impl Queue for Deletes {
        async fn delete(&self, receipts: &[String]) {
            self.0.lock().unwrap().push(receipts.to_vec());
        }
        async fn receive(&self, _max: usize) -> anyhow::Result<Vec<Received>> {
            unreachable!("the deleter only deletes")
        }
        async fn change_visibility(&self, _receipt: &str, _seconds: i32) -> anyhow::Result<()> {
            unreachable!("the deleter only deletes")
        }
        async fn dead_letter(&self, _: &Received, _: &DeadLetter<'_>) -> anyhow::Result<()> {
            unreachable!("the deleter only deletes")
        }
        async fn send(&self, _body: &str) -> anyhow::Result<String> {
            unreachable!("the deleter only deletes")
        }
        async fn send_with_attributes(
            &self,
            _body: &str,
            _attributes: &[(String, Attribute)],
        ) -> anyhow::Result<String> {
            unreachable!("the deleter only deletes")
        }
        async fn defer(&self, _: &Received, _: Duration) -> anyhow::Result<Deferral> {
            unreachable!("the deleter only deletes")
        }
        async fn receive_dead_letters(
            &self,
            _max: usize,
            _hide_for: Duration,
        ) -> anyhow::Result<Vec<ReceivedDeadLetter>> {
            unreachable!("the deleter only deletes")
        }
        async fn release_dead_letters(&self, _receipts: &[String]) -> Vec<(String, String)> {
            unreachable!("the deleter only deletes")
        }
        async fn delete_dead_letters(&self, _receipts: &[String]) -> Vec<(String, String)> {
            unreachable!("the deleter only deletes")
        }
        async fn state(&self) -> anyhow::Result<QueueState> {
            unreachable!("the deleter only deletes")
        }
    }

    /// docs/reference/delivery-semantics.md: finished messages are deleted with `DeleteMessageBatch`, up
    /// to 10 per call. On one thread the deleter runs only once all 25 are
    /// queued, so the batches do not depend on timing.
    #[tokio::test(flavor = "current_thread")]
    async fn finished_messages_are_deleted_ten_per_call() {
        let queue = Arc::new(Deletes::default());
        let deleter = Deleter::start(queue.clone());
        let receipts: Vec<String> = (0..25).map(|i| format!("r{i}")).collect();
        for receipt in &receipts {
            deleter.delete(receipt).await;
        }
        deleter.flush_and_stop().await;
        let calls = queue.0.lock().unwrap().clone();
        let sizes: Vec<usize> = calls.iter().map(Vec::len).collect();
        assert_eq!(sizes, [10, 10, 5]);
        assert_eq!(calls.concat(), receipts, "each once, in order");
    }
}
