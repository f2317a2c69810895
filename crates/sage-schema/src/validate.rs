//! Comparing a live schema with the expected one. Pure: every difference becomes one
//! finding, all of them are returned, and nothing is reported twice.

use serde::Serialize;

use crate::model::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing, never drift that fails a check (comments, what was not checked).
    Info,
    Warning,
    Error,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Drift {
    /// Expected but absent.
    Missing,
    /// Present but not expected.
    Extra,
    /// Present under the expected name, but different.
    Changed,
    /// Present as expected, but under another name.
    Renamed,
    /// Not compared: the expected schema does not record the kind, the model does not
    /// describe it, or the caller chose to ignore it.
    #[serde(rename = "not checked")]
    NotChecked,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub drift: Drift,
    /// `table`, `column`, `index`, `check`, `foreign key`, …
    pub kind: &'static str,
    /// The object's qualified name, e.g. `public.sessions.expires_at`.
    pub object: String,
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.object, self.message)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ValidateOptions {
    /// Treat extra objects as errors.
    pub strict: bool,
}

pub(crate) struct Findings {
    pub(crate) list: Vec<Finding>,
    strict: bool,
}

impl Findings {
    pub(crate) fn push(
        &mut self,
        severity: Severity,
        drift: Drift,
        kind: &'static str,
        object: String,
        message: String,
    ) {
        self.list.push(Finding { severity, drift, kind, object, message });
    }

    pub(crate) fn error(&mut self, drift: Drift, kind: &'static str, object: String, message: String) {
        self.list.push(Finding { severity: Severity::Error, drift, kind, object, message });
    }

    pub(crate) fn extra(&mut self, kind: &'static str, object: String) {
        let severity = if self.strict { Severity::Error } else { Severity::Warning };
        self.list.push(Finding {
            severity,
            drift: Drift::Extra,
            kind,
            object,
            message: "is not in the expected schema".into(),
        });
    }

    fn renamed(&mut self, kind: &'static str, object: String, actual: &str) {
        self.list.push(Finding {
            severity: Severity::Warning,
            drift: Drift::Renamed,
            kind,
            object,
            message: format!("exists with the expected definition under the name {actual:?}"),
        });
    }
}

pub(crate) fn name(schema: &str, name: &str) -> String {
    if schema.is_empty() {
        name.to_string()
    } else {
        format!("{schema}.{name}")
    }
}

