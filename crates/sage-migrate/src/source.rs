//! Reading migrations from a directory or from files compiled into a binary.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::migration::{checksum, sqlx_checksum};
use crate::plan::{Finding, FindingKind};
use crate::split::{split, TransactionControl};
use crate::{Dialect, Error, Migration, Script};

/// The file layout of a migration directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// `{version}_{name}.up.sql` and `{version}_{name}.down.sql` (golang-migrate, and sqlx
    /// reversible migrations).
    UpDown,
    /// `{version}_{name}.sql`, apply only (sqlx simple migrations).
    Simple,
    /// `{version}_{name}.sql` with `-- migrate:up` and `-- migrate:down` sections (dbmate).
    Dbmate,
}

impl Format {
    pub fn name(self) -> &'static str {
        match self {
            Format::UpDown => "up/down files (golang-migrate, sqlx reversible)",
            Format::Simple => "single files (sqlx)",
            Format::Dbmate => "dbmate sections",
        }
    }
}

/// All migrations of one directory (or embedded set), sorted by version, plus the files
/// that looked like migrations but could not be read. Commands that change the database
/// refuse to run while `problems` is not empty; `validate` and `status` report them.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    pub dialect: Dialect,
    pub format: Format,
    pub migrations: Vec<Migration>,
    pub problems: Vec<Finding>,
    /// The directory the set was read from; `None` for an embedded set.
    pub dir: Option<PathBuf>,
}

/// A file of a migration set before parsing.
struct SourceFile {
    name: String,
    text: String,
}

impl MigrationSet {
    /// Reads every migration in `dir` (not its subdirectories).
    pub fn from_dir(dir: &Path, dialect: Dialect) -> Result<MigrationSet, Error> {
        let entries = std::fs::read_dir(dir).map_err(|source| Error::ReadSource {
            action: "read migration directory",
            path: dir.to_path_buf(),
            source,
        })?;
        let mut files = Vec::new();
        let mut unreadable = Vec::new();
        for entry in entries {
            let entry =
                entry.map_err(|source| Error::ReadSource { action: "list", path: dir.to_path_buf(), source })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !looks_like_migration(&name) {
                continue;
            }
            let file_type =
                entry.file_type().map_err(|source| Error::ReadSource { action: "read", path: entry.path(), source })?;
            if file_type.is_symlink() {
                // A symlink is followed; one that leads nowhere is a finding, never a skip,
                // or a missing migration would look like a complete set.
                match std::fs::metadata(entry.path()) {
                    Ok(target) if target.is_file() => {}
                    Ok(_) => continue,
                    Err(e) => {
                        unreadable.push(Finding::file(FindingKind::Unreadable, &name, broken_link(&entry.path(), &e)));
                        continue;
                    }
                }
            } else if !file_type.is_file() {
                continue;
            }
            let text = std::fs::read_to_string(entry.path()).map_err(|source| Error::ReadSource {
                action: "read",
                path: entry.path(),
                source,
            })?;
            files.push(SourceFile { name, text });
        }
        let mut set = MigrationSet::parse(files, dialect, |name| name.to_string());
        set.problems.extend(unreadable);
        set.dir = Some(dir.to_path_buf());
        Ok(set)
    }

    /// Builds a set from `(file name, contents)` pairs compiled into a binary.
    pub fn from_embedded(files: &[(&str, &str)], dialect: Dialect) -> MigrationSet {
        let files =
            files.iter().map(|(name, text)| SourceFile { name: name.to_string(), text: text.to_string() }).collect();
        MigrationSet::parse(files, dialect, |name| format!("{name} (embedded)"))
    }

