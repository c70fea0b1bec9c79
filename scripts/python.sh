#!/usr/bin/env bash
# Builds the Python module (python/, PyO3 and maturin) into a venv and runs its tests with
# pytest, against the programs `cargo build` made. What CI runs after the Rust tests; a user
# installs the module with the same pip line: pip install ./python
set -euo pipefail
cd "$(dirname "$0")/.."
cargo fmt --check --manifest-path python/Cargo.toml
venv=target/python-venv
if [[ ! -x "$venv/bin/python" ]]; then
  python3 -m venv "$venv"
fi
"$venv/bin/pip" install --quiet --disable-pip-version-check -r python/requirements-test.txt
# The crate's own target folder, so the module reuses what cargo already built.
CARGO_TARGET_DIR="$PWD/target" "$venv/bin/pip" install --quiet --disable-pip-version-check ./python
cargo build --quiet --bins
CAMSTREAM_BIN="$PWD/target/debug" timeout 600 "$venv/bin/python" -m pytest -q python/tests
