//! The one parser for durations written by people: every flag, URL parameter and config
//! key that takes a duration goes through [`DurationField::parse`].
//!
//! A duration is a whole number followed by a unit: `250ms`, `30s`, `5m` (or `5min`),
//! `1h`, `7d`, `2w`, `1y` (365 days). Most fields also read a bare number as seconds, the
//! way PostgreSQL's `connect_timeout` does. Arithmetic is checked: a number that does not
//! fit is refused instead of wrapping around to a short duration, and nothing longer than
//! [`MAX_DURATION`] is accepted, so that adding any accepted duration to any date SAGE
//! handles stays within the calendar.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};

/// The longest duration any field accepts: 100 years of 365 days.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// The units, longest first, with their length in milliseconds. `min` precedes `m` only
/// for readability; units are matched whole, never by prefix.
const UNITS: [(&str, u64); 8] = [
    ("y", 365 * 86_400_000),
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("min", 60_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

const SYNTAX: &str = "use a number with a unit: 250ms, 30s, 5m, 1h, 7d";

/// A field that takes a duration, with what it accepts. By default zero is refused (a
/// lifetime, period or age of zero means nothing useful), a bare number is seconds and
/// the limit is [`MAX_DURATION`].
///
/// ```
/// use sage_conn::DurationField;
/// let ttl = DurationField::new("--ttl").parse("5m").unwrap();
/// assert_eq!(ttl.as_secs(), 300);
/// let err = DurationField::new("--ttl").parse("5 minutes").unwrap_err();
/// assert!(err.to_string().starts_with("--ttl: \"5 minutes\" is not a duration"));
/// ```
#[derive(Debug, Clone, Copy)]
pub struct DurationField<'a> {
    name: &'a str,
    zero_allowed: bool,
    unit_required: bool,
    max: Duration,
}

impl<'a> DurationField<'a> {
    /// `name` is what errors call the field: a flag (`--ttl`), a URL parameter or a key.
    pub const fn new(name: &'a str) -> DurationField<'a> {
        DurationField { name, zero_allowed: false, unit_required: false, max: MAX_DURATION }
    }

    /// Accepts zero, for fields where it has a meaning (e.g. "do not wait").
    pub const fn zero_allowed(self) -> DurationField<'a> {
        DurationField { zero_allowed: true, ..self }
    }

    /// Refuses a bare number, for fields where seconds would be a surprising guess (a
    /// retention age of `30` is more likely meant as days).
    pub const fn unit_required(self) -> DurationField<'a> {
        DurationField { unit_required: true, ..self }
    }

    /// Lowers the limit below [`MAX_DURATION`], for fields whose consumer cannot hold more
    /// (SQLite's busy timeout and PostgreSQL's `lock_timeout` are 32-bit milliseconds).
    pub const fn at_most(self, max: Duration) -> DurationField<'a> {
        let max = if max.as_millis() < MAX_DURATION.as_millis() { max } else { MAX_DURATION };
        DurationField { max, ..self }
    }

    pub fn name(&self) -> &str {
        self.name
    }

    pub fn parse(&self, text: &str) -> Result<Duration, DurationError> {
        let error = |problem| DurationError { field: self.name.to_string(), text: text.to_string(), problem };
        let trimmed = text.trim();
        let split = trimmed.find(|c: char| !c.is_ascii_digit()).unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(split);
        if digits.is_empty() {
            return Err(error(Problem::Syntax));
        }
        let unit_ms = match unit {
            "" if self.unit_required => return Err(error(Problem::NoUnit)),
            "" => 1_000,
            _ => match UNITS.iter().find(|(name, _)| *name == unit) {
                Some((_, ms)) => *ms,
                None => return Err(error(Problem::Syntax)),
            },
        };
        // Digits only, so a parse failure can only mean the number does not fit.
        let too_long = || error(Problem::TooLong(self.max));
        let amount: u64 = digits.parse().map_err(|_| too_long())?;
        let millis = amount.checked_mul(unit_ms).ok_or_else(too_long)?;
        let duration = Duration::from_millis(millis);
        if duration > self.max {
            return Err(too_long());
        }
        if duration.is_zero() && !self.zero_allowed {
            return Err(error(Problem::Zero));
        }
        Ok(duration)
    }
}

/// Parses `text` for the field `name` with the default rules of [`DurationField::new`].
pub fn parse_duration(name: &str, text: &str) -> Result<Duration, DurationError> {
    DurationField::new(name).parse(text)
}

/// `duration` in the largest unit that writes it exactly (`90s`, `5m`, `1500ms`), so that
/// [`DurationField::parse`] reads it back unchanged. Sub-millisecond parts are dropped.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        return "0s".into();
    }
    UNITS
        .iter()
        .filter(|(name, _)| *name != "min")
        .find(|(_, ms)| millis.is_multiple_of(u128::from(*ms)))
        .map(|(name, ms)| format!("{}{name}", millis / u128::from(*ms)))
        .unwrap_or_else(|| format!("{millis}ms"))
}

/// `start + duration`, or an error naming `field` when the result would leave chrono's
/// calendar. Accepted durations never do for present-day dates; dates read from a
/// database written by someone else can be anything.
pub fn checked_after(field: &str, start: DateTime<Utc>, duration: Duration) -> Result<DateTime<Utc>, DurationError> {
    TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| start.checked_add_signed(delta))
        .ok_or_else(|| DurationError::out_of_range(field, start, duration))
}

