use std::collections::HashMap;
use std::path::Path;

use crate::Error;

/// The variables settings are read from: the process environment laid over a `.env` file.
/// A variable set in the process wins over the same name in the file, so an operator can
/// override one value without editing the file.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    vars: HashMap<String, String>,
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
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::with_source(
            crate::ErrorKind::InvalidSettings,
            format!("cannot read env file {}: {e}", path.display()),
            e,
        )
    })?;
    parse_env_file(&text).map_err(|(line, reason)| Error::invalid(format!("{}:{line}: {reason}", path.display())))
}

/// Parses `KEY=value` lines. Blank lines and `#` comments are skipped, an `export ` prefix
/// is allowed, and values may be wrapped in single or double quotes.
fn parse_env_file(text: &str) -> Result<Vec<(String, String)>, (usize, String)> {
    let mut out = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((key, value)) = line.split_once('=') else {
            return Err((line_no, "expected KEY=value".into()));
        };
        let key = key.trim();
        let valid_key = !key.is_empty()
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !key.starts_with(|c: char| c.is_ascii_digit());
        if !valid_key {
            return Err((line_no, format!("{key:?} is not a valid variable name")));
        }
        out.push((key.to_string(), unquote(value.trim()).map_err(|r| (line_no, r))?));
    }
    Ok(out)
}

fn unquote(value: &str) -> Result<String, String> {
    for quote in ['"', '\''] {
        if let Some(rest) = value.strip_prefix(quote) {
            let Some(end) = rest.find(quote) else {
                return Err(format!("unterminated {quote} quote"));
            };
            return Ok(rest[..end].to_string());
        }
    }
    // An unquoted value ends at a ` #` comment.
    let value = match value.find(" #") {
        Some(i) => value[..i].trim_end(),
        None => value,
    };
    Ok(value.to_string())
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
    fn file_errors_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("prod.env");
        std::fs::write(&path, "OK=1\n1BAD=2\n").unwrap();
        let err = read_env_file(&path).unwrap_err().to_string();
        assert!(err.contains("prod.env:2"), "{err}");
    }
}
