//! Validation of the kinds in [`crate::objects`], and what validation did not check.
//!
//! Severities: owners, grants, default privileges, row-level security, policies, SECURITY
//! DEFINER and function settings (`search_path`) decide who may read or change what, so
//! any drift in them, extra entries included, is an error. Comments are information.
//! Partitioning, inheritance, persistence, relation options and identity options are
//! errors when missing or changed, and extra entries follow `--strict` like other objects.
//!
//! A kind the expected schema did not record (a snapshot from before it existed) is not
//! compared; one informational finding says so. Findings about an object that is itself
//! missing or extra are left to that object's own finding, so each change is reported once.

use std::collections::HashSet;

use crate::model::*;
use crate::objects::*;
use crate::validate::{by_key, name, Drift, Findings, Severity};

/// Whether `schema.name` is a partition in `expected`.
pub(crate) fn is_expected_partition(expected: &Schema, schema: &str, name: &str) -> bool {
    expected.records("partition")
        && expected.relations.iter().any(|r| r.schema == schema && r.name == name && r.partition_of.is_some())
}

/// A function's definition without its `SECURITY DEFINER` and `SET` lines when `expected`
/// records those separately, so a change there is reported once, under its own kind.
pub(crate) fn function_body(expected: &Schema, definition: &str) -> String {
    if !(expected.records("security definer") && expected.records("function setting")) {
        return definition.to_string();
    }
    definition
        .lines()
        .filter(|l| !l.starts_with(" SET "))
        .map(|l| l.replace(" SECURITY DEFINER", ""))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn function_security(f: &mut Findings, expected: &Schema, e: &Function, a: &Function) {
    let object = format!("{}({})", name(&e.schema, &e.name), e.arguments);
    if expected.records("security definer") && e.security_definer != a.security_definer {
        let (is, was) =
            if a.security_definer { ("SECURITY DEFINER", "INVOKER") } else { ("SECURITY INVOKER", "DEFINER") };
        f.error(Drift::Changed, "security definer", object.clone(), format!("is {is}, expected SECURITY {was}"));
    }
    if expected.records("function setting") && e.settings != a.settings {
        let show = |s: &[String]| if s.is_empty() { "none".to_string() } else { s.join("; ") };
        f.error(
            Drift::Changed,
            "function setting",
            object,
            format!("SET is {}, expected {}", show(&a.settings), show(&e.settings)),
        );
    }
}

/// Names of the relations and columns of a schema, for "does the object still exist".
struct Objects {
    relations: HashSet<String>,
    columns: HashSet<String>,
    owned: HashSet<(String, String)>,
}

impl Objects {
    fn of(s: &Schema) -> Objects {
        let mut relations: HashSet<String> = s.tables.iter().map(|t| name(&t.schema, &t.name)).collect();
        relations.extend(s.views.iter().map(|v| name(&v.schema, &v.name)));
        relations.extend(s.relations.iter().map(|r| name(&r.schema, &r.name)));
        let columns = s
            .tables
            .iter()
            .flat_map(|t| t.columns.iter().map(move |c| format!("{}.{}.{}", t.schema, t.name, c.name)))
            .collect();
        let owned = s.owners.iter().map(|o| (o.kind.clone(), o.object.clone())).collect();
        Objects { relations, columns, owned }
    }

    fn has(&self, kind: &str, object: &str) -> bool {
        if kind == "column" {
            self.columns.contains(object)
        } else {
            self.owned.contains(&(kind.to_string(), object.to_string()))
        }
    }
}

pub(crate) fn compare(f: &mut Findings, e: &Schema, a: &Schema) {
    if e.dialect != Dialect::Postgres || a.dialect != Dialect::Postgres {
        return;
    }
    for kind in RECORDED_KINDS {
        if !e.records(kind) {
            f.push(
                Severity::Info,
                Drift::NotChecked,
                "not checked",
                kind.to_string(),
                "the expected schema does not record this kind (a snapshot written before it was modelled; dump it again)".into(),
            );
        }
    }
    for (kind, count) in &a.not_modelled {
        f.push(
            Severity::Info,
            Drift::NotChecked,
            "not checked",
            kind.clone(),
            format!("{count} in the database; the schema model does not describe this kind"),
        );
    }
    for (kind, expected, actual) in [("type", &e.types, &a.types), ("collation", &e.collations, &a.collations)] {
        if !e.records(kind) {
            continue;
        }
        by_key(
            f,
            kind,
            expected,
            actual,
            |t| name(&t.schema, &t.name),
            |f, x, y| {
                if x.definition != y.definition {
                    f.error(
                        Drift::Changed,
                        kind,
                        name(&x.schema, &x.name),
                        format!("is {}, expected {}", y.definition, x.definition),
                    );
                }
            },
        );
    }
    let (eo, ao) = (Objects::of(e), Objects::of(a));
    if e.records("owner") {
        owners(f, e, a);
    }
    if e.records("grant") {
        grants(f, e, a, &eo, &ao);
    }
    if e.records("default privilege") {
        by_key(
            f,
            "default privilege",
            &e.default_privileges,
            &a.default_privileges,
            |d| {
                let scope = if d.schema.is_empty() { String::new() } else { format!(" in schema {}", d.schema) };
                format!("{} on {}{scope} to {}", d.role, d.objects, d.grantee)
            },
            |f, x, y| {
                if x.privileges != y.privileges {
                    f.error(
                        Drift::Changed,
                        "default privilege",
                        format!("{} on {} to {}", x.role, x.objects, x.grantee),
                        format!("grants {}, expected {}", y.privileges.join(", "), x.privileges.join(", ")),
                    );
                }
            },
        );
        // An extra default privilege widens what every new object grants: an error.
        for x in f.list.iter_mut().filter(|x| x.kind == "default privilege") {
            x.severity = Severity::Error;
        }
    }
    if e.records("row level security") {
        row_security(f, e, a, &eo, &ao);
    }
    if e.records("policy") {
        policies(f, e, a, &eo, &ao);
    }
    if e.records("comment") {
        comments(f, e, a, &eo, &ao);
    }
    relations(f, e, a, &eo, &ao);
    if e.records("identity") {
        for x in &e.identities {
            let key = format!("{}.{}.{}", x.schema, x.table, x.column);
            let Some(y) =
                a.identities.iter().find(|y| (&y.schema, &y.table, &y.column) == (&x.schema, &x.table, &x.column))
            else {
                continue; // the column's own finding says its identity is gone
            };
            let options = |i: &Identity| {
                format!(
                    "START {} INCREMENT {} MINVALUE {} MAXVALUE {} CACHE {}{}",
                    i.start,
                    i.increment,
                    i.min,
                    i.max,
                    i.cache,
                    if i.cycle { " CYCLE" } else { " NO CYCLE" }
                )
            };
            if options(x) != options(y) {
                f.error(Drift::Changed, "identity", key, format!("is {}, expected {}", options(y), options(x)));
            }
        }
    }
}

fn owners(f: &mut Findings, e: &Schema, a: &Schema) {
    for x in &e.owners {
        // An object missing on either side has its own finding.
        if let Some(y) = a.owners.iter().find(|y| y.kind == x.kind && y.object == x.object) {
            if y.owner != x.owner {
                f.error(
                    Drift::Changed,
                    "owner",
                    format!("{} {}", x.kind, x.object),
                    format!("is owned by {}, expected {}", y.owner, x.owner),
                );
            }
        }
    }
}

fn grants(f: &mut Findings, e: &Schema, a: &Schema, eo: &Objects, ao: &Objects) {
    let key = |g: &Grant| -> (String, String, String) { (g.kind.clone(), g.object.clone(), g.grantee.clone()) };
    let index = |s: &'_ Schema| -> std::collections::HashMap<(String, String, String), usize> {
        s.grants.iter().enumerate().map(|(i, g)| (key(g), i)).collect()
    };
    let (ei, ai) = (index(e), index(a));
    for x in &e.grants {
        if !ao.has(&x.kind, &x.object) {
            continue;
        }
        let object = format!("{} {} to {}", x.kind, x.object, x.grantee);
        match ai.get(&key(x)).map(|i| &a.grants[*i]) {
            Some(y) if y.privileges != x.privileges => f.error(
                Drift::Changed,
                "grant",
                object,
                format!("holds {}, expected {}", y.privileges.join(", "), x.privileges.join(", ")),
            ),
            Some(_) => {}
            None => f.error(Drift::Missing, "grant", object, format!("{} is not granted", x.privileges.join(", "))),
        }
    }
    for y in &a.grants {
        if eo.has(&y.kind, &y.object) && !ei.contains_key(&key(y)) {
            f.error(
                Drift::Extra,
                "grant",
                format!("{} {} to {}", y.kind, y.object, y.grantee),
                format!("{} is granted but not expected", y.privileges.join(", ")),
            );
        }
    }
}