    fn parse(mut files: Vec<SourceFile>, dialect: Dialect, origin: impl Fn(&str) -> String) -> MigrationSet {
        files.sort_by(|a, b| a.name.cmp(&b.name));
        let mut problems = Vec::new();
        let mut by_version: BTreeMap<i64, Parts> = BTreeMap::new();
        let mut formats: BTreeMap<&'static str, (usize, Format)> = BTreeMap::new();
        for file in &files {
            let parsed = match parse_name(&file.name) {
                Ok(p) => p,
                Err(reason) => {
                    problems.push(Finding::file(FindingKind::Unparsable, &file.name, reason));
                    continue;
                }
            };
            let entry = by_version.entry(parsed.version).or_default();
            let origin = origin(&file.name);
            let format = match parsed.kind {
                NameKind::Up | NameKind::Down => Format::UpDown,
                NameKind::Single if is_dbmate(&file.text) => Format::Dbmate,
                NameKind::Single => Format::Simple,
            };
            formats.entry(format.name()).or_insert((0, format)).0 += 1;
            let slot = match parsed.kind {
                NameKind::Down => &mut entry.down,
                _ => &mut entry.up,
            };
            if let Some(existing) = slot {
                problems.push(Finding::file(
                    FindingKind::DuplicateVersion,
                    &file.name,
                    format!("version {} is also used by {}", parsed.version, existing.0),
                ));
                entry.duplicate = true;
                continue;
            }
            if entry.name.as_deref().is_some_and(|n| n != parsed.name) {
                problems.push(Finding::file(
                    FindingKind::DuplicateVersion,
                    &file.name,
                    format!(
                        "version {} is also used with the name {:?}",
                        parsed.version,
                        entry.name.as_deref().unwrap_or("")
                    ),
                ));
                entry.duplicate = true;
                continue;
            }
            entry.name = Some(parsed.name.clone());
            if format == Format::Dbmate {
                match split_dbmate(&file.text) {
                    Ok((up, down)) => {
                        entry.up = Some((origin.clone(), up, file.text.clone()));
                        entry.down = down.map(|d| (origin.clone(), d, String::new()));
                    }
                    Err(reason) => problems.push(Finding::file(FindingKind::Unparsable, &file.name, reason)),
                }
            } else {
                *slot = Some((origin, ScriptText::plain(&file.text), file.text.clone()));
            }
        }
        let mut migrations = Vec::new();
        for (version, parts) in by_version {
            if parts.duplicate {
                continue;
            }
            let name = parts.name.unwrap_or_default();
            let Some((up_origin, up, raw_up)) = parts.up else {
                if let Some((down_origin, ..)) = parts.down {
                    problems.push(Finding::file(
                        FindingKind::Unparsable,
                        &down_origin,
                        "a down script without its up script".into(),
                    ));
                }
                continue;
            };
            let up = match make_script(up_origin, up, dialect) {
                Ok(s) => s,
                Err(f) => {
                    problems.push(f);
                    continue;
                }
            };
            let down = match parts.down.map(|(o, t, _)| make_script(o, t, dialect)).transpose() {
                Ok(d) => d,
                Err(f) => {
                    problems.push(f);
                    continue;
                }
            };
            migrations.push(Migration {
                version,
                checksum: checksum(&raw_up),
                sqlx_checksum: sqlx_checksum(&raw_up),
                name,
                up,
                down,
            });
        }
        let format = formats.values().max_by_key(|(count, _)| *count).map(|(_, f)| *f).unwrap_or(Format::UpDown);
        MigrationSet { dialect, format, migrations, problems, dir: None }
    }

    pub fn get(&self, version: i64) -> Option<&Migration> {
        self.migrations.binary_search_by_key(&version, |m| m.version).ok().map(|i| &self.migrations[i])
    }

    pub fn latest_version(&self) -> Option<i64> {
        self.migrations.last().map(|m| m.version)
    }

    /// Plans the files `create NAME` writes: the next version in the directory's own style
    /// (sequential with the same width, or a UTC timestamp) and format.
    pub fn new_migration(&self, name: &str, now: chrono::DateTime<chrono::Utc>) -> Result<NewMigration, Error> {
        let dir = self.dir.clone().ok_or(Error::NoSourceDirectory)?;
        let slug = slug(name);
        if slug.is_empty() {
            return Err(Error::BadMigrationName { name: name.to_string() });
        }
        let timestamp: i64 = now.format("%Y%m%d%H%M%S").to_string().parse().expect("timestamp digits");
        let next = |latest: i64| latest.checked_add(1).ok_or(Error::NoNextVersion { latest });
        let (version, width) = match self.latest_version() {
            Some(latest) if latest >= 1_000_000_000_000 => (timestamp.max(next(latest)?), 14),
            Some(latest) => (next(latest)?, self.version_width().max(1)),
            None => (1, 6),
        };
        // The name goes into a comment line of the new file: one line, printable.
        let name: String = name.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let name = name.as_str();
        let stem = format!("{version:0width$}_{slug}");
        let files = match self.format {
            Format::UpDown => vec![
                (dir.join(format!("{stem}.up.sql")), format!("-- {name}: apply\n")),
                (dir.join(format!("{stem}.down.sql")), format!("-- {name}: revert\n")),
            ],
            Format::Simple => vec![(dir.join(format!("{stem}.sql")), format!("-- {name}\n"))],
            Format::Dbmate => {
                vec![(dir.join(format!("{stem}.sql")), "-- migrate:up\n\n\n-- migrate:down\n\n".to_string())]
            }
        };
        Ok(NewMigration { version, files })
    }

