//! Reading a plain SQL dump, as pg_dump and pg_restore write it, one statement at a time,
//! so restore can run it on its own connection instead of handing it to psql.
//!
//! A dump is untrusted input. psql would obey a meta-command in it (`\!` runs a shell
//! command); this reader accepts only what pg_dump writes: SQL statements, `COPY … FROM
//! stdin` with its data, and the `\restrict`/`\unrestrict` guard lines, which it skips. Any
//! other meta-command, and any `COPY` that reads or writes elsewhere (`PROGRAM`, a server
//! file), is refused with its line number before it reaches the server.

use std::io::BufRead;

/// One thing to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A complete SQL statement (without its terminating semicolon), and the line it starts on.
    Statement {
        sql: String,
        line: usize,
    },
    /// `COPY … FROM stdin`; `CopyData` chunks follow, then `CopyEnd`.
    Copy {
        sql: String,
        line: usize,
    },
    /// Rows in COPY text format, whole lines.
    CopyData(Vec<u8>),
    CopyEnd,
}

/// Why a dump was refused, with the line it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for DumpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for DumpError {}

/// The longest statement accepted; pg_dump's largest are function bodies and views.
const MAX_STATEMENT: usize = 64 << 20;
/// The longest line of SQL, and of COPY rows (a row holds at most 1 GiB per field).
const MAX_SQL_LINE: usize = 64 << 20;
const MAX_COPY_LINE: usize = 1 << 30;
/// COPY rows are passed on in chunks of about this size.
const COPY_CHUNK: usize = 256 << 10;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lex {
    Normal,
    /// Inside '…'; `backslash` for E'…' strings, where `\'` does not end the string.
    Quote {
        backslash: bool,
    },
    DoubleQuote,
    Dollar(String),
    Block(usize),
}

#[derive(Debug)]
pub struct DumpReader<R> {
    input: R,
    line: usize,
    lex: Lex,
    statement: String,
    /// The statement without comments and with each literal, quoted identifier and
    /// dollar-quoted body reduced to a placeholder: where keywords are looked for.
    code: String,
    statement_line: usize,
    in_copy: bool,
    /// Statements completed on the current line after the first one.
    queued: std::collections::VecDeque<Item>,
    raw: Vec<u8>,
}

impl<R: BufRead> DumpReader<R> {
    pub fn new(input: R) -> DumpReader<R> {
        DumpReader {
            input,
            line: 0,
            lex: Lex::Normal,
            statement: String::new(),
            code: String::new(),
            statement_line: 1,
            in_copy: false,
            queued: Default::default(),
            raw: Vec::new(),
        }
    }

    fn fail(&self, message: impl Into<String>) -> DumpError {
        DumpError { line: self.line, message: message.into() }
    }

    /// Reads one raw line into `self.raw`; false at the end of the input.
    fn read_line(&mut self) -> Result<bool, DumpError> {
        self.raw.clear();
        // SQL is scanned as characters, so its lines are bounded more tightly than rows.
        let limit = if self.in_copy { MAX_COPY_LINE } else { MAX_SQL_LINE };
        let n = std::io::Read::take(&mut self.input, limit as u64 + 1)
            .read_until(b'\n', &mut self.raw)
            .map_err(|e| DumpError { line: self.line + 1, message: format!("cannot read the dump: {e}") })?;
        if n > 0 {
            self.line += 1;
        }
        if n > limit {
            return Err(self.fail(format!("a line longer than {} MiB; the dump is damaged", limit >> 20)));
        }
        Ok(n > 0)
    }