/// Every difference between `expected` and `actual`.
pub fn validate(expected: &Schema, actual: &Schema, options: ValidateOptions) -> Vec<Finding> {
    let mut f = Findings { list: Vec::new(), strict: options.strict };
    by_key(&mut f, "schema", &expected.namespaces, &actual.namespaces, |n| n.clone(), |_, _, _| {});
    by_key(&mut f, "extension", &expected.extensions, &actual.extensions, |e| e.name.clone(), |_, _, _| {});
    by_key(
        &mut f,
        "enum type",
        &expected.enums,
        &actual.enums,
        |e| name(&e.schema, &e.name),
        |f, e, a| {
            if e.values != a.values {
                f.error(
                    Drift::Changed,
                    "enum type",
                    name(&e.schema, &e.name),
                    format!("values are {:?}, expected {:?}", a.values, e.values),
                );
            }
        },
    );
    by_key(
        &mut f,
        "sequence",
        &expected.sequences,
        &actual.sequences,
        |s| name(&s.schema, &s.name),
        |f, e, a| {
            let cache = |s: &Sequence| if e.cache.is_some() { s.cache } else { None };
            let options = |s: &Sequence| {
                format!(
                    "AS {} START {} INCREMENT {} MINVALUE {} MAXVALUE {}{}{}",
                    s.data_type,
                    s.start,
                    s.increment,
                    s.min,
                    s.max,
                    cache(s).map(|c| format!(" CACHE {c}")).unwrap_or_default(),
                    if s.cycle { " CYCLE" } else { " NO CYCLE" }
                )
            };
            if options(e) != options(a) {
                f.error(
                    Drift::Changed,
                    "sequence",
                    name(&e.schema, &e.name),
                    format!("is {}, expected {}", options(a), options(e)),
                );
            }
        },
    );
    by_key(
        &mut f,
        "function",
        &expected.functions,
        &actual.functions,
        |x| format!("{}({})", name(&x.schema, &x.name), x.arguments),
        |f, e, a| {
            crate::compare_objects::function_security(f, expected, e, a);
            let body = |x: &Function| crate::compare_objects::function_body(expected, &x.definition);
            if body(e) != body(a) {
                f.error(
                    Drift::Changed,
                    "function",
                    format!("{}({})", name(&e.schema, &e.name), e.arguments),
                    "its definition differs".into(),
                );
            }
        },
    );
    // A detached partition is a table of its own now; the partition finding says so.
    let detached: Vec<Table> = actual
        .tables
        .iter()
        .filter(|t| crate::compare_objects::is_expected_partition(expected, &t.schema, &t.name))
        .cloned()
        .collect();
    let tables: Vec<Table> = actual.tables.iter().filter(|t| !detached.contains(t)).cloned().collect();
    by_key(&mut f, "table", &expected.tables, &tables, |t| name(&t.schema, &t.name), compare_table);
    by_key(
        &mut f,
        "view",
        &expected.views,
        &actual.views,
        |v| name(&v.schema, &v.name),
        |f, e, a| {
            if e.definition != a.definition || e.materialized != a.materialized {
                f.error(Drift::Changed, "view", name(&e.schema, &e.name), "its definition differs".into());
            }
        },
    );
    by_key(
        &mut f,
        "trigger",
        &expected.triggers,
        &actual.triggers,
        |t| format!("{}.{}", name(&t.schema, &t.table), t.name),
        |f, e, a| {
            if e.definition != a.definition {
                f.error(
                    Drift::Changed,
                    "trigger",
                    format!("{}.{}", name(&e.schema, &e.table), e.name),
                    format!("is {:?}, expected {:?}", a.definition, e.definition),
                );
            }
        },
    );
    crate::compare_objects::compare(&mut f, expected, actual);
    f.list
}

/// The kinds of finding about structure: the tables, columns, keys, indexes, functions
/// and the like that code using the database depends on. The other kinds (owners, grants,
/// row-level security, comments, …) are about who may use it and how it is described.
pub const STRUCTURAL_KINDS: &[&str] = &[
    "schema",
    "extension",
    "enum type",
    "sequence",
    "function",
    "table",
    "column",
    "primary key",
    "unique constraint",
    "check",
    "index",
    "foreign key",
    "view",
    "trigger",
];

/// Every kind a finding can have (the kinds a caller may ask to ignore).
pub fn finding_kinds() -> Vec<&'static str> {
    let mut kinds = STRUCTURAL_KINDS.to_vec();
    kinds.extend(crate::objects::RECORDED_KINDS);
    kinds
}

/// `findings` without those of the `ignored` kinds, each of which is named once as not
/// checked instead. A kind that no finding can have is an error (a typo would otherwise
/// check nothing less and say so nowhere).
pub fn ignore_kinds(findings: Vec<Finding>, ignored: &[String]) -> Result<Vec<Finding>, crate::Error> {
    let known = finding_kinds();
    let mut kinds: Vec<&'static str> = Vec::new();
    for text in ignored {
        let wanted = text.trim().replace(['-', '_'], " ").to_lowercase();
        let wanted = if wanted == "rls" { "row level security".to_string() } else { wanted };
        match known.iter().find(|k| **k == wanted) {
            Some(k) => kinds.push(k),
            None => {
                return Err(crate::Error::UnknownFindingKind {
                    given: text.clone(),
                    known: known.iter().map(|k| k.to_string()).collect(),
                })
            }
        }
    }
    let mut kept: Vec<Finding> = findings.into_iter().filter(|f| !kinds.contains(&f.kind)).collect();
    for kind in kinds {
        kept.push(Finding {
            severity: Severity::Info,
            drift: Drift::NotChecked,
            kind: "not checked",
            object: kind.to_string(),
            message: "ignored on request".into(),
        });
    }
    Ok(kept)
}