fn row_security(f: &mut Findings, e: &Schema, a: &Schema, eo: &Objects, ao: &Objects) {
    let mut tables: Vec<String> =
        e.row_security.iter().chain(&a.row_security).map(|r| name(&r.schema, &r.table)).collect();
    tables.sort();
    tables.dedup();
    let state = |s: &Schema, t: &str| {
        s.row_security
            .iter()
            .find(|r| name(&r.schema, &r.table) == t)
            .map(|r| (r.enabled, r.forced))
            .unwrap_or_default()
    };
    let words = |(enabled, forced): (bool, bool)| match (enabled, forced) {
        (false, false) => "disabled",
        (true, false) => "enabled",
        (true, true) => "enabled and forced",
        (false, true) => "disabled (forced, without effect)",
    };
    for t in tables {
        if !(eo.relations.contains(&t) && ao.relations.contains(&t)) {
            continue;
        }
        let (want, have) = (state(e, &t), state(a, &t));
        if want != have {
            f.error(Drift::Changed, "row level security", t, format!("is {}, expected {}", words(have), words(want)));
        }
    }
}

fn policies(f: &mut Findings, e: &Schema, a: &Schema, eo: &Objects, ao: &Objects) {
    let table = |p: &Policy| name(&p.schema, &p.table);
    for x in &e.policies {
        if !ao.relations.contains(&table(x)) {
            continue;
        }
        match a.policies.iter().find(|y| y.key() == x.key()) {
            None => f.error(Drift::Missing, "policy", x.key(), "is missing".into()),
            Some(y) => {
                let mut differences = Vec::new();
                if x.command != y.command {
                    differences.push(format!("applies to {}, expected {}", y.command, x.command));
                }
                if x.permissive != y.permissive {
                    let kind = |p: bool| if p { "PERMISSIVE" } else { "RESTRICTIVE" };
                    differences.push(format!("is {}, expected {}", kind(y.permissive), kind(x.permissive)));
                }
                if x.roles != y.roles {
                    differences.push(format!("is for {}, expected {}", y.roles.join(", "), x.roles.join(", ")));
                }
                let show = |s: &Option<String>| s.clone().unwrap_or_else(|| "none".into());
                if x.using != y.using {
                    differences.push(format!("USING is {}, expected {}", show(&y.using), show(&x.using)));
                }
                if x.with_check != y.with_check {
                    differences.push(format!(
                        "WITH CHECK is {}, expected {}",
                        show(&y.with_check),
                        show(&x.with_check)
                    ));
                }
                if !differences.is_empty() {
                    f.error(Drift::Changed, "policy", x.key(), differences.join("; "));
                }
            }
        }
    }
    for y in &a.policies {
        if eo.relations.contains(&table(y)) && !e.policies.iter().any(|x| x.key() == y.key()) {
            f.error(Drift::Extra, "policy", y.key(), "is not in the expected schema".into());
        }
    }
}

