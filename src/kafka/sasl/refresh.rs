//! A credential fetched from an endpoint (an OIDC access token, AWS credentials), cached and
//! shared by every connection of a cluster, fetched again once 80% of its lifetime has
//! passed, with backoff after a failure.
//!
//! A login that finds the value due fetches it, and the others wait for that one fetch (a
//! cluster dialling ten brokers at once asks the endpoint once). After the first fetch a
//! background task ([`Cached::keep_fresh`]) also fetches whenever the value falls due, so it
//! is renewed before it expires even when no login happens then; it ends when its owner
//! (the cluster's token source) is dropped. Re-authentication (KIP-368) is a new login and
//! gets the current value. While a refresh fails, the old value is used as long as it has
//! not expired; an expired value is never sent.
//!
//! The schedule ([`Schedule`]) is pure: it takes `now` and is unit-tested without a clock.

use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::backoff::Backoff;

/// A value is fetched again once this fraction of its lifetime has passed (librdkafka
/// refreshes OAUTHBEARER tokens at 80%).
pub const REFRESH_AT: f64 = 0.8;
/// A value is no longer sent in the last 5% of its lifetime (at most 30 s): the login that
/// carries it takes time, and the endpoint's clock started before ours.
pub const EXPIRY_MARGIN: f64 = 0.05;
pub const MAX_EXPIRY_MARGIN: Duration = Duration::from_secs(30);
/// First and largest wait after a failed fetch.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
pub const MAX_RETRY: Duration = Duration::from_secs(30);

/// A fetched value and how long it is valid (`None`: it does not expire).
#[derive(Debug, Clone)]
pub struct Fetched<T> {
    pub value: T,
    pub lifetime: Option<Duration>,
}

/// What a login should do now.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Use the cached value.
    Use,
    /// Fetch a new value (the cached one, if any, is due for refresh or expired).
    Fetch,
    /// No usable value and the endpoint is in backoff: fail with this.
    Fail(String),
}

#[derive(Debug)]
struct Held<T> {
    value: T,
    refresh_at: Option<Instant>,
    expires_at: Option<Instant>,
}

/// When a value is used, refreshed and retried.
#[derive(Debug)]
pub struct Schedule<T> {
    held: Option<Held<T>>,
    retry_at: Option<Instant>,
    last_error: Option<String>,
    backoff: Backoff,
}

impl<T: Clone> Schedule<T> {
    pub fn new(first_retry: Duration, max_retry: Duration) -> Self {
        Schedule {
            held: None,
            retry_at: None,
            last_error: None,
            backoff: Backoff::new(first_retry, max_retry),
        }
    }

    /// The cached value, when it has not expired at `now`.
    pub fn valid(&self, now: Instant) -> Option<&T> {
        self.held
            .as_ref()
            .filter(|h| h.expires_at.is_none_or(|at| now < at))
            .map(|h| &h.value)
    }

    /// When the cached value is due for refresh.
    pub fn refresh_at(&self) -> Option<Instant> {
        self.held.as_ref().and_then(|h| h.refresh_at)
    }

    /// When a fetch should next be made without a login asking: the retry after a failure,
    /// else the refresh point (`None`: nothing fetched yet, or a value that never expires).
    pub fn next_due(&self) -> Option<Instant> {
        self.retry_at.or_else(|| self.refresh_at())
    }

    pub fn decide(&self, now: Instant) -> Decision {
        let fresh = self
            .held
            .as_ref()
            .is_some_and(|h| h.refresh_at.is_none_or(|at| now < at));
        if fresh {
            return Decision::Use;
        }
        match self.retry_at {
            Some(at) if now < at => match self.valid(now) {
                Some(_) => Decision::Use,
                None => Decision::Fail(format!(
                    "{} (next attempt in {:.1} s)",
                    self.last_error
                        .as_deref()
                        .unwrap_or("the last attempt failed"),
                    at.saturating_duration_since(now).as_secs_f64()
                )),
            },
            _ => Decision::Fetch,
        }
    }

    /// A fetch that was sent at `sent` succeeded (lifetimes count from the request, not
    /// the answer: the endpoint's clock started then). A point beyond what the clock can
    /// hold (an endpoint may answer any lifetime) is never reached: no refresh, no expiry.
    pub fn fetched(&mut self, fetched: Fetched<T>, sent: Instant) {
        let (refresh_at, expires_at) = match fetched.lifetime {
            Some(life) => {
                let margin = life.mul_f64(EXPIRY_MARGIN).min(MAX_EXPIRY_MARGIN);
                (
                    sent.checked_add(life.mul_f64(REFRESH_AT)),
                    sent.checked_add(life.saturating_sub(margin)),
                )
            }
            None => (None, None),
        };
        self.held = Some(Held {
            value: fetched.value,
            refresh_at,
            expires_at,
        });
        self.retry_at = None;
        self.last_error = None;
        self.backoff.reset();
    }

