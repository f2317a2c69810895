//! Splits a SQL script into statements the way psql (PostgreSQL) and SQLite read it, so a
//! semicolon ends a statement only where the server would see the end of one.
//!
//! It is not fooled by semicolons inside string literals (including backslash escapes under
//! `standard_conforming_strings = off`), quoted identifiers, dollar-quoted bodies with any
//! tag, comments ended by LF, CRLF or a lone CR, parentheses (a rule's `DO ALSO (…; …)`),
//! SQLite trigger bodies or PostgreSQL `BEGIN ATOMIC` bodies. It reads what pg_dump writes:
//! the `\restrict`/`\unrestrict` guard lines are skipped, `COPY … FROM stdin` statements
//! carry their data block, and any other psql meta-command is refused with its line.
//!
//! Where a statement's end cannot be told for certain (an unclosed parenthesis or body, a
//! meta-command in the middle of a statement), the script is refused with the line, never
//! guessed at: a statement run in the wrong pieces, or not at all, would be recorded as
//! applied.

use crate::Dialect;

/// One statement of a script, without its terminating semicolon and without the comments
/// before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Statement<'a> {
    pub sql: &'a str,
    /// 1-based line of the statement's first token in the script (LF, CRLF and a lone CR
    /// each end a line).
    pub line: usize,
    /// 1-based column (in characters) of the statement's first token.
    pub column: usize,
    /// Byte offsets of `sql` in the script.
    pub start: usize,
    pub end: usize,
    /// For `COPY … FROM stdin`: the rows that follow the statement, up to the `\.` line.
    pub copy_data: Option<&'a str>,
    /// Whether the statement may change how the session reads later scripts (`SET`,
    /// `RESET`, `set_config`, `DISCARD`, `DEALLOCATE`), so that the runner puts the session
    /// back after the script.
    pub changes_session: bool,
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

/// Why a script cannot be split for certain, at a line and column of the script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for SplitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}: {}", self.line, self.column, self.message)
    }
}

impl std::error::Error for SplitError {}

pub fn split(script: &str, dialect: Dialect) -> Result<Vec<Statement<'_>>, SplitError> {
    Splitter::new(script, dialect).run()
}

/// What the statement being read has shown so far, for the decisions that depend on its
/// words: whether it is a routine or trigger with a body, a COPY, a SET.
#[derive(Default)]
struct Current {
    /// Byte offset of the first token; `None` while only whitespace and comments were seen.
    start: Option<usize>,
    /// Open parentheses, with the offset of the outermost for the error message.
    parens: usize,
    outermost_paren: usize,
    /// Open `BEGIN`/`CASE` blocks of a body whose statements end in semicolons.
    blocks: usize,
    outermost_block: usize,
    /// The first few words, upper-cased, to recognise the statement.
    head: Vec<String>,
    /// Every word outside literals and comments, upper-cased; COPY and SET are judged by
    /// them.
    words: Vec<String>,
    /// The last token: a word or a punctuation byte. `END` after `AS` or `.` is a column
    /// label, not the end of a block.
    previous: Token,
}

#[derive(Default, Clone, PartialEq, Eq)]
enum Token {
    #[default]
    None,
    Word(String),
    Punct(u8),
}

struct Splitter<'a> {
    src: &'a [u8],
    script: &'a str,
    dialect: Dialect,
    pos: usize,
    /// Byte offset where each line starts.
    line_starts: Vec<usize>,
    /// `standard_conforming_strings` as the script has set it: when off, a backslash
    /// escapes the next character in every '…' string, not only in E'…'.
    conforming_strings: bool,
}

