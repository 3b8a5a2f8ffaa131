//! The PRM's change notifications (`docs/prm-api.yaml`, webhook `recordChanged`): the
//! signature rule and the notification itself, as pure functions that every receiver shares
//! (the prm-webhook function and a one-machine listener).
//!
//! A notification is signed `X-PRM-Signature: t=<unix seconds>,v1=<hex>`, the hex being the
//! HMAC-SHA256 of `<t>.<raw body>` with a shared secret. During a rotation the PRM sends one
//! `v1` per secret, and the receiver keeps a current and a previous secret: any `v1` that
//! matches any of its secrets is enough. A `t` more than [`TOLERANCE_SECONDS`] from the
//! receiver's clock is refused, so a captured request cannot be replayed later; a repeat
//! within that window is caught by its `event_id` (kept for [`REPEAT_WINDOW_HOURS`]).

use hmac::{Hmac, Mac};
use prmsync_mapping::Integration;
use serde::Deserialize;
use sha2::Sha256;

/// The header that carries the signature (lower case, as HTTP/2 and Function URLs give it).
pub const SIGNATURE_HEADER: &str = "x-prm-signature";
/// How far a signature's `t` may be from the receiver's clock, either way.
pub const TOLERANCE_SECONDS: i64 = 5 * 60;
/// How long an `event_id` is remembered: a repeat within it is answered 200 and dropped.
pub const REPEAT_WINDOW_HOURS: i64 = 24;
/// The largest body a receiver reads (a notification is a few hundred bytes).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// `v1` values read from one header at most (a rotation sends two).
const MAX_SIGNATURES: usize = 8;

/// The secrets a receiver checks signatures with: the current one and, during a rotation,
/// the previous one. `Debug` shows neither.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecrets {
    current: String,
    previous: Option<String>,
}

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("current", &"<redacted>")
            .field("previous", &self.previous.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl WebhookSecrets {
    /// The secrets, or None when there is no current one (blank counts as none: then every
    /// notification is refused). A blank previous secret is no secret.
    pub fn new(current: &str, previous: Option<&str>) -> Option<Self> {
        let current = current.trim();
        if current.is_empty() {
            return None;
        }
        Some(Self {
            current: current.to_string(),
            previous: previous
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_string),
        })
    }

    fn all(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.current.as_str()).chain(self.previous.as_deref())
    }
}

/// Why a notification's signature was refused. The receiver answers every one with the
/// same 401 and logs the kind (never the header, the body or a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("no X-PRM-Signature header")]
    Unsigned,
    #[error("X-PRM-Signature is not `t=<unix seconds>,v1=<hex>`")]
    Malformed,
    #[error("the signature's timestamp is {skew_seconds} s from this receiver's clock (at most {TOLERANCE_SECONDS} s is accepted); a replay, or a clock to set right")]
    Stale { skew_seconds: i64 },
    #[error("no v1 signature matches a secret of this receiver; check that the PRM and prmsync share the webhook secret")]
    BadSignature,
}

impl Refusal {
    /// A short name for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::Unsigned => "unsigned",
            Refusal::Malformed => "malformed",
            Refusal::Stale { .. } => "stale",
            Refusal::BadSignature => "bad_signature",
        }
    }
}

/// The parts of an `X-PRM-Signature` header.
#[derive(Debug, PartialEq, Eq)]
struct SignatureHeader {
    timestamp: i64,
    signatures: Vec<Vec<u8>>,
}

