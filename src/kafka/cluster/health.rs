//! Broker health within a collection cycle: which brokers failed, and which are not dialled
//! again until the next cycle.

use std::collections::{BTreeMap, HashMap};

use super::{BrokerInfo, Cluster, Slot};
use crate::kafka::error::{KafkaError, KafkaErrorKind, Result};

/// Broker failures since the cycle began.
#[derive(Debug, Default)]
pub(super) struct Health {
    /// Brokers not dialled again this cycle, with the failure that put them there.
    down: HashMap<i32, KafkaError>,
    /// Every broker that failed a request this cycle (down or not), with its last failure.
    failed: BTreeMap<i32, KafkaError>,
}

impl Cluster {
    pub(super) fn health(&self) -> std::sync::MutexGuard<'_, Health> {
        self.health.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Start a collection cycle: every broker gets a fresh chance, and the failures
    /// [`Cluster::broker_failures`] reports start from nothing.
    pub fn begin_cycle(&self) {
        *self.health() = Health::default();
    }

    /// The brokers that failed a request since [`Cluster::begin_cycle`], with the last
    /// failure of each (transport, timeout, TLS, SASL or an undecodable response).
    pub fn broker_failures(&self) -> BTreeMap<i32, KafkaError> {
        self.health().failed.clone()
    }

    pub(super) fn down_nodes(&self) -> Vec<i32> {
        self.health().down.keys().copied().collect()
    }

    /// The brokers not dialled again this cycle, with the failure that put them there.
    pub(super) fn down_failures(&self) -> Vec<(i32, String)> {
        let health = self.health();
        health
            .down
            .iter()
            .map(|(n, e)| (*n, e.to_string()))
            .collect()
    }

    /// Whether `node` failed earlier in this cycle (and is not asked again until the next).
    pub(crate) fn is_down(&self, node: i32) -> bool {
        self.health().down.contains_key(&node)
    }

    pub(crate) fn check_up(&self, node: i32) -> Result<()> {
        match self.health().down.get(&node) {
            Some(cause) => Err(KafkaErrorKind::BrokerDown {
                node,
                cause: cause.to_string(),
            }
            .into()),
            None => Ok(()),
        }
    }

    pub(super) fn mark_down(&self, node: i32, e: &KafkaError) {
        let mut health = self.health();
        health.down.insert(node, e.clone());
        health.failed.insert(node, e.clone());
    }

    /// Remember what a failed request says about its broker: a timeout puts it down for the
    /// cycle (it would only time out again); an undecodable answer counts as a failure of
    /// that broker but leaves it up. A closed connection is redialled by the retry, which
    /// says whether the broker is really gone.
    pub(super) fn note_failure(&self, node: i32, e: &KafkaError) {
        match e.kind() {
            KafkaErrorKind::Timeout { .. } => self.mark_down(node, e),
            KafkaErrorKind::Decode { .. }
            | KafkaErrorKind::ResponseTooLarge { .. }
            | KafkaErrorKind::OverMemoryBudget { .. } => {
                self.health().failed.insert(node, e.clone());
            }
            _ => {}
        }
    }

    /// Close the connections of brokers the current metadata no longer lists, or lists at
    /// another address, and forget coordinators on brokers that left.
    pub async fn retain_listed_brokers(&self) {
        let meta = self.metadata();
        let slots: Vec<(i32, Slot)> = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(n, s)| (*n, s.clone()))
            .collect();
        for (node, slot) in slots {
            let address = meta.brokers.get(&node).map(BrokerInfo::address);
            let mut guard = slot.lock().await;
            let stale = guard
                .as_ref()
                .is_some_and(|c| address.as_deref() != Some(c.broker()));
            if stale {
                tracing::info!(
                    node,
                    "closing the connection to a broker the metadata no longer lists there"
                );
                *guard = None;
            }
            if address.is_none() {
                drop(guard);
                self.slots
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&node);
            }
        }
        self.coordinators
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, node| meta.brokers.contains_key(node));
    }
}
