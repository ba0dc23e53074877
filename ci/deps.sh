#!/usr/bin/env bash
# Installs the Debian packages eventrig needs, by group, only those missing;
# does nothing (and needs no network) when all are there.
#
#   ci/deps.sh [--apt-archives DIR] GROUP...    install what GROUPs need
#   ci/deps.sh --list GROUP...                  print their packages, one a line
#
# Groups (each includes the groups it names):
#   build   compile eventrig and the reference service (the Compose job)
#   demo    build + the servers the local stack starts (Redis, Postgres) and
#           xmllint: `make demo`, the CI templates' suite jobs
#   kafka   a JDK and Maven for the real Apache Kafka broker (ci/kafka/)
#   test    demo + kafka + the test tools: everything `make test` runs
#   lint    build + clang-format and clang-tidy: `make lint`
#   all     every group: `make deps`
# --apt-archives DIR keeps the downloaded .deb files in DIR (a CI cache)
# instead of /var/cache/apt/archives.
set -euo pipefail

group_pkgs() {
  case "$1" in
    build)
      echo build-essential pkg-config
      echo librdkafka-dev libhiredis-dev libcurl4-openssl-dev libjansson-dev
      echo libpq-dev libssl-dev libmicrohttpd-dev libxml2-dev libyaml-dev ;;
    demo)
      group_pkgs build
      echo redis-server postgresql libxml2-utils ;;
    kafka)
      echo default-jdk-headless maven python3 ;;
    test)
      group_pkgs demo
      group_pkgs kafka
      echo redis-tools kcat curl python3 python3-venv clang-format ;;
    lint)
      group_pkgs build
      echo clang-format clang-tidy ;;
    all)
      local g
      for g in build demo kafka test lint; do group_pkgs "$g"; done ;;
    *)
      echo "deps: unknown group '$1' (build, demo, kafka, test, lint, all)" >&2
      return 2 ;;
  esac
}

usage() { sed -n '2,17s/^# \{0,1\}//p' "$0" >&2; exit 2; }

list=0
archives=""
groups=()
while [ $# -gt 0 ]; do
  case "$1" in
    --list) list=1 ;;
    --apt-archives) [ $# -ge 2 ] || usage; archives=$2; shift ;;
    -h | --help) usage ;;
    -*) echo "deps: unknown option $1" >&2; usage ;;
    *) groups+=("$1") ;;
  esac
  shift
done
[ ${#groups[@]} -gt 0 ] || usage

out=""
for g in "${groups[@]}"; do
  out+=$(group_pkgs "$g")$'\n' || exit 2
done
mapfile -t pkgs < <(tr ' ' '\n' <<<"$out" | grep . | sort -u)

if [ $list -eq 1 ]; then
  printf '%s\n' "${pkgs[@]}"
  exit 0
fi

# one dpkg-query for all: quick when everything is there (every `make test`)
mapfile -t present < <(dpkg-query -W -f='${db:Status-Status} ${Package}\n' "${pkgs[@]}" 2>/dev/null |
  awk '$1 == "installed" { print $2 }')
missing=()
for p in "${pkgs[@]}"; do
  [[ " ${present[*]} " == *" $p "* ]] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: ${groups[*]}: all ${#pkgs[@]} packages present"
  exit 0
fi
echo "deps: ${groups[*]}: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_opts=()
if [ -n "$archives" ]; then
  mkdir -p "$archives/partial"
  apt_opts=(-o "Dir::Cache::Archives=$(cd "$archives" && pwd)/")
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${apt_opts[@]}" "${missing[@]}" >/dev/null
echo "deps: done"