    fn version_width(&self) -> usize {
        // The width of the newest file's zero-padded version, e.g. 6 for 000001_init.up.sql.
        self.migrations
            .last()
            .and_then(|m| {
                let file = m.up.origin.rsplit('/').next()?;
                Some(file.chars().take_while(char::is_ascii_digit).count())
            })
            .unwrap_or(6)
    }
}

/// The files `create` will write.
#[derive(Debug, Clone)]
pub struct NewMigration {
    pub version: i64,
    pub files: Vec<(PathBuf, String)>,
}

#[derive(Default)]
struct Parts {
    name: Option<String>,
    up: Option<(String, ScriptText, String)>,
    down: Option<(String, ScriptText, String)>,
    duplicate: bool,
}

/// A script's text and whether a marker asked for it to run outside a transaction.
#[derive(Debug, Clone)]
struct ScriptText {
    sql: String,
    no_transaction: bool,
    first_line: usize,
}

impl ScriptText {
    fn plain(text: &str) -> ScriptText {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let first = lines(text).map(|(_, l)| l.trim()).find(|l| !l.is_empty()).unwrap_or("");
        let no_transaction = first.starts_with("-- sage:no-transaction") || first.starts_with("-- no-transaction");
        ScriptText { sql: text.to_string(), no_transaction, first_line: 1 }
    }
}

fn make_script(origin: String, text: ScriptText, dialect: Dialect) -> Result<Script, Finding> {
    let offset = text.first_line - 1;
    let statements = split(&text.sql, dialect).map_err(|e| {
        Finding::file(
            FindingKind::Unparsable,
            &origin,
            format!("line {}, column {}: {}", e.line + offset, e.column, e.message),
        )
    })?;
    let controls: Vec<_> =
        statements.iter().filter_map(|s| Some((s.line + offset, s.transaction_control()?))).collect();
    let wrapped = statements.len() >= 2
        && statements.first().and_then(|s| s.transaction_control()) == Some(TransactionControl::Begin)
        && statements.last().and_then(|s| s.transaction_control()) == Some(TransactionControl::Commit)
        && controls.len() == 2;
    if text.no_transaction && !controls.is_empty() {
        let line = controls[0].0;
        return Err(Finding::file(
            FindingKind::Unparsable,
            &origin,
            format!("line {line}: transaction control in a no-transaction migration; each statement already runs on its own"),
        ));
    }
    if !text.no_transaction && !controls.is_empty() && !wrapped {
        let line = controls[0].0;
        return Err(Finding::file(
            FindingKind::Unparsable,
            &origin,
            format!("line {line}: BEGIN/COMMIT/ROLLBACK inside a migration that already runs in a transaction; remove it, or put `-- sage:no-transaction` on the first line"),
        ));
    }
    Ok(Script { origin, sql: text.sql, transactional: !text.no_transaction, first_line: text.first_line })
}

/// Files whose names start with a digit are meant to be migrations and must parse; other
/// files (READMEs, `schema.sql` snapshots) are not ours to judge.
/// Why a symlink named like a migration cannot be read, in words.
fn broken_link(path: &Path, e: &std::io::Error) -> String {
    // ELOOP, "too many levels of symbolic links": 40 on Linux, 62 on the BSDs and macOS.
    let eloop = if cfg!(target_os = "linux") { 40 } else { 62 };
    let looping = e.raw_os_error() == Some(eloop);
    let target = std::fs::read_link(path).map(|t| t.display().to_string()).unwrap_or_else(|_| "?".into());
    if looping {
        format!("symlink loop: {target} leads back to itself, so there is no migration to read")
    } else if e.kind() == std::io::ErrorKind::NotFound {
        format!("dangling symlink: its target {target} does not exist")
    } else {
        format!("symlink to {target} cannot be followed: {e}")
    }
}

fn looks_like_migration(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_digit())
        || (name.starts_with(['V', 'U']) && name.contains("__") && name.ends_with(".sql"))
}

#[derive(Debug, PartialEq, Eq)]
enum NameKind {
    Up,
    Down,
    Single,
}

