#!/usr/bin/env bash
# Installs the Debian packages eventrig needs to build and test, only those
# missing; does nothing (and needs no network) when all are there.
set -euo pipefail
pkgs=(
  build-essential pkg-config
  librdkafka-dev libhiredis-dev libcurl4-openssl-dev libjansson-dev
  libpq-dev libssl-dev libmicrohttpd-dev
  libyaml-dev
  redis-server redis-tools postgresql kcat libxml2-utils python3
  python3-venv
  clang clang-format clang-tidy
  default-jdk-headless maven
)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