fn parse_header(header: &str) -> Result<SignatureHeader, Refusal> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or(Refusal::Malformed)?;
        match key.trim() {
            "t" if timestamp.is_none() => {
                timestamp = Some(
                    value
                        .trim()
                        .parse::<i64>()
                        .map_err(|_| Refusal::Malformed)?,
                );
            }
            "t" => return Err(Refusal::Malformed),
            "v1" if signatures.len() < MAX_SIGNATURES => {
                signatures.push(hex::decode(value.trim()).map_err(|_| Refusal::Malformed)?);
            }
            "v1" => return Err(Refusal::Malformed),
            // other schemes (a future v2) are skipped, as the contract's receivers do
            _ => {}
        }
    }
    match timestamp {
        Some(timestamp) if !signatures.is_empty() => Ok(SignatureHeader {
            timestamp,
            signatures,
        }),
        _ => Err(Refusal::Malformed),
    }
}

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// Checks a notification's signature at `now` (unix seconds): the header is well formed,
/// its `t` within [`TOLERANCE_SECONDS`] of `now`, and one of its `v1` values the
/// HMAC-SHA256 of `<t>.<body>` under one of `secrets` (compared in constant time). With no
/// secrets every notification is refused.
pub fn verify(
    secrets: Option<&WebhookSecrets>,
    header: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), Refusal> {
    let header = header
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .ok_or(Refusal::Unsigned)?;
    let parsed = parse_header(header)?;
    let skew = now.saturating_sub(parsed.timestamp);
    if skew.abs() > TOLERANCE_SECONDS {
        return Err(Refusal::Stale { skew_seconds: skew });
    }
    let secrets = secrets.ok_or(Refusal::BadSignature)?;
    let matched = secrets.all().any(|secret| {
        parsed.signatures.iter().any(|sig| {
            mac(secret, parsed.timestamp, body)
                .verify_slice(sig)
                .is_ok()
        })
    });
    if matched {
        Ok(())
    } else {
        Err(Refusal::BadSignature)
    }
}

/// The `X-PRM-Signature` value for `body` at `timestamp`, one `v1` per secret (the sending
/// side of the rule: for tests and tools that post notifications).
pub fn sign(secrets: &[&str], timestamp: i64, body: &[u8]) -> String {
    let mut header = format!("t={timestamp}");
    for secret in secrets {
        let tag = mac(secret, timestamp, body).finalize().into_bytes();
        header.push_str(&format!(",v1={}", hex::encode(tag)));
    }
    header
}

/// A change notification, as the PRM posts it. It carries no field values: the receiver
/// reads the record fresh.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Notification {
    pub event_id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
    #[serde(default)]
    pub occurred_at: Option<String>,
}

/// Why a signed body is not a notification (the answer is 400: the PRM sent something the
/// contract does not describe).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotificationError {
    #[error("the body is not a PRM change notification: {0}")]
    NotANotification(String),
    #[error("`{field}` is empty; a notification names its event and record")]
    Empty { field: &'static str },
    #[error("unknown notification type `{0}`; expected organization.*, person.* or deal.*")]
    UnknownType(String),
}

/// Longest `event_id` or record id taken (the PRM's are a few dozen characters).
const MAX_ID_CHARS: usize = 200;

