//! Splits a SQL script into statements without being fooled by semicolons inside string
//! literals, quoted identifiers, dollar-quoted bodies, comments, SQLite trigger bodies or
//! PostgreSQL `BEGIN ATOMIC` function bodies.

use crate::Dialect;

/// One statement of a script, without its terminating semicolon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement<'a> {
    pub sql: &'a str,
    /// 1-based line of the statement's first character in the script.
    pub line: usize,
    /// Byte offsets of the statement in the script.
    pub start: usize,
    pub end: usize,
}

impl Statement<'_> {
    /// Whether this statement opens, ends or aborts a transaction (`BEGIN`, `COMMIT`, ...),
    /// which cannot appear inside a migration the engine wraps in its own transaction.
    pub fn transaction_control(&self) -> Option<TransactionControl> {
        let words = leading_words(self.sql, 2);
        let first = words.first().map(String::as_str);
        let second = words.get(1).map(String::as_str);
        match (first, second) {
            (Some("BEGIN"), Some("ATOMIC")) => None,
            (Some("BEGIN"), _) | (Some("START"), Some("TRANSACTION")) => Some(TransactionControl::Begin),
            (Some("COMMIT" | "END"), _) => Some(TransactionControl::Commit),
            (Some("ROLLBACK" | "ABORT"), Some("TO")) => None,
            (Some("ROLLBACK" | "ABORT"), _) => Some(TransactionControl::Rollback),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionControl {
    Begin,
    Commit,
    Rollback,
}

/// An unterminated quote or comment, which would make the rest of the script one literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitError {
    pub line: usize,
    pub what: &'static str,
}

pub fn split(script: &str, dialect: Dialect) -> Result<Vec<Statement<'_>>, SplitError> {
    Splitter { src: script.as_bytes(), script, dialect, pos: 0 }.run()
}

struct Splitter<'a> {
    src: &'a [u8],
    script: &'a str,
    dialect: Dialect,
    pos: usize,
}

