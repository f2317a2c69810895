//! Driver errors in words an operator acts on. tokio-postgres prints a server error as
//! "db error" and keeps the server's message in `as_db_error()`; rustls prints enum names
//! such as `UnknownIssuer`; an I/O error prints its errno. These functions turn each into a
//! sentence that says what failed: which privilege on which object, which certificate check,
//! which path.

#[cfg(feature = "postgres")]
use rustls::CertificateError;
#[cfg(feature = "postgres")]
use tokio_postgres::error::SqlState;

/// A PostgreSQL error as one line: the server's message with its detail and hint, or for a
/// client-side failure the chain of causes. `statement`, when known, lets a missing
/// privilege be named (`SELECT`, `DELETE`, …) next to the object the server named.
#[cfg(feature = "postgres")]
pub fn describe_pg_error(e: &tokio_postgres::Error, statement: Option<&str>) -> String {
    let Some(db) = e.as_db_error() else {
        return tls_failure(e, None).unwrap_or_else(|| error_chain(e));
    };
    let mut text = db.message().to_string();
    if *db.code() == SqlState::INSUFFICIENT_PRIVILEGE {
        text = privilege_sentence(db.message(), statement);
    }
    if let Some(detail) = db.detail() {
        text.push_str(&format!(" ({detail})"));
    }
    if let Some(hint) = db.hint() {
        text.push_str(&format!("; hint: {hint}"));
    }
    text
}

/// "permission denied for table t" → "permission denied: the role lacks the SELECT privilege
/// on table t (SQLSTATE 42501)". The server names the object; the statement's shape says
/// which privileges it needed there.
#[cfg(feature = "postgres")]
fn privilege_sentence(message: &str, statement: Option<&str>) -> String {
    let object = message.strip_prefix("permission denied for ").map(str::to_string);
    let Some(object) = object else {
        return format!("{message} (insufficient privilege, SQLSTATE 42501)");
    };
    let kind = object.split_whitespace().next().unwrap_or("");
    let needed: Vec<&str> = match kind {
        "schema" if statement.and_then(leading_keyword).as_deref() == Some("CREATE") => vec!["CREATE"],
        "schema" => vec!["USAGE"],
        "database" if statement.and_then(leading_keyword).as_deref() == Some("CREATE") => vec!["CREATE"],
        "database" => vec!["CONNECT"],
        "function" | "procedure" => vec!["EXECUTE"],
        "sequence" => vec!["USAGE"],
        _ => statement.map(table_privileges).unwrap_or_default(),
    };
    match needed.as_slice() {
        [] => format!("permission denied: the role lacks a privilege this statement needs on {object} (SQLSTATE 42501)"),
        [one] => format!("permission denied: the role lacks the {one} privilege on {object} (SQLSTATE 42501)"),
        many => format!(
            "permission denied: the role lacks one of the {} privileges this statement needs on {object} (SQLSTATE 42501)",
            many.join(", ")
        ),
    }
}

/// The table privileges a statement needs, from its shape: its verb, plus SELECT when it
/// reads the table (a WHERE clause, RETURNING, a conflict target) and UPDATE for an upsert.
#[cfg(feature = "postgres")]
fn table_privileges(statement: &str) -> Vec<&'static str> {
    let upper = statement.to_ascii_uppercase();
    let words: Vec<&str> = upper.split(|c: char| !c.is_ascii_alphanumeric() && c != '_').collect();
    let has = |w: &str| words.contains(&w);
    let reads = has("WHERE") || has("RETURNING") || has("CONFLICT");
    match leading_keyword(statement).as_deref() {
        Some("SELECT") => vec!["SELECT"],
        Some("TRUNCATE") => vec!["TRUNCATE"],
        Some("INSERT") if has("CONFLICT") && has("UPDATE") => vec!["INSERT", "UPDATE", "SELECT"],
        Some("INSERT") if reads => vec!["INSERT", "SELECT"],
        Some("INSERT") => vec!["INSERT"],
        Some(verb @ ("UPDATE" | "DELETE")) => {
            let verb = if verb == "UPDATE" { "UPDATE" } else { "DELETE" };
            if reads {
                vec![verb, "SELECT"]
            } else {
                vec![verb]
            }
        }
        _ => Vec::new(),
    }
}