impl Notification {
    /// Parses a (verified) body, and the integration its type belongs to.
    pub fn parse(body: &[u8]) -> Result<(Self, Integration), NotificationError> {
        let note: Notification = serde_json::from_slice(body).map_err(|e| {
            // serde's message names the field and position, never a value
            NotificationError::NotANotification(e.to_string())
        })?;
        for (field, value) in [("event_id", &note.event_id), ("id", &note.id)] {
            if value.trim().is_empty() {
                return Err(NotificationError::Empty { field });
            }
            if value.chars().count() > MAX_ID_CHARS || value.chars().any(char::is_control) {
                return Err(NotificationError::NotANotification(format!(
                    "`{field}` is not an id (over {MAX_ID_CHARS} characters or with control characters)"
                )));
            }
        }
        let integration = match note.kind.split('.').next() {
            Some("organization") => Integration::Organizations,
            Some("person") => Integration::People,
            Some("deal") => Integration::Deals,
            _ => return Err(NotificationError::UnknownType(note.kind.clone())),
        };
        Ok((note, integration))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &[u8] = br#"{"event_id":"ev-1","type":"person.updated","id":"per_1"}"#;
    const NOW: i64 = 1_800_000_000;

    fn secrets() -> WebhookSecrets {
        WebhookSecrets::new("current-secret", Some("previous-secret")).unwrap()
    }

    #[test]
    fn a_signature_of_the_current_or_the_previous_secret_is_accepted() {
        let s = secrets();
        for secret in ["current-secret", "previous-secret"] {
            let h = sign(&[secret], NOW, BODY);
            assert_eq!(verify(Some(&s), Some(&h), BODY, NOW), Ok(()), "{secret}");
        }
        // a PRM rotating its secret sends both; any match is enough
        let h = sign(&["new-secret-not-here-yet", "current-secret"], NOW, BODY);
        assert_eq!(verify(Some(&s), Some(&h), BODY, NOW), Ok(()));
    }

    #[test]
    fn a_wrong_secret_or_another_body_or_timestamp_is_refused() {
        let s = secrets();
        let h = sign(&["wrong"], NOW, BODY);
        assert_eq!(
            verify(Some(&s), Some(&h), BODY, NOW),
            Err(Refusal::BadSignature)
        );
        let h = sign(&["current-secret"], NOW, b"{}");
        assert_eq!(
            verify(Some(&s), Some(&h), BODY, NOW),
            Err(Refusal::BadSignature)
        );
        // the timestamp is signed: moving it breaks the signature
        let h = sign(&["current-secret"], NOW, BODY).replacen(
            &format!("t={NOW}"),
            &format!("t={}", NOW + 1),
            1,
        );
        assert_eq!(
            verify(Some(&s), Some(&h), BODY, NOW),
            Err(Refusal::BadSignature)
        );
        // no secrets configured: nothing is accepted
        let h = sign(&["current-secret"], NOW, BODY);
        assert_eq!(
            verify(None, Some(&h), BODY, NOW),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn a_timestamp_more_than_five_minutes_away_is_refused_either_way() {
        let s = secrets();
        for (t, ok) in [
            (NOW - 300, true),
            (NOW + 300, true),
            (NOW - 301, false),
            (NOW + 301, false),
            (0, false),
        ] {
            let h = sign(&["current-secret"], t, BODY);
            let got = verify(Some(&s), Some(&h), BODY, NOW);
            assert_eq!(got.is_ok(), ok, "t={t}: {got:?}");
            if !ok {
                assert!(matches!(got, Err(Refusal::Stale { .. })), "{got:?}");
            }
        }
    }

    #[test]
    fn unsigned_and_malformed_headers_are_refused() {
        let s = secrets();
        assert_eq!(verify(Some(&s), None, BODY, NOW), Err(Refusal::Unsigned));
        assert_eq!(
            verify(Some(&s), Some("  "), BODY, NOW),
            Err(Refusal::Unsigned)
        );
        let good = sign(&["current-secret"], NOW, BODY);
        let v1 = good.split_once(",v1=").unwrap().1;
        for bad in [
            // the old scheme
            format!("sha256={v1}"),
            format!("v1={v1}"),
            format!("t={NOW}"),
            format!("t=soon,v1={v1}"),
            format!("t={NOW},v1=zz"),
            format!("t={NOW},t={NOW},v1={v1}"),
            format!("t={NOW};v1={v1}"),
        ] {
            assert_eq!(
                verify(Some(&s), Some(&bad), BODY, NOW),
                Err(Refusal::Malformed),
                "{bad}"
            );
        }
        // an unknown scheme beside a good v1 is skipped
        let h = format!("{good},v2=abcdef");
        assert_eq!(verify(Some(&s), Some(&h), BODY, NOW), Ok(()));
    }

    #[test]
    fn blank_secrets_are_no_secrets_and_debug_shows_none() {
        assert_eq!(WebhookSecrets::new("  ", Some("x")), None);
        let s = WebhookSecrets::new("cur", Some(" ")).unwrap();
        assert_eq!(s.all().count(), 1);
        let shown = format!("{:?}", secrets());
        assert!(
            !shown.contains("current-secret") && !shown.contains("previous-secret"),
            "{shown}"
        );
    }

    #[test]
    fn a_notification_names_its_integration_and_bad_ones_say_why() {
        let (n, i) = Notification::parse(BODY).unwrap();
        assert_eq!((n.id.as_str(), i), ("per_1", Integration::People));
        let (_, i) = Notification::parse(
            br#"{"event_id":"e","type":"deal.created","id":"d","occurred_at":"2026-01-01T00:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!(i, Integration::Deals);
        assert!(matches!(
            Notification::parse(br#"{"event_id":"e","type":"widget.updated","id":"x"}"#),
            Err(NotificationError::UnknownType(t)) if t == "widget.updated"
        ));
        assert_eq!(
            Notification::parse(br#"{"event_id":" ","type":"person.updated","id":"x"}"#),
            Err(NotificationError::Empty { field: "event_id" })
        );
        assert!(matches!(
            Notification::parse(b"not json"),
            Err(NotificationError::NotANotification(_))
        ));
        let long = format!(
            r#"{{"event_id":"e","type":"person.updated","id":"{}"}}"#,
            "x".repeat(500)
        );
        assert!(matches!(
            Notification::parse(long.as_bytes()),
            Err(NotificationError::NotANotification(_))
        ));
    }
}
