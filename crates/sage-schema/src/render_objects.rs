//! DDL for the kinds in [`crate::objects`]: relation options on `CREATE TABLE`, partitions,
//! row-level security, policies, owners, grants, default privileges and comments.
//!
//! `(database owner)` is rendered as `CURRENT_USER`: whoever loads the DDL stands for the
//! role that owns the database, as the scratch database's owner did when the snapshot was
//! written. Owners of that role are not rendered at all (the loader owns what it creates).

use sage_conn::quote_ident;

use crate::model::*;
use crate::objects::*;
use crate::render::literal;

/// A role as DDL names it.
pub(crate) fn role_sql(role: &str) -> String {
    match role {
        "PUBLIC" => "PUBLIC".into(),
        "(database owner)" => "CURRENT_USER".into(),
        other => quote_ident(other),
    }
}

/// `CREATE TABLE …;` with the relation's persistence, inheritance, partition key and
/// storage parameters.
pub(crate) fn with_relation_options(create: String, relation: Option<&Relation>) -> String {
    let Some(r) = relation else { return create };
    let mut sql = create.trim_end().trim_end_matches(';').to_string();
    if r.unlogged {
        sql = sql.replacen("CREATE TABLE", "CREATE UNLOGGED TABLE", 1);
    }
    if !r.inherits.is_empty() {
        sql.push_str(&format!(" INHERITS ({})", r.inherits.join(", ")));
    }
    if let Some(key) = &r.partition_key {
        sql.push_str(&format!(" PARTITION BY {key}"));
    }
    if !r.options.is_empty() {
        sql.push_str(&format!(" WITH ({})", r.options.join(", ")));
    }
    sql.push(';');
    sql
}

fn relation<'a>(schema: &'a Schema, s: &str, name: &str) -> Option<&'a Relation> {
    schema.relations.iter().find(|r| r.schema == s && r.name == name)
}

/// `CREATE TABLE` with everything the model knows about the table. An inheritance child
/// declares only what it adds: the columns and CHECKs of its parents come with `INHERITS`.
pub(crate) fn create_table(schema: &Schema, t: &Table) -> String {
    let rel = relation(schema, &t.schema, &t.name);
    let parents: Vec<&Table> = rel
        .map(|r| {
            r.inherits
                .iter()
                .filter_map(|p| match split_qualified(p).as_slice() {
                    [s, n] => schema.table(s, n),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let mut own = t.clone();
    own.columns.retain(|c| !parents.iter().any(|p| p.column(&c.name).is_some_and(|pc| pc.data_type == c.data_type)));
    own.checks.retain(|c| !parents.iter().any(|p| p.checks.contains(c)));
    with_relation_options(crate::render::create_table_with(&own, &schema.identities), rel)
}

/// The parts of a qualified name as PostgreSQL's `quote_ident` writes it.
pub(crate) fn split_qualified(text: &str) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                parts.last_mut().expect("one part").push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(String::new()),
            c => parts.last_mut().expect("one part").push(c),
        }
    }
    parts
}

/// Partitions, each after its parent (a partition may itself be partitioned).
pub(crate) fn partitions(schema: &Schema) -> Vec<String> {
    let mut done: Vec<Vec<String>> = schema.tables.iter().map(|t| vec![t.schema.clone(), t.name.clone()]).collect();
    let mut pending: Vec<&Relation> = schema.relations.iter().filter(|r| r.partition_of.is_some()).collect();
    let mut out = Vec::new();
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|r| {
            let parent = r.partition_of.as_deref().unwrap_or_default();
            if !done.contains(&split_qualified(parent)) {
                return true;
            }
            let name = crate::render::qualified(&r.schema, &r.name);
            let mut sql = format!(
                "CREATE {}TABLE {name} PARTITION OF {parent} {}",
                if r.unlogged { "UNLOGGED " } else { "" },
                r.bound.as_deref().unwrap_or("DEFAULT")
            );
            if let Some(key) = &r.partition_key {
                sql.push_str(&format!(" PARTITION BY {key}"));
            }
            if !r.options.is_empty() {
                sql.push_str(&format!(" WITH ({})", r.options.join(", ")));
            }
            sql.push(';');
            out.push(sql);
            done.push(vec![r.schema.clone(), r.name.clone()]);
            false
        });
        if pending.len() == before {
            for r in &pending {
                out.push(format!(
                    "-- partition {}.{} of {} not rendered: its parent is not in the model",
                    r.schema,
                    r.name,
                    r.partition_of.as_deref().unwrap_or_default()
                ));
            }
            break;
        }
    }
    out
}

