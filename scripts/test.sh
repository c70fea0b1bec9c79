#!/usr/bin/env bash
# Installs what is missing, then runs every check CI runs: formatting, clippy, and the whole test
# suite, including the window tests under a virtual display (Xvfb).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
xvfb-run -a -s "-screen 0 1280x720x24" cargo test --all-targets -- --include-ignored
