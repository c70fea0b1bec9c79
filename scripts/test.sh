#!/usr/bin/env bash
# Installs what is missing, then runs every check CI runs: formatting, clippy, the whole test
# suite (the window tests under a virtual display, Xvfb), the Python module's tests, the Debian
# package's checks, and the
# benchmark in its short mode so it cannot rot (it reports; the tests are what assert behaviour).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
cargo fmt --check
cargo clippy --all-targets --quiet -- -D warnings
xvfb-run -a -s "-screen 0 1280x720x24" cargo test --all-targets -- --include-ignored
bash scripts/python.sh
bash tests/tools/package_check.sh
bash scripts/bench.sh --short
