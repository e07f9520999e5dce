//! Pushed configuration (PROTOCOL.md §6): every connection forwards the config from its
//! RegistrationResponse and from ConfigUpdate frames into one queue; a single worker calls
//! [`crate::Agent::on_config`] in arrival order, once per distinct value, never concurrently.
//! N connections to a proxy therefore apply its configuration once, not N times.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::agent::Agent;
use crate::events::{EventSink, RunnerEvent};

type Item = (Value, Option<oneshot::Sender<()>>);

/// The sending side, cloned into every connection.
#[derive(Clone)]
pub(crate) struct ConfigQueue {
    sender: mpsc::Sender<Item>,
}

impl ConfigQueue {
    /// Queues `config` and waits until the agent has seen it (registration: serve no request
    /// before the pushed configuration is in place).
    pub(crate) async fn apply(&self, config: Value) {
        let (ack, done) = oneshot::channel();
        if self.sender.send((config, Some(ack))).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Queues `config` without waiting (ConfigUpdate, applied while requests go on).
    pub(crate) async fn push(&self, config: Value) {
        let _ = self.sender.send((config, None)).await;
    }
}

/// Starts the worker. It ends when every [`ConfigQueue`] clone is dropped.
pub(crate) fn start<A: Agent>(agent: Arc<A>, events: EventSink) -> (ConfigQueue, JoinHandle<()>) {
    let (sender, mut receiver) = mpsc::channel::<Item>(64);
    let worker = tokio::spawn(async move {
        // The agent starts from its own defaults, which is what "no configuration" means.
        let mut current = Value::Null;
        while let Some((config, ack)) = receiver.recv().await {
            if config != current {
                match agent.on_config(&config).await {
                    Ok(()) => {
                        tracing::info!("pushed configuration applied");
                        events.emit(RunnerEvent::ConfigApplied);
                    }
                    Err(e) => {
                        tracing::warn!(
                            "pushed configuration refused, keeping the previous one: {e}"
                        );
                        events.emit(RunnerEvent::ConfigRejected {
                            error: e.to_string(),
                        });
                    }
                }
                // A refused value is not offered again until it changes: retrying cannot help.
                current = config;
            } else {
                tracing::debug!("pushed configuration unchanged; not applied again");
                events.emit(RunnerEvent::ConfigUnchanged);
            }
            if let Some(ack) = ack {
                let _ = ack.send(());
            }
        }
    });
    (ConfigQueue { sender }, worker)
}
