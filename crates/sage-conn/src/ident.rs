/// Quotes an SQL identifier (table, schema, role or database name) for PostgreSQL and
/// SQLite alike: wrapped in double quotes, with inner double quotes doubled. Every
/// identifier SAGE DB puts into SQL text goes through here; values are always bound.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(quote_ident("sessions"), "\"sessions\"");
        assert_eq!(quote_ident("we\"ird; DROP"), "\"we\"\"ird; DROP\"");
    }
}
