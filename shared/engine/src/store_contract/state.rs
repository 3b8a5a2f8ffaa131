//! Run control: leases, pause flags, the API-limit hold, and the retry set.

use chrono::{Duration, Utc};
use prmsync_mapping::{Integration, ObjectKind};

use super::{micros, s};
use crate::store::{RetryEntry, Store};

/// Leases: exclusion, same-holder renewal (which extends the expiry), release only by the
/// holder, expiry.
pub async fn leases(store: &dyn Store) {
    let i = Integration::People;
    let soon = Utc::now() + Duration::minutes(5);
    assert!(
        store.acquire_lease(i, "a", soon).await.expect("acquire"),
        "a free lease is taken"
    );
    assert!(
        !store.acquire_lease(i, "b", soon).await.expect("acquire"),
        "a lease held by another holder is refused"
    );
    assert!(
        store
            .acquire_lease(Integration::Organizations, "b", soon)
            .await
            .expect("acquire"),
        "leases are per integration"
    );
    assert!(
        store
            .acquire_lease(i, "a", soon + Duration::minutes(5))
            .await
            .expect("renew"),
        "the holder renews its own lease"
    );
    store.release_lease(i, "b").await.expect("release by other");
    assert!(
        !store.acquire_lease(i, "c", soon).await.expect("acquire"),
        "release by another holder must not free the lease"
    );
    store.release_lease(i, "a").await.expect("release");
    assert!(
        store
            .acquire_lease(i, "b", Utc::now() - Duration::seconds(1))
            .await
            .expect("acquire"),
        "a released lease is free"
    );
    assert!(
        store.acquire_lease(i, "c", soon).await.expect("acquire"),
        "an expired lease is taken by anyone"
    );
    assert!(
        !store.acquire_lease(i, "b", soon).await.expect("acquire"),
        "the new holder of a taken-over lease excludes the old one"
    );
    store
        .release_lease(Integration::Deals, "nobody")
        .await
        .expect("releasing a lease nobody holds is not an error");

    // A renewal moves the expiry: a lease taken already expired and renewed by its holder
    // is held again (a run renews its lease while it lives).
    let d = Integration::Deals;
    assert!(
        store
            .acquire_lease(d, "a", Utc::now() - Duration::seconds(1))
            .await
            .expect("acquire"),
        "a free lease is taken"
    );
    assert!(
        store.acquire_lease(d, "a", soon).await.expect("renew"),
        "the holder renews its own lease, expired or not"
    );
    assert!(
        !store.acquire_lease(d, "b", soon).await.expect("acquire"),
        "a renewal extends the lease: others are refused until the new expiry"
    );
    store.release_lease(d, "a").await.expect("release");
}

/// Pause flags: false by default, per integration.
pub async fn pauses(store: &dyn Store) {
    for i in Integration::ALL {
        assert!(
            !store.is_paused(i).await.expect("is_paused"),
            "{i} is not paused by default"
        );
    }
    store
        .set_paused(Integration::Deals, true)
        .await
        .expect("pause");
    assert!(store
        .is_paused(Integration::Deals)
        .await
        .expect("is_paused"));
    assert!(
        !store
            .is_paused(Integration::People)
            .await
            .expect("is_paused"),
        "pause flags are per integration"
    );
    store
        .set_paused(Integration::Deals, false)
        .await
        .expect("resume");
    assert!(
        !store
            .is_paused(Integration::Deals)
            .await
            .expect("is_paused"),
        "set_paused(false) resumes"
    );
}

fn retry(object: ObjectKind, side: &str, id: &str, attempts: u32, parked: bool) -> RetryEntry {
    let now = Utc::now();
    RetryEntry {
        object,
        side: side.into(),
        id: id.into(),
        attempts,
        next_at: micros(now + Duration::minutes(5 * i64::from(attempts))),
        parked,
        error: format!("attempt {attempts}: Salesforce did not answer in time"),
        updated_at: micros(now),
    }
}

fn by_key(mut entries: Vec<RetryEntry>) -> Vec<RetryEntry> {
    entries.sort_by(|a, b| (&a.side, &a.id).cmp(&(&b.side, &b.id)));
    entries
}

