//! SQLite introspection through `sqlite_schema` and the `pragma_*` table functions.
//! SQLite keeps each object's definition as the text that created it; that text, with
//! whitespace and `IF NOT EXISTS` normalised, is what the model compares.

use std::collections::BTreeMap;

use rusqlite::Connection;

use super::BOOKKEEPING_TABLES;
use crate::model::*;
use crate::Error;

fn q(e: rusqlite::Error, what: &str) -> Error {
    Error::database(format!("cannot read {what}"), e)
}

pub fn introspect(conn: &Connection) -> Result<Schema, Error> {
    let mut schema = Schema::empty(Dialect::Sqlite);
    let mut objects = conn
        .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid")
        .map_err(|e| q(e, "sqlite_schema"))?;
    let rows: Vec<(String, String, String, String)> = objects
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .and_then(|rows| rows.collect())
        .map_err(|e| q(e, "sqlite_schema"))?;
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for (kind, name, table, sql) in &rows {
        if BOOKKEEPING_TABLES.contains(&table.as_str()) {
            continue;
        }
        let sql = normalise_sql(sql);
        match kind.as_str() {
            "table" => {
                tables.insert(name.clone(), read_table(conn, name, sql)?);
            }
            "view" => schema.views.push(View {
                schema: String::new(),
                name: name.clone(),
                materialized: false,
                definition: sql,
            }),
            "trigger" => schema.triggers.push(Trigger {
                schema: String::new(),
                table: table.clone(),
                name: name.clone(),
                definition: sql,
            }),
            _ => {}
        }
    }
    for (kind, name, table, sql) in &rows {
        if kind != "index" {
            continue;
        }
        let Some(t) = tables.get_mut(table) else { continue };
        let sql = normalise_sql(sql);
        let unique = sql.starts_with("CREATE UNIQUE INDEX");
        let shape = sql.split_once(" ON ").map(|(_, rest)| rest.to_string()).unwrap_or_else(|| sql.clone());
        t.indexes.push(Index { name: name.clone(), unique, shape, definition: sql });
    }
    schema.tables = tables.into_values().collect();
    schema.normalise();
    Ok(schema)
}

fn read_table(conn: &Connection, name: &str, sql: String) -> Result<Table, Error> {
    let mut stmt = conn
        .prepare("SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?1) ORDER BY cid")
        .map_err(|e| q(e, "columns"))?;
    let cols: Vec<(String, String, bool, Option<String>, i64, i64)> = stmt
        .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))
        .and_then(|rows| rows.collect())
        .map_err(|e| q(e, "columns"))?;
    let clauses = column_clauses(&sql);
    let mut pk: Vec<(i64, String)> = cols.iter().filter(|c| c.4 > 0).map(|c| (c.4, c.0.clone())).collect();
    pk.sort();
    let columns = cols
        .iter()
        .map(|(col, ty, notnull, default, pk, hidden)| {
            let clause = clauses.get(&col.to_lowercase());
            Column {
                name: col.clone(),
                data_type: ty.to_ascii_uppercase(),
                // A PRIMARY KEY column of a rowid table may hold NULL only for INTEGER keys; the
                // declared NOT NULL is what the table says.
                nullable: !*notnull && *pk == 0,
                collation: clause.and_then(|c| c.collation.clone()),
                default: default.clone(),
                identity: None,
                generated: (*hidden >= 2)
                    .then(|| clause.and_then(|c| c.generated.clone()).unwrap_or_else(|| "generated".to_string())),
            }
        })
        .collect();
    let primary_key = (!pk.is_empty()).then(|| {
        let columns: Vec<String> = pk.into_iter().map(|(_, c)| c).collect();
        Key { name: format!("{name}_pkey"), definition: format!("PRIMARY KEY ({})", columns.join(", ")), columns }
    });

    let mut stmt =
        conn.prepare("SELECT name, \"unique\", origin FROM pragma_index_list(?1)").map_err(|e| q(e, "indexes"))?;
    let indexes: Vec<(String, bool, String)> = stmt
        .query_map([name], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .and_then(|rows| rows.collect())
        .map_err(|e| q(e, "indexes"))?;
    let mut uniques = Vec::new();
    for (index, _, origin) in indexes.iter().filter(|i| i.2 == "u") {
        let mut info =
            conn.prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno").map_err(|e| q(e, "index columns"))?;
        let columns: Vec<String> =
            info.query_map([index], |r| r.get(0)).and_then(|rows| rows.collect()).map_err(|e| q(e, "index columns"))?;
        let _ = origin;
        uniques.push(Key {
            name: format!("{name}_{}_key", columns.join("_")),
            definition: format!("UNIQUE ({})", columns.join(", ")),
            columns,
        });
    }

    let mut stmt = conn
        .prepare("SELECT id, seq, \"table\", \"from\", \"to\", on_update, on_delete FROM pragma_foreign_key_list(?1) ORDER BY id, seq")
        .map_err(|e| q(e, "foreign keys"))?;
    let fk_rows: Vec<(i64, String, String, Option<String>, String, String)> = stmt
        .query_map([name], |r| Ok((r.get(0)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)))
        .and_then(|rows| rows.collect())
        .map_err(|e| q(e, "foreign keys"))?;
    let mut grouped: BTreeMap<i64, ForeignKey> = BTreeMap::new();
    for (id, target, from, to, on_update, on_delete) in fk_rows {
        let fk = grouped.entry(id).or_insert_with(|| ForeignKey {
            name: String::new(),
            columns: Vec::new(),
            references: target.clone(),
            referenced_columns: Vec::new(),
            on_delete: on_delete.clone(),
            on_update: on_update.clone(),
            deferrable: false,
            definition: String::new(),
        });
        fk.columns.push(from);
        fk.referenced_columns.push(to.unwrap_or_default());
    }
    let foreign_keys = grouped
        .into_values()
        .map(|mut fk| {
            fk.name = format!("{name}_{}_fkey", fk.columns.join("_"));
            fk.definition = format!(
                "FOREIGN KEY ({}) REFERENCES {}({}) ON DELETE {} ON UPDATE {}",
                fk.columns.join(", "),
                fk.references,
                fk.referenced_columns.join(", "),
                fk.on_delete,
                fk.on_update
            );
            fk
        })
        .collect();

    let checks = checks_of(name, &sql);
    Ok(Table {
        schema: String::new(),
        name: name.to_string(),
        columns,
        primary_key,
        uniques,
        foreign_keys,
        checks,
        indexes: Vec::new(),
        sql: Some(sql),
    })
}