/// `end - duration`, checked like [`checked_after`].
pub fn checked_before(field: &str, end: DateTime<Utc>, duration: Duration) -> Result<DateTime<Utc>, DurationError> {
    TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| end.checked_sub_signed(delta))
        .ok_or_else(|| DurationError::out_of_range(field, end, duration))
}

/// A duration that was refused: which field, what was written and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    field: String,
    text: String,
    problem: Problem,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    Syntax,
    NoUnit,
    Zero,
    TooLong(Duration),
    OutOfRange(String),
}

impl DurationError {
    fn out_of_range(field: &str, at: DateTime<Utc>, duration: Duration) -> DurationError {
        DurationError {
            field: field.to_string(),
            text: format_duration(duration),
            problem: Problem::OutOfRange(at.to_rfc3339()),
        }
    }

    /// The flag, parameter or key the duration was given for.
    pub fn field(&self) -> &str {
        &self.field
    }
}

impl fmt::Display for DurationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (field, text) = (&self.field, &self.text);
        match &self.problem {
            Problem::Syntax => write!(f, "{field}: {text:?} is not a duration; {SYNTAX}"),
            Problem::NoUnit => write!(f, "{field}: {text:?} has no unit; {SYNTAX}"),
            Problem::Zero => write!(f, "{field}: {text:?} is zero; it must be at least 1ms"),
            Problem::TooLong(max) => {
                write!(f, "{field}: {text:?} is longer than the limit of {}", format_duration(*max))
            }
            Problem::OutOfRange(at) => write!(f, "{field}: {text} from {at} falls outside the supported dates"),
        }
    }
}

impl std::error::Error for DurationError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_seconds() {
        let cases = [
            ("250ms", Duration::from_millis(250)),
            ("90", Duration::from_secs(90)),
            ("30s", Duration::from_secs(30)),
            ("5m", Duration::from_secs(300)),
            ("5min", Duration::from_secs(300)),
            ("1h", Duration::from_secs(3600)),
            ("7d", Duration::from_secs(7 * 86_400)),
            ("2w", Duration::from_secs(14 * 86_400)),
            ("1y", Duration::from_secs(365 * 86_400)),
            (" 12h ", Duration::from_secs(12 * 3600)),
            ("100y", MAX_DURATION),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_duration("x", text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn refusals_name_the_field_and_say_why() {
        let cases = [
            ("5mins", "--ttl: \"5mins\" is not a duration; use a number with a unit: 250ms, 30s, 5m, 1h, 7d"),
            ("", "--ttl: \"\" is not a duration; use a number with a unit: 250ms, 30s, 5m, 1h, 7d"),
            ("1.5h", "--ttl: \"1.5h\" is not a duration; use a number with a unit: 250ms, 30s, 5m, 1h, 7d"),
            ("-5s", "--ttl: \"-5s\" is not a duration; use a number with a unit: 250ms, 30s, 5m, 1h, 7d"),
            ("5 m", "--ttl: \"5 m\" is not a duration; use a number with a unit: 250ms, 30s, 5m, 1h, 7d"),
            ("0s", "--ttl: \"0s\" is zero; it must be at least 1ms"),
            ("307445734561825861m", "--ttl: \"307445734561825861m\" is longer than the limit of 100y"),
            ("99999999999999999999999", "--ttl: \"99999999999999999999999\" is longer than the limit of 100y"),
            ("101y", "--ttl: \"101y\" is longer than the limit of 100y"),
        ];
        for (text, message) in cases {
            assert_eq!(parse_duration("--ttl", text).unwrap_err().to_string(), message, "{text}");
        }
    }

    /// The value from the bug report, which used to wrap around to about 44 seconds.
    #[test]
    fn overflowing_minutes_are_refused_not_wrapped() {
        assert!(parse_duration("max_age", "307445734561825861m").is_err());
        assert!(parse_duration("max_age", &format!("{}ms", u64::MAX)).is_err());
    }

    #[test]
    fn rules_per_field() {
        assert_eq!(DurationField::new("--lock-timeout").zero_allowed().parse("0s"), Ok(Duration::ZERO));
        let err = DurationField::new("max_age").unit_required().parse("30").unwrap_err();
        assert_eq!(err.to_string(), "max_age: \"30\" has no unit; use a number with a unit: 250ms, 30s, 5m, 1h, 7d");
        let field = DurationField::new("--lock-timeout").at_most(Duration::from_secs(86_400));
        assert_eq!(field.parse("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(
            field.parse("25h").unwrap_err().to_string(),
            "--lock-timeout: \"25h\" is longer than the limit of 1d"
        );
    }

    #[test]
    fn formatting_picks_the_largest_exact_unit() {
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(300)), "5m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(MAX_DURATION), "100y");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn date_arithmetic_is_checked() {
        let now = Utc::now();
        assert!(checked_after("--ttl", now, MAX_DURATION).is_ok());
        assert!(checked_before("max_age", now, MAX_DURATION).is_ok());
        let err = checked_after("stale_after", DateTime::<Utc>::MAX_UTC, Duration::from_secs(1)).unwrap_err();
        assert_eq!(err.field(), "stale_after");
        assert!(err.to_string().contains("outside the supported dates"), "{err}");
        assert!(checked_before("max_age", DateTime::<Utc>::MIN_UTC, Duration::from_secs(1)).is_err());
        assert!(checked_after("x", now, Duration::MAX).is_err());
    }
}
