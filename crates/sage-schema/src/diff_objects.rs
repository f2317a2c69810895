//! The DDL between two PostgreSQL schemas for the kinds in [`crate::objects`] and the
//! types and collations. What has no in-place DDL (a changed partition key, domain, range
//! or composite type, or collation) is listed as a change whose SQL is a comment saying
//! so, and stays drift until it is done by hand.

use sage_conn::quote_ident;

use crate::diff::Change;
use crate::model::*;
use crate::objects::*;
use crate::render::{literal, qualified};
use crate::render_objects as ro;

fn change(description: impl Into<String>, sql: impl Into<String>) -> Change {
    Change { description: description.into(), sql: sql.into(), destructive: false }
}

fn by_hand(description: String) -> Change {
    Change { sql: format!("-- not generated: {description}; change it by hand"), description, destructive: false }
}

/// Changes that belong after tables, views and functions exist (`after`) and the drops of
/// types and collations that nothing uses any more (`last`).
pub(crate) fn diff(from: &Schema, to: &Schema) -> (Vec<Change>, Vec<Change>) {
    let mut out = Vec::new();
    let mut last = Vec::new();
    types(from, to, &mut out, &mut last);
    relations(from, to, &mut out);
    identities(from, to, &mut out);
    row_security(from, to, &mut out);
    policies(from, to, &mut out);
    owners(from, to, &mut out);
    grants(from, to, &mut out);
    default_privileges(from, to, &mut out);
    comments(from, to, &mut out);
    (out, last)
}

/// Types and collations are created before the tables that use them: see `creates`.
fn types(from: &Schema, to: &Schema, out: &mut Vec<Change>, last: &mut Vec<Change>) {
    for (list_from, list_to, word) in
        [(&from.types, &to.types, "TYPE"), (&from.collations, &to.collations, "COLLATION")]
    {
        for t in list_to {
            if let Some(old) = list_from.iter().find(|o| o.schema == t.schema && o.name == t.name) {
                if old.definition != t.definition {
                    out.push(by_hand(format!("{} {}.{} changed to: {}", t.kind, t.schema, t.name, t.definition)));
                }
            }
        }
        for old in list_from {
            if !list_to.iter().any(|t| t.schema == old.schema && t.name == old.name) {
                let word = if old.kind == "domain" { "DOMAIN" } else { word };
                last.push(Change {
                    description: format!("drop {} {}.{}", old.kind, old.schema, old.name),
                    sql: format!("DROP {word} {};", qualified(&old.schema, &old.name)),
                    destructive: true,
                });
            }
        }
    }
}

/// New types and collations, created before the tables and functions that use them.
pub(crate) fn creates(from: &Schema, to: &Schema) -> Vec<Change> {
    let mut out = Vec::new();
    for c in &to.collations {
        if !from.collations.iter().any(|o| o.schema == c.schema && o.name == c.name) {
            out.push(change(
                format!("create collation {}.{}", c.schema, c.name),
                crate::render::statement(&c.definition),
            ));
        }
    }
    for key in &to.order {
        let Some(name) = key.strip_prefix("type:") else { continue };
        if let Some(t) = to.types.iter().find(|t| format!("{}.{}", t.schema, t.name) == name) {
            if !from.types.iter().any(|o| o.schema == t.schema && o.name == t.name) {
                out.push(change(format!("create {} {name}", t.kind), crate::render::statement(&t.definition)));
            }
        }
    }
    out
}