#[derive(Debug)]
struct ParsedName {
    version: i64,
    name: String,
    kind: NameKind,
}

fn parse_name(file: &str) -> Result<ParsedName, String> {
    if file.starts_with(['V', 'U']) {
        return Err("Flyway/refinery-style names (V1__name.sql) are not supported; rename to 1_name.sql".into());
    }
    let (stem, kind) = if let Some(stem) = file.strip_suffix(".up.sql") {
        (stem, NameKind::Up)
    } else if let Some(stem) = file.strip_suffix(".down.sql") {
        (stem, NameKind::Down)
    } else if let Some(stem) = file.strip_suffix(".sql") {
        (stem, NameKind::Single)
    } else {
        return Err("expected VERSION_NAME.up.sql, VERSION_NAME.down.sql or VERSION_NAME.sql".into());
    };
    let Some((digits, name)) = stem.split_once('_') else {
        return Err("expected an underscore between the version and the name (e.g. 000001_init.up.sql)".into());
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("the version {digits:?} is not a number"));
    }
    let version: i64 = digits.parse().map_err(|_| format!("the version {digits} does not fit in a 64-bit integer"))?;
    if version <= 0 {
        return Err("the version must be greater than zero".into());
    }
    if name.is_empty() {
        return Err("the name after the version is empty".into());
    }
    Ok(ParsedName { version, name: name.to_string(), kind })
}

fn is_dbmate(text: &str) -> bool {
    lines(text).any(|(_, l)| l.trim_start().starts_with("-- migrate:up"))
}

/// The lines of a text with their line endings, ended by LF, CRLF or a lone CR (as the
/// splitter counts them), each with its 1-based number.
fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let end = match rest.find(['\n', '\r']) {
            Some(i) if rest[i..].starts_with("\r\n") => i + 2,
            Some(i) => i + 1,
            None => rest.len(),
        };
        let (line, after) = rest.split_at(end);
        rest = after;
        Some(line)
    })
    .enumerate()
    .map(|(i, line)| (i + 1, line))
}

/// Splits a dbmate file into its up and down sections.
fn split_dbmate(text: &str) -> Result<(ScriptText, Option<ScriptText>), String> {
    let mut up: Option<ScriptText> = None;
    let mut down: Option<ScriptText> = None;
    let mut current: Option<&mut ScriptText> = None;
    for (number, line) in lines(text.strip_prefix('\u{feff}').unwrap_or(text)) {
        let trimmed = line.trim();
        let section = |options: &str| ScriptText {
            sql: String::new(),
            no_transaction: no_tx_option(options),
            first_line: number + 1,
        };
        if let Some(options) = trimmed.strip_prefix("-- migrate:up") {
            if up.is_some() {
                return Err(format!("line {number}: a second -- migrate:up section is not supported"));
            }
            up = Some(section(options));
            current = up.as_mut();
            continue;
        }
        if let Some(options) = trimmed.strip_prefix("-- migrate:down") {
            if up.is_none() {
                return Err(format!("line {number}: -- migrate:down before -- migrate:up"));
            }
            if down.is_some() {
                return Err(format!("line {number}: a second -- migrate:down section is not supported"));
            }
            down = Some(section(options));
            current = down.as_mut();
            continue;
        }
        match current.as_deref_mut() {
            Some(script) => script.sql.push_str(line),
            None if trimmed.is_empty() || trimmed.starts_with("--") => {}
            None => return Err(format!("line {number}: statements before -- migrate:up")),
        }
    }
    let up = up.ok_or("no -- migrate:up section")?;
    let down = down.filter(|d| !d.sql.trim().is_empty());
    Ok((up, down))
}

fn no_tx_option(options: &str) -> bool {
    options.split_whitespace().any(|o| o == "transaction:false")
}

