//! The migration splitter on arbitrary bytes, in both dialects: it returns statements or an
//! error naming a line, never panics, and every statement is a non-empty piece of the script
//! at the position it reports, in order.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sage_migrate::split::split;
use sage_migrate::Dialect;

fuzz_target!(|bytes: &[u8]| {
    let text = String::from_utf8_lossy(bytes);
    for dialect in [Dialect::Postgres, Dialect::Sqlite] {
        match split(&text, dialect) {
            Ok(statements) => {
                let mut after = 0;
                for s in statements {
                    assert!(!s.sql.is_empty());
                    assert_eq!(&text[s.start..s.end], s.sql);
                    assert!(s.start >= after, "statements out of order");
                    after = s.end;
                    assert!(s.line >= 1 && s.column >= 1);
                }
            }
            Err(e) => assert!(e.line >= 1 && e.line <= text.len() + 1, "error line {} out of range", e.line),
        }
    }
});