/// Matches two lists by key, reporting missing and extra entries and comparing matches.
pub(crate) fn by_key<T>(
    f: &mut Findings,
    kind: &'static str,
    expected: &[T],
    actual: &[T],
    key: impl Fn(&T) -> String,
    mut compare: impl FnMut(&mut Findings, &T, &T),
) {
    // Keys are computed once per entry: schemas with thousands of objects stay linear.
    let actual_by_key: std::collections::HashMap<String, &T> = actual.iter().map(|a| (key(a), a)).collect();
    let expected_keys: std::collections::HashSet<String> = expected.iter().map(&key).collect();
    for e in expected {
        let k = key(e);
        match actual_by_key.get(&k) {
            Some(a) => compare(f, e, a),
            None => f.error(Drift::Missing, kind, k, "is missing".into()),
        }
    }
    for a in actual {
        let k = key(a);
        if !expected_keys.contains(&k) {
            f.extra(kind, k);
        }
    }
}

fn compare_table(f: &mut Findings, e: &Table, a: &Table) {
    let table = name(&e.schema, &e.name);
    for ec in &e.columns {
        let object = format!("{table}.{}", ec.name);
        let Some(ac) = a.column(&ec.name) else {
            f.error(Drift::Missing, "column", object, "is missing".into());
            continue;
        };
        let mut differences = Vec::new();
        if ec.data_type != ac.data_type {
            differences.push(format!("type is {}, expected {}", ac.data_type, ec.data_type));
        }
        if ec.collation != ac.collation {
            differences.push(format!(
                "collation is {}, expected {}",
                ac.collation.as_deref().unwrap_or("the type's default"),
                ec.collation.as_deref().unwrap_or("the type's default")
            ));
        }
        if ec.nullable != ac.nullable {
            differences.push(if ac.nullable {
                "allows NULL, expected NOT NULL".to_string()
            } else {
                "is NOT NULL, expected to allow NULL".to_string()
            });
        }
        if ec.default != ac.default {
            differences.push(format!(
                "default is {}, expected {}",
                ac.default.as_deref().unwrap_or("none"),
                ec.default.as_deref().unwrap_or("none")
            ));
        }
        if ec.identity != ac.identity || ec.generated != ac.generated {
            differences.push("identity or generation differs".to_string());
        }
        if !differences.is_empty() {
            f.error(Drift::Changed, "column", object, differences.join("; "));
        }
    }
    for ac in &a.columns {
        if e.column(&ac.name).is_none() {
            f.extra("column", format!("{table}.{}", ac.name));
        }
    }
    match (&e.primary_key, &a.primary_key) {
        (Some(ep), Some(ap)) if ep.columns != ap.columns => f.error(
            Drift::Changed,
            "primary key",
            table.clone(),
            format!("is ({}), expected ({})", ap.columns.join(", "), ep.columns.join(", ")),
        ),
        (Some(_), None) => f.error(Drift::Missing, "primary key", table.clone(), "is missing".into()),
        (None, Some(_)) => f.extra("primary key", table.clone()),
        _ => {}
    }
    named(f, "unique constraint", &table, &e.uniques, &a.uniques, |k| &k.name, |k| k.definition.clone());
    named(f, "check", &table, &e.checks, &a.checks, |c| &c.name, |c| canonical_expression(&c.definition));
    named(
        f,
        "index",
        &table,
        &e.indexes,
        &a.indexes,
        |i| &i.name,
        |i| format!("{}{}", if i.unique { "UNIQUE " } else { "" }, canonical_expression(&i.shape)),
    );
    for ek in &e.foreign_keys {
        let object = format!("{table}.{}", ek.name);
        match a.foreign_keys.iter().find(|k| k.name == ek.name) {
            Some(ak) => {
                let mut differences = Vec::new();
                if (ek.columns.clone(), ek.references.clone(), ek.referenced_columns.clone())
                    != (ak.columns.clone(), ak.references.clone(), ak.referenced_columns.clone())
                {
                    differences.push(format!(
                        "is ({}) → {}({}), expected ({}) → {}({})",
                        ak.columns.join(", "),
                        ak.references,
                        ak.referenced_columns.join(", "),
                        ek.columns.join(", "),
                        ek.references,
                        ek.referenced_columns.join(", ")
                    ));
                }
                if ek.on_delete != ak.on_delete {
                    differences.push(format!("ON DELETE is {}, expected {}", ak.on_delete, ek.on_delete));
                }
                if ek.on_update != ak.on_update {
                    differences.push(format!("ON UPDATE is {}, expected {}", ak.on_update, ek.on_update));
                }
                if ek.deferrable != ak.deferrable {
                    differences.push("deferrability differs".into());
                }
                // MATCH, ON DELETE SET NULL (columns), INITIALLY DEFERRED and NOT VALID
                // show only in the definition.
                if differences.is_empty()
                    && canonical_expression(&ek.definition) != canonical_expression(&ak.definition)
                {
                    differences.push(format!("is {}, expected {}", ak.definition, ek.definition));
                }
                if !differences.is_empty() {
                    f.error(Drift::Changed, "foreign key", object, differences.join("; "));
                }
            }
            None => match a
                .foreign_keys
                .iter()
                .find(|k| k.definition == ek.definition && !e.foreign_keys.iter().any(|x| x.name == k.name))
            {
                Some(other) => f.renamed("foreign key", object, &other.name),
                None => f.error(Drift::Missing, "foreign key", object, "is missing".into()),
            },
        }
    }
    for ak in &a.foreign_keys {
        let matched = e.foreign_keys.iter().any(|k| {
            k.name == ak.name || (k.definition == ak.definition && !a.foreign_keys.iter().any(|x| x.name == k.name))
        });
        if !matched {
            f.extra("foreign key", format!("{table}.{}", ak.name));
        }
    }
}

