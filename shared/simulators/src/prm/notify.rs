//! The PRM's change notifications, as the PRM sends them: one per create, update or delete
//! of an organization, person or deal, posted to the receiver's URL with
//! `X-PRM-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, one `v1` per
//! signing secret (two during a rotation). A notification that gets no 2xx stays in the
//! outbox and is sent again with the same `event_id`, as the PRM retries.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;

use super::store::format_ts;
use super::{lock, PrmSim};

/// One change waiting to be notified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    pub event_id: String,
    /// `organization.created`, `person.updated`, `deal.deleted`, ...
    pub kind: String,
    pub id: String,
    pub occurred_at: String,
}

impl ChangeEvent {
    pub(super) fn new(kind: String, id: &str, at: DateTime<Utc>) -> Self {
        Self {
            event_id: format!("evt_{}", uuid::Uuid::new_v4().simple()),
            kind,
            id: id.to_string(),
            occurred_at: format_ts(at),
        }
    }

    /// The JSON body the PRM posts.
    pub fn body(&self) -> String {
        json!({
            "event_id": self.event_id,
            "type": self.kind,
            "id": self.id,
            "occurred_at": self.occurred_at,
        })
        .to_string()
    }
}

/// A notification ready to post: its body and its signature header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedNotification {
    pub event: ChangeEvent,
    pub body: String,
    /// The `X-PRM-Signature` value.
    pub signature: String,
}

/// The `X-PRM-Signature` value of `body` at `timestamp`, one `v1` per secret.
pub fn signature(secrets: &[String], timestamp: i64, body: &str) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
        mac.update(format!("{timestamp}.{body}").as_bytes());
        header.push_str(",v1=");
        header.push_str(&hex::encode(mac.finalize().into_bytes()));
    }
    header
}

impl PrmSim {
    /// Turns change notifications on, signed with `secrets` (the first is the current one;
    /// give two to act out a rotation). Changes made from now on wait in the outbox.
    pub fn enable_notifications(&self, secrets: &[&str]) {
        *lock(&self.inner.webhook_secrets) = secrets.iter().map(|s| s.to_string()).collect();
        let mut store = lock(&self.inner.store);
        store.outbox.get_or_insert_with(Vec::new);
    }

    /// The notifications waiting, signed now, and the outbox emptied.
    pub fn take_notifications(&self) -> Vec<SignedNotification> {
        let events = lock(&self.inner.store)
            .outbox
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default();
        events
            .into_iter()
            .map(|e| self.sign(e, Utc::now().timestamp()))
            .collect()
    }

    /// `event` signed as the PRM would at `timestamp` (unix seconds).
    pub fn sign(&self, event: ChangeEvent, timestamp: i64) -> SignedNotification {
        let body = event.body();
        let signature = signature(&lock(&self.inner.webhook_secrets), timestamp, &body);
        SignedNotification {
            event,
            body,
            signature,
        }
    }

    /// Posts every waiting notification to `url`; those that get no 2xx (or no answer) go
    /// back to the outbox for the next call, as the PRM retries. Returns each status (0 for
    /// no answer), in order.
    pub async fn post_notifications(&self, url: &str) -> Vec<u16> {
        let client = reqwest::Client::new();
        let mut statuses = Vec::new();
        let mut retry = Vec::new();
        for n in self.take_notifications() {
            let status = client
                .post(url)
                .header("content-type", "application/json")
                .header("x-prm-signature", &n.signature)
                .body(n.body.clone())
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0);
            if !(200..300).contains(&status) {
                retry.push(n.event);
            }
            statuses.push(status);
        }
        if !retry.is_empty() {
            let mut store = lock(&self.inner.store);
            let outbox = store.outbox.get_or_insert_with(Vec::new);
            retry.append(outbox);
            *outbox = retry;
        }
        statuses
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prm::Collection;

    #[test]
    fn every_write_is_notified_once_signed_with_each_secret() {
        let sim = PrmSim::new("t");
        sim.insert(
            Collection::Organizations,
            json!({"kind": "partner", "name": "Before notifications"}),
        );
        sim.enable_notifications(&["new-secret", "old-secret"]);
        let org = sim.insert(
            Collection::Organizations,
            json!({"kind": "partner", "name": "Acme"}),
        );
        sim.update(Collection::Organizations, &org, json!({"name": "Acme 2"}));
        // an update that changes nothing is no change
        sim.update(Collection::Organizations, &org, json!({"name": "Acme 2"}));
        sim.delete(Collection::Organizations, &org);
        let sent = sim.take_notifications();
        let kinds: Vec<&str> = sent.iter().map(|n| n.event.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "organization.created",
                "organization.updated",
                "organization.deleted"
            ]
        );
        assert!(sent.iter().all(|n| n.event.id == org));
        let ids: std::collections::BTreeSet<_> = sent.iter().map(|n| &n.event.event_id).collect();
        assert_eq!(ids.len(), 3, "one event id per change");
        let n = &sent[0];
        let t: i64 = n.signature[2..n.signature.find(',').unwrap()]
            .parse()
            .unwrap();
        assert!((Utc::now().timestamp() - t).abs() < 60);
        assert_eq!(n.signature.matches(",v1=").count(), 2);
        assert_eq!(
            n.signature,
            signature(&["new-secret".into(), "old-secret".into()], t, &n.body)
        );
        assert!(sim.take_notifications().is_empty(), "the outbox is emptied");
    }
}