/// The relation or column a comment is on, when it is one, unquoted.
fn commented_relation(c: &Comment) -> Option<String> {
    let relation_kinds = ["table", "view", "materialized view", "table column", "view column", "index"];
    relation_kinds.contains(&c.kind.as_str()).then(|| c.object.replace('"', ""))
}

fn comments(f: &mut Findings, e: &Schema, a: &Schema, eo: &Objects, ao: &Objects) {
    let exists = |o: &Objects, c: &Comment| match commented_relation(c) {
        Some(object) if c.kind.ends_with("column") => o.columns.contains(&object) || o.relations.contains(&object),
        Some(object) if c.kind != "index" => o.relations.contains(&object),
        _ => true,
    };
    for x in &e.comments {
        let object = format!("{} {}", x.kind, x.object);
        match a.comments.iter().find(|y| y.kind == x.kind && y.object == x.object) {
            Some(y) if y.text != x.text => f.push(
                Severity::Info,
                Drift::Changed,
                "comment",
                object,
                format!("is {:?}, expected {:?}", y.text, x.text),
            ),
            Some(_) => {}
            None if exists(ao, x) => f.push(Severity::Info, Drift::Missing, "comment", object, "is missing".into()),
            None => {}
        }
    }
    for y in &a.comments {
        if exists(eo, y) && !e.comments.iter().any(|x| x.kind == y.kind && x.object == y.object) {
            f.push(
                Severity::Info,
                Drift::Extra,
                "comment",
                format!("{} {}", y.kind, y.object),
                "is not in the expected schema".into(),
            );
        }
    }
}