fn relations(from: &Schema, to: &Schema, out: &mut Vec<Change>) {
    let get = |s: &Schema, schema: &str, name: &str| {
        s.relations.iter().find(|r| r.schema == schema && r.name == name).cloned().unwrap_or_else(|| Relation {
            schema: schema.into(),
            name: name.into(),
            ..Relation::default()
        })
    };
    let exists = |s: &Schema, schema: &str, name: &str| {
        s.table(schema, name).is_some() || s.views.iter().any(|v| v.schema == schema && v.name == name)
    };
    let mut keys: Vec<(String, String)> =
        from.relations.iter().chain(&to.relations).map(|r| (r.schema.clone(), r.name.clone())).collect();
    keys.sort();
    keys.dedup();
    for (schema, name) in keys {
        let (old, new) = (get(from, &schema, &name), get(to, &schema, &name));
        let target = qualified(&schema, &name);
        // A partition is not a table of the model; a detached one is.
        let in_from = exists(from, &schema, &name) || old.partition_of.is_some();
        let in_to = exists(to, &schema, &name) || new.partition_of.is_some();
        if (&old.partition_of, &old.bound) != (&new.partition_of, &new.bound) {
            if let Some(parent) = &old.partition_of {
                if in_to {
                    out.push(change(
                        format!("detach partition {schema}.{name} from {parent}"),
                        format!("ALTER TABLE {parent} DETACH PARTITION {target};"),
                    ));
                } else {
                    out.push(Change {
                        description: format!("drop partition {schema}.{name}"),
                        sql: format!("DROP TABLE {target};"),
                        destructive: true,
                    });
                }
            }
            if let Some(parent) = &new.partition_of {
                let bound = new.bound.clone().unwrap_or_else(|| "DEFAULT".into());
                if in_from {
                    out.push(change(
                        format!("attach {schema}.{name} to {parent} {bound}"),
                        format!("ALTER TABLE {parent} ATTACH PARTITION {target} {bound};"),
                    ));
                } else {
                    let with_parent = Schema { relations: vec![new.clone()], ..to.clone() };
                    let mut sql = ro::partitions(&with_parent);
                    sql.retain(|s| s.contains(&format!("TABLE {target} PARTITION OF")));
                    out.push(change(format!("create partition {schema}.{name}"), sql.join("\n")));
                }
            }
        }
        // A new view gets its options here (a new table has them in its CREATE TABLE).
        let view = to.views.iter().find(|v| v.schema == schema && v.name == name);
        if let (Some(v), false, false) = (view, exists(from, &schema, &name), new.options.is_empty()) {
            let kind = if v.materialized { "MATERIALIZED VIEW" } else { "VIEW" };
            out.push(change(
                format!("options of {schema}.{name}"),
                format!("ALTER {kind} {target} SET ({});", new.options.join(", ")),
            ));
        }
        if !(exists(from, &schema, &name) && exists(to, &schema, &name)) {
            continue;
        }
        if old.partition_key != new.partition_key {
            out.push(by_hand(format!(
                "partition key of {schema}.{name} ({} instead of {}) cannot change in place",
                new.partition_key.as_deref().unwrap_or("none"),
                old.partition_key.as_deref().unwrap_or("none")
            )));
        }
        for parent in old.inherits.iter().filter(|p| !new.inherits.contains(p)) {
            out.push(change(
                format!("{schema}.{name} no longer inherits {parent}"),
                format!("ALTER TABLE {target} NO INHERIT {parent};"),
            ));
        }
        for parent in new.inherits.iter().filter(|p| !old.inherits.contains(p)) {
            out.push(change(
                format!("{schema}.{name} inherits {parent}"),
                format!("ALTER TABLE {target} INHERIT {parent};"),
            ));
        }
        if old.unlogged != new.unlogged {
            let word = if new.unlogged { "UNLOGGED" } else { "LOGGED" };
            out.push(change(
                format!("set {schema}.{name} {word} (rewrites the table)"),
                format!("ALTER TABLE {target} SET {word};"),
            ));
        }
        if old.options != new.options {
            let kind = match to.views.iter().find(|v| v.schema == schema && v.name == name) {
                Some(v) if v.materialized => "MATERIALIZED VIEW",
                Some(_) => "VIEW",
                None => "TABLE",
            };
            let key = |o: &String| o.split('=').next().unwrap_or_default().to_string();
            let removed: Vec<String> =
                old.options.iter().filter(|o| !new.options.iter().any(|n| key(n) == key(o))).map(key).collect();
            let mut sql = Vec::new();
            if !removed.is_empty() {
                sql.push(format!("ALTER {kind} {target} RESET ({});", removed.join(", ")));
            }
            if !new.options.is_empty() {
                sql.push(format!("ALTER {kind} {target} SET ({});", new.options.join(", ")));
            }
            out.push(change(format!("options of {schema}.{name}"), sql.join("\n")));
        }
    }
}