impl<'a> Splitter<'a> {
    fn run(mut self) -> Result<Vec<Statement<'a>>, SplitError> {
        let mut statements = Vec::new();
        let mut start = 0;
        let mut has_code = false;
        let mut depth = 0usize;
        let mut words: Vec<String> = Vec::new();
        while self.pos < self.src.len() {
            let c = self.src[self.pos];
            let next = self.src.get(self.pos + 1).copied();
            match c {
                b'-' if next == Some(b'-') => self.skip_line_comment(),
                b'/' if next == Some(b'*') => self.skip_block_comment()?,
                b'\'' => {
                    let escapes = self.dialect == Dialect::Postgres && self.prefixed_by_e();
                    self.skip_quoted(b'\'', escapes, "string literal")?;
                    has_code = true;
                }
                b'"' => {
                    self.skip_quoted(b'"', false, "quoted identifier")?;
                    has_code = true;
                }
                b'`' if self.dialect == Dialect::Sqlite => {
                    self.skip_quoted(b'`', false, "quoted identifier")?;
                    has_code = true;
                }
                b'[' if self.dialect == Dialect::Sqlite => {
                    self.skip_until(b']', "bracketed identifier")?;
                    has_code = true;
                }
                b'$' if self.dialect == Dialect::Postgres && self.dollar_tag().is_some() => {
                    self.skip_dollar_quoted()?;
                    has_code = true;
                }
                b';' if depth == 0 => {
                    if has_code {
                        statements.push(self.statement(start, self.pos));
                    }
                    self.pos += 1;
                    start = self.pos;
                    has_code = false;
                    words.clear();
                }
                c if c.is_ascii_alphabetic() || c == b'_' => {
                    let word_start = self.pos;
                    while self.pos < self.src.len()
                        && (self.src[self.pos].is_ascii_alphanumeric() || matches!(self.src[self.pos], b'_' | b'$'))
                    {
                        self.pos += 1;
                    }
                    let word = self.script[word_start..self.pos].to_ascii_uppercase();
                    depth = self.track_blocks(&words, &word, depth);
                    if words.len() < 64 {
                        words.push(word);
                    }
                    has_code = true;
                }
                c => {
                    if !c.is_ascii_whitespace() {
                        has_code = true;
                    }
                    self.pos += 1;
                }
            }
        }
        if has_code {
            statements.push(self.statement(start, self.src.len()));
        }
        Ok(statements)
    }

    /// Nesting of bodies whose statements end in semicolons of their own: SQLite trigger
    /// bodies (`BEGIN … END`) and PostgreSQL SQL-standard bodies (`BEGIN ATOMIC … END`),
    /// with `CASE … END` inside them.
    fn track_blocks(&self, words: &[String], word: &str, depth: usize) -> usize {
        let is_trigger =
            || words.first().is_some_and(|w| w == "CREATE") && words.iter().take(6).any(|w| w == "TRIGGER");
        match word {
            "ATOMIC" if words.last().is_some_and(|w| w == "BEGIN") && self.dialect == Dialect::Postgres => depth + 1,
            "BEGIN" if self.dialect == Dialect::Sqlite && is_trigger() => depth + 1,
            "CASE" if depth > 0 => depth + 1,
            "END" if depth > 0 => depth - 1,
            _ => depth,
        }
    }

    fn statement(&self, start: usize, end: usize) -> Statement<'a> {
        let raw = &self.script[start..end];
        let leading = raw.len() - raw.trim_start().len();
        let sql = raw.trim();
        let abs_start = start + leading;
        let line = 1 + self.script[..abs_start].bytes().filter(|&b| b == b'\n').count();
        Statement { sql, line, start: abs_start, end: abs_start + sql.len() }
    }

    fn line_at(&self, pos: usize) -> usize {
        1 + self.src[..pos].iter().filter(|&&b| b == b'\n').count()
    }

    fn skip_line_comment(&mut self) {
        while self.pos < self.src.len() && self.src[self.pos] != b'\n' {
            self.pos += 1;
        }
    }

    fn skip_block_comment(&mut self) -> Result<(), SplitError> {
        let opened = self.pos;
        let mut depth = 0;
        while self.pos < self.src.len() {
            if self.src[self.pos..].starts_with(b"/*") {
                depth += 1;
                self.pos += 2;
            } else if self.src[self.pos..].starts_with(b"*/") {
                depth -= 1;
                self.pos += 2;
                // SQLite comments do not nest: the first `*/` closes.
                if depth == 0 || self.dialect == Dialect::Sqlite {
                    return Ok(());
                }
            } else {
                self.pos += 1;
            }
        }
        Err(SplitError { line: self.line_at(opened), what: "block comment" })
    }

    fn prefixed_by_e(&self) -> bool {
        let Some(prev) = self.pos.checked_sub(1).map(|i| self.src[i]) else { return false };
        if !matches!(prev, b'e' | b'E') {
            return false;
        }
        let before = self.pos.checked_sub(2).map(|i| self.src[i]);
        !before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
    }

    fn skip_quoted(&mut self, quote: u8, backslash_escapes: bool, what: &'static str) -> Result<(), SplitError> {
        let opened = self.pos;
        self.pos += 1;
        while self.pos < self.src.len() {
            let c = self.src[self.pos];
            if backslash_escapes && c == b'\\' {
                self.pos += 2;
                continue;
            }
            if c == quote {
                if self.src.get(self.pos + 1) == Some(&quote) {
                    self.pos += 2;
                    continue;
                }
                self.pos += 1;
                return Ok(());
            }
            self.pos += 1;
        }
        Err(SplitError { line: self.line_at(opened), what })
    }

    fn skip_until(&mut self, close: u8, what: &'static str) -> Result<(), SplitError> {
        let opened = self.pos;
        match self.src[self.pos..].iter().position(|&b| b == close) {
            Some(offset) => {
                self.pos += offset + 1;
                Ok(())
            }
            None => Err(SplitError { line: self.line_at(opened), what }),
        }
    }

    /// The `$tag$` starting at the current position, if it is one. A `$` that follows an
    /// identifier character belongs to the identifier (`a$b`), and `$1` is a parameter.
    fn dollar_tag(&self) -> Option<&'a [u8]> {
        if self.pos > 0 {
            let prev = self.src[self.pos - 1];
            if prev.is_ascii_alphanumeric() || prev == b'_' {
                return None;
            }
        }
        let rest = &self.src[self.pos + 1..];
        let len = rest.iter().position(|&b| b == b'$')?;
        let tag = &rest[..len];
        let valid = tag.first().is_none_or(|b| b.is_ascii_alphabetic() || *b == b'_')
            && tag.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_');
        valid.then(|| &self.src[self.pos..self.pos + len + 2])
    }

    fn skip_dollar_quoted(&mut self) -> Result<(), SplitError> {
        let opened = self.pos;
        let tag = self.dollar_tag().expect("caller checked the tag");
        self.pos += tag.len();
        match self.src[self.pos..].windows(tag.len()).position(|w| w == tag) {
            Some(offset) => {
                self.pos += offset + tag.len();
                Ok(())
            }
            None => Err(SplitError { line: self.line_at(opened), what: "dollar-quoted string" }),
        }
    }
}

