//! How long work tells whoever started it how far it has got. Libraries never print: they
//! call the [`Progress`] their caller gave them, and only the binary decides whether and how
//! to draw it (on a terminal, not into a pipe). The default reports to nobody.

use std::sync::Arc;

/// What `done` and `total` count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unit {
    /// Whole pieces of work: migrations, seed files.
    Items,
    /// Table rows.
    Rows,
    /// Bytes written or read.
    Bytes,
}

/// One report: `action` is what is being done (`applying`, `deleting from`), `item` what it
/// is being done to now, if anything in particular.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update<'a> {
    pub action: &'a str,
    pub item: Option<&'a str>,
    /// How many are finished.
    pub done: u64,
    /// How many there are in all, when known in advance.
    pub total: Option<u64>,
    pub unit: Unit,
}

type Observer = dyn Fn(&Update<'_>) + Send + Sync;

/// Receives [`Update`]s, from any thread; cheap to clone.
#[derive(Clone, Default)]
pub struct Progress(Option<Arc<Observer>>);

impl Progress {
    /// Reports to `observer`.
    pub fn new(observer: impl Fn(&Update<'_>) + Send + Sync + 'static) -> Progress {
        Progress(Some(Arc::new(observer)))
    }

    /// Reports to nobody.
    pub fn none() -> Progress {
        Progress(None)
    }

    pub fn report(&self, update: Update<'_>) {
        if let Some(observer) = &self.0 {
            observer(&update);
        }
    }

    /// `done` of `total` items finished, `item` the one under way (none once all are done).
    pub fn items(&self, action: &str, item: Option<&str>, done: u64, total: u64) {
        self.report(Update { action, item, done, total: Some(total), unit: Unit::Items });
    }

    /// `done` rows so far, of a count not known in advance.
    pub fn rows(&self, action: &str, item: Option<&str>, done: u64) {
        self.report(Update { action, item, done, total: None, unit: Unit::Rows });
    }

    /// `done` bytes so far, of a size not known in advance.
    pub fn bytes(&self, action: &str, done: u64) {
        self.report(Update { action, item: None, done, total: None, unit: Unit::Bytes });
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() { "Progress(observed)" } else { "Progress(none)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn updates_reach_the_observer_and_none_reports_to_nobody() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let progress = Progress::new(move |u| {
            sink.lock().unwrap().push(format!("{} {:?} {}/{:?}", u.action, u.item, u.done, u.total))
        });
        progress.items("applying", Some("0001_init"), 0, 2);
        progress.clone().rows("deleting from", Some("audit"), 500);
        Progress::none().bytes("dumping", 10);
        assert_eq!(
            *seen.lock().unwrap(),
            vec!["applying Some(\"0001_init\") 0/Some(2)", "deleting from Some(\"audit\") 500/None"]
        );
    }
}