/// View options (`security_barrier`, `check_option`) as `ALTER VIEW … SET (…)`.
pub(crate) fn view_options(schema: &Schema) -> Vec<String> {
    schema
        .views
        .iter()
        .filter_map(|v| {
            let r = relation(schema, &v.schema, &v.name)?;
            if r.options.is_empty() {
                return None;
            }
            let kind = if v.materialized { "MATERIALIZED VIEW" } else { "VIEW" };
            Some(format!(
                "ALTER {kind} {} SET ({});",
                crate::render::qualified(&v.schema, &v.name),
                r.options.join(", ")
            ))
        })
        .collect()
}

pub(crate) fn row_security(r: &RowSecurity) -> Vec<String> {
    let table = crate::render::qualified(&r.schema, &r.table);
    let mut out = Vec::new();
    if r.enabled {
        out.push(format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY;"));
    }
    if r.forced {
        out.push(format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY;"));
    }
    out
}

pub(crate) fn create_policy(p: &Policy) -> String {
    let roles: Vec<String> = p.roles.iter().map(|r| role_sql(r)).collect();
    let mut sql = format!(
        "CREATE POLICY {} ON {} AS {} FOR {} TO {}",
        quote_ident(&p.name),
        crate::render::qualified(&p.schema, &p.table),
        if p.permissive { "PERMISSIVE" } else { "RESTRICTIVE" },
        p.command,
        roles.join(", ")
    );
    if let Some(using) = &p.using {
        sql.push_str(&format!(" USING ({using})"));
    }
    if let Some(check) = &p.with_check {
        sql.push_str(&format!(" WITH CHECK ({check})"));
    }
    sql.push(';');
    sql
}

fn keyword(kind: &str) -> &'static str {
    match kind {
        "view" => "VIEW",
        "materialized view" => "MATERIALIZED VIEW",
        "sequence" => "SEQUENCE",
        "function" | "aggregate" => "FUNCTION",
        "procedure" => "PROCEDURE",
        "type" => "TYPE",
        "schema" => "SCHEMA",
        "foreign table" => "FOREIGN TABLE",
        _ => "TABLE",
    }
}

pub(crate) fn alter_owner(o: &Owner) -> Option<String> {
    if o.owner == "(database owner)" || o.target.is_empty() {
        return None;
    }
    let kind = match o.kind.as_str() {
        "aggregate" => "AGGREGATE",
        other => keyword(other),
    };
    Some(format!("ALTER {kind} {} OWNER TO {};", o.target, role_sql(&o.owner)))
}

fn grant_on(kind: &str) -> &'static str {
    match kind {
        "sequence" => "SEQUENCE",
        "function" | "aggregate" => "FUNCTION",
        "procedure" => "PROCEDURE",
        "type" => "TYPE",
        "schema" => "SCHEMA",
        _ => "TABLE",
    }
}

fn grant(on: &str, privileges: &[String], grantee: &str, column: Option<&str>) -> Vec<String> {
    let column = column.map(|c| format!(" ({c})")).unwrap_or_default();
    let plain: Vec<String> = privileges.iter().filter(|p| !p.ends_with('*')).map(|p| format!("{p}{column}")).collect();
    let granting: Vec<String> =
        privileges.iter().filter_map(|p| p.strip_suffix('*')).map(|p| format!("{p}{column}")).collect();
    let mut out = Vec::new();
    if !plain.is_empty() {
        out.push(format!("GRANT {} ON {on} TO {};", plain.join(", "), role_sql(grantee)));
    }
    if !granting.is_empty() {
        out.push(format!("GRANT {} ON {on} TO {} WITH GRANT OPTION;", granting.join(", "), role_sql(grantee)));
    }
    out
}