/// The CHECK clauses of a `CREATE TABLE` statement, named by their `CONSTRAINT` name or, for
/// unnamed ones, by position (`<table>_check_<n>`).
pub(crate) fn checks_of(table: &str, sql: &str) -> Vec<Check> {
    let bytes = sql.as_bytes();
    let upper = sql.to_ascii_uppercase();
    let mut checks = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    let mut quote: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match b {
            b'\'' | b'"' | b'`' => quote = Some(b),
            b'(' => depth += 1,
            b')' => depth = depth.saturating_sub(1),
            _ if depth >= 1
                // Bytes, not `str`: `i` walks byte by byte and may sit inside a multi-byte
                // character of an unquoted identifier, where a `str` slice would panic.
                && upper.as_bytes()[i..].starts_with(b"CHECK")
                && !is_word(bytes.get(i.wrapping_sub(1)))
                && !is_word(bytes.get(i + 5)) =>
            {
                let open = i + upper[i..].find('(').unwrap_or(0);
                let close = matching_paren(bytes, open);
                let definition = format!("CHECK {}", &sql[open..=close.min(bytes.len() - 1)]);
                let before = sql[..i].trim_end();
                let name = before
                    .rsplit_once(char::is_whitespace)
                    .filter(|(head, _)| head.to_ascii_uppercase().ends_with("CONSTRAINT"))
                    .map(|(_, n)| n.trim_matches('"').to_string())
                    .unwrap_or_else(|| format!("{table}_check_{}", checks.len() + 1));
                checks.push(Check { name, definition });
                i = close + 1;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
    checks
}

/// What `pragma_table_xinfo` does not say about a column: its `COLLATE` and the expression
/// and storage of a generated column, read from the `CREATE TABLE` text.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct ColumnClause {
    pub collation: Option<String>,
    pub generated: Option<String>,
}

/// The column definitions of a `CREATE TABLE` statement by lower-cased column name. Table
/// constraints (`CONSTRAINT`, `PRIMARY KEY`, `UNIQUE`, `CHECK`, `FOREIGN KEY`) are skipped.
pub(crate) fn column_clauses(sql: &str) -> BTreeMap<String, ColumnClause> {
    let mut out = BTreeMap::new();
    let bytes = sql.as_bytes();
    let Some(open) = sql.find('(') else { return out };
    let close = matching_paren(bytes, open);
    for piece in split_top_level(&sql[open + 1..close.max(open + 1)]) {
        let words = tokens(piece);
        let Some(first) = words.first() else { continue };
        let upper = first.to_ascii_uppercase();
        if ["CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"].contains(&upper.as_str()) {
            continue;
        }
        let mut clause = ColumnClause::default();
        for (i, word) in words.iter().enumerate().skip(1) {
            let w = word.to_ascii_uppercase();
            if w == "COLLATE" {
                clause.collation = words.get(i + 1).map(|c| unquote(c).to_ascii_uppercase());
            } else if w == "AS" && words.get(i + 1).is_some_and(|e| e.starts_with('(')) {
                let storage = match words.get(i + 2).map(|s| s.to_ascii_uppercase()) {
                    Some(s) if s == "STORED" => "STORED",
                    _ => "VIRTUAL",
                };
                clause.generated = Some(format!("{} {storage}", words[i + 1]));
            }
        }
        out.insert(unquote(first).to_lowercase(), clause);
    }
    out
}

/// `text` split at commas outside parentheses and quotes.
fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quote, mut start) = (0usize, None::<u8>, 0);
    for (i, b) in text.bytes().enumerate() {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'\'' | b'"' | b'`' | b'[') => quote = Some(if b == b'[' { b']' } else { b }),
            (None, b'(') => depth += 1,
            (None, b')') => depth = depth.saturating_sub(1),
            (None, b',') if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// The words of a column definition; a quoted name or a parenthesised expression is one word.