fn identities(from: &Schema, to: &Schema, out: &mut Vec<Change>) {
    for i in &to.identities {
        let Some(old) =
            from.identities.iter().find(|o| (&o.schema, &o.table, &o.column) == (&i.schema, &i.table, &i.column))
        else {
            continue;
        };
        if (old.start, old.increment, old.min, old.max, old.cache, old.cycle)
            != (i.start, i.increment, i.min, i.max, i.cache, i.cycle)
        {
            out.push(change(
                format!("identity options of {}.{}.{}", i.schema, i.table, i.column),
                format!(
                    "ALTER TABLE {} ALTER COLUMN {} SET START WITH {} SET INCREMENT BY {} SET MINVALUE {} SET MAXVALUE {} SET CACHE {} SET {};",
                    qualified(&i.schema, &i.table),
                    quote_ident(&i.column),
                    i.start,
                    i.increment,
                    i.min,
                    i.max,
                    i.cache,
                    if i.cycle { "CYCLE" } else { "NO CYCLE" }
                ),
            ));
        }
    }
}

fn row_security(from: &Schema, to: &Schema, out: &mut Vec<Change>) {
    let state = |s: &Schema, schema: &str, table: &str| {
        s.row_security
            .iter()
            .find(|r| r.schema == schema && r.table == table)
            .map(|r| (r.enabled, r.forced))
            .unwrap_or_default()
    };
    for t in &to.tables {
        if from.table(&t.schema, &t.name).is_none()
            && !to.row_security.iter().any(|r| r.schema == t.schema && r.table == t.name)
        {
            continue;
        }
        let (old, new) = (state(from, &t.schema, &t.name), state(to, &t.schema, &t.name));
        let table = qualified(&t.schema, &t.name);
        if old.0 != new.0 {
            let word = if new.0 { "ENABLE" } else { "DISABLE" };
            out.push(change(
                format!("{} row level security on {}.{}", word.to_lowercase(), t.schema, t.name),
                format!("ALTER TABLE {table} {word} ROW LEVEL SECURITY;"),
            ));
        }
        if old.1 != new.1 {
            let word = if new.1 { "FORCE" } else { "NO FORCE" };
            out.push(change(
                format!("{} row level security on {}.{}", word.to_lowercase(), t.schema, t.name),
                format!("ALTER TABLE {table} {word} ROW LEVEL SECURITY;"),
            ));
        }
    }
}

fn policies(from: &Schema, to: &Schema, out: &mut Vec<Change>) {
    for p in &from.policies {
        let kept = to.policies.iter().any(|n| n == p);
        if !kept && to.table(&p.schema, &p.table).is_some() {
            out.push(change(
                format!("drop policy {}", p.key()),
                format!("DROP POLICY {} ON {};", quote_ident(&p.name), qualified(&p.schema, &p.table)),
            ));
        }
    }
    for p in &to.policies {
        if !from.policies.iter().any(|o| o == p) {
            out.push(change(format!("create policy {}", p.key()), ro::create_policy(p)));
        }
    }
}

fn owners(from: &Schema, to: &Schema, out: &mut Vec<Change>) {
    for o in &to.owners {
        let old = from.owners.iter().find(|x| x.kind == o.kind && x.object == o.object);
        if old.is_some_and(|x| x.owner == o.owner) || (old.is_none() && o.owner == "(database owner)") {
            continue;
        }
        let sql = match ro::alter_owner(o) {
            Some(sql) => sql,
            None => format!("ALTER {} {} OWNER TO CURRENT_USER;", owner_keyword(&o.kind), o.target),
        };
        out.push(change(format!("owner of {} {} is {}", o.kind, o.object, o.owner), sql));
    }
}

fn owner_keyword(kind: &str) -> &'static str {
    match kind {
        "view" => "VIEW",
        "materialized view" => "MATERIALIZED VIEW",
        "sequence" => "SEQUENCE",
        "function" => "FUNCTION",
        "procedure" => "PROCEDURE",
        "aggregate" => "AGGREGATE",
        "type" => "TYPE",
        "schema" => "SCHEMA",
        _ => "TABLE",
    }
}