    /// The next item, or `None` at a clean end of the dump.
    pub fn next_item(&mut self) -> Result<Option<Item>, DumpError> {
        if let Some(item) = self.queued.pop_front() {
            return Ok(Some(item));
        }
        if self.in_copy {
            return self.copy_data().map(Some);
        }
        loop {
            if !self.read_line()? {
                if self.lex != Lex::Normal || !self.statement.trim().is_empty() {
                    return Err(DumpError {
                        line: self.statement_line,
                        message: "the dump ends inside a statement; it is truncated".into(),
                    });
                }
                return Ok(None);
            }
            let text = match std::str::from_utf8(&self.raw) {
                Ok(t) => t.to_string(),
                Err(_) => return Err(self.fail("not UTF-8 text; sage-db restores UTF-8 dumps")),
            };
            if self.lex == Lex::Normal && self.statement.trim().is_empty() && text.starts_with('\\') {
                self.meta_command(&text)?;
                continue;
            }
            self.scan(&text)?;
            if let Some(item) = self.queued.pop_front() {
                return Ok(Some(item));
            }
        }
    }

    fn meta_command(&mut self, text: &str) -> Result<(), DumpError> {
        let word = text.split_whitespace().next().unwrap_or("\\");
        match word {
            // pg_dump's guard against meta-commands smuggled into the dump by a hostile
            // server: it tells psql to refuse them. This reader refuses them anyway.
            "\\restrict" | "\\unrestrict" => {
                self.statement.clear();
                Ok(())
            }
            _ => Err(self.fail(format!(
                "psql meta-command {:?} is not something pg_dump writes; the dump was altered and nothing was run",
                word.chars().take(40).collect::<String>()
            ))),
        }
    }

    /// Lexes one line of SQL, queueing every statement it completes.
    fn scan(&mut self, text: &str) -> Result<(), DumpError> {
        if self.statement.trim().is_empty() && self.lex == Lex::Normal {
            self.statement.clear();
            self.statement_line = self.line;
        }
        let chars: Vec<char> = text.chars().collect();
        let mut i = 0;
        let mut start = 0;
        while i < chars.len() {
            let c = chars[i];
            match &mut self.lex {
                Lex::Normal => match c {
                    '-' if chars.get(i + 1) == Some(&'-') => {
                        // A line comment: the rest of the line is not SQL.
                        self.statement.extend(&chars[start..i]);
                        self.statement.push('\n');
                        self.code.push(' ');
                        start = chars.len();
                        i = chars.len();
                        continue;
                    }
                    '/' if chars.get(i + 1) == Some(&'*') => {
                        self.code.push(' ');
                        self.lex = Lex::Block(1);
                        i += 1;
                    }
                    '\'' => {
                        let backslash =
                            i > 0 && matches!(chars[i - 1], 'E' | 'e') && (i < 2 || !is_ident_char(chars[i - 2]));
                        self.code.push_str(" ' ");
                        self.lex = Lex::Quote { backslash };
                    }
                    '"' => {
                        self.code.push_str(" \" ");
                        self.lex = Lex::DoubleQuote
                    }
                    '$' if i == 0 || !is_ident_char(chars[i - 1]) => match dollar_tag(&chars[i..]) {
                        Some(tag) => {
                            i += tag.chars().count() + 1;
                            self.code.push_str(" $$ ");
                            self.lex = Lex::Dollar(tag);
                        }
                        None => self.code.push(c),
                    },
                    ';' if atomic_depth(&self.code) > 0 => {
                        // Inside a SQL-standard body (BEGIN ATOMIC … END): part of the statement.
                        self.code.push(';');
                    }
                    ';' => {
                        self.statement.extend(&chars[start..i]);
                        start = i + 1;
                        self.finish_statement()?;
                        if self.in_copy {
                            // COPY data starts on the next line; whatever follows the
                            // semicolon on this one is not SQL pg_dump writes.
                            if chars[start..].iter().any(|c| !c.is_whitespace()) {
                                return Err(self.fail("text after a COPY statement on the same line"));
                            }
                            return Ok(());
                        }
                        self.statement_line = self.line;
                    }
                    _ => self.code.push(c),
                },
                Lex::Quote { backslash } => match c {
                    '\\' if *backslash => i += 1,
                    '\'' if chars.get(i + 1) == Some(&'\'') => i += 1,
                    '\'' => self.lex = Lex::Normal,
                    _ => {}
                },
                Lex::DoubleQuote => match c {
                    '"' if chars.get(i + 1) == Some(&'"') => i += 1,
                    '"' => self.lex = Lex::Normal,
                    _ => {}
                },
                Lex::Dollar(tag) => {
                    if c == '$' {
                        let tag_len = tag.chars().count();
                        let closes = chars.len() > i + tag_len + 1
                            && chars[i + 1..=i + tag_len].iter().copied().eq(tag.chars())
                            && chars[i + tag_len + 1] == '$';
                        if closes {
                            i += tag_len + 1;
                            self.lex = Lex::Normal;
                        }
                    }
                }
                Lex::Block(depth) => {
                    if c == '*' && chars.get(i + 1) == Some(&'/') {
                        *depth -= 1;
                        i += 1;
                        if *depth == 0 {
                            self.lex = Lex::Normal;
                        }
                    } else if c == '/' && chars.get(i + 1) == Some(&'*') {
                        *depth += 1;
                        i += 1;
                    }
                }
            }
            i += 1;
        }
        self.statement.extend(&chars[start.min(chars.len())..]);
        if self.statement.len() > MAX_STATEMENT {
            return Err(DumpError {
                line: self.statement_line,
                message: "a statement longer than 64 MiB; the dump is damaged".into(),
            });
        }
        Ok(())
    }