/// GRANTs that rebuild every recorded ACL. Functions and types grant to PUBLIC by default,
/// so one whose ACL has no PUBLIC entry gets that default revoked first.
pub(crate) fn grants(schema: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    for o in &schema.owners {
        let public_by_default = matches!(o.kind.as_str(), "function" | "procedure" | "aggregate" | "type");
        let has_public =
            schema.grants.iter().any(|g| g.kind == o.kind && g.object == o.object && g.grantee == "PUBLIC");
        if public_by_default && !has_public && !o.target.is_empty() {
            out.push(format!("REVOKE ALL ON {} {} FROM PUBLIC;", grant_on(&o.kind), o.target));
        }
    }
    for g in &schema.grants {
        if g.target.is_empty() {
            continue;
        }
        // The owner holds its default privileges without a GRANT; a narrower owner entry
        // (privileges revoked from the owner) is not rendered.
        if g.grantee == "(owner)" {
            continue;
        }
        // PUBLIC's default on functions and types is already there.
        let public_default = g.grantee == "PUBLIC"
            && ((matches!(g.kind.as_str(), "function" | "procedure" | "aggregate") && g.privileges == ["EXECUTE"])
                || (g.kind == "type" && g.privileges == ["USAGE"]));
        if public_default {
            continue;
        }
        let on = format!("{} {}", grant_on(&g.kind), g.target);
        out.extend(grant(&on, &g.privileges, &g.grantee, g.column.as_deref()));
    }
    out
}

pub(crate) fn default_privileges(schema: &Schema) -> Vec<String> {
    let mut out = Vec::new();
    let scope = |d: &DefaultPrivilege| {
        let mut s = format!("ALTER DEFAULT PRIVILEGES FOR ROLE {}", role_sql(&d.role));
        if !d.schema.is_empty() {
            s.push_str(&format!(" IN SCHEMA {}", quote_ident(&d.schema)));
        }
        s
    };
    // A global entry for functions or types without PUBLIC revoked PUBLIC's default.
    let mut seen: Vec<(String, String)> = Vec::new();
    for d in schema.default_privileges.iter().filter(|d| d.schema.is_empty()) {
        let key = (d.role.clone(), d.objects.clone());
        if seen.contains(&key) || !matches!(d.objects.as_str(), "functions" | "types") {
            continue;
        }
        seen.push(key);
        let has_public = schema
            .default_privileges
            .iter()
            .any(|x| x.schema.is_empty() && x.role == d.role && x.objects == d.objects && x.grantee == "PUBLIC");
        if !has_public {
            out.push(format!("{} REVOKE ALL ON {} FROM PUBLIC;", scope(d), d.objects.to_uppercase()));
        }
    }
    for d in &schema.default_privileges {
        if d.grantee == "(owner)" {
            continue;
        }
        let public_default = d.grantee == "PUBLIC"
            && ((d.objects == "functions" && d.privileges == ["EXECUTE"])
                || (d.objects == "types" && d.privileges == ["USAGE"]));
        if public_default && d.schema.is_empty() {
            continue;
        }
        let on = d.objects.to_uppercase();
        for g in grant(&on, &d.privileges, &d.grantee, None) {
            out.push(format!("{} {g}", scope(d)));
        }
    }
    out
}

pub(crate) fn comment(c: &Comment) -> String {
    let kind = match c.kind.as_str() {
        "table column"
        | "view column"
        | "materialized view column"
        | "foreign table column"
        | "composite type column" => "COLUMN".to_string(),
        "table constraint" => "CONSTRAINT".to_string(),
        "domain constraint" => {
            // `name on schema.domain` names a domain's constraint.
            if let Some((name, domain)) = c.object.split_once(" on ") {
                return format!("COMMENT ON CONSTRAINT {name} ON DOMAIN {domain} IS {};", literal(&c.text));
            }
            "CONSTRAINT".to_string()
        }
        other => other.to_uppercase(),
    };
    format!("COMMENT ON {kind} {} IS {};", c.object, literal(&c.text))
}
