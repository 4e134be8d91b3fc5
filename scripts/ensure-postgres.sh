#!/usr/bin/env bash
# Make PostgreSQL server binaries available for the storage test (Debian package). Never fails the
# build: without root or without the package registry the test skips and says why.
set -u
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-postgres: PostgreSQL is not installed and cannot be installed here; its test will be skipped"
  exit 0
fi
echo "ensure-postgres: installing PostgreSQL from Debian's packages"
export DEBIAN_FRONTEND=noninteractive
(apt-get update -qq && apt-get install -y -qq postgresql >/dev/null) \
  || echo "ensure-postgres: apt-get failed; the PostgreSQL test will be skipped"
exit 0