    fn finish_statement(&mut self) -> Result<(), DumpError> {
        let sql = std::mem::take(&mut self.statement);
        let code = std::mem::take(&mut self.code);
        let sql = sql.trim();
        if sql.is_empty() {
            return Ok(());
        }
        let line = self.statement_line;
        // Keywords as the server reads them: outside comments, literals and bodies.
        let words: Vec<String> = code
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .filter(|w| !w.is_empty())
            .map(str::to_ascii_uppercase)
            .collect();
        let word = |i: usize| words.get(i).map(String::as_str).unwrap_or_default();
        let refuse = |message: &str| Err(DumpError { line, message: message.to_string() });
        if sql.starts_with('\\') {
            // A meta-command after a statement on the same line, where psql would obey it.
            return refuse(
                "a psql meta-command is not something pg_dump writes; the dump was altered and nothing was run",
            );
        }
        if words.is_empty() {
            return Ok(());
        }
        // pg_dump brackets large-object data with BEGIN and COMMIT; the restore is one
        // transaction already, and those two, exactly as pg_dump writes them, are skipped.
        if words == ["BEGIN"] || words == ["COMMIT"] {
            return Ok(());
        }
        let transaction_control =
            matches!(word(0), "BEGIN" | "START" | "COMMIT" | "END" | "ROLLBACK" | "ABORT" | "SAVEPOINT" | "RELEASE")
                || (word(0) == "PREPARE" && word(1) == "TRANSACTION");
        if transaction_control {
            return refuse(
                "transaction control (BEGIN, COMMIT, ROLLBACK, SAVEPOINT …) is not something pg_dump writes; the dump was altered and nothing was restored",
            );
        }
        if word(0) == "COPY" {
            let n = words.len();
            let from_stdin = n >= 3 && words[n - 2] == "FROM" && words[n - 1] == "STDIN";
            if !from_stdin || words.iter().any(|w| w == "PROGRAM") {
                return refuse(
                    "a COPY that does not read its rows from the dump (pg_dump writes only COPY … FROM stdin); refused",
                );
            }
            self.queued.push_back(Item::Copy { sql: sql.to_string(), line });
            self.in_copy = true;
            return Ok(());
        }
        if sql.to_ascii_lowercase().contains("client_encoding") {
            let normal: Vec<String> = sql.split_whitespace().map(str::to_ascii_lowercase).collect();
            if normal != ["set", "client_encoding", "=", "'utf8'"] {
                return refuse(
                    "only `SET client_encoding = 'UTF8'` is accepted in a dump; sage-db restores UTF-8 dumps",
                );
            }
            // The connection already speaks UTF-8.
            return Ok(());
        }
        // The statements are read as with standard_conforming_strings on, as pg_dump sets
        // it; a dump that changes it would be read one way here and another by the server.
        if sql.to_ascii_lowercase().contains("standard_conforming_strings") {
            let normal: Vec<String> = sql.split_whitespace().map(str::to_ascii_lowercase).collect();
            if normal != ["set", "standard_conforming_strings", "=", "on"] {
                return refuse("only `SET standard_conforming_strings = on` is accepted in a dump");
            }
        }
        self.queued.push_back(Item::Statement { sql: sql.to_string(), line });
        Ok(())
    }