impl<'a> Splitter<'a> {
    fn new(script: &'a str, dialect: Dialect) -> Splitter<'a> {
        let src = script.as_bytes();
        let mut line_starts = vec![0];
        let mut i = 0;
        while i < src.len() {
            match src[i] {
                b'\r' if src.get(i + 1) == Some(&b'\n') => {
                    line_starts.push(i + 2);
                    i += 2;
                    continue;
                }
                b'\r' | b'\n' => line_starts.push(i + 1),
                _ => {}
            }
            i += 1;
        }
        Splitter { src, script, dialect, pos: 0, line_starts, conforming_strings: true }
    }

    fn position(&self, offset: usize) -> (usize, usize) {
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let line_start = self.line_starts[line - 1];
        let column = 1 + self.script.get(line_start..offset).map_or(offset - line_start, |s| s.chars().count());
        (line, column)
    }

    fn error(&self, offset: usize, message: impl Into<String>) -> SplitError {
        let (line, column) = self.position(offset);
        SplitError { line, column, message: message.into() }
    }

    fn run(mut self) -> Result<Vec<Statement<'a>>, SplitError> {
        let mut statements = Vec::new();
        let mut current = Current::default();
        let postgres = self.dialect == Dialect::Postgres;
        let sqlite = self.dialect == Dialect::Sqlite;
        while self.pos < self.src.len() {
            let c = self.src[self.pos];
            let next = self.src.get(self.pos + 1).copied();
            let at = self.pos;
            match c {
                b'-' if next == Some(b'-') => {
                    self.skip_line_comment();
                    // SQLite ends a `--` comment only at LF: after a lone CR it would read the
                    // rest of the statement as comment and silently run less than the file says.
                    let lone_cr = self.src.get(self.pos) == Some(&b'\r') && self.src.get(self.pos + 1) != Some(&b'\n');
                    if sqlite && lone_cr && current.start.is_some() {
                        return Err(self.error(
                            at,
                            "a -- comment inside a statement ends at a lone carriage return, where SQLite would read the rest of the statement as comment; save the file with LF or CRLF line endings",
                        ));
                    }
                    continue;
                }
                b'/' if next == Some(b'*') => {
                    self.skip_block_comment()?;
                    continue;
                }
                b'\\' if postgres && current.start.is_none() => {
                    self.meta_command()?;
                    continue;
                }
                b'\\' if postgres => {
                    return Err(self.error(
                        at,
                        format!(
                            "psql meta-command {} inside a statement; sage-db runs SQL, not psql scripts, and cannot tell where this statement ends",
                            self.meta_word(at)
                        ),
                    ));
                }
                _ if is_space(c) => {
                    self.pos += 1;
                    continue;
                }
                _ => {}
            }
            if current.start.is_none() {
                current.start = Some(at);
            }
            match c {
                b'\'' => {
                    let escapes = postgres && (!self.conforming_strings || self.prefixed_by_e());
                    self.skip_quoted(b'\'', escapes, "string literal")?;
                    current.previous = Token::Punct(b'\'');
                }
                b'"' => {
                    self.skip_quoted(b'"', false, "quoted identifier")?;
                    current.previous = Token::Punct(b'"');
                }
                b'`' if sqlite => {
                    self.skip_quoted(b'`', false, "quoted identifier")?;
                    current.previous = Token::Punct(b'"');
                }
                b'[' if sqlite => {
                    self.skip_until(b']', "bracketed identifier")?;
                    current.previous = Token::Punct(b'"');
                }
                b'$' if postgres && self.dollar_tag().is_some() => {
                    self.skip_dollar_quoted()?;
                    current.previous = Token::Punct(b'$');
                }
                b'(' => {
                    if current.parens == 0 {
                        current.outermost_paren = at;
                    }
                    current.parens += 1;
                    current.previous = Token::Punct(c);
                    self.pos += 1;
                }
                b')' => {
                    // An unmatched `)` is the server's to reject; it does not hide a `;`.
                    current.parens = current.parens.saturating_sub(1);
                    current.previous = Token::Punct(c);
                    self.pos += 1;
                }
                b';' if current.parens == 0 && current.blocks == 0 => {
                    let start = current.start.expect("set above");
                    let finished = std::mem::take(&mut current);
                    self.pos += 1;
                    if start == at {
                        // An empty statement: a lone `;`.
                        continue;
                    }
                    statements.push(self.finish(finished, start, at)?);
                }
                c if is_ident_start(c) => {
                    let word_start = self.pos;
                    while self.pos < self.src.len() && is_ident_continue(self.src[self.pos]) {
                        self.pos += 1;
                    }
                    let word = self.script[word_start..self.pos].to_ascii_uppercase();
                    self.track_blocks(&mut current, &word, word_start);
                    if current.head.len() < 8 {
                        current.head.push(word.clone());
                    }
                    current.words.push(word.clone());
                    current.previous = Token::Word(word);
                }
                c => {
                    current.previous = Token::Punct(c);
                    self.pos += 1;
                }
            }
        }
        if let Some(start) = current.start {
            if current.parens > 0 {
                return Err(self.error(
                    current.outermost_paren,
                    "this parenthesis is never closed, so where the statement ends is uncertain",
                ));
            }
            if current.blocks > 0 {
                return Err(self.error(
                    current.outermost_block,
                    "this BEGIN has no matching END, so where the statement ends is uncertain",
                ));
            }
            let end = self.src.len();
            statements.push(self.finish(current, start, end)?);
        }
        Ok(statements)
    }

