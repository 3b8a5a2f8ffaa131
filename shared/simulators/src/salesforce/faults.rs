//! Fault injection: failing the n-th call, failing a share of calls, latency, and failing
//! the write of one record.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::error::{ApiError, RecordError};

/// Seed of the fault rng; fixed so runs are repeatable.
const DEFAULT_SEED: u64 = 0x5eed_5a1e;

#[derive(Debug, Clone)]
struct NthRule {
    kind: Option<String>,
    /// Matching calls still to let through before failing.
    remaining: u64,
    status: u16,
    code: String,
}

#[derive(Debug, Clone)]
struct RateRule {
    kind: Option<String>,
    rate: f64,
    status: u16,
    code: String,
}

#[derive(Debug, Clone)]
struct RecordRule {
    key: String,
    code: String,
    message: String,
}

#[derive(Debug)]
struct FaultState {
    nth: Vec<NthRule>,
    rate: Vec<RateRule>,
    records: Vec<RecordRule>,
    latency: Duration,
    rng: StdRng,
}

impl Default for FaultState {
    fn default() -> Self {
        FaultState {
            nth: Vec::new(),
            rate: Vec::new(),
            records: Vec::new(),
            latency: Duration::ZERO,
            rng: StdRng::seed_from_u64(DEFAULT_SEED),
        }
    }
}

/// Handle on the simulator's fault injection (cheap to clone, shared).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    state: Arc<Mutex<FaultState>>,
}

fn kind_matches(rule: &Option<String>, kind: &str) -> bool {
    rule.as_deref().is_none_or(|k| k == kind)
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, FaultState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `n`-th call from now (1 = the next one) of `kind` (or of any kind) answers
    /// `status` with `error_code`, once.
    pub fn fail_nth(&self, kind: Option<&str>, n: u64, status: u16, error_code: &str) {
        self.lock().nth.push(NthRule {
            kind: kind.map(str::to_string),
            remaining: n.max(1),
            status,
            code: error_code.to_string(),
        });
    }

    /// A share `rate` (0..=1) of calls of `kind` (or of any kind) fail with this error.
    pub fn fail_rate(&self, kind: Option<&str>, rate: f64, status: u16, error_code: &str) {
        self.lock().rate.push(RateRule {
            kind: kind.map(str::to_string),
            rate: rate.clamp(0.0, 1.0),
            status,
            code: error_code.to_string(),
        });
    }

    /// Reseeds the rng used by [`Faults::fail_rate`].
    pub fn seed(&self, seed: u64) {
        self.lock().rng = StdRng::seed_from_u64(seed);
    }

    /// Every API call waits this long before it is answered.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// The write of the record with this Id or external id value (ignoring case) fails once
    /// with `error_code` and `message` (a per-record error in collections, 400 otherwise).
    pub fn fail_record_write(&self, id_or_external_value: &str, error_code: &str, message: &str) {
        self.lock().records.push(RecordRule {
            key: id_or_external_value.to_lowercase(),
            code: error_code.to_string(),
            message: message.to_string(),
        });
    }

    /// Removes every fault and the latency.
    pub fn clear(&self) {
        let mut s = self.lock();
        s.nth.clear();
        s.rate.clear();
        s.records.clear();
        s.latency = Duration::ZERO;
    }

    pub(crate) fn latency(&self) -> Duration {
        self.lock().latency
    }

    /// Called once per API call: the injected error for this call, if any.
    pub(crate) fn on_call(&self, kind: &str) -> Option<ApiError> {
        let mut s = self.lock();
        let mut fired = None;
        let mut i = 0;
        while i < s.nth.len() {
            if kind_matches(&s.nth[i].kind, kind) {
                s.nth[i].remaining -= 1;
                if s.nth[i].remaining == 0 {
                    let rule = s.nth.remove(i);
                    fired.get_or_insert((rule.status, rule.code));
                    continue;
                }
            }
            i += 1;
        }
        if fired.is_none() {
            let rules: Vec<RateRule> = s
                .rate
                .iter()
                .filter(|r| kind_matches(&r.kind, kind))
                .cloned()
                .collect();
            for rule in rules {
                if s.rng.gen_bool(rule.rate) {
                    fired = Some((rule.status, rule.code));
                    break;
                }
            }
        }
        fired.map(|(status, code)| ApiError::new(status, &code, format!("simulated fault: {code}")))
    }

    /// Takes the record fault matching one of `keys`, if any.
    pub(crate) fn take_record_fault<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a str>,
    ) -> Option<RecordError> {
        let mut s = self.lock();
        if s.records.is_empty() {
            return None;
        }
        for key in keys {
            let key = key.to_lowercase();
            if let Some(pos) = s.records.iter().position(|r| r.key == key) {
                let rule = s.records.remove(pos);
                return Some(RecordError::new(&rule.code, rule.message, Vec::new()));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_fires_once_on_matching_kind() {
        let f = Faults::default();
        f.fail_nth(Some("query"), 2, 503, "SERVER_UNAVAILABLE");
        assert!(f.on_call("query").is_none());
        assert!(f.on_call("describe").is_none());
        let e = f.on_call("query").unwrap();
        assert_eq!((e.status, e.code.as_str()), (503, "SERVER_UNAVAILABLE"));
        assert!(f.on_call("query").is_none());
    }

    #[test]
    fn rate_is_deterministic_and_clear_removes() {
        let f = Faults::default();
        f.fail_rate(None, 0.5, 500, "UNKNOWN_EXCEPTION");
        let a: Vec<bool> = (0..50).map(|_| f.on_call("query").is_some()).collect();
        assert!(a.iter().any(|x| *x) && a.iter().any(|x| !*x));
        f.clear();
        assert!((0..50).all(|_| f.on_call("query").is_none()));
    }

    #[test]
    fn record_fault_once() {
        let f = Faults::default();
        f.fail_record_write("ORG-1", "UNABLE_TO_LOCK_ROW", "locked");
        assert!(f.take_record_fault(["x"]).is_none());
        assert_eq!(
            f.take_record_fault(["org-1"]).unwrap().status_code,
            "UNABLE_TO_LOCK_ROW"
        );
        assert!(f.take_record_fault(["org-1"]).is_none());
    }
}
