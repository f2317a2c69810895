#!/usr/bin/env bash
# How long the memory store keeps its runtime's thread from other tasks: a probe task
# that wakes every 1 ms records the longest gap while the store deletes SESSIONS expired
# sessions, counts and lists SESSIONS live ones (crates/sage-store/examples/stall_probe.rs).
# Target: every gap under 5 ms. Usage: bench/stall_probe.sh [SESSIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p sage-store --example stall_probe -- "${1:-200000}"
