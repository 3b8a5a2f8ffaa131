//! The PRM's change notifications (`docs/prm-api.yaml`, webhook `recordChanged`): the
//! signature rule and the notification itself, as pure functions that every receiver shares
//! (the prm-webhook function today).
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
struct SignatureHeader<'a> {
    /// `t` as sent (the signed text) and as a number.
    t: &'a str,
    timestamp: i64,
    signatures: Vec<Vec<u8>>,
}

fn parse_header(header: &str) -> Result<SignatureHeader<'_>, Refusal> {
    let mut timestamp: Option<(&str, i64)> = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let (key, value) = part.trim().split_once('=').ok_or(Refusal::Malformed)?;
        match key.trim() {
            "t" if timestamp.is_none() => {
                let t = value.trim();
                // digits only (no sign), at most 12 of them
                if t.is_empty() || t.len() > 12 || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(Refusal::Malformed);
                }
                timestamp = Some((t, t.parse::<i64>().map_err(|_| Refusal::Malformed)?));
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
        Some((t, timestamp)) if !signatures.is_empty() => Ok(SignatureHeader {
            t,
            timestamp,
            signatures,
        }),
        _ => Err(Refusal::Malformed),
    }
}

fn mac(secret: &str, t: &str, body: &[u8]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.as_bytes());
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
        parsed
            .signatures
            .iter()
            .any(|sig| mac(secret, parsed.t, body).verify_slice(sig).is_ok())
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
        let tag = mac(secret, &timestamp.to_string(), body)
            .finalize()
            .into_bytes();
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

/// What is wrong with a JSON document, without any of its values: serde's message when it
/// names only fields (`missing field`, `unknown field`), else the kind of error and where
/// (its other messages can quote a value, e.g. ``invalid type: integer `123456` ``).
pub fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    if text.starts_with("missing field") || text.starts_with("unknown field") {
        return text;
    }
    let kind = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not valid JSON",
        serde_json::error::Category::Data => "a value of the wrong type",
        serde_json::error::Category::Eof => "cut short",
    };
    format!("{kind} at line {}, column {}", e.line(), e.column())
}

/// Longest `event_id` or record id taken (the PRM's are a few dozen characters).
const MAX_ID_CHARS: usize = 200;

impl Notification {
    /// Parses a (verified) body, and the integration its type belongs to.
    pub fn parse(body: &[u8]) -> Result<(Self, Integration), NotificationError> {
        let note: Notification = serde_json::from_slice(body)
            .map_err(|e| NotificationError::NotANotification(json_error(&e)))?;
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

/// What a receiver answers a notification: the same rule for the prm-webhook function and
/// for `prmsync watch`. Each step answers before the next costs anything: a body over
/// [`MAX_BODY_BYTES`] gets 413; an unsigned, malformed, stale or badly signed request 401;
/// a signed body that is not a notification 400; an `event_id` taken in the last
/// [`REPEAT_WINDOW_HOURS`] 200 and nothing more; a record handed on (queued, or synced on
/// this machine) 202; a store or hand-off that failed 503, so the PRM retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Accepted {
        integration: Integration,
        id: String,
    },
    Repeat,
    NotANotification(NotificationError),
    Unauthorized(Refusal),
    TooLarge,
    Unavailable(&'static str),
}

/// The 503 answer when the event could not be recorded.
pub const NOT_RECORDED: &str = "could not record the event; the PRM should retry";
/// The 503 answer when the record could not be handed on.
pub const NOT_QUEUED: &str = "could not queue the change; the PRM should retry";

impl Answer {
    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Answer::Accepted { .. } => 202,
            Answer::Repeat => 200,
            Answer::NotANotification(_) => 400,
            Answer::Unauthorized(_) => 401,
            Answer::TooLarge => 413,
            Answer::Unavailable(_) => 503,
        }
    }

    /// A short name for logs and metrics: `accepted`, `repeat`, `not_a_notification`, the
    /// refusal's kind (`unsigned`, `malformed`, `stale`, `bad_signature`), `too_large` or
    /// `unavailable`.
    pub fn reason(&self) -> &'static str {
        match self {
            Answer::Accepted { .. } => "accepted",
            Answer::Repeat => "repeat",
            Answer::NotANotification(_) => "not_a_notification",
            Answer::Unauthorized(refusal) => refusal.kind(),
            Answer::TooLarge => "too_large",
            Answer::Unavailable(_) => "unavailable",
        }
    }

    /// What the answer means, for the receiver's log (never a header, the body or a
    /// secret).
    pub fn explained(&self) -> String {
        match self {
            Answer::Accepted { integration, id } => format!("{integration} {id} taken"),
            Answer::Repeat => {
                format!("an event taken in the last {REPEAT_WINDOW_HOURS} h: answered and dropped")
            }
            Answer::NotANotification(e) => e.to_string(),
            Answer::Unauthorized(refusal) => refusal.to_string(),
            Answer::TooLarge => format!("the body is over the {MAX_BODY_BYTES}-byte limit"),
            Answer::Unavailable(why) => why.to_string(),
        }
    }

    /// The JSON body. The 401 and 413 answers say only what the status says: why is for
    /// the receiver's log.
    pub fn body(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Answer::Accepted { integration, id } => {
                json!({"queued": true, "integration": integration.as_str(), "id": id})
            }
            Answer::Repeat => json!({"queued": false, "repeat": true}),
            Answer::NotANotification(e) => json!({"error": e.to_string()}),
            Answer::Unauthorized(_) => json!({"error": "unauthorized"}),
            Answer::TooLarge => json!({"error": "payload too large"}),
            Answer::Unavailable(why) => json!({"error": why}),
        }
    }
}

