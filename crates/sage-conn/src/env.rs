use std::collections::HashMap;
use std::path::Path;

use crate::Error;

/// The variables settings are read from: the process environment laid over a `.env` file.
/// A variable set in the process wins over the same name in the file, so an operator can
/// override one value without editing the file.
#[derive(Clone, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
}

/// Lists the variable names only: values include passwords and key material.
impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Environment").field("names", &names).finish_non_exhaustive()
    }
}

impl Environment {
    /// Reads `env_file` (which must exist) or, without one, `./.env` when present, then
    /// the process environment.
    pub fn from_process(env_file: Option<&Path>) -> Result<Environment, Error> {
        let mut vars = HashMap::new();
        match env_file {
            Some(path) => vars.extend(read_env_file(path)?),
            None => {
                let default = Path::new(".env");
                if default.is_file() {
                    vars.extend(read_env_file(default)?);
                }
            }
        }
        vars.extend(std::env::vars());
        Ok(Environment { vars })
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Environment {
        Environment { vars: pairs.into_iter().collect() }
    }

    /// The value of `name`, treating an empty value as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }
}

fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
        what: "env file",
        path: path.to_path_buf(),
        source,
    })?;
    parse_env_file(&text).map_err(|(line, reason)| Error::BadLine { file: path.to_path_buf(), line, reason })
}

/// Parses a `.env` file the way `dotenvy` (and docker compose) read one: `KEY=value` lines,
/// `#` comments, an optional `export ` prefix, single quotes taken literally, double quotes
/// with `\"`-style escapes, and `$VAR`/`${VAR}` expanded outside single quotes. A malformed
/// line is reported by number and reason only: the line itself may hold a password.
fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut out = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok(pair) => out.push(pair),
            Err(dotenvy::Error::LineParse(line, column)) => {
                return Err((line_number_of(text, &line), describe_parse_error(&line, column)));
            }
            Err(e) => return Err((0, e.to_string())),
        }
    }
    Ok(out)
}

/// The 1-based number of the line that starts `fragment` (the parser hands back the text of
/// the statement it could not read, which may span lines).
fn line_number_of(text: &str, fragment: &str) -> usize {
    let first = fragment.lines().next().unwrap_or("").trim();
    text.lines().position(|l| l.trim() == first || (!first.is_empty() && l.contains(first))).map_or(0, |i| i + 1)
}

/// Why a line could not be read, without repeating its value.
fn describe_parse_error(line: &str, column: usize) -> String {
    let key_end = line.find('=').unwrap_or(line.len());
    if column <= key_end || !line.contains('=') {
        let key = line[..key_end].trim().trim_start_matches("export ").trim();
        if line.contains('=') {
            format!("{key:?} is not a valid variable name")
        } else {
            "expected KEY=value".into()
        }
    } else if line.matches('"').count() % 2 == 1 || line.matches('\'').count() % 2 == 1 {
        "unterminated quote in the value".into()
    } else {
        format!("malformed value at column {}", column + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sage_env_example() {
        let text = "# Database Configuration\nDB_HOST=localhost\nexport DB_PORT=5432\nDB_PASSWORD='a b#c'\nDB_SSLMODE=disable  # use 'require' in production\n";
        let vars = parse_env_file(text).unwrap();
        assert_eq!(vars[0], ("DB_HOST".into(), "localhost".into()));
        assert_eq!(vars[1], ("DB_PORT".into(), "5432".into()));
        assert_eq!(vars[2], ("DB_PASSWORD".into(), "a b#c".into()));
        assert_eq!(vars[3], ("DB_SSLMODE".into(), "disable".into()));
    }

    #[test]
    fn malformed_line_is_reported_with_its_number() {
        let err = parse_env_file("A=1\nthis is wrong\n").unwrap_err();
        assert_eq!(err.0, 2);
        let err = parse_env_file("A=\"open\n").unwrap_err();
        assert_eq!(err.0, 1);
        assert!(err.1.contains("unterminated"));
    }

    #[test]
    fn quotes_escapes_and_expansion_follow_dotenv_rules() {
        let text = "A=\"say \\\"hi\\\"\"\nB='$HOME \\n literal'\nC=${A}-x\nD=\"line\\nbreak\"\n";
        let vars = parse_env_file(text).unwrap();
        assert_eq!(vars[0].1, "say \"hi\"");
        assert_eq!(vars[1].1, "$HOME \\n literal");
        assert_eq!(vars[2].1, "say \"hi\"-x");
        assert_eq!(vars[3].1, "line\nbreak");
    }

    #[test]
    fn a_malformed_value_is_named_by_line_without_its_text() {
        let (line, reason) = parse_env_file("OK=1\nDB_PASSWORD=\"hunter2-secret\n").unwrap_err();
        assert_eq!(line, 2);
        assert!(!reason.contains("hunter2"), "{reason}");
    }

    #[test]
    fn debug_shows_names_not_values() {
        let env = Environment::from_pairs([("DATABASE_URL".to_string(), "postgres://u:hunter2@h/db".to_string())]);
        let shown = format!("{env:?}");
        assert!(shown.contains("DATABASE_URL"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn file_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prod.env");
        std::fs::write(&path, "OK=1\n1BAD=2\n").unwrap();
        let err = read_env_file(&path).unwrap_err().to_string();
        assert!(err.contains("prod.env:2"), "{err}");
    }
}