    /// A fetch failed at `now`: no new attempt before the backoff delay.
    pub fn failed(&mut self, error: String, now: Instant) -> Duration {
        let delay = self.backoff.next_delay();
        // At most `MAX_RETRY` ahead: `None` (no backoff) only past the clock's end.
        self.retry_at = now.checked_add(delay);
        self.last_error = Some(error);
        delay
    }
}

/// A [`Schedule`] behind an async lock, so one fetch serves every waiting login.
#[derive(Debug)]
pub struct Cached<T> {
    schedule: tokio::sync::Mutex<Schedule<T>>,
    refresher: std::sync::Once,
}

impl<T: Clone> Default for Cached<T> {
    fn default() -> Self {
        Self::new(FIRST_RETRY, MAX_RETRY)
    }
}

impl<T: Clone> Cached<T> {
    pub fn new(first_retry: Duration, max_retry: Duration) -> Self {
        Cached {
            schedule: tokio::sync::Mutex::new(Schedule::new(first_retry, max_retry)),
            refresher: std::sync::Once::new(),
        }
    }

    /// Start (once) a task that calls `refresh` whenever the value falls due, until
    /// `owner`, which holds this cache (`cache` finds it), is dropped. Must be called
    /// within a tokio runtime.
    pub fn keep_fresh<O, F, Fut>(&self, owner: Weak<O>, cache: fn(&O) -> &Cached<T>, refresh: F)
    where
        T: Send + 'static,
        O: Send + Sync + 'static,
        F: Fn(Arc<O>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        self.refresher.call_once(|| {
            tokio::spawn(async move {
                loop {
                    let due = match owner.upgrade() {
                        Some(o) => cache(&o).schedule.lock().await.next_due(),
                        None => return,
                    };
                    let Some(due) = due else { return };
                    // Never spin, whatever the schedule says.
                    let wait = due
                        .saturating_duration_since(Instant::now())
                        .max(Duration::from_millis(100));
                    tokio::time::sleep(wait).await;
                    let Some(o) = owner.upgrade() else { return };
                    refresh(o).await;
                }
            });
        });
    }

    /// The value to log in with: the cached one, or one `fetch`ed now. `what` names the
    /// value in log lines (never the value itself).
    pub async fn get<F, Fut>(&self, what: &str, fetch: F) -> Result<T, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Fetched<T>, String>>,
    {
        let mut schedule = self.schedule.lock().await;
        let held = schedule.held.as_ref().map(|h| h.value.clone());
        match schedule.decide(Instant::now()) {
            Decision::Use => return held.ok_or_else(|| "nothing cached".to_owned()),
            Decision::Fail(e) => return Err(e),
            Decision::Fetch => {}
        }
        let sent = Instant::now();
        match fetch().await {
            Ok(fetched) => {
                match fetched.lifetime {
                    Some(l) => tracing::debug!("fetched a new {what}, valid for {l:?}"),
                    None => tracing::debug!("fetched a new {what}"),
                }
                let value = fetched.value.clone();
                schedule.fetched(fetched, sent);
                Ok(value)
            }
            Err(e) => {
                let now = Instant::now();
                let delay = schedule.failed(e.clone(), now);
                match schedule.valid(now) {
                    Some(old) => {
                        tracing::warn!(
                            "cannot refresh the {what}: {e}; the current one is still valid, \
                             next attempt in {delay:?}"
                        );
                        Ok(old.clone())
                    }
                    None => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(v: &str, secs: u64) -> Fetched<String> {
        Fetched {
            value: v.to_owned(),
            lifetime: Some(Duration::from_secs(secs)),
        }
    }

    #[test]
    fn refresh_at_80_percent_of_the_lifetime() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(1), Duration::from_secs(30));
        assert_eq!(s.decide(t0), Decision::Fetch, "nothing cached");
        s.fetched(fetched("a", 100), t0);
        assert_eq!(s.refresh_at(), Some(t0 + Duration::from_secs(80)));
        assert_eq!(s.decide(t0 + Duration::from_secs(79)), Decision::Use);
        assert_eq!(s.decide(t0 + Duration::from_secs(80)), Decision::Fetch);
        assert_eq!(s.decide(t0 + Duration::from_secs(200)), Decision::Fetch);
        // Not sent in its last 5%.
        assert_eq!(
            s.valid(t0 + Duration::from_millis(94_999))
                .map(|v| v.as_str()),
            Some("a")
        );
        assert_eq!(s.valid(t0 + Duration::from_secs(95)), None, "expired");
        // The margin is at most 30 s.
        s.fetched(fetched("b", 3600), t0);
        assert!(s.valid(t0 + Duration::from_secs(3569)).is_some());
        assert!(s.valid(t0 + Duration::from_secs(3570)).is_none());
    }

    #[test]
    fn a_value_without_lifetime_is_kept() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(1), Duration::from_secs(30));
        s.fetched(
            Fetched {
                value: "a".to_owned(),
                lifetime: None,
            },
            t0,
        );
        assert_eq!(s.decide(t0 + Duration::from_secs(1 << 30)), Decision::Use);
    }