/// Named objects compared by a canonical form: a missing name whose form exists under
/// another (unexpected) name is a rename, not a missing plus an extra.
fn named<T>(
    f: &mut Findings,
    kind: &'static str,
    table: &str,
    expected: &[T],
    actual: &[T],
    name_of: impl Fn(&T) -> &String,
    form: impl Fn(&T) -> String,
) {
    let unexpected: Vec<&T> = actual.iter().filter(|a| !expected.iter().any(|e| name_of(e) == name_of(a))).collect();
    let mut claimed: Vec<&String> = Vec::new();
    for e in expected {
        let object = format!("{table}.{}", name_of(e));
        match actual.iter().find(|a| name_of(a) == name_of(e)) {
            Some(a) if form(a) != form(e) => {
                f.error(Drift::Changed, kind, object, format!("is {}, expected {}", form(a), form(e)))
            }
            Some(_) => {}
            None => match unexpected.iter().find(|a| form(a) == form(e) && !claimed.contains(&name_of(a))) {
                Some(a) => {
                    claimed.push(name_of(a));
                    f.renamed(kind, object, name_of(a));
                }
                None => f.error(Drift::Missing, kind, object, "is missing".into()),
            },
        }
    }
    for a in unexpected {
        if !claimed.contains(&name_of(a)) {
            f.extra(kind, format!("{table}.{}", name_of(a)));
        }
    }
}