    /// Nesting of bodies whose statements end in semicolons of their own, as psql and
    /// SQLite track them: in `CREATE [OR REPLACE] FUNCTION|PROCEDURE` (PostgreSQL) and
    /// `CREATE [TEMP] TRIGGER` (SQLite), outside parentheses, `BEGIN` opens a block, `CASE`
    /// inside one opens another, and `END` closes one unless it is a column label
    /// (`AS end`, `t.end`).
    fn track_blocks(&self, current: &mut Current, word: &str, at: usize) {
        if current.parens > 0 || !self.has_body(&current.head) {
            return;
        }
        match word {
            "BEGIN" => {
                if current.blocks == 0 {
                    current.outermost_block = at;
                }
                current.blocks += 1;
            }
            "CASE" if current.blocks > 0 => current.blocks += 1,
            "END" if current.blocks > 0 => {
                let label = match &current.previous {
                    Token::Word(w) => w == "AS",
                    Token::Punct(p) => *p == b'.',
                    Token::None => false,
                };
                if !label {
                    current.blocks -= 1;
                }
            }
            _ => {}
        }
    }

    fn has_body(&self, head: &[String]) -> bool {
        let head: Vec<&str> = head.iter().map(String::as_str).collect();
        match self.dialect {
            Dialect::Postgres => matches!(
                head.as_slice(),
                ["CREATE", "FUNCTION" | "PROCEDURE", ..] | ["CREATE", "OR", "REPLACE", "FUNCTION" | "PROCEDURE", ..]
            ),
            Dialect::Sqlite => {
                matches!(head.as_slice(), ["CREATE", "TRIGGER", ..] | ["CREATE", "TEMP" | "TEMPORARY", "TRIGGER", ..])
            }
        }
    }