fn slug(name: &str) -> String {
    let mut out = String::new();
    for c in name.trim().chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(files: &[(&str, &str)]) -> MigrationSet {
        MigrationSet::from_embedded(files, Dialect::Postgres)
    }

    #[test]
    fn golang_migrate_pairs() {
        let s = set(&[
            ("000002_add_x.up.sql", "ALTER TABLE t ADD x int;"),
            ("000001_init.down.sql", "DROP TABLE t;"),
            ("000001_init.up.sql", "CREATE TABLE t (id int);"),
        ]);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.format, Format::UpDown);
        assert_eq!(s.migrations.iter().map(|m| m.version).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(s.migrations[0].name, "init");
        assert!(s.migrations[0].down.is_some());
        assert!(s.migrations[1].down.is_none());
    }

    #[test]
    fn sqlx_simple_and_no_transaction_marker() {
        let s = set(&[
            ("20240101120000_init.sql", "CREATE TABLE t (id int);"),
            ("20240102120000_index.sql", "-- no-transaction\nCREATE INDEX CONCURRENTLY i ON t(id);"),
            ("20240103120000_more.sql", "-- sage:no-transaction\nCREATE INDEX CONCURRENTLY j ON t(id);"),
        ]);
        assert_eq!(s.format, Format::Simple);
        assert!(s.migrations[0].up.transactional);
        assert!(!s.migrations[1].up.transactional);
        assert!(!s.migrations[2].up.transactional);
    }

    #[test]
    fn dbmate_sections() {
        let s = set(&[(
            "20240101120000_init.sql",
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY i ON t(id);\n\n-- migrate:down\nDROP INDEX i;\n",
        )]);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
        assert_eq!(s.format, Format::Dbmate);
        let m = &s.migrations[0];
        assert!(!m.up.transactional);
        assert!(m.up.sql.contains("CREATE INDEX"));
        assert!(!m.up.sql.contains("DROP INDEX"));
        assert!(m.down.as_ref().unwrap().sql.contains("DROP INDEX"));
    }

    #[test]
    fn every_bad_file_is_reported_at_once() {
        let s = set(&[
            ("1_ok.up.sql", "SELECT 1;"),
            ("2-dash.sql", "SELECT 1;"),
            ("3_dup.up.sql", "SELECT 1;"),
            ("3_other.up.sql", "SELECT 1;"),
            ("4_open.up.sql", "SELECT 'x;"),
            ("V5__flyway.sql", "SELECT 1;"),
            ("6_tx.up.sql", "CREATE TABLE a (id int); COMMIT; CREATE TABLE b (id int);"),
            ("7_orphan.down.sql", "SELECT 1;"),
            ("99999999999999999999_big.sql", "SELECT 1;"),
        ]);
        let files: Vec<&str> = s.problems.iter().map(|p| p.file.as_deref().unwrap()).collect();
        assert_eq!(s.migrations.iter().map(|m| m.version).collect::<Vec<_>>(), [1]);
        for expected in [
            "2-dash.sql",
            "3_other.up.sql",
            "4_open.up.sql",
            "V5__flyway.sql",
            "6_tx.up.sql",
            "7_orphan.down.sql",
            "99999999999999999999_big.sql",
        ] {
            assert!(files.iter().any(|f| f.starts_with(expected)), "{expected} missing from {files:?}");
        }
    }

    #[test]
    fn begin_commit_wrapper_is_accepted() {
        let s = set(&[("1_wrapped.up.sql", "BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;\n")]);
        assert!(s.problems.is_empty(), "{:?}", s.problems);
    }

    #[test]
    fn create_follows_the_directory_style() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z").unwrap().to_utc();
        let mut s = set(&[("000007_init.up.sql", "SELECT 1;")]);
        s.dir = Some("m".into());
        let new = s.new_migration("Add Session TTL!", now).unwrap();
        assert_eq!(new.files[0].0, PathBuf::from("m/000008_add_session_ttl.up.sql"));
        assert_eq!(new.files[1].0, PathBuf::from("m/000008_add_session_ttl.down.sql"));
        let mut s = set(&[("20240101120000_init.sql", "SELECT 1;")]);
        s.dir = Some("m".into());
        let new = s.new_migration("next", now).unwrap();
        assert_eq!(new.files[0].0, PathBuf::from("m/20261122100000_next.sql"));
    }

    #[test]
    fn create_after_the_largest_version_or_with_a_multi_line_name_is_safe() {
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-22T10:00:00Z").unwrap().to_utc();
        let mut s = set(&[("9223372036854775807_last.up.sql", "SELECT 1;")]);
        s.dir = Some("m".into());
        let err = s.new_migration("more", now).unwrap_err();
        assert!(err.to_string().contains("largest possible"), "{err}");
        let mut s = set(&[("1_init.up.sql", "SELECT 1;")]);
        s.dir = Some("m".into());
        let new = s.new_migration("x\nDROP TABLE users;", now).unwrap();
        assert_eq!(new.files[0].1.lines().count(), 1, "{:?}", new.files[0].1);
    }
}
