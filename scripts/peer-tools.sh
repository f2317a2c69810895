# Sourced by scripts/test and bench/migrate_peers.sh; expects a `say` function.
# --- Peer migration tools -------------------------------------------------------------
# The drop-in tests (crates/sage-cli/tests/peers.rs) run the real golang-migrate, sqlx-cli
# and dbmate beside SAGE DB, and crates/sage-cli/tests/webvh_create_all.rs runs the did:webvh
# server's SQLAlchemy create_all. Each is installed once, by its own package client, into
# $SAGE_TOOLS_DIR (default ~/.cache/sage-db-tools), and found there on later runs. A tool
# that cannot be installed stops the run here, with the reason: the tests never skip.
SQLX_CLI_VERSION=0.8.6
DBMATE_VERSION=2
GOLANG_MIGRATE_VERSION=v4.18.3
# The did:webvh server's schema tool: SQLAlchemy as the server pins it, with its PostgreSQL
# driver, for crates/sage-cli/tests/webvh_create_all.rs.
SQLALCHEMY_VERSION=2.0.44
PSYCOPG2_VERSION=2.9.11
SAGE_TOOLS_DIR="${SAGE_TOOLS_DIR:-$HOME/.cache/sage-db-tools}"

need_client() {
    if ! command -v "$1" >/dev/null 2>&1; then
        say "error: $1 is missing; it installs $2 for the drop-in tests ($3)"
        exit 2
    fi
}

install_sqlx_cli() {
    local bin="$SAGE_TOOLS_DIR/cargo/bin/sqlx"
    if [[ -x "$bin" ]] && "$bin" --version 2>/dev/null | grep -q "$SQLX_CLI_VERSION"; then
        export SAGE_TEST_SQLX="$bin"; return 0
    fi
    need_client cargo "sqlx-cli" "https://rustup.rs"
    say "installing sqlx-cli $SQLX_CLI_VERSION from crates.io (cargo install) into $SAGE_TOOLS_DIR/cargo"
    cargo install --locked --quiet sqlx-cli --version "$SQLX_CLI_VERSION" \
        --no-default-features --features postgres,sqlite,rustls --root "$SAGE_TOOLS_DIR/cargo" >&2 \
        || { say "error: cargo install sqlx-cli $SQLX_CLI_VERSION failed"; exit 2; }
    export SAGE_TEST_SQLX="$bin"
}

install_dbmate() {
    local bin="$SAGE_TOOLS_DIR/npm/node_modules/.bin/dbmate"
    if [[ -x "$bin" ]] && "$bin" --version >/dev/null 2>&1; then
        export SAGE_TEST_DBMATE="$bin"; return 0
    fi
    need_client npm "dbmate" "Debian/Ubuntu: apt-get install npm"
    say "installing dbmate $DBMATE_VERSION from the npm registry (npm install) into $SAGE_TOOLS_DIR/npm"
    npm install --silent --prefix "$SAGE_TOOLS_DIR/npm" "dbmate@$DBMATE_VERSION" >&2 \
        || { say "error: npm install dbmate@$DBMATE_VERSION failed"; exit 2; }
    export SAGE_TEST_DBMATE="$bin"
}

install_golang_migrate() {
    local bin="$SAGE_TOOLS_DIR/go/bin/migrate" marker="$SAGE_TOOLS_DIR/go/bin/.migrate-version"
    # A binary from `go install` may not know its own version; a marker written after the
    # install does.
    if [[ -x "$bin" && "$(cat "$marker" 2>/dev/null)" == "$GOLANG_MIGRATE_VERSION" ]]; then
        export SAGE_TEST_GOLANG_MIGRATE="$bin"; return 0
    fi
    need_client go "golang-migrate" "https://go.dev/doc/install"
    need_client gcc "golang-migrate's SQLite driver (cgo)" "Debian/Ubuntu: apt-get install gcc"
    say "installing golang-migrate $GOLANG_MIGRATE_VERSION with postgres and sqlite3 (go install) into $SAGE_TOOLS_DIR/go/bin"
    GOBIN="$SAGE_TOOLS_DIR/go/bin" CGO_ENABLED=1 go install -tags 'postgres sqlite3' \
        "github.com/golang-migrate/migrate/v4/cmd/migrate@$GOLANG_MIGRATE_VERSION" >&2 \
        || { say "error: go install golang-migrate $GOLANG_MIGRATE_VERSION failed"; exit 2; }
    echo "$GOLANG_MIGRATE_VERSION" > "$marker"
    export SAGE_TEST_GOLANG_MIGRATE="$bin"
}

install_sqlalchemy() {
    local venv="$SAGE_TOOLS_DIR/python" want="$SQLALCHEMY_VERSION $PSYCOPG2_VERSION"
    if [[ -x "$venv/bin/python" ]] && [[ "$("$venv/bin/python" -c 'import sqlalchemy, psycopg2; print(sqlalchemy.__version__, psycopg2.__version__.split()[0])' 2>/dev/null)" == "$want" ]]; then
        export SAGE_TEST_PYTHON="$venv/bin/python"; return 0
    fi
    need_client python3 "SQLAlchemy" "Debian/Ubuntu: apt-get install python3 python3-venv"
    say "installing SQLAlchemy $SQLALCHEMY_VERSION and psycopg2-binary $PSYCOPG2_VERSION from PyPI (pip, in a virtual environment) into $venv"
    rm -rf "$venv"
    python3 -m venv "$venv" >&2 \
        || { say "error: python3 -m venv failed (Debian/Ubuntu: apt-get install python3-venv)"; exit 2; }
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "SQLAlchemy==$SQLALCHEMY_VERSION" "psycopg2-binary==$PSYCOPG2_VERSION" >&2 \
        || { say "error: pip install SQLAlchemy==$SQLALCHEMY_VERSION psycopg2-binary==$PSYCOPG2_VERSION failed"; exit 2; }
    export SAGE_TEST_PYTHON="$venv/bin/python"
}

install_peer_tools() {
    mkdir -p "$SAGE_TOOLS_DIR"
    install_sqlx_cli
    install_dbmate
    install_golang_migrate
    install_sqlalchemy
    say "peer tools: $SAGE_TEST_SQLX, $SAGE_TEST_DBMATE, $SAGE_TEST_GOLANG_MIGRATE, $SAGE_TEST_PYTHON (SQLAlchemy)"
}
# --- end of peer migration tools ------------------------------------------------------