    /// Completes a statement that ends at `end` (its semicolon, or the end of the script).
    fn finish(&mut self, current: Current, start: usize, end: usize) -> Result<Statement<'a>, SplitError> {
        let sql = self.script[start..end].trim_end_matches(|c: char| c.is_ascii() && is_space(c as u8));
        let (line, column) = self.position(start);
        let words: Vec<&str> = current.words.iter().map(String::as_str).collect();
        let mut statement =
            Statement { sql, line, column, start, end: start + sql.len(), copy_data: None, changes_session: false };
        if self.dialect == Dialect::Sqlite {
            return Ok(statement);
        }
        statement.changes_session = matches!(words.first(), Some(&("SET" | "RESET" | "DISCARD" | "DEALLOCATE")))
            || words.contains(&"SET_CONFIG");
        self.follow_string_setting(&words, sql, start)?;
        if words.first() == Some(&"COPY") {
            let from_stdin = words.windows(2).any(|w| w == ["FROM", "STDIN"]);
            let to_stdout = words.windows(2).any(|w| w == ["TO", "STDOUT"]);
            if to_stdout {
                return Err(self.error(start, "COPY … TO STDOUT writes rows to psql's output; a migration cannot"));
            }
            if from_stdin {
                statement.copy_data = Some(self.copy_data(end)?);
            }
        }
        Ok(statement)
    }

    /// Follows `SET standard_conforming_strings`, which changes how the next strings are
    /// read; a change that cannot be followed is refused.
    fn follow_string_setting(&mut self, words: &[&str], sql: &str, start: usize) -> Result<(), SplitError> {
        let mentions = words.contains(&"STANDARD_CONFORMING_STRINGS")
            || (words.contains(&"SET_CONFIG") && sql.to_ascii_lowercase().contains("standard_conforming_strings"));
        if words == ["RESET", "ALL"] || words == ["DISCARD", "ALL"] {
            self.conforming_strings = true;
        }
        if !mentions {
            return Ok(());
        }
        let normal: Vec<String> = sql
            .split(|c: char| c.is_whitespace() || c == '=')
            .filter(|w| !w.is_empty())
            .map(|w| w.trim_matches('\'').to_ascii_lowercase())
            .collect();
        let normal: Vec<&str> =
            normal.iter().map(String::as_str).filter(|w| !matches!(*w, "session" | "local" | "to")).collect();
        let value = match normal.as_slice() {
            ["set", "standard_conforming_strings", v] => match *v {
                "on" | "true" | "yes" | "1" | "default" => Some(true),
                "off" | "false" | "no" | "0" => Some(false),
                _ => None,
            },
            ["reset", "standard_conforming_strings"] => Some(true),
            _ => None,
        };
        match value {
            Some(on) => {
                self.conforming_strings = on;
                Ok(())
            }
            None => Err(self.error(
                start,
                "standard_conforming_strings is changed in a way sage-db cannot follow, so the strings after it could be read differently than the server reads them; write `SET standard_conforming_strings = on` or `= off`",
            )),
        }
    }

    /// The rows of a `COPY … FROM stdin` whose statement ends at `semicolon`: from the next
    /// line to the line that holds only `\.`, which is consumed.
    fn copy_data(&mut self, semicolon: usize) -> Result<&'a str, SplitError> {
        let rest_of_line =
            self.src[self.pos..].iter().position(|&b| b == b'\n').map_or(self.src.len(), |i| self.pos + i);
        if self.src[self.pos..rest_of_line].iter().any(|b| !is_space(*b)) {
            return Err(self.error(
                self.pos,
                "text after a COPY … FROM stdin statement on its line; the rows start on the next line",
            ));
        }
        let data_start = (rest_of_line + 1).min(self.src.len());
        let mut line_start = data_start;
        while line_start < self.src.len() {
            let line_end =
                self.src[line_start..].iter().position(|&b| b == b'\n').map_or(self.src.len(), |i| line_start + i);
            let line = &self.src[line_start..line_end];
            if line == b"\\." || line == b"\\.\r" {
                self.pos = (line_end + 1).min(self.src.len());
                return Ok(&self.script[data_start..line_start]);
            }
            line_start = line_end + 1;
        }
        Err(self.error(
            semicolon,
            "the rows of this COPY … FROM stdin have no `\\.` line after them, so where they end is uncertain",
        ))
    }

    /// A psql meta-command at the start of a statement: pg_dump's guard lines are
    /// skipped, everything else refused.
    fn meta_command(&mut self) -> Result<(), SplitError> {
        let at = self.pos;
        let word = self.meta_word(at);
        let line_end = self.src[at..].iter().position(|&b| b == b'\n' || b == b'\r').map_or(self.src.len(), |i| at + i);
        match word.as_str() {
            // pg_dump's guard against meta-commands smuggled in by a hostile server: it only
            // tells psql to refuse them, which sage-db does anyway.
            "\\restrict" | "\\unrestrict" => {
                self.pos = line_end;
                Ok(())
            }
            "\\connect" | "\\c" => Err(self.error(
                at,
                format!(
                    "psql meta-command {word} switches to another database, but a migration applies to the one database it is run on; dump each database on its own (pg_dump, not pg_dumpall)"
                ),
            )),
            _ => Err(self.error(
                at,
                format!("psql meta-command {word} is not SQL; sage-db runs SQL statements only, so remove it or run the file with psql"),
            )),
        }
    }

    fn meta_word(&self, at: usize) -> String {
        let len = self.src[at + 1..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'!' | b'?' | b'.'))
            .count();
        let word = self.script.get(at..at + 1 + len).unwrap_or("\\");
        word.chars().take(40).collect()
    }

    fn skip_line_comment(&mut self) {
        while self.pos < self.src.len() && !matches!(self.src[self.pos], b'\n' | b'\r') {
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
        if self.dialect == Dialect::Sqlite {
            // SQLite accepts a block comment that runs to the end of the script.
            return Ok(());
        }
        Err(self.error(opened, "unterminated block comment"))
    }

    fn prefixed_by_e(&self) -> bool {
        let Some(prev) = self.pos.checked_sub(1).map(|i| self.src[i]) else { return false };
        if !matches!(prev, b'e' | b'E') {
            return false;
        }
        let before = self.pos.checked_sub(2).map(|i| self.src[i]);
        !before.is_some_and(is_ident_continue)
    }

    fn skip_quoted(&mut self, quote: u8, backslash_escapes: bool, what: &str) -> Result<(), SplitError> {
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
        self.pos = self.src.len();
        Err(self.error(opened, format!("unterminated {what}")))
    }

    fn skip_until(&mut self, close: u8, what: &str) -> Result<(), SplitError> {
        let opened = self.pos;
        match self.src[self.pos..].iter().position(|&b| b == close) {
            Some(offset) => {
                self.pos += offset + 1;
                Ok(())
            }
            None => Err(self.error(opened, format!("unterminated {what}"))),
        }
    }

    /// The `$tag$` starting at the current position, if it is one, as PostgreSQL's lexer
    /// reads it: a tag starts with a letter, `_` or any non-ASCII character and goes on with
    /// those and digits. A `$` that follows an identifier character belongs to the
    /// identifier (`a$b`), and `$1` is a parameter.
    fn dollar_tag(&self) -> Option<&'a [u8]> {
        if self.pos > 0 && is_ident_continue(self.src[self.pos - 1]) {
            return None;
        }
        let rest = &self.src[self.pos + 1..];
        let len = rest.iter().position(|&b| b == b'$')?;
        let tag = &rest[..len];
        let valid = tag.first().is_none_or(|&b| is_ident_start(b))
            && tag.iter().all(|&b| is_ident_start(b) || b.is_ascii_digit());
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
            None => Err(self.error(opened, "unterminated dollar-quoted string")),
        }
    }
}

