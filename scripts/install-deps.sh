#!/usr/bin/env bash
# Installs what allot needs to build and test, from Debian bookworm packages only.
# Idempotent: packages already present are left alone, and apt is not touched at all
# when nothing is missing.
#   scripts/install-deps.sh            what building and testing need
#   scripts/install-deps.sh --browser  also Debian's Chromium and Node.js with npm, for
#                                    scripts/check-report.sh and scripts/check-dashboard.sh
#   scripts/install-deps.sh --postgresql  also the PostgreSQL 15 server, for the store's tests
#                                       against both engines (scripts/with-postgresql.sh)
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libyaml-cpp-dev nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev
  libcpp-httplib-dev libboost1.81-dev libssl-dev libsqlite3-dev libpq-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev openssl curl
)

case "${1:-}" in
  --browser)
    packages+=(chromium fonts-dejavu-core)
    # Node.js from Debian, unless a Node.js with npm is there already (a NodeSource nodejs
    # carries its own npm, which Debian's npm package would conflict with).
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then packages+=(nodejs npm); fi
    ;;
  --postgresql) packages+=(postgresql-15) ;;
esac

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: missing packages: ${missing[*]}; run this script as root (or: sudo apt-get install ${missing[*]})" >&2
  exit 1
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
