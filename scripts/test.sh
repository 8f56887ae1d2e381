#!/usr/bin/env bash
# Runs every test of sipwake. Installs what the tests need and is missing
# (sipp from Debian's sip-tester; PostgreSQL, which the location-store tests
# start on their own ports; Kamailio, the upstream registrar of the
# mid-registrar tests; dnsmasq, the DNS server of the sip-dns tests; baresip
# and socat for the TLS tests; Chromium for the browser test; fail2ban for
# the log-filter test), then runs the
# whole workspace test suite: unit tests, the RFC 4475/5118 torture tests,
# property tests, and the end-to-end tests that start the real sipwake binary
# and drive it with sipp (and, for the browser test, JsSIP in Debian's
# headless Chromium: its npm packages are installed from
# tests/browser/package-lock.json; no browser is downloaded). The package
# test also needs debootstrap, dpkg-dev and cargo-deb (installed below).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
# The upstream registrar of the mid-registrar tests (kamcmd comes with it).
command -v kamailio >/dev/null 2>&1 || need+=(kamailio)
# The TLS end-to-end tests: a real UA over TLS, and a TCP-to-TLS bridge for sipp.
command -v baresip >/dev/null 2>&1 || need+=(baresip)
command -v socat >/dev/null 2>&1 || need+=(socat)
# The DNS server of the RFC 3263 tests (crates/sip-dns/tests), in /usr/sbin.
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || need+=(dnsmasq-base)
# The PostgreSQL server of the location-store tests (they start their own,
# on a free port, from /usr/lib/postgresql/*/bin).
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)
# The TLS test of the PostgreSQL store makes its CA and server certificate with openssl.
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# The browser of the WebRTC end-to-end test (driven by playwright-core).
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v npm >/dev/null 2>&1 || need+=(nodejs npm)
# fail2ban-regex checks packaging/fail2ban's filter against the log lines
# the running binary writes (crates/sipwake/tests/e2e_logs.rs).
command -v fail2ban-regex >/dev/null 2>&1 || need+=(fail2ban)
# The package test (crates/sipwake/tests/e2e_package.rs): a clean Debian
# bookworm made by debootstrap, and dpkg-shlibdeps for the .deb's Depends.
[ -x /usr/sbin/debootstrap ] || need+=(debootstrap)
command -v dpkg-shlibdeps >/dev/null 2>&1 || need+=(dpkg-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing test dependencies: ${need[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# cargo-deb, which builds the .deb of the package test (pinned; building it
# took 78 s on 2 cores).
CARGO_DEB_VERSION=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $CARGO_DEB_VERSION" ]; then
  echo "installing cargo-deb $CARGO_DEB_VERSION (cargo install)"
  cargo install --locked cargo-deb --version "$CARGO_DEB_VERSION"
fi

# JsSIP, playwright-core and esbuild at the versions of the lock file.
lock=tests/browser/package-lock.json
if [ ! -d tests/browser/node_modules ] || [ "$lock" -nt tests/browser/node_modules ]; then
  echo "installing the browser test's npm packages (npm ci)"
  npm ci --prefix tests/browser --no-audit --no-fund
  touch tests/browser/node_modules
fi

exec cargo test --workspace --locked "$@"
