//! `requests.send` in `serve`: the logic's requests for later go on this
//! deployment's `api` queue, as the platform API's do. The queue is
//! connected after the backends are built (SQS may not be reachable yet
//! when `serve` starts; no message runs before it is), so it is set once.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;

use crate::capabilities::requests::Requests;
use crate::capabilities::{CapResult, ErrorCode, error};
use crate::queue::Queue;

#[derive(Default)]
pub struct ToApiQueue {
    api: OnceLock<Arc<dyn Queue>>,
}

impl ToApiQueue {
    /// Send to `api` from now on (the first queue set stays).
    pub fn connect(&self, api: Arc<dyn Queue>) {
        let _ = self.api.set(api);
    }
}

#[async_trait]
impl Requests for ToApiQueue {
    async fn send(&self, body: &str) -> CapResult<String> {
        let Some(api) = self.api.get() else {
            return Err(error(
                ErrorCode::Unavailable,
                "this host has no `api` queue in its config to send requests to",
            ));
        };
        api.send(body)
            .await
            .map_err(|e| error(ErrorCode::Unavailable, format!("sending to api: {e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::local::LocalQueue;

    #[tokio::test]
    async fn sends_go_to_the_api_queue_once_it_is_connected() {
        let requests = ToApiQueue::default();
        let before = requests.send("{}").await.unwrap_err();
        assert_eq!(before.code, ErrorCode::Unavailable);
        let store = crate::local::Store::in_memory().unwrap();
        let settings = crate::config::Queue::named("envmgr-api");
        let api = Arc::new(LocalQueue::new(store, "api", &settings));
        requests.connect(api.clone());
        let id = requests.send(r#"{"kind":"x"}"#).await.unwrap();
        let received = api.receive(1).await.unwrap();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].message.id, id);
        assert_eq!(received[0].message.body, r#"{"kind":"x"}"#);
    }
}