fn on(g: &Grant) -> String {
    let kind = match g.kind.as_str() {
        "sequence" => "SEQUENCE",
        "function" | "aggregate" => "FUNCTION",
        "procedure" => "PROCEDURE",
        "type" => "TYPE",
        "schema" => "SCHEMA",
        _ => "TABLE",
    };
    format!("{kind} {}", g.target)
}

fn grants(from: &Schema, to: &Schema, out: &mut Vec<Change>) {
    let key = |g: &Grant| (g.kind.clone(), g.object.clone(), g.grantee.clone());
    let object_exists =
        |s: &Schema, g: &Grant| g.kind == "column" || s.owners.iter().any(|o| o.kind == g.kind && o.object == g.object);
    for g in &to.grants {
        if g.grantee == "(owner)" || g.target.is_empty() {
            continue;
        }
        let old = from.grants.iter().find(|x| key(x) == key(g));
        // A new object comes with its default grants (PUBLIC may execute a function).
        let default_public = g.grantee == "PUBLIC"
            && !object_exists(from, g)
            && matches!(g.kind.as_str(), "function" | "procedure" | "aggregate" | "type");
        if old.is_some_and(|x| x.privileges == g.privileges) || default_public {
            continue;
        }
        let column = g.column.as_ref().map(|c| format!(" ({c})")).unwrap_or_default();
        let mut sql = Vec::new();
        if old.is_some() {
            sql.push(format!("REVOKE ALL{column} ON {} FROM {};", on(g), ro::role_sql(&g.grantee)));
        }
        let plain: Vec<String> =
            g.privileges.iter().filter(|p| !p.ends_with('*')).map(|p| format!("{p}{column}")).collect();
        let granting: Vec<String> =
            g.privileges.iter().filter_map(|p| p.strip_suffix('*')).map(|p| format!("{p}{column}")).collect();
        if !plain.is_empty() {
            sql.push(format!("GRANT {} ON {} TO {};", plain.join(", "), on(g), ro::role_sql(&g.grantee)));
        }
        if !granting.is_empty() {
            sql.push(format!(
                "GRANT {} ON {} TO {} WITH GRANT OPTION;",
                granting.join(", "),
                on(g),
                ro::role_sql(&g.grantee)
            ));
        }
        out.push(change(
            format!("grant {} on {} {} to {}", g.privileges.join(", "), g.kind, g.object, g.grantee),
            sql.join("\n"),
        ));
    }
    // A new function or type grants EXECUTE or USAGE to PUBLIC unless that is revoked.
    for o in &to.owners {
        let public_by_default = matches!(o.kind.as_str(), "function" | "procedure" | "aggregate" | "type");
        let is_new = !from.owners.iter().any(|x| x.kind == o.kind && x.object == o.object);
        let public = to.grants.iter().any(|g| g.kind == o.kind && g.object == o.object && g.grantee == "PUBLIC");
        if public_by_default && is_new && !public && !o.target.is_empty() {
            let kind = if o.kind == "type" { "TYPE" } else { "FUNCTION" };
            let kind = if o.kind == "procedure" { "PROCEDURE" } else { kind };
            out.push(change(
                format!("revoke the default grant to PUBLIC on {} {}", o.kind, o.object),
                format!("REVOKE ALL ON {kind} {} FROM PUBLIC;", o.target),
            ));
        }
    }
    for g in &from.grants {
        if g.grantee == "(owner)" || g.target.is_empty() || !object_exists(to, g) {
            continue;
        }
        if !to.grants.iter().any(|x| key(x) == key(g)) {
            let column = g.column.as_ref().map(|c| format!(" ({c})")).unwrap_or_default();
            out.push(change(
                format!("revoke {} on {} {} from {}", g.privileges.join(", "), g.kind, g.object, g.grantee),
                format!("REVOKE ALL{column} ON {} FROM {};", on(g), ro::role_sql(&g.grantee)),
            ));
        }
    }
}