/// A byte that starts an identifier or keyword: ASCII letters, `_`, and every byte of a
/// non-ASCII character, as in both servers' lexers.
/// Whitespace between tokens, as PostgreSQL's scanner (16 and later) and SQLite's see it:
/// space, tab, line feed, vertical tab, form feed and carriage return. Other characters
/// Unicode calls spaces are part of a token to both.
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r')
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_continue(b: u8) -> bool {
    is_ident_start(b) || b.is_ascii_digit() || b == b'$'
}

/// The first `n` keywords of a statement, upper-cased, skipping comments.
fn leading_words(sql: &str, n: usize) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = sql;
    while words.len() < n {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix("--") {
            rest = after.split_once(['\n', '\r']).map_or("", |(_, r)| r);
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

    fn pg_err(script: &str) -> SplitError {
        split(script, Dialect::Postgres).unwrap_err()
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
            ["INSERT INTO t VALUES ('a;b', 'it''s;')", "SELECT \"we;ird\" /* x; /* nested; */ y; */ FROM t"]
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
        let temp = "CREATE TEMP TRIGGER t2 AFTER INSERT ON t BEGIN SELECT 1 AS end; DELETE FROM log; END; SELECT 2";
        assert_eq!(lite(temp).len(), 2, "{:#?}", lite(temp));
    }

    #[test]
    fn lines_are_counted_from_one() {
        let got = split("SELECT 1;\n\n  SELECT\n2;", Dialect::Postgres).unwrap();
        assert_eq!((got[0].line, got[1].line), (1, 3));
        assert_eq!(got[1].column, 3);
    }

    #[test]
    fn unterminated_literal_is_an_error_with_its_line() {
        let err = pg_err("SELECT 1;\nSELECT 'oops;\n");
        assert_eq!((err.line, err.column), (2, 8));
        assert!(err.message.contains("string literal"), "{err}");
        assert!(pg_err("SELECT $$ body").message.contains("dollar-quoted string"));
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

    /// pg_dump writes a rule with several actions as `DO ALSO ( a;\n b;\n)`: the semicolons
    /// inside the parentheses are the rule's, as psql reads them.
    #[test]
    fn regression_rule_with_several_actions_stays_whole() {
        let script = "CREATE RULE log_insert AS\n    ON INSERT TO public.t DO ALSO ( INSERT INTO public.log (x)\n  VALUES (new.x);\n UPDATE public.counter SET n = (counter.n + 1);\n);\nSELECT 1;\n";
        let got = pg(script);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].ends_with("(counter.n + 1);\n)"), "{}", got[0]);
        assert_eq!(lite("CREATE TABLE t (a int CHECK (a > 0)); SELECT 1").len(), 2);
    }

    #[test]
    fn regression_cr_only_line_endings_end_comments() {
        // Before, a `--` comment ran to the next LF: with CR-only line endings the whole
        // file after the first comment was comment, and nothing ran.
        let script = "-- first\rCREATE TABLE a (x int);\r-- second\rCREATE TABLE b (y int);\r";
        let got = split(script, Dialect::Postgres).unwrap();
        assert_eq!(got.iter().map(|s| s.sql).collect::<Vec<_>>(), ["CREATE TABLE a (x int)", "CREATE TABLE b (y int)"]);
        assert_eq!((got[0].line, got[1].line), (2, 4));
        assert_eq!(lite(script).len(), 2);
        let crlf = "-- first\r\nCREATE TABLE a (x int);\r\n\r\nCREATE TABLE b (y int);\r\n";
        let got = split(crlf, Dialect::Sqlite).unwrap();
        assert_eq!((got[0].line, got[1].line), (2, 4));
        // Inside a statement, SQLite would read past a lone CR: refused, never run short.
        let err = split("CREATE TABLE a (x int, -- note\r y int);", Dialect::Sqlite).unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.message.contains("carriage return"), "{err}");
        assert_eq!(pg("CREATE TABLE a (x int, -- note\r y int);").len(), 1);
    }

    #[test]
    fn regression_begin_atomic_after_a_long_signature() {
        let params: Vec<String> = (0..80).map(|i| format!("p{i} integer DEFAULT {i}")).collect();
        let script = format!(
            "CREATE OR REPLACE FUNCTION public.wide({})\n RETURNS integer\n LANGUAGE sql\n IMMUTABLE PARALLEL SAFE STRICT SECURITY INVOKER COST 1\nBEGIN ATOMIC\n SELECT p0 + 1;\n SELECT 2;\nEND;\nSELECT 3;",
            params.join(", ")
        );
        let got = pg(&script);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got[0].ends_with("SELECT 2;\nEND"));
        let procedure = "CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC INSERT INTO t VALUES (1); END; SELECT 1";
        assert_eq!(pg(procedure).len(), 2);
    }

    #[test]
    fn regression_non_ascii_dollar_quote_tags() {
        assert_eq!(pg("SELECT $é$ a;b $é$; SELECT $ü1$ c;d $ü1$; SELECT 3").len(), 3);
        // A non-ASCII character continues an identifier, so `é$a$` is no quote.
        assert_eq!(pg("SELECT 1 AS é$a$; SELECT 2").len(), 2);
    }

    #[test]
    fn regression_standard_conforming_strings_off() {
        let script = "SET standard_conforming_strings = off;\nINSERT INTO t VALUES ('a\\';b');\nSET standard_conforming_strings TO 'on';\nSELECT 'c\\';\nSELECT 2";
        assert_eq!(
            pg(script),
            [
                "SET standard_conforming_strings = off",
                "INSERT INTO t VALUES ('a\\';b')",
                "SET standard_conforming_strings TO 'on'",
                "SELECT 'c\\'",
                "SELECT 2"
            ]
        );
        assert_eq!(pg("SET SESSION standard_conforming_strings = false; SELECT 'x\\';y'; RESET standard_conforming_strings; SELECT 'z\\'").len(), 4);
        let err = pg_err("SELECT 1;\nSELECT set_config('standard_conforming_strings', 'off', false);");
        assert_eq!(err.line, 2);
        assert!(err.message.contains("standard_conforming_strings"), "{err}");
        let got = split("SET standard_conforming_strings = off; SELECT 1", Dialect::Postgres).unwrap();
        assert!(got[0].changes_session);
        assert!(!got[1].changes_session);
    }

    #[test]
    fn regression_end_as_a_column_label() {
        let script = "CREATE FUNCTION f() RETURNS TABLE (a int) LANGUAGE sql BEGIN ATOMIC SELECT 1 AS end; SELECT t.end FROM t; END;\nSELECT 3";
        let got = pg(script);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!(got[1], "SELECT 3");
    }

    #[test]
    fn regression_psql_meta_commands_from_pg_dump() {
        let script =
            "\\restrict Pk3nCj9Zr\n\nSET statement_timeout = 0;\nCREATE TABLE t (x int);\n\n\\unrestrict Pk3nCj9Zr\n";
        assert_eq!(pg(script), ["SET statement_timeout = 0", "CREATE TABLE t (x int)"]);
        let err = pg_err("SELECT 1;\n\\connect other\nSELECT 2;");
        assert_eq!(err.line, 2);
        assert!(err.message.contains("\\connect") && err.message.contains("another database"), "{err}");
        let err = pg_err("SELECT 1;\n\\! rm -rf /\n");
        assert!(err.message.contains("\\!") && err.message.contains("not SQL"), "{err}");
        let err = pg_err("SELECT 1\n\\gexec\n");
        assert!(err.message.contains("inside a statement"), "{err}");
        // A backslash inside a literal or a body is data.
        assert_eq!(pg("SELECT E'\\\\restrict';\nDO $$\n\\connect x\n$$;").len(), 2);
    }

    #[test]
    fn regression_copy_from_stdin_carries_its_rows() {
        let script = "COPY public.t (a, b) FROM stdin;\n1\tx;y\n2\t\\N\n\\.\nSELECT 1;\n";
        let got = split(script, Dialect::Postgres).unwrap();
        assert_eq!(got.len(), 2, "{got:#?}");
        assert_eq!(got[0].sql, "COPY public.t (a, b) FROM stdin");
        assert_eq!(got[0].copy_data, Some("1\tx;y\n2\t\\N\n"));
        assert_eq!((got[1].sql, got[1].line), ("SELECT 1", 5));
        let empty = split("COPY t (a) FROM stdin;\r\n\\.\r\nSELECT 1;", Dialect::Postgres).unwrap();
        assert_eq!(empty[0].copy_data, Some(""));
        assert_eq!(empty.len(), 2);
        let err = pg_err("SELECT 1;\nCOPY t (a) FROM stdin;\n1\n2\n");
        assert_eq!(err.line, 2);
        assert!(err.message.contains("\\."), "{err}");
        assert!(pg_err("COPY t (a) FROM stdin; SELECT 1;\n1\n\\.\n").message.contains("next line"));
        assert!(pg_err("COPY t TO STDOUT;").message.contains("STDOUT"));
    }

    #[test]
    fn regression_positions_point_at_the_first_token_not_the_comment() {
        let script = "SELECT 1;\n-- why this migration exists\n/* more\n   words */\n    CREATE TABLE t (x int);";
        let got = split(script, Dialect::Postgres).unwrap();
        assert_eq!((got[1].line, got[1].column), (5, 5));
        assert_eq!(got[1].sql, "CREATE TABLE t (x int)");
        assert_eq!(&script[got[1].start..got[1].end], got[1].sql);
        let got = split("SELECT 'é';  SELECT 2", Dialect::Postgres).unwrap();
        assert_eq!(got[1].column, 14);
    }

    #[test]
    fn uncertain_ends_are_refused_with_the_line() {
        let err = pg_err("SELECT 1;\nCREATE TABLE t (x int;\nSELECT 2;\n");
        assert_eq!((err.line, err.column), (2, 16));
        assert!(err.message.contains("parenthesis"), "{err}");
        let err = pg_err("SELECT 1;\nCREATE FUNCTION f() RETURNS int LANGUAGE sql\nBEGIN ATOMIC SELECT 1;\n");
        assert_eq!(err.line, 3);
        assert!(err.message.contains("BEGIN"), "{err}");
        assert!(split("CREATE TRIGGER t AFTER INSERT ON x BEGIN SELECT 1;", Dialect::Sqlite).is_err());
    }

    /// One of the statement shapes the property test joins into scripts; `{eol}` stands for
    /// the script's line ending.
    const SHAPES: &[&str] = &[
        "SELECT 1",
        "SELECT 'a;b', 'it''s;'",
        "SELECT E'x\\';y'",
        "SELECT \"c;d\" FROM t",
        "DO $$ BEGIN PERFORM 1; END $$",
        "DO $é$ x;y $é$",
        "CREATE RULE r AS ON INSERT TO t DO ALSO (INSERT INTO a VALUES (1);{eol} DELETE FROM b)",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql{eol}BEGIN ATOMIC{eol}SELECT CASE WHEN true THEN 1 END;{eol}SELECT 2 AS end;{eol}END",
        "SELECT 1 /* c; */ + 2",
        "SELECT 1 -- c;{eol}+ 2",
        "COMMENT ON TABLE t IS 'x'",
        "SELECT $1, a$b FROM t",
    ];

    /// Found by the fuzz target: a script of whitespace the scanner skipped but the
    /// statement's trimming did not agree on came back as an empty statement.
    #[test]
    fn vertical_tabs_and_unicode_spaces_make_no_empty_statement() {
        assert!(split("\x0b", Dialect::Postgres).unwrap().is_empty());
        assert!(split("\x0b;\x0b\n", Dialect::Sqlite).unwrap().is_empty());
        let got = split("SELECT 1\x0b;\u{a0};", Dialect::Postgres).unwrap();
        let got: Vec<&str> = got.iter().map(|s| s.sql).collect();
        assert_eq!(got, ["SELECT 1", "\u{a0}"]);
    }

    proptest::proptest! {
        /// Statements of known shapes, joined with semicolons, comments and any line
        /// ending, come back exactly, at the lines they start on.
        #[test]
        fn known_statements_come_back_whole(
            picks in proptest::collection::vec(0..SHAPES.len(), 0..12),
            eol in proptest::sample::select(vec!["\n", "\r\n", "\r"]),
            comments in proptest::collection::vec(proptest::bool::ANY, 12),
        ) {
            let mut script = String::new();
            let mut expected = Vec::new();
            for (i, &pick) in picks.iter().enumerate() {
                if comments[i] {
                    script.push_str(&format!("-- note {i}; not a statement{eol}"));
                }
                let sql = SHAPES[pick].replace("{eol}", eol);
                let line = 1 + script.matches(eol).count();
                script.push_str(&sql);
                script.push(';');
                script.push_str(eol);
                expected.push((sql, line));
            }
            let got = split(&script, Dialect::Postgres).unwrap();
            let got: Vec<(String, usize)> = got.iter().map(|s| (s.sql.to_string(), s.line)).collect();
            proptest::prop_assert_eq!(got, expected);
        }

        /// Whatever the bytes, the splitter returns statements or an error naming a line;
        /// it never panics, and the statements are pieces of the script, in order.
        #[test]
        fn any_input_is_split_or_refused_without_panicking(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let text = String::from_utf8_lossy(&bytes);
            check_invariants(&text)?;
        }

        /// The same over text made of the characters that matter to the lexers.
        #[test]
        fn sql_like_text_is_split_or_refused_without_panicking(text in "[a-zA-Z0-9 ;'\"$\\\\\n\r*/\\-éE.()\\[\\]`]{0,300}") {
            check_invariants(&text)?;
        }
    }

    fn check_invariants(text: &str) -> Result<(), proptest::test_runner::TestCaseError> {
        for dialect in [Dialect::Postgres, Dialect::Sqlite] {
            match split(text, dialect) {
                Ok(statements) => {
                    let mut after = 0;
                    for s in statements {
                        proptest::prop_assert!(!s.sql.is_empty());
                        proptest::prop_assert_eq!(&text[s.start..s.end], s.sql);
                        proptest::prop_assert!(s.start >= after);
                        after = s.end;
                        proptest::prop_assert!(s.line >= 1 && s.column >= 1);
                    }
                }
                Err(e) => proptest::prop_assert!(e.line >= 1 && e.line <= text.len() + 1),
            }
        }
        Ok(())
    }
}
