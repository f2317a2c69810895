#!/usr/bin/env bash
# Times `migrate up` of N small migrations (default 200) with sage-db, sqlx-cli and dbmate,
# side by side on one PostgreSQL server, each on a fresh database, three rounds each.
# Needs a quiet machine: run it alone. The tools are installed as scripts/test installs them.
#
#   bench/migrate_peers.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'migrate_peers: %s\n' "$*" >&2; }
source scripts/peer-tools.sh
install_peer_tools

N="${1:-200}"
export SAGE_PG_BIN="${SAGE_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -t/ -k4 -rn | head -1)}"
cargo build --release --quiet -p sage-cli -p sage-testkit
eval "$(target/release/sage-testkit start)"
work="$(mktemp -d)"
trap 'target/release/sage-testkit stop "$SAGE_TEST_PG_DIR" || true; rm -rf "$work"' EXIT
mkdir -p "$work/plain" "$work/dbmate"
for i in $(seq 1 "$N"); do
    v=$(printf '%06d' "$i")
    sql="CREATE TABLE t$i (id integer PRIMARY KEY, note text);"
    printf '%s\n' "$sql" > "$work/plain/${v}_step$i.sql"
    printf -- '-- migrate:up\n%s\n\n-- migrate:down\nDROP TABLE t%s;\n' "$sql" "$i" > "$work/dbmate/${v}_step$i.sql"
done

url_for() { printf '%s' "$SAGE_TEST_PG_URL" | sed "s#/postgres?#/$1?#"; }
fresh() { psql -q "$SAGE_TEST_PG_URL" -c "DROP DATABASE IF EXISTS $1" -c "CREATE DATABASE $1" >/dev/null; }
elapsed() {
    local start end
    start=$(date +%s.%N); "$@" >/dev/null 2>&1 || { say "failed: $*"; exit 1; }; end=$(date +%s.%N)
    awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }'
}

declare -A best
for tool in sage-db sqlx dbmate; do
    for round in 1 2 3; do
        db="bench_${tool//-/_}_$round"; fresh "$db"; url="$(url_for "$db")"
        case "$tool" in
            sage-db) t=$(elapsed target/release/sage-db migrate up --source "$work/plain" --database-url "$url") ;;
            sqlx) t=$(elapsed "$SAGE_TEST_SQLX" migrate run --source "$work/plain" --database-url "$url" --no-dotenv) ;;
            dbmate) t=$(elapsed "$SAGE_TEST_DBMATE" --url "$url" --migrations-dir "$work/dbmate" --no-dump-schema migrate) ;;
        esac
        say "$tool round $round: ${t}s for $N migrations"
        if [[ -z "${best[$tool]:-}" ]] || awk -v t="$t" -v b="${best[$tool]}" 'BEGIN { exit !(t < b) }'; then best[$tool]=$t; fi
    done
done
for tool in sqlx dbmate; do
    awk -v a="${best[sage-db]}" -v b="${best[$tool]}" -v t="$tool" \
        'BEGIN { printf "sage-db: best %.3fs, %s: best %.3fs, ratio %.2f\n", a, t, b, a / b }'
done
