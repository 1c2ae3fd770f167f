//! # spinegate-flight
//!
//! Caches in spinegate never stampede (DESIGN §5): when many requests miss the same key at once
//! — an OCSP answer, a CRL, a user's role profiles — one fetch runs and everyone asking shares
//! its outcome. [`SingleFlight`] is that, once: the first asker starts the work as a task of its
//! own (so an asker that goes away, a client that disconnects, does not cancel it for the
//! others); later askers join it; when it lands, its outcome goes to all of them and the key is
//! free for the next flight.
//!
//! The work is expected to leave its result where the caller looks first (a cache) before it
//! lands; [`SingleFlight::join_or_start`] takes a `cached` check that runs under the same lock as
//! the flight table, so an asker who just missed the cache can never start a second flight for
//! an answer that landed in between.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::watch;

/// One flight per key at a time; `V` is what a flight lands with.
#[derive(Debug)]
pub struct SingleFlight<K, V> {
    flights: Mutex<HashMap<K, watch::Receiver<Option<V>>>>,
}

/// An asker's place: the answer at once (cached), or a flight to wait for.
#[derive(Debug)]
pub enum Boarding<V> {
    /// `cached` had the answer: no flight needed.
    Cached(V),
    /// A flight was already under way and this asker joined it.
    Joined(Flight<V>),
    /// This asker started the flight.
    Started(Flight<V>),
}

/// A flight in the air: [`Flight::landed`] waits for its outcome.
#[derive(Debug)]
pub struct Flight<V> {
    outcome: watch::Receiver<Option<V>>,
}

impl<K, V> Default for SingleFlight<K, V> {
    fn default() -> Self {
        Self { flights: Mutex::new(HashMap::new()) }
    }
}

impl<K, V> SingleFlight<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// An empty flight table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Joins the flight for `key`, or — unless `cached` has the answer — starts one running
    /// `work` on its own task. `cached` is asked under the table's lock, after the check for a
    /// flight: a flight that landed has already left its answer where `cached` looks.
    pub fn join_or_start<F>(
        self: &Arc<Self>,
        key: K,
        cached: impl FnOnce() -> Option<V>,
        work: impl FnOnce() -> F,
    ) -> Boarding<V>
    where
        F: Future<Output = V> + Send + 'static,
    {
        let mut flights = lock(&self.flights);
        if let Some(outcome) = flights.get(&key) {
            return Boarding::Joined(Flight { outcome: outcome.clone() });
        }
        if let Some(answer) = cached() {
            return Boarding::Cached(answer);
        }
        let (tx, rx) = watch::channel(None);
        flights.insert(key.clone(), rx.clone());
        drop(flights);
        let work = work();
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let outcome = work.await;
            // Off the table first: from here an asker finds the answer where `cached` looks,
            // or starts a new flight.
            lock(&this.flights).remove(&key);
            tx.send_replace(Some(outcome));
        });
        Boarding::Started(Flight { outcome: rx })
    }

    /// As [`SingleFlight::join_or_start`] with nothing cached, waiting for the flight to land.
    pub async fn run<F>(self: &Arc<Self>, key: K, work: impl FnOnce() -> F) -> V
    where
        F: Future<Output = V> + Send + 'static,
    {
        match self.join_or_start(key, || None, work) {
            Boarding::Cached(answer) => answer,
            Boarding::Joined(flight) | Boarding::Started(flight) => flight.landed().await,
        }
    }

    /// Flights under way.
    pub fn in_flight(&self) -> usize {
        lock(&self.flights).len()
    }
}

impl<V: Clone> Flight<V> {
    /// Waits for the flight's outcome.
    pub async fn landed(mut self) -> V {
        match self.outcome.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone().expect("waited for Some"),
            // The sender is dropped only after sending, unless the work panicked: then there is
            // no outcome to share, which the task's panic already reports.
            Err(_) => panic!("a single-flight task ended without an outcome"),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn concurrent_askers_share_one_flight() {
        let flights: Arc<SingleFlight<&str, u32>> = Arc::new(SingleFlight::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let askers: Vec<_> = (0..50)
            .map(|_| {
                let (flights, runs) = (Arc::clone(&flights), Arc::clone(&runs));
                tokio::spawn(async move {
                    flights
                        .run("key", || async move {
                            runs.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_secs(1)).await;
                            7
                        })
                        .await
                })
            })
            .collect();
        for asker in askers {
            assert_eq!(asker.await.unwrap(), 7);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        assert_eq!(flights.in_flight(), 0, "a landed flight leaves the table");
    }

    #[tokio::test(start_paused = true)]
    async fn an_asker_that_goes_away_does_not_cancel_the_flight() {
        let flights: Arc<SingleFlight<u8, u8>> = Arc::new(SingleFlight::new());
        let first = {
            let flights = Arc::clone(&flights);
            tokio::spawn(async move {
                flights
                    .run(1, || async {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        9
                    })
                    .await
            })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        first.abort();
        let second = flights.run(1, || async { 0 }).await;
        assert_eq!(second, 9, "joined the flight the first asker started");
    }

    #[tokio::test]
    async fn the_cache_is_asked_under_the_lock_before_a_new_flight() {
        let flights: Arc<SingleFlight<u8, u8>> = Arc::new(SingleFlight::new());
        match flights.join_or_start(1, || Some(3), || async { 4 }) {
            Boarding::Cached(v) => assert_eq!(v, 3),
            other => panic!("{other:?}"),
        }
        assert_eq!(flights.in_flight(), 0);
        let Boarding::Started(flight) = flights.join_or_start(1, || None, || async { 4 }) else { panic!() };
        assert_eq!(flight.landed().await, 4);
    }
}
