//! Deletes finished messages in batches of up to ten per call.

use std::time::Duration;

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::queue::Queue;

/// How long a finished message may wait for others to share its delete call.
const LINGER: Duration = Duration::from_millis(50);

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
    let mut pending: Vec<String> = Vec::new();
    loop {
        let command = if pending.is_empty() {
            receiver.recv().await
        } else {
            match tokio::time::timeout(LINGER, receiver.recv()).await {
                Ok(command) => command,
                Err(_) => {
                    queue.delete(&std::mem::take(&mut pending)).await;
                    continue;
                }
            }
        };
        match command {
            Some(Command::Delete(receipt)) => {
                pending.push(receipt);
                if pending.len() == 10 {
                    queue.delete(&std::mem::take(&mut pending)).await;
                }
            }
            Some(Command::Stop(done)) => {
                queue.delete(&std::mem::take(&mut pending)).await;
                let _ = done.send(());
                return;
            }
            None => {
                queue.delete(&std::mem::take(&mut pending)).await;
                return;
            }
        }
    }
}
