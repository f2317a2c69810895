use std::sync::Mutex;
use std::time::SystemTime;

use chrono::{DateTime, Utc};

/// Where a store gets the time. Expiry is decided with this clock, not the database's, so
/// every backend draws the same boundaries and tests can move time.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The current time.
    fn now(&self) -> DateTime<Utc>;
}

/// The system's clock, the default.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    /// The system's time in whole microseconds, the precision every backend keeps.
    fn now(&self) -> DateTime<Utc> {
        match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
            Ok(since) => DateTime::from_timestamp_micros(since.as_micros() as i64).unwrap_or_else(Utc::now),
            Err(_) => Utc::now(),
        }
    }
}

/// A clock that only moves when told to, for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<DateTime<Utc>>);

impl ManualClock {
    /// A clock standing at `start` (to the microsecond).
    pub fn new(start: DateTime<Utc>) -> ManualClock {
        ManualClock(Mutex::new(crate::model::micros(start)))
    }

    /// Moves the clock to `t`, forwards or back.
    pub fn set(&self, t: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = crate::model::micros(t);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self.0.lock().expect("clock lock");
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}