fn default_privileges(from: &Schema, to: &Schema, out: &mut Vec<Change>) {
    let key = |d: &DefaultPrivilege| (d.role.clone(), d.schema.clone(), d.objects.clone(), d.grantee.clone());
    let scope = |d: &DefaultPrivilege| {
        let mut s = format!("ALTER DEFAULT PRIVILEGES FOR ROLE {}", ro::role_sql(&d.role));
        if !d.schema.is_empty() {
            s.push_str(&format!(" IN SCHEMA {}", quote_ident(&d.schema)));
        }
        s
    };
    for d in &from.default_privileges {
        if to.default_privileges.iter().find(|x| key(x) == key(d)).is_none_or(|x| x.privileges != d.privileges) {
            out.push(change(
                format!("revoke default privileges of {} on {} from {}", d.role, d.objects, d.grantee),
                format!("{} REVOKE ALL ON {} FROM {};", scope(d), d.objects.to_uppercase(), ro::role_sql(&d.grantee)),
            ));
        }
    }
    for d in &to.default_privileges {
        if from.default_privileges.iter().find(|x| key(x) == key(d)).is_none_or(|x| x.privileges != d.privileges) {
            let privileges: Vec<&str> = d.privileges.iter().map(|p| p.trim_end_matches('*')).collect();
            out.push(change(
                format!("default privileges of {} on {} to {}", d.role, d.objects, d.grantee),
                format!(
                    "{} GRANT {} ON {} TO {};",
                    scope(d),
                    privileges.join(", "),
                    d.objects.to_uppercase(),
                    ro::role_sql(&d.grantee)
                ),
            ));
        }
    }
}

fn comments(from: &Schema, to: &Schema, out: &mut Vec<Change>) {
    for c in &to.comments {
        if !from.comments.iter().any(|o| o == c) {
            out.push(change(format!("comment on {} {}", c.kind, c.object), ro::comment(c)));
        }
    }
    for c in &from.comments {
        // A dropped table takes its comments with it.
        let table_gone = c.kind == "table"
            && !to.tables.iter().any(|t| {
                format!("{}.{}", quote_ident(&t.schema), quote_ident(&t.name)) == c.object
                    || format!("{}.{}", t.schema, t.name) == c.object
            });
        if !table_gone && !to.comments.iter().any(|n| n.kind == c.kind && n.object == c.object) {
            let mut gone = c.clone();
            gone.text = String::new();
            let sql = ro::comment(&gone).replace(&format!("IS {};", literal("")), "IS NULL;");
            out.push(change(format!("drop comment on {} {}", c.kind, c.object), sql));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_partitioned(key: &str) -> Schema {
        let table = Table {
            schema: "public".into(),
            name: "events".into(),
            columns: vec![],
            primary_key: None,
            uniques: vec![],
            foreign_keys: vec![],
            checks: vec![],
            indexes: vec![],
            sql: None,
        };
        let relation = Relation {
            schema: "public".into(),
            name: "events".into(),
            partition_key: Some(key.into()),
            ..Relation::default()
        };
        Schema { tables: vec![table], relations: vec![relation], ..Schema::empty(Dialect::Postgres) }
    }

    #[test]
    fn a_changed_partition_key_is_named_as_not_generated() {
        let changes = crate::diff(&with_partitioned("RANGE (at)"), &with_partitioned("LIST (at)"));
        assert_eq!(changes.len(), 1, "{changes:#?}");
        assert!(changes[0].sql.starts_with("-- not generated: partition key of public.events"), "{}", changes[0].sql);
        assert!(!changes[0].destructive);
    }

    #[test]
    fn a_changed_domain_is_named_as_not_generated_and_a_dropped_one_is_destructive() {
        let domain = |check: &str| TypeDef {
            schema: "public".into(),
            name: "email".into(),
            kind: "domain".into(),
            definition: format!("CREATE DOMAIN public.email AS text CHECK ({check})"),
        };
        let from = Schema { types: vec![domain("VALUE ~ '@'")], ..Schema::empty(Dialect::Postgres) };
        let to = Schema { types: vec![domain("VALUE ~ '@.'")], ..Schema::empty(Dialect::Postgres) };
        let changes = crate::diff(&from, &to);
        assert!(
            changes.iter().any(|c| c.sql.starts_with("-- not generated: domain public.email changed")),
            "{changes:#?}"
        );
        let dropped = crate::diff(&from, &Schema::empty(Dialect::Postgres));
        assert!(dropped.iter().any(|c| c.sql == "DROP DOMAIN \"public\".\"email\";" && c.destructive), "{dropped:#?}");
    }
}