fn relations(f: &mut Findings, e: &Schema, a: &Schema, eo: &Objects, ao: &Objects) {
    let mut keys: Vec<String> = e.relations.iter().chain(&a.relations).map(|r| name(&r.schema, &r.name)).collect();
    keys.sort();
    keys.dedup();
    let get = |s: &Schema, key: &str| {
        s.relations.iter().find(|r| name(&r.schema, &r.name) == key).cloned().unwrap_or_default()
    };
    for key in keys {
        let (x, y) = (get(e, &key), get(a, &key));
        let partition =
            |r: &Relation| r.partition_of.as_ref().map(|p| format!("{p} {}", r.bound.clone().unwrap_or_default()));
        if e.records("partition") && partition(&x) != partition(&y) {
            match (partition(&x), partition(&y)) {
                (Some(want), None) if ao.relations.contains(&key) => f.error(
                    Drift::Missing,
                    "partition",
                    key.clone(),
                    format!("is detached: expected a partition of {want}"),
                ),
                (Some(want), None) => {
                    f.error(Drift::Missing, "partition", key.clone(), format!("is missing (a partition of {want})"))
                }
                (None, Some(have)) if eo.relations.contains(&key) => f.error(
                    Drift::Changed,
                    "partition",
                    key.clone(),
                    format!("is a partition of {have}, expected a table of its own"),
                ),
                (None, Some(_)) => f.extra("partition", key.clone()),
                (Some(want), Some(have)) => f.error(
                    Drift::Changed,
                    "partition",
                    key.clone(),
                    format!("is a partition of {have}, expected {want}"),
                ),
                (None, None) => {}
            }
        }
        // The rest concerns relations on both sides; a missing one has its own finding.
        if !(eo.relations.contains(&key) && ao.relations.contains(&key)) {
            continue;
        }
        if e.records("partition key") && x.partition_key != y.partition_key {
            let show = |k: &Option<String>| {
                k.as_ref().map(|k| format!("PARTITION BY {k}")).unwrap_or_else(|| "not partitioned".into())
            };
            f.error(
                Drift::Changed,
                "partition key",
                key.clone(),
                format!("is {}, expected {}", show(&y.partition_key), show(&x.partition_key)),
            );
        }
        if e.records("inheritance") && x.inherits != y.inherits {
            let show = |i: &[String]| if i.is_empty() { "nothing".to_string() } else { i.join(", ") };
            f.error(
                Drift::Changed,
                "inheritance",
                key.clone(),
                format!("inherits {}, expected {}", show(&y.inherits), show(&x.inherits)),
            );
        }
        if e.records("persistence") && x.unlogged != y.unlogged {
            let show = |u: bool| if u { "UNLOGGED" } else { "LOGGED" };
            f.error(
                Drift::Changed,
                "persistence",
                key.clone(),
                format!("is {}, expected {}", show(y.unlogged), show(x.unlogged)),
            );
        }
        if e.records("relation option") && x.options != y.options {
            let show = |o: &[String]| if o.is_empty() { "none".to_string() } else { o.join(", ") };
            f.error(
                Drift::Changed,
                "relation option",
                key.clone(),
                format!("options are {}, expected {}", show(&y.options), show(&x.options)),
            );
        }
    }
}
