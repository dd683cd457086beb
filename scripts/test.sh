#!/usr/bin/env bash
# Dhwani's test command: installs what the tests need on a bare Debian
# machine (SIPp and baresip as SIP peers; Kamailio as the proxy in front
# of two nodes; espeak-ng for speech; PostgreSQL for the store tests,
# started per test in a temp dir; schemathesis for the admin API), then
# runs
# formatting, lints, every unit and end-to-end test, and builds the
# benchmarks. Used as is by CI (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v sipp >/dev/null 2>&1 || need_apt+=(sip-tester)
command -v unshare >/dev/null 2>&1 || need_apt+=(util-linux)
command -v ip >/dev/null 2>&1 || need_apt+=(iproute2)
command -v espeak-ng >/dev/null 2>&1 || need_apt+=(espeak-ng)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v baresip >/dev/null 2>&1 || need_apt+=(baresip-core)
[ -x /usr/sbin/kamailio ] || command -v kamailio >/dev/null 2>&1 || need_apt+=(kamailio)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing: ${need_apt[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# Schemathesis (PyPI) fuzzes the admin API against its OpenAPI document
# (tests/api_e2e.rs); pinned so that a new release cannot change the run.
python3 -m schemathesis.cli --version >/dev/null 2>&1 || python3 -m pip install -q 'schemathesis==4.32.5'

rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy || true

cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo check -p sip --no-default-features
# One SIPp-driven test binary at a time keeps 2-core machines honest.
cargo test --workspace -- --test-threads=2
# The fuzz target (outside the workspace) must keep building.
cargo check --manifest-path fuzz/Cargo.toml
cargo bench --workspace --no-run
