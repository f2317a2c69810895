//! Property tests for the parsers that read what people type: durations, database URLs and
//! `.env` files.
//! None may panic on any string; durations that are accepted read back unchanged, and a
//! number that does not fit is always refused.

use std::time::Duration;

use proptest::prelude::*;
use sage_conn::{format_duration, parse_duration, DurationField, Environment, Origin, Settings, MAX_DURATION};

/// The units with their length in milliseconds, as the documentation states them.
const UNITS: [(&str, u128); 8] = [
    ("ms", 1),
    ("s", 1_000),
    ("m", 60_000),
    ("min", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
    ("w", 604_800_000),
    ("y", 31_536_000_000),
];

/// Text that looks like a duration often enough to reach every branch of the parser.
fn duration_like() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[ \t]{0,2}[0-9]{0,25}(ms|s|m|min|h|d|w|y|x|mins|S|M|µs|)[ \t]{0,2}",
        "[-+]?[0-9]{1,3}([.,][0-9])?[a-z]{0,3}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn durations_never_panic_and_stay_within_the_limit(text in duration_like()) {
        for field in [DurationField::new("x"), DurationField::new("x").zero_allowed().unit_required()] {
            match field.parse(&text) {
                Ok(d) => {
                    prop_assert!(d <= MAX_DURATION);
                    prop_assert!(sage_conn::checked_after("x", chrono::Utc::now(), d).is_ok());
                    prop_assert!(sage_conn::checked_before("x", chrono::Utc::now(), d).is_ok());
                }
                Err(e) => {
                    let message = e.to_string();
                    prop_assert!(message.starts_with("x: "), "{}", message);
                    prop_assert!(!message.contains('\n'), "{}", message);
                }
            }
        }
    }

    #[test]
    fn accepted_durations_round_trip(millis in 0..=MAX_DURATION.as_millis() as u64) {
        let d = Duration::from_millis(millis);
        let text = format_duration(d);
        prop_assert_eq!(DurationField::new("x").zero_allowed().parse(&text), Ok(d), "{}", text);
    }

    #[test]
    fn accepted_text_reads_back_the_same(text in duration_like()) {
        if let Ok(d) = parse_duration("x", &text) {
            prop_assert_eq!(parse_duration("x", &format_duration(d)), Ok(d));
        }
    }

    /// The bug this parser replaces: `307445734561825861m` wrapped around to about 44 s.
    #[test]
    fn a_number_times_its_unit_is_exact_or_refused(n in prop_oneof![any::<u64>(), 0..10_000_000u64], unit in 0..UNITS.len()) {
        let (name, ms) = UNITS[unit];
        let exact = u128::from(n) * ms;
        let parsed = parse_duration("x", &format!("{n}{name}"));
        if n == 0 {
            prop_assert!(parsed.is_err());
        } else if exact > MAX_DURATION.as_millis() {
            let message = parsed.unwrap_err().to_string();
            prop_assert!(message.contains("is longer than the limit of 100y"), "{}", message);
        } else {
            prop_assert_eq!(parsed.map(|d| d.as_millis()), Ok(exact));
        }
    }

    #[test]
    fn urls_never_panic(url in any::<String>()) {
        let _ = Settings::parse_url("--database-url", &url, Origin::Flag);
    }

    #[test]
    fn url_parameters_never_panic(
        key in "(sslmode|port|connect_timeout|pool_max_conns|pool_min_conns|pool_max_conn_idle_time|pool_health_check_period|host|dbname|[a-z_]{1,8})",
        value in duration_like(),
        scheme in "(postgres|postgresql|sqlite|memory|postgress)",
    ) {
        let value: String = value.chars().filter(|c| !matches!(c, '&' | '#')).collect();
        let url = format!("{scheme}://u:p@h:5432/db?{key}={value}");
        if let Err(e) = Settings::parse_url("--database-url", &url, Origin::Flag) {
            // The message names where the URL came from and never shows the password.
            let message = e.to_string();
            prop_assert!(message.starts_with("--database-url"), "{}", message);
            prop_assert!(!message.contains(":p@"), "{}", message);
        }
    }

    #[test]
    fn env_files_never_panic_and_errors_name_the_file(
        lines in proptest::collection::vec(
            prop_oneof![
                any::<String>(),
                "(export )?[A-Z_]{1,6}=[\"']?[a-z #'\"é]{0,8}[\"']?",
                "[ #\t]{0,3}[A-Za-z0-9_ ]{0,6}",
            ],
            0..6,
        ),
        invalid_utf8 in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fuzz.env");
        let mut bytes = lines.join("\n").into_bytes();
        if invalid_utf8 {
            bytes.push(0xff);
        }
        std::fs::write(&path, bytes).unwrap();
        if let Err(e) = Environment::from_process(Some(&path)) {
            prop_assert!(e.to_string().contains("fuzz.env"), "{}", e);
        }
    }
}