/// The statement's first keyword in upper case (`SELECT`, `DELETE`, …). A statement that
/// starts with `WITH` names no privilege, and the message then says so rather than guess.
#[cfg(feature = "postgres")]
fn leading_keyword(statement: &str) -> Option<String> {
    let word: String = statement.trim_start().chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    (!word.is_empty()).then(|| word.to_ascii_uppercase())
}

/// Which TLS check failed, in words, when `e` (or one of its causes) is a TLS failure.
/// `host` is the name the certificate was checked against, when known.
#[cfg(feature = "postgres")]
pub(crate) fn tls_failure(e: &(dyn std::error::Error + 'static), host: Option<&str>) -> Option<String> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        // rustls errors travel inside io::Error, whose source() skips the wrapped error.
        let rustls_error = err.downcast_ref::<rustls::Error>().or_else(|| {
            err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()).and_then(|inner| inner.downcast_ref())
        });
        if let Some(r) = rustls_error {
            return Some(rustls_words(r, host));
        }
        current = err.source();
    }
    None
}

#[cfg(feature = "postgres")]
fn rustls_words(e: &rustls::Error, host: Option<&str>) -> String {
    let host = host.map(|h| format!(" {h}")).unwrap_or_default();
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "TLS certificate check failed: the server's certificate is signed by an unknown issuer (not by a CA in sslrootcert or the system roots)".to_string()
            }
            CertificateError::NotValidForName => {
                format!("TLS certificate check failed: the server's certificate is not valid for host name{host}")
            }
            CertificateError::NotValidForNameContext { presented, .. } => format!(
                "TLS certificate check failed: the server's certificate is not valid for host name{host} (it names {})",
                presented.join(", ")
            ),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "TLS certificate check failed: the server's certificate has expired".to_string()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "TLS certificate check failed: the server's certificate is not valid yet (check the clocks)".to_string()
            }
            CertificateError::Revoked => "TLS certificate check failed: the server's certificate was revoked".to_string(),
            CertificateError::BadSignature => {
                "TLS certificate check failed: the server's certificate has a bad signature".to_string()
            }
            CertificateError::BadEncoding => {
                "TLS certificate check failed: the server's certificate cannot be decoded".to_string()
            }
            other => format!("TLS certificate check failed: the server's certificate was rejected ({other})"),
        },
        rustls::Error::AlertReceived(alert) => {
            format!("TLS handshake refused by the server (it sent the alert {alert:?})")
        }
        rustls::Error::NoCertificatesPresented => "TLS handshake failed: the server presented no certificate".to_string(),
        rustls::Error::PeerIncompatible(_) => {
            format!("TLS handshake refused: the server and this client share no usable protocol version or cipher ({e})")
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

/// Every message in the chain of causes, without repeats.
#[cfg(feature = "postgres")]
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut current = e.source();
    while let Some(inner) = current {
        parts.push(inner.to_string());
        current = inner.source();
    }
    parts.dedup();
    parts.join(": ")
}

/// An I/O error in words: a full disk says so and names the path being written.
pub fn describe_io_error(e: &std::io::Error, path: &std::path::Path) -> String {
    if is_disk_full(e) {
        format!("disk full while writing {}", path.display())
    } else {
        format!("{} ({})", e, path.display())
    }
}

/// ENOSPC (no space left on device) or EDQUOT (quota exceeded).
pub fn is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || matches!(e.raw_os_error(), Some(28) | Some(122))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_privilege_names_the_privilege_and_the_object() {
        for (message, statement, expected) in [
            (
                "permission denied for table sessions",
                Some("SELECT * FROM sessions"),
                "SELECT privilege on table sessions",
            ),
            ("permission denied for table t", Some("  delete from t"), "DELETE privilege on table t"),
            ("permission denied for table t", Some("DELETE FROM t WHERE id = $1"), "DELETE, SELECT privileges"),
            (
                "permission denied for table nonces",
                Some("INSERT INTO nonces VALUES ($1) ON CONFLICT (nonce) DO UPDATE SET x = 1"),
                "INSERT, UPDATE, SELECT privileges this statement needs on table nonces",
            ),
            ("permission denied for schema app", Some("SELECT 1 FROM app.t"), "USAGE privilege on schema app"),
            ("permission denied for schema app", Some("CREATE TABLE app.t ()"), "CREATE privilege on schema app"),
            ("permission denied for table t", None, "a privilege this statement needs on table t"),
        ] {
            let text = privilege_sentence(message, statement);
            assert!(text.contains(expected), "{message} / {statement:?}: {text}");
        }
    }
}