    #[test]
    fn a_lifetime_past_the_clocks_end_never_expires() {
        // `expires_in: 18446744073709551615` used to panic adding it to an Instant.
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(1), Duration::from_secs(30));
        s.fetched(fetched("a", u64::MAX), t0);
        assert_eq!(s.refresh_at(), None);
        assert_eq!(s.decide(t0 + Duration::from_secs(1 << 30)), Decision::Use);
        assert!(s.valid(t0 + Duration::from_secs(1 << 30)).is_some());
        s.fetched(
            Fetched {
                value: "b".to_owned(),
                lifetime: Some(Duration::MAX),
            },
            t0,
        );
        assert_eq!(s.next_due(), None);
    }

    #[test]
    fn failures_back_off_and_use_the_old_value_while_it_is_valid() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::from_secs(2), Duration::from_secs(8));
        s.fetched(fetched("a", 10), t0);
        // Due at 8 s; the refresh fails.
        let t = t0 + Duration::from_secs(8);
        assert_eq!(s.decide(t), Decision::Fetch);
        let delay = s.failed("HTTP 503".into(), t);
        assert!(delay >= Duration::from_secs(1) && delay <= Duration::from_secs(2));
        // In backoff with a valid old value: use it.
        assert_eq!(s.decide(t + delay / 2), Decision::Use);
        // Backoff over: try again.
        assert_eq!(s.decide(t + delay), Decision::Fetch);
        // Failing again after expiry: in backoff, nothing valid → fail with the cause.
        let t = t0 + Duration::from_secs(10);
        let delay = s.failed("HTTP 503 again".into(), t);
        assert!(delay >= Duration::from_secs(2) && delay <= Duration::from_secs(4));
        match s.decide(t + Duration::from_millis(100)) {
            Decision::Fail(e) => assert!(e.starts_with("HTTP 503 again (next attempt in"), "{e}"),
            other => panic!("{other:?}"),
        }
        // Delays double up to the cap.
        let mut last = delay;
        for _ in 0..5 {
            last = s.failed("x".into(), t);
        }
        assert!(last <= Duration::from_secs(8) && last >= Duration::from_secs(4));
        // A success resets everything.
        s.fetched(fetched("b", 10), t);
        assert_eq!(s.decide(t), Decision::Use);
        let delay = s.failed("y".into(), t);
        assert!(delay <= Duration::from_secs(2), "{delay:?}");
    }

    #[tokio::test]
    async fn one_fetch_serves_concurrent_logins_and_failures_wait() {
        let cached = std::sync::Arc::new(Cached::<String>::new(
            Duration::from_secs(60),
            Duration::from_secs(60),
        ));
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (cached, calls) = (cached.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cached
                    .get("token", || async {
                        calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok(fetched("tok", 3600))
                    })
                    .await
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().unwrap(), "tok");
        }
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);

        let failing = Cached::<String>::new(Duration::from_secs(60), Duration::from_secs(60));
        let e = failing
            .get("token", || async {
                Err("HTTP 401 invalid_client".to_owned())
            })
            .await
            .unwrap_err();
        assert_eq!(e, "HTTP 401 invalid_client");
        // In backoff: the endpoint is not asked again, the error is repeated.
        let e = failing
            .get("token", || async { panic!("fetched during backoff") })
            .await
            .unwrap_err();
        assert!(
            e.starts_with("HTTP 401 invalid_client (next attempt in"),
            "{e}"
        );
    }

    struct Owner {
        cache: Cached<String>,
        fetches: std::sync::atomic::AtomicU32,
    }

    async fn fetch_for(o: &Owner) -> Result<String, String> {
        o.cache
            .get("value", || async {
                let n = o.fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(Fetched {
                    value: format!("v{n}"),
                    lifetime: Some(Duration::from_millis(500)),
                })
            })
            .await
    }

    #[tokio::test]
    async fn the_background_task_renews_before_expiry_and_ends_with_its_owner() {
        let owner = Arc::new(Owner {
            cache: Cached::default(),
            fetches: Default::default(),
        });
        assert_eq!(fetch_for(&owner).await.unwrap(), "v0");
        for _ in 0..2 {
            // A second call starts nothing more.
            owner.cache.keep_fresh(
                Arc::downgrade(&owner),
                |o| &o.cache,
                |o: Arc<Owner>| async move {
                    let _ = fetch_for(&o).await;
                },
            );
        }
        // Due every 400 ms with no login asking: renewed each time, never left to expire.
        tokio::time::sleep(Duration::from_millis(1300)).await;
        let n = owner.fetches.load(std::sync::atomic::Ordering::SeqCst);
        assert!((3..=5).contains(&n), "{n} fetches in 1.3 s");
        let now = Instant::now();
        assert!(owner.cache.schedule.lock().await.valid(now).is_some());
        let weak = Arc::downgrade(&owner);
        drop(owner);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(weak.upgrade().is_none(), "the task keeps its owner alive");
    }
}