    /// COPY rows up to the `\.` line, in chunks.
    fn copy_data(&mut self) -> Result<Item, DumpError> {
        let mut chunk = Vec::new();
        loop {
            if !self.read_line()? {
                return Err(self.fail("the dump ends inside COPY data; it is truncated"));
            }
            if self.raw == b"\\.\n" || self.raw == b"\\.\r\n" || self.raw == b"\\." {
                self.in_copy = false;
                self.statement_line = self.line + 1;
                if chunk.is_empty() {
                    return Ok(Item::CopyEnd);
                }
                self.queued.push_back(Item::CopyEnd);
                return Ok(Item::CopyData(chunk));
            }
            chunk.extend_from_slice(&self.raw);
            if chunk.len() >= COPY_CHUNK {
                return Ok(Item::CopyData(chunk));
            }
        }
    }
}

/// How many `BEGIN ATOMIC` (and `CASE` within them) blocks of a `CREATE FUNCTION` or
/// `CREATE PROCEDURE` are open at the end of `code`.
fn atomic_depth(code: &str) -> usize {
    let words: Vec<String> = code
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .take(6)
        .map(str::to_ascii_uppercase)
        .collect();
    let routine = words.first().map(String::as_str) == Some("CREATE")
        && words.iter().skip(1).take(3).any(|w| w == "FUNCTION" || w == "PROCEDURE");
    if !routine {
        return 0;
    }
    let mut depth = 0usize;
    for word in code.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|w| !w.is_empty()) {
        if word.eq_ignore_ascii_case("BEGIN") || (depth > 0 && word.eq_ignore_ascii_case("CASE")) {
            depth += 1;
        } else if depth > 0 && word.eq_ignore_ascii_case("END") {
            depth -= 1;
        }
    }
    depth
}

/// A character that continues an identifier, as the server's lexer sees it: ASCII letters
/// and digits, `_`, `$`, and every non-ASCII character.
fn is_ident_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii()
}