fn tokens(text: &str) -> Vec<&str> {
    let bytes = text.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        if b == b'(' {
            i = matching_paren(bytes, i) + 1;
        } else if matches!(b, b'\'' | b'"' | b'`' | b'[') {
            let end = if b == b'[' { b']' } else { b };
            i += 1;
            while i < bytes.len() && bytes[i] != end {
                i += 1;
            }
            i += 1;
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'(' {
                i += 1;
            }
        }
        words.push(&text[start..i.min(bytes.len())]);
    }
    words
}

fn unquote(word: &str) -> &str {
    let w = word.trim();
    for (open, close) in [('"', '"'), ('`', '`'), ('[', ']'), ('\'', '\'')] {
        if let Some(inner) = w.strip_prefix(open).and_then(|r| r.strip_suffix(close)) {
            return inner;
        }
    }
    w
}

fn is_word(b: Option<&u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

fn matching_paren(bytes: &[u8], open: usize) -> usize {
    let mut depth = 0;
    let mut quote: Option<u8> = None;
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        if let Some(q) = quote {
            if b == q {
                quote = None;
            }
            continue;
        }
        match b {
            b'\'' | b'"' => quote = Some(b),
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    bytes.len() - 1
}

/// Collapses whitespace runs outside quotes to one space, drops `IF NOT EXISTS`, and
/// removes spaces just inside parentheses, so formatting is not drift.
pub fn normalise_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quote: Option<char> = None;
    let mut pending_space = false;
    let mut chars = sql.trim().chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(q) = quote {
            out.push(c);
            if c == q {
                quote = None;
            }
            continue;
        }
        if c == '-' && chars.peek() == Some(&'-') {
            for n in chars.by_ref() {
                if n == '\n' {
                    break;
                }
            }
            pending_space = true;
            continue;
        }
        if c.is_whitespace() {
            pending_space = true;
            continue;
        }
        if pending_space && !out.is_empty() && !out.ends_with('(') && c != ')' && c != ',' {
            out.push(' ');
        }
        pending_space = false;
        if matches!(c, '\'' | '"' | '`') {
            quote = Some(c);
        }
        out.push(c);
    }
    for phrase in [" IF NOT EXISTS", " if not exists"] {
        out = out.replacen(phrase, "", 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_is_not_drift() {
        let a = normalise_sql("CREATE TABLE IF NOT EXISTS t (\n  id INTEGER, -- the id\n  name TEXT\n)");
        let b = normalise_sql("CREATE TABLE t (id INTEGER,\n name   TEXT)");
        assert_eq!(a, b);
        assert_ne!(normalise_sql("CHECK (x IN ('a  b'))"), normalise_sql("CHECK (x IN ('a b'))"));
    }

    #[test]
    fn checks_are_found_with_their_names() {
        let sql = "CREATE TABLE t (a INTEGER CHECK (a > 0), b TEXT, CONSTRAINT b_len CHECK (length(b) < 10 AND (b <> 'x')), checked INTEGER)";
        let checks = checks_of("t", sql);
        assert_eq!(checks.len(), 2);
        assert_eq!((checks[0].name.as_str(), checks[0].definition.as_str()), ("t_check_1", "CHECK (a > 0)"));
        assert_eq!(
            (checks[1].name.as_str(), checks[1].definition.as_str()),
            ("b_len", "CHECK (length(b) < 10 AND (b <> 'x'))")
        );
    }

    #[test]
    fn collations_and_generated_expressions_are_read_from_the_definition() {
        let sql = "CREATE TABLE t (\"Mixed Name\" TEXT COLLATE nocase UNIQUE, n NUMERIC(12, 2) DEFAULT 0, \
                   g TEXT GENERATED ALWAYS AS (lower(\"Mixed Name\")) STORED, v AS (n * 2), [b] TEXT COLLATE \"RTRIM\", \
                   CONSTRAINT c CHECK (n > 0), UNIQUE (n, g))";
        let clauses = column_clauses(sql);
        assert_eq!(clauses.len(), 5, "{clauses:?}");
        assert_eq!(clauses["mixed name"].collation.as_deref(), Some("NOCASE"));
        assert_eq!(clauses["n"], ColumnClause::default());
        assert_eq!(clauses["g"].generated.as_deref(), Some("(lower(\"Mixed Name\")) STORED"));
        assert_eq!(clauses["v"].generated.as_deref(), Some("(n * 2) VIRTUAL"));
        assert_eq!(clauses["b"].collation.as_deref(), Some("RTRIM"));
    }

    /// SQLite accepts unquoted non-ASCII identifiers; scanning one used to panic.
    #[test]
    fn checks_are_found_beside_multi_byte_identifiers() {
        let checks = checks_of("t", "CREATE TABLE t (café INTEGER CHECK (café > 0), naïve TEXT)");
        assert_eq!(checks.len(), 1);
        assert_eq!(checks[0].definition, "CHECK (café > 0)");
    }
}