/// The checks that need nothing but the request, the secrets and the clock, in order:
/// size (413), signature (401), notification (400). The notification and its integration
/// when all pass.
pub fn check(
    secrets: Option<&WebhookSecrets>,
    header: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(Notification, Integration), Answer> {
    if body.len() > MAX_BODY_BYTES {
        return Err(Answer::TooLarge);
    }
    verify(secrets, header, body, now).map_err(Answer::Unauthorized)?;
    Notification::parse(body).map_err(Answer::NotANotification)
}

/// Takes a checked notification's `event_id` for [`REPEAT_WINDOW_HOURS`]: `Err(Repeat)`
/// when it was taken already, `Err(Unavailable)` when the store failed (the event is
/// released, so the PRM's retry is taken).
pub async fn take(
    deliveries: &dyn prmsync_engine::store::Deliveries,
    note: &Notification,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), Answer> {
    let until = now + chrono::Duration::hours(REPEAT_WINDOW_HOURS);
    match deliveries.take_delivery(&note.event_id, now, until).await {
        Ok(true) => Ok(()),
        Ok(false) => {
            tracing::info!(
                code = "webhook_repeat",
                event_id = note.event_id.as_str(),
                prm_id = note.id.as_str(),
                message = "this event was taken already: answered and dropped"
            );
            Err(Answer::Repeat)
        }
        Err(e) => {
            tracing::error!(code = "webhook_store_failed", event_id = note.event_id.as_str(), message = %e);
            // the put may have landed before the error: let the PRM's retry be taken
            release(deliveries, &note.event_id).await;
            Err(Answer::Unavailable(NOT_RECORDED))
        }
    }
}

/// Lets an event be taken again, after its record could not be handed on (best effort:
/// when this fails too, the PRM's retry is dropped as a repeat and the next run syncs the
/// record).
pub async fn release(deliveries: &dyn prmsync_engine::store::Deliveries, event_id: &str) {
    if let Err(e) = deliveries.release_delivery(event_id).await {
        tracing::error!(
            code = "webhook_store_failed",
            event_id,
            message = %e,
            fix = "the PRM's retry of this event will be dropped; the next scheduled run syncs the record"
        );
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
            format!("t=+{NOW},v1={v1}"),
            format!("t=-5,v1={v1}"),
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
        // a value of the wrong type is described without the value
        let err =
            Notification::parse(br#"{"event_id":123456789,"type":"person.updated","id":"x"}"#)
                .unwrap_err()
                .to_string();
        assert!(
            !err.contains("123456789") && err.contains("line 1"),
            "{err}"
        );
        let long = format!(
            r#"{{"event_id":"e","type":"person.updated","id":"{}"}}"#,
            "x".repeat(500)
        );
        assert!(matches!(
            Notification::parse(long.as_bytes()),
            Err(NotificationError::NotANotification(_))
        ));
    }

    #[test]
    fn a_request_is_checked_for_size_then_signature_then_notification() {
        let s = secrets();
        let h = sign(&["current-secret"], NOW, BODY);
        let (n, i) = check(Some(&s), Some(&h), BODY, NOW).unwrap();
        assert_eq!((n.id.as_str(), i), ("per_1", Integration::People));
        // too large is answered before the signature is looked at
        let big = vec![b' '; MAX_BODY_BYTES + 1];
        let answer = check(Some(&s), None, &big, NOW).unwrap_err();
        assert_eq!(
            (answer.status(), answer.body()),
            (413, serde_json::json!({"error": "payload too large"}))
        );
        let answer = check(Some(&s), Some(&sign(&["wrong"], NOW, BODY)), BODY, NOW).unwrap_err();
        assert_eq!(answer, Answer::Unauthorized(Refusal::BadSignature));
        assert_eq!(
            (answer.status(), answer.body()),
            (401, serde_json::json!({"error": "unauthorized"}))
        );
        let body = br#"{"event_id":"e","type":"widget.updated","id":"x"}"#;
        let answer = check(
            Some(&s),
            Some(&sign(&["current-secret"], NOW, body)),
            body,
            NOW,
        )
        .unwrap_err();
        assert_eq!(answer.status(), 400);
        assert!(answer.body()["error"]
            .as_str()
            .unwrap()
            .contains("widget.updated"));
        assert_eq!(Answer::Repeat.status(), 200);
        assert_eq!(Answer::Unauthorized(Refusal::Unsigned).reason(), "unsigned");
        assert!(Answer::Unauthorized(Refusal::BadSignature)
            .explained()
            .contains("share the webhook secret"));
        assert_eq!(Answer::Unavailable(NOT_QUEUED).status(), 503);
        let accepted = Answer::Accepted {
            integration: Integration::Deals,
            id: "d1".into(),
        };
        assert_eq!(
            (accepted.status(), accepted.body()),
            (
                202,
                serde_json::json!({"queued": true, "integration": "deals", "id": "d1"})
            )
        );
    }
}