/// PostgreSQL renders `col IN ('a', 'b')` on a varchar column as
/// `ARRAY['a'::character varying, 'b'::character varying]::text[]`, but after that text is
/// parsed again (pg_dump and restore, `schema sql`) as
/// `ARRAY['a'::character varying::text, 'b'::character varying::text]`. Both mean the same; the
/// second is the fixed point, so the first is rewritten into it before comparing.
pub fn canonical_expression(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("ARRAY[") {
        out.push_str(&rest[..start]);
        let body_start = start + "ARRAY[".len();
        let Some(close) = matching_bracket(&rest[body_start..]) else {
            out.push_str(&rest[start..]);
            return out;
        };
        let body = &rest[body_start..body_start + close];
        let after = &rest[body_start + close + 1..];
        let elements = split_top_level(body);
        let cast_to_text = after.starts_with("::text[]");
        if cast_to_text
            && !elements.is_empty()
            && elements.iter().all(|e| e.trim_end().ends_with("::character varying"))
        {
            let rewritten: Vec<String> = elements.iter().map(|e| format!("{}::text", e.trim())).collect();
            out.push_str(&format!("ARRAY[{}]", rewritten.join(", ")));
            rest = &after["::text[]".len()..];
        } else {
            out.push_str(&rest[start..body_start + close + 1]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

fn matching_bracket(text: &str) -> Option<usize> {
    let mut depth = 0usize;
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '[' if !quoted => depth += 1,
            ']' if !quoted && depth == 0 => return Some(i),
            ']' if !quoted => depth -= 1,
            _ => {}
        }
    }
    None
}

fn split_top_level(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    for (i, c) in text.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '(' | '[' if !quoted => depth += 1,
            ')' | ']' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if !text[start..].trim().is_empty() {
        parts.push(&text[start..]);
    }
    parts
}

/// True when no finding is an error.
pub fn is_clean(findings: &[Finding]) -> bool {
    findings.iter().all(|f| f.severity != Severity::Error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table {
            schema: "public".into(),
            name: "t".into(),
            columns: vec![Column {
                name: "a".into(),
                data_type: "character varying(50)".into(),
                nullable: false,
                collation: None,
                default: None,
                identity: None,
                generated: None,
            }],
            primary_key: None,
            uniques: vec![],
            foreign_keys: vec![],
            checks: vec![Check {
                name: "t_a_check".into(),
                definition: "CHECK (a::text = ANY (ARRAY['x'::text]))".into(),
            }],
            indexes: vec![Index {
                name: "i".into(),
                unique: false,
                shape: "USING btree (a)".into(),
                definition: String::new(),
            }],
            sql: None,
        }
    }

    fn schema(t: Table) -> Schema {
        Schema { tables: vec![t], ..Schema::empty(Dialect::Postgres) }
    }

    #[test]
    fn varchar_in_lists_compare_equal_in_both_renderings() {
        let fresh = "CHECK (role::text = ANY (ARRAY['owner'::character varying, 'writer'::character varying]::text[]))";
        let reparsed =
            "CHECK (role::text = ANY (ARRAY['owner'::character varying::text, 'writer'::character varying::text]))";
        assert_eq!(canonical_expression(fresh), reparsed);
        assert_eq!(canonical_expression(reparsed), reparsed);
        let widened = "CHECK (role::text = ANY (ARRAY['owner'::character varying, 'writer'::character varying, 'evil'::character varying]::text[]))";
        assert_ne!(canonical_expression(widened), reparsed, "an extra value is still drift");
        let text_column = "CHECK (role = ANY (ARRAY['a'::text, 'b'::text]))";
        assert_eq!(canonical_expression(text_column), text_column);
    }

    #[test]
    fn equal_schemas_have_no_findings() {
        assert!(validate(&schema(table()), &schema(table()), ValidateOptions::default()).is_empty());
    }

    #[test]
    fn each_drift_is_reported_once() {
        let mut t = table();
        t.columns[0].data_type = "character varying(100)".into();
        t.checks[0].definition = "CHECK (a::text = ANY (ARRAY['x'::text, 'y'::text]))".into();
        t.indexes.clear();
        let found = validate(&schema(table()), &schema(t), ValidateOptions::default());
        let kinds: Vec<(&str, Drift)> = found.iter().map(|f| (f.kind, f.drift)).collect();
        assert_eq!(kinds, [("column", Drift::Changed), ("check", Drift::Changed), ("index", Drift::Missing)]);
        assert!(found.iter().all(|f| f.severity == Severity::Error));
    }

    #[test]
    fn renamed_index_is_a_warning_and_extras_follow_strictness() {
        let mut t = table();
        t.indexes[0].name = "other".into();
        let found = validate(&schema(table()), &schema(t.clone()), ValidateOptions::default());
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].drift, found[0].severity), (Drift::Renamed, Severity::Warning));
        let mut extra = schema(t);
        extra.tables.push(Table { name: "zz".into(), ..table() });
        let lax = validate(&schema(table()), &extra, ValidateOptions::default());
        assert!(lax
            .iter()
            .any(|f| f.drift == Drift::Extra && f.severity == Severity::Warning && f.object == "public.zz"));
        let strict = validate(&schema(table()), &extra, ValidateOptions { strict: true });
        assert!(strict.iter().any(|f| f.drift == Drift::Extra && f.severity == Severity::Error));
    }
}
