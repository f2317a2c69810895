#!/usr/bin/env bash
# Times `migrate up` of N small migrations (default 200) with sage-db, sqlx-cli and dbmate,
# side by side on one PostgreSQL server, each on a fresh database, ROUNDS rounds each
# (default 5), interleaved (sage-db, sqlx, dbmate, sage-db, …) so that a burst of load on a
# shared machine hits every tool alike. Prints each tool's median and the ratios of the
# medians. Needs a quiet machine for figures worth quoting. The tools are installed as
# scripts/test installs them.
#
#   bench/migrate_peers.sh [N] [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'migrate_peers: %s\n' "$*" >&2; }
source scripts/peer-tools.sh
install_peer_tools

N="${1:-200}"
ROUNDS="${2:-5}"
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

declare -A times
for round in $(seq 1 "$ROUNDS"); do
    for tool in sage-db sqlx dbmate; do
        db="bench_${tool//-/_}_$round"; fresh "$db"; url="$(url_for "$db")"
        case "$tool" in
            sage-db) t=$(elapsed target/release/sage-db migrate up --source "$work/plain" --database-url "$url") ;;
            sqlx) t=$(elapsed "$SAGE_TEST_SQLX" migrate run --source "$work/plain" --database-url "$url" --no-dotenv) ;;
            dbmate) t=$(elapsed "$SAGE_TEST_DBMATE" --url "$url" --migrations-dir "$work/dbmate" --no-dump-schema migrate) ;;
        esac
        say "$tool round $round: ${t}s for $N migrations"
        times[$tool]="${times[$tool]:-} $t"
    done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
declare -A med
for tool in sage-db sqlx dbmate; do
    med[$tool]="$(median "${times[$tool]}")"
    printf '%s: median %.3fs of %s rounds (%s)\n' "$tool" "${med[$tool]}" "$ROUNDS" "${times[$tool]# }"
done
for tool in sqlx dbmate; do
    awk -v a="${med[sage-db]}" -v b="${med[$tool]}" -v t="$tool" 'BEGIN { printf "sage-db / %s: %.2f\n", t, a / b }'
done
