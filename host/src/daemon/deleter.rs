//! Deletes finished messages in batches of up to ten per call.

use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use tokio::sync::{mpsc, oneshot};

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
    pub fn start(client: Client, url: String) -> Self {
        let (sender, receiver) = mpsc::channel(1_000);
        tokio::spawn(run(client, url, receiver));
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

async fn run(client: Client, url: String, mut receiver: mpsc::Receiver<Command>) {
    let mut pending: Vec<String> = Vec::new();
    loop {
        let command = if pending.is_empty() {
            receiver.recv().await
        } else {
            match tokio::time::timeout(LINGER, receiver.recv()).await {
                Ok(command) => command,
                Err(_) => {
                    delete_batch(&client, &url, std::mem::take(&mut pending)).await;
                    continue;
                }
            }
        };
        match command {
            Some(Command::Delete(receipt)) => {
                pending.push(receipt);
                if pending.len() == 10 {
                    delete_batch(&client, &url, std::mem::take(&mut pending)).await;
                }
            }
            Some(Command::Stop(done)) => {
                delete_batch(&client, &url, std::mem::take(&mut pending)).await;
                let _ = done.send(());
                return;
            }
            None => {
                delete_batch(&client, &url, std::mem::take(&mut pending)).await;
                return;
            }
        }
    }
}

/// A failed delete only means the message comes back: every step of the
/// flow is idempotent, so it is logged, not retried here.
async fn delete_batch(client: &Client, url: &str, receipts: Vec<String>) {
    if receipts.is_empty() {
        return;
    }
    let entries: Vec<DeleteMessageBatchRequestEntry> = receipts
        .iter()
        .enumerate()
        .filter_map(|(i, receipt)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(receipt)
                .build()
                .ok()
        })
        .collect();
    match client
        .delete_message_batch()
        .queue_url(url)
        .set_entries(Some(entries))
        .send()
        .await
    {
        Ok(output) => {
            for failed in output.failed {
                tracing::warn!(entry = %failed.id, code = %failed.code, "delete failed; the message will return");
            }
        }
        Err(e) => {
            tracing::warn!(error = %crate::aws::error_chain(&e), count = receipts.len(), "batch delete failed; the messages will return")
        }
    }
}