/// `$tag$` at the start of `chars`: the tag (possibly empty), or `None` for `$1`, `$` alone.
fn dollar_tag(chars: &[char]) -> Option<String> {
    let mut tag = String::new();
    for (k, &c) in chars.iter().enumerate().skip(1) {
        if c == '$' {
            return Some(tag);
        }
        let letter = c.is_ascii_alphabetic() || c == '_' || !c.is_ascii();
        let ok = if k == 1 { letter } else { letter || c.is_ascii_digit() };
        if !ok {
            return None;
        }
        tag.push(c);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(text: &str) -> Result<Vec<Item>, DumpError> {
        let mut reader = DumpReader::new(text.as_bytes());
        let mut out = Vec::new();
        while let Some(item) = reader.next_item()? {
            out.push(item);
        }
        Ok(out)
    }

    fn statements(text: &str) -> Vec<String> {
        items(text)
            .unwrap()
            .into_iter()
            .filter_map(|i| match i {
                Item::Statement { sql, .. } => Some(sql),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn statements_end_at_top_level_semicolons_only() {
        let dump = "SET a = 1;\n-- a comment; not a statement\nCREATE FUNCTION f() RETURNS int\n    LANGUAGE sql AS $_$ SELECT 1; $_$;\nCOMMENT ON TABLE t IS 'it''s; fine';\nCREATE TABLE \"we;ird\" (x int); /* c; /* nested; */ */ SELECT E'\\';';\n";
        assert_eq!(
            statements(dump),
            vec![
                "SET a = 1",
                "CREATE FUNCTION f() RETURNS int\n    LANGUAGE sql AS $_$ SELECT 1; $_$",
                "COMMENT ON TABLE t IS 'it''s; fine'",
                "CREATE TABLE \"we;ird\" (x int)",
                "/* c; /* nested; */ */ SELECT E'\\';'",
            ]
        );
    }

    #[test]
    fn copy_data_is_passed_through_untouched() {
        let dump = "COPY public.t (a, b) FROM stdin;\n1\tit's; \\N\n2\t\\\\! rm\n\\.\nSELECT 1;\n";
        assert_eq!(
            items(dump).unwrap(),
            vec![
                Item::Copy { sql: "COPY public.t (a, b) FROM stdin".into(), line: 1 },
                Item::CopyData(b"1\tit's; \\N\n2\t\\\\! rm\n".to_vec()),
                Item::CopyEnd,
                Item::Statement { sql: "SELECT 1".into(), line: 5 },
            ]
        );
    }

    #[test]
    fn guard_lines_are_skipped_and_other_meta_commands_refused() {
        assert_eq!(statements("\\restrict abc\nSELECT 1;\n\\unrestrict abc\n"), vec!["SELECT 1"]);
        assert!(items("SELECT 1; \\! id;\n").unwrap_err().message.contains("meta-command"));
        for hostile in ["\\! touch /tmp/x\n", "\\copy t from '/etc/passwd'\n", "\\connect other\n", "\\i /etc/x\n"] {
            let err = items(&format!("SELECT 1;\n{hostile}")).unwrap_err();
            assert_eq!(err.line, 2, "{hostile}");
            assert!(err.message.contains("meta-command"), "{err}");
        }
    }

    #[test]
    fn a_dollar_quote_cannot_be_closed_by_a_different_tag() {
        let dump = "DO $a$ BEGIN PERFORM '$b$'; END $a$;\n\\! echo pwned\n";
        assert!(items(dump).unwrap_err().message.contains("meta-command"));
        // Inside a dollar quote, a backslash line is data, not a command.
        assert_eq!(statements("DO $x$\n\\! not a command\n$x$;\n").len(), 1);
    }

    #[test]
    fn copy_elsewhere_is_refused() {
        for sql in ["COPY t TO PROGRAM 'id';\n", "COPY t FROM PROGRAM 'id';\n", "COPY t FROM '/etc/passwd';\n"] {
            assert!(items(sql).unwrap_err().message.contains("COPY"), "{sql}");
        }
    }

    proptest::proptest! {
        /// Whatever the bytes, the reader ends with items or an error naming a line; it
        /// never panics, and a statement it passes on never starts with a meta-command.
        #[test]
        fn any_input_is_read_or_refused_without_panicking(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let mut reader = DumpReader::new(bytes.as_slice());
            while let Ok(Some(item)) = reader.next_item() {
                if let Item::Statement { sql, .. } = item {
                    proptest::prop_assert!(!sql.starts_with('\\'));
                }
            }
        }

        /// The same over text made of the characters that matter to the lexer.
        #[test]
        fn sql_like_text_is_read_or_refused_without_panicking(text in "[a-zA-Z0-9 ;'\"$\\\n\r*/\\-éE.(){}]{0,300}") {
            let mut reader = DumpReader::new(text.as_bytes());
            for _ in 0..1000 {
                match reader.next_item() {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }

    #[test]
    fn keywords_behind_comments_and_in_any_case_are_still_seen() {
        for sql in [
            "/* x */ COPY t TO PROGRAM 'id';\n",
            "copy/**/t from program 'id';\n",
            "COPY(SELECT 1)TO PROGRAM'id';\n",
            "/* a */ /* b */ copy t from '/etc/passwd';\n",
        ] {
            assert!(items(sql).unwrap_err().message.contains("COPY"), "{sql}");
        }
        // A COPY inside a literal or a body is not a COPY statement.
        assert_eq!(statements("SELECT 'COPY t TO PROGRAM';\n").len(), 1);
    }

    #[test]
    fn transaction_control_is_refused_however_it_is_spelled() {
        // The bare BEGIN and COMMIT around large-object data are skipped, not run.
        assert_eq!(statements("BEGIN;\nSELECT pg_catalog.lo_open('16385', 131072);\nCOMMIT;\n").len(), 1);
        for sql in [
            "COMMIT AND CHAIN;\n",
            "BEGIN ISOLATION LEVEL SERIALIZABLE;\n",
            "/* c */ commit and no chain;\n",
            "END;\n",
            "rollback;\n",
            "START TRANSACTION;\n",
            "SAVEPOINT s;\n",
            "RELEASE s;\n",
            "ABORT;\n",
            "PREPARE TRANSACTION 'x';\n",
        ] {
            assert!(items(sql).unwrap_err().message.contains("transaction control"), "{sql}");
        }
        assert_eq!(
            statements("PREPARE q AS SELECT 1;\nCREATE FUNCTION f() RETURNS int BEGIN ATOMIC SELECT 1; END;\n").len(),
            2
        );
    }

    #[test]
    fn sql_standard_bodies_keep_their_semicolons() {
        let dump = "CREATE FUNCTION public.f(x integer) RETURNS integer\n    LANGUAGE sql\n    BEGIN ATOMIC\n SELECT CASE WHEN x > 0 THEN 1 ELSE 0 END;\n SELECT 2;\nEND;\nSELECT 3;\n";
        let got = statements(dump);
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].ends_with("SELECT 2;\nEND"), "{}", got[0]);
    }

    #[test]
    fn standard_conforming_strings_stays_on() {
        assert!(items("SET standard_conforming_strings = on;\n").unwrap().len() == 1);
        for sql in [
            "SET standard_conforming_strings = off;\n",
            "SET standard_conforming_strings TO false;\n",
            "SELECT set_config('standard_conforming_strings', 'off', false);\n",
        ] {
            assert!(items(sql).is_err(), "{sql}");
        }
    }

    #[test]
    fn truncated_dumps_are_refused() {
        assert!(items("CREATE TABLE t (x int)\n").unwrap_err().message.contains("truncated"));
        assert!(items("COPY t (x) FROM stdin;\n1\n").unwrap_err().message.contains("truncated"));
        assert!(items("SELECT 'open\n").unwrap_err().message.contains("truncated"));
    }

    #[test]
    fn other_encodings_are_refused() {
        assert!(items("SET client_encoding = 'LATIN1';\n").is_err());
        assert!(items("SET SESSION client_encoding = 'SJIS';\n").is_err());
        assert!(items("SELECT set_config('client_encoding', 'GBK', false);\n").is_err());
        assert!(items("SET client_encoding = 'UTF8';\n").unwrap().is_empty());
        assert!(DumpReader::new(&b"SELECT '\xff';\n"[..]).next_item().is_err());
    }

    #[test]
    fn non_ascii_characters_continue_identifiers_as_on_the_server() {
        // The server reads `😀$a$` as one identifier, not as the start of a dollar quote.
        let dump = "SELECT 1 AS \u{1F600}$a$;\nCOPY t TO PROGRAM 'id';\nSELECT 1 AS \u{1F600}$a$;\n";
        assert!(items(dump).unwrap_err().message.contains("COPY"));
        assert_eq!(statements("SELECT $é$ a;b $é$;\n").len(), 1);
    }

    #[test]
    fn overlong_lines_are_refused_without_reading_them_whole() {
        let line = format!("SELECT '{}';\n", "x".repeat(MAX_SQL_LINE + 10));
        assert!(items(&line).unwrap_err().message.contains("longer than"));
    }

    #[test]
    fn parameters_and_identifiers_with_dollars_are_not_quotes() {
        assert_eq!(
            statements("PREPARE p AS SELECT $1; SELECT a$b FROM t;\n"),
            vec!["PREPARE p AS SELECT $1", "SELECT a$b FROM t"]
        );
    }
}
