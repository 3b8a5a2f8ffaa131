//! Fault injection for the PRM simulator: failures, rate limits and latency.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const DEFAULT_SEED: u64 = 0x5EED_F00D;

/// What a request meets instead of its normal handling.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Injected {
    Fail { status: u16, code: String },
    RateLimited { retry_after_secs: u64 },
}

#[derive(Debug)]
struct NthFault {
    kind: Option<String>,
    remaining: u64,
    status: u16,
    code: String,
    after_write: bool,
}

#[derive(Debug)]
struct RateFault {
    kind: Option<String>,
    rate: f64,
    status: u16,
    code: String,
}

#[derive(Debug)]
struct State {
    nth: Vec<NthFault>,
    rates: Vec<RateFault>,
    rate_limited: u64,
    retry_after_secs: u64,
    latency: Duration,
    rng: StdRng,
}

impl Default for State {
    fn default() -> Self {
        Self {
            nth: Vec::new(),
            rates: Vec::new(),
            rate_limited: 0,
            retry_after_secs: 1,
            latency: Duration::ZERO,
            rng: StdRng::seed_from_u64(DEFAULT_SEED),
        }
    }
}

/// A handle on the simulator's faults; clones share the same state.
///
/// `kind` is a call kind (`"list"`, `"get"`, `"create"`, `"update"`, `"delete"`,
/// `"settings"`, `"groups"`) or an operation (`"people.create"`); `None` matches every call.
#[derive(Clone, Debug, Default)]
pub struct Faults {
    state: Arc<Mutex<State>>,
}

fn matches(kind: &Option<String>, call_kind: &str, op: &str) -> bool {
    match kind {
        None => true,
        Some(k) => k == call_kind || k == op,
    }
}

impl Faults {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `n`th matching call from now (1 = the next one) fails once with `status`/`code`.
    pub fn fail_nth(&self, kind: Option<&str>, n: u64, status: u16, code: &str) {
        self.push_nth(kind, n, status, code, false);
    }

    /// Like [`Faults::fail_nth`], but the write is applied first and then the error is
    /// returned: what a client sees when a response is lost after a commit.
    pub fn fail_nth_after_write(&self, kind: Option<&str>, n: u64, status: u16, code: &str) {
        self.push_nth(kind, n, status, code, true);
    }

    fn push_nth(&self, kind: Option<&str>, n: u64, status: u16, code: &str, after_write: bool) {
        self.lock().nth.push(NthFault {
            kind: kind.map(str::to_string),
            remaining: n.max(1),
            status,
            code: code.to_string(),
            after_write,
        });
    }

    /// Every matching call fails with probability `rate` (0.0..=1.0), from a seeded generator.
    pub fn fail_rate(&self, kind: Option<&str>, rate: f64, status: u16, code: &str) {
        self.lock().rates.push(RateFault {
            kind: kind.map(str::to_string),
            rate: rate.clamp(0.0, 1.0),
            status,
            code: code.to_string(),
        });
    }

    /// Reseeds the generator behind [`Faults::fail_rate`].
    pub fn seed(&self, seed: u64) {
        self.lock().rng = StdRng::seed_from_u64(seed);
    }

    /// The next `n_calls` calls get `429 rate_limited` with `Retry-After: retry_after_secs`.
    pub fn rate_limit_next(&self, n_calls: u64, retry_after_secs: u64) {
        let mut s = self.lock();
        s.rate_limited = n_calls;
        s.retry_after_secs = retry_after_secs;
    }

    /// Every call waits this long before it is handled.
    pub fn set_latency(&self, latency: Duration) {
        self.lock().latency = latency;
    }

    /// Removes every fault and the latency.
    pub fn clear(&self) {
        let mut s = self.lock();
        s.nth.clear();
        s.rates.clear();
        s.rate_limited = 0;
        s.latency = Duration::ZERO;
    }

    pub(crate) fn latency(&self) -> Duration {
        self.lock().latency
    }

    /// The fault a call meets before it is handled, if any.
    pub(crate) fn before(&self, call_kind: &str, op: &str) -> Option<Injected> {
        let mut s = self.lock();
        if s.rate_limited > 0 {
            s.rate_limited -= 1;
            return Some(Injected::RateLimited {
                retry_after_secs: s.retry_after_secs,
            });
        }
        if let Some(hit) = take_nth(&mut s.nth, call_kind, op, false) {
            return Some(hit);
        }
        let State { rates, rng, .. } = &mut *s;
        for f in rates.iter().filter(|f| matches(&f.kind, call_kind, op)) {
            if rng.gen_bool(f.rate) {
                return Some(Injected::Fail {
                    status: f.status,
                    code: f.code.clone(),
                });
            }
        }
        None
    }

    /// The fault a successful write meets after it was applied, if any.
    pub(crate) fn after_write(&self, call_kind: &str, op: &str) -> Option<Injected> {
        take_nth(&mut self.lock().nth, call_kind, op, true)
    }
}

fn take_nth(
    list: &mut Vec<NthFault>,
    call_kind: &str,
    op: &str,
    after_write: bool,
) -> Option<Injected> {
    let mut fired = None;
    for (i, f) in list.iter_mut().enumerate() {
        if f.after_write != after_write || !matches(&f.kind, call_kind, op) {
            continue;
        }
        f.remaining -= 1;
        if f.remaining == 0 && fired.is_none() {
            fired = Some(i);
        }
    }
    let i = fired?;
    let f = list.remove(i);
    // Other faults that reached zero on the same call fire on the next one.
    for other in list.iter_mut().filter(|o| o.remaining == 0) {
        other.remaining = 1;
    }
    Some(Injected::Fail {
        status: f.status,
        code: f.code,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nth_fires_once_on_the_right_call() {
        let f = Faults::default();
        f.fail_nth(Some("create"), 2, 503, "internal");
        assert_eq!(f.before("list", "people.list"), None);
        assert_eq!(f.before("create", "people.create"), None);
        assert!(matches!(
            f.before("create", "people.create"),
            Some(Injected::Fail { status: 503, .. })
        ));
        assert_eq!(f.before("create", "people.create"), None);
    }

    #[test]
    fn rate_limit_counts_down_and_rate_is_seeded() {
        let f = Faults::default();
        f.rate_limit_next(2, 7);
        assert_eq!(
            f.before("get", "x"),
            Some(Injected::RateLimited {
                retry_after_secs: 7
            })
        );
        assert!(f.before("get", "x").is_some());
        assert_eq!(f.before("get", "x"), None);
        f.fail_rate(None, 0.5, 500, "internal");
        let a: Vec<bool> = (0..20).map(|_| f.before("get", "x").is_some()).collect();
        f.seed(DEFAULT_SEED);
        let b: Vec<bool> = (0..20).map(|_| f.before("get", "x").is_some()).collect();
        assert_eq!(a, b);
        assert!(a.contains(&true) && a.contains(&false));
        f.clear();
        assert_eq!(f.before("get", "x"), None);
    }
}