/// The retry set: entries by object, side and id; held (inserted or replaced), listed by
/// ids and side or whole (parked ones included), cleared. Uses ids `006R*`.
pub async fn retry_set(store: &dyn Store) {
    let deal = ObjectKind::Deal;
    assert!(
        store.all_retries(deal).await.expect("all").is_empty(),
        "the retry set is empty at first"
    );
    assert!(store
        .retry_entries(deal, "crm", &s(&["006R1"]))
        .await
        .expect("entries")
        .is_empty());
    let a = retry(deal, "crm", "006R1", 1, false);
    let b = retry(deal, "crm", "006R2", 2, false);
    let c = retry(deal, "prm", "006R1", 1, false);
    let d = retry(deal, "crm", "006R3", 9, true);
    let e = retry(ObjectKind::Person, "crm", "006R1", 1, false);
    store
        .hold_retries(&[a.clone(), b.clone(), c.clone(), d.clone(), e.clone()])
        .await
        .expect("hold");
    store.hold_retries(&[]).await.expect("hold nothing");
    let mut asked: Vec<String> = (0..150).map(|n| format!("006RQ{n}")).collect();
    asked.extend(s(&["006R1", "006R3", "006R9", "006R1"]));
    assert_eq!(
        by_key(
            store
                .retry_entries(deal, "crm", &asked)
                .await
                .expect("entries")
        ),
        vec![a.clone(), d.clone()],
        "retry_entries returns the held entries of the asked ids of one side (parked ones too), every field round-tripped"
    );
    assert_eq!(
        store
            .retry_entries(deal, "prm", &s(&["006R1"]))
            .await
            .expect("entries"),
        vec![c.clone()],
        "entries are per side"
    );
    assert!(
        store
            .retry_entries(deal, "crm", &[])
            .await
            .expect("entries")
            .is_empty(),
        "no ids: no entries"
    );

    // Held again: replaced by object, side and id.
    let a2 = RetryEntry {
        attempts: 2,
        parked: true,
        error: "attempt 2: the PRM answered 503".into(),
        next_at: micros(Utc::now() + Duration::hours(1)),
        ..a.clone()
    };
    store
        .hold_retries(std::slice::from_ref(&a2))
        .await
        .expect("hold again");
    assert_eq!(
        store
            .retry_entries(deal, "crm", &s(&["006R1"]))
            .await
            .expect("entries"),
        vec![a2.clone()],
        "holding an entry again replaces it"
    );
    assert_eq!(
        by_key(store.all_retries(deal).await.expect("all")),
        vec![a2.clone(), b.clone(), d.clone(), c.clone()],
        "all_retries lists every entry of the object, parked ones included"
    );
    assert_eq!(
        store.all_retries(ObjectKind::Person).await.expect("all"),
        vec![e.clone()],
        "the retry set is per object"
    );

    // Cleared by ids of one side; unknown ids are ignored.
    store
        .clear_retries(deal, "crm", &s(&["006R1", "006R9"]))
        .await
        .expect("clear");
    store
        .clear_retries(deal, "crm", &[])
        .await
        .expect("clear none");
    assert_eq!(
        by_key(store.all_retries(deal).await.expect("all")),
        vec![b, d, c],
        "clear_retries removes the named entries of that side only"
    );
    assert_eq!(
        store.all_retries(ObjectKind::Person).await.expect("all"),
        vec![e],
        "clear_retries removes the entries of that object only"
    );
}

/// The API hold: none at first, a later hold replaces an earlier one (even a shorter one),
/// past holds are returned.
pub async fn api_hold(store: &dyn Store) {
    assert_eq!(
        store.api_hold().await.expect("api_hold"),
        None,
        "no hold at first"
    );
    let until = micros(Utc::now() + Duration::minutes(30));
    store.hold_api(until).await.expect("hold");
    assert_eq!(
        store.api_hold().await.expect("api_hold"),
        Some(until),
        "the hold round-trips to the microsecond"
    );
    let past = micros(Utc::now() - Duration::minutes(1));
    store.hold_api(past).await.expect("hold again");
    assert_eq!(
        store.api_hold().await.expect("api_hold"),
        Some(past),
        "a later hold replaces an earlier one, and a past hold is still returned"
    );
}

/// Webhook deliveries: the first delivery of an event is taken, a repeat within its window
/// is not, a released or expired one is taken again, and two at once take it once.
pub async fn deliveries(store: &dyn Store) {
    let now = micros(Utc::now());
    let day = now + Duration::hours(24);
    assert!(
        store.take_delivery("ev-1", now, day).await.expect("take"),
        "the first delivery is taken"
    );
    assert!(
        !store
            .take_delivery("ev-1", now + Duration::hours(23), day)
            .await
            .expect("take"),
        "a repeat within the window is not taken"
    );
    assert!(
        store.take_delivery("ev-2", now, day).await.expect("take"),
        "deliveries are per event"
    );
    store.release_delivery("ev-1").await.expect("release");
    assert!(
        store.take_delivery("ev-1", now, day).await.expect("take"),
        "a released delivery is taken again"
    );
    assert!(
        store
            .take_delivery(
                "ev-2",
                day + Duration::seconds(1),
                day + Duration::hours(25)
            )
            .await
            .expect("take"),
        "a delivery whose window has passed is taken again (a store may keep it a while)"
    );
    store
        .release_delivery("never-seen")
        .await
        .expect("releasing an unknown event is not an error");
    let (a, b) = futures::join!(
        store.take_delivery("ev-3", now, day),
        store.take_delivery("ev-3", now, day)
    );
    assert_eq!(
        [a.expect("take"), b.expect("take")]
            .iter()
            .filter(|t| **t)
            .count(),
        1,
        "two deliveries at once take the event once"
    );
}