/// The first `n` keywords of a statement, upper-cased, skipping comments.
fn leading_words(sql: &str, n: usize) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = sql;
    while words.len() < n {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
            continue;
        }
        if let Some(after) = rest.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r);
            continue;
        }
        let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if len == 0 {
            break;
        }
        words.push(rest[..len].to_ascii_uppercase());
        rest = &rest[len..];
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(script: &str) -> Vec<&str> {
        split(script, Dialect::Postgres).unwrap().into_iter().map(|s| s.sql).collect()
    }

    fn lite(script: &str) -> Vec<&str> {
        split(script, Dialect::Sqlite).unwrap().into_iter().map(|s| s.sql).collect()
    }

    #[test]
    fn plain_statements_and_empty_ones() {
        assert_eq!(pg("SELECT 1; ;\n SELECT 2 ;\n-- done\n"), ["SELECT 1", "SELECT 2"]);
        assert_eq!(pg("-- only a comment\n/* and another */"), Vec::<&str>::new());
    }

    #[test]
    fn semicolons_inside_quotes_and_comments() {
        let script =
            "INSERT INTO t VALUES ('a;b', 'it''s;'); -- c;d\nSELECT \"we;ird\" /* x; /* nested; */ y; */ FROM t;";
        assert_eq!(
            pg(script),
            ["INSERT INTO t VALUES ('a;b', 'it''s;')", "-- c;d\nSELECT \"we;ird\" /* x; /* nested; */ y; */ FROM t"]
        );
    }

    #[test]
    fn escape_strings_allow_backslash_quotes() {
        assert_eq!(pg(r"SELECT E'a\';b'; SELECT 2"), [r"SELECT E'a\';b'", "SELECT 2"]);
        // A plain string ends at the quote even after a backslash.
        assert_eq!(pg(r"SELECT 'a\'; SELECT 2"), [r"SELECT 'a\'", "SELECT 2"]);
    }

    #[test]
    fn dollar_quoted_function_bodies() {
        let script = "CREATE FUNCTION f() RETURNS trigger AS $$\nBEGIN\n  NEW.x = 1;\n  RETURN NEW;\nEND;\n$$ LANGUAGE plpgsql;\nDO $body$ BEGIN PERFORM 1; END $body$;\nSELECT $1, a$b FROM t";
        let got = pg(script);
        assert_eq!(got.len(), 3, "{got:#?}");
        assert!(got[0].ends_with("LANGUAGE plpgsql"));
        assert!(got[1].starts_with("DO $body$"));
    }

    #[test]
    fn begin_atomic_bodies_stay_whole() {
        let script = "CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT CASE WHEN a > 0 THEN 1 ELSE 0 END; SELECT 2; END; SELECT 3";
        let got = pg(script);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!(got[1], "SELECT 3");
    }

    #[test]
    fn sqlite_trigger_bodies_stay_whole() {
        let script = "CREATE TRIGGER trg AFTER UPDATE ON t BEGIN UPDATE t SET n = CASE WHEN n > 1 THEN 0 END; INSERT INTO log VALUES (1); END;\nCREATE INDEX i ON t(n);";
        let got = lite(script);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].ends_with("END"));
    }

    #[test]
    fn lines_are_counted_from_one() {
        let got = split("SELECT 1;\n\n  SELECT\n2;", Dialect::Postgres).unwrap();
        assert_eq!((got[0].line, got[1].line), (1, 3));
    }

    #[test]
    fn unterminated_literal_is_an_error_with_its_line() {
        let err = split("SELECT 1;\nSELECT 'oops;\n", Dialect::Postgres).unwrap_err();
        assert_eq!(err, SplitError { line: 2, what: "string literal" });
        let err = split("SELECT $$ body", Dialect::Postgres).unwrap_err();
        assert_eq!(err.what, "dollar-quoted string");
    }

    #[test]
    fn transaction_control_is_recognised() {
        let kinds: Vec<_> = split(
            "BEGIN; START TRANSACTION; COMMIT; END; ROLLBACK; ROLLBACK TO SAVEPOINT s; BEGIN ATOMIC SELECT 1; END",
            Dialect::Postgres,
        )
        .unwrap()
        .iter()
        .map(|s| s.transaction_control())
        .collect();
        use TransactionControl::*;
        assert_eq!(kinds[..6], [Some(Begin), Some(Begin), Some(Commit), Some(Commit), Some(Rollback), None]);
    }
}
