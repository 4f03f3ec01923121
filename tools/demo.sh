#!/usr/bin/env bash
# Install, build, and run the main job on the bundled sample package: the
# built-in cleaner through a transaction (committed), then a cleaner that
# fails half way (rolled back, the package untouched).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh

cjfs=$(pwd)/build/tools/cjfs
work=$(mktemp -d "${TMPDIR:-/tmp}/cjfs-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT
cp -a sample "$work/pkg"
export CJFS_HOME=$work/store
cd "$work"

step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step "cjfs clean --dry-run pkg"
"$cjfs" clean --dry-run pkg

step "cjfs clean pkg          # the built-in cleaner, in a transaction"
"$cjfs" clean pkg

step "cjfs status 1 && cjfs diff 1 | head -n 20   # what transaction 1 changed"
"$cjfs" status 1
"$cjfs" diff 1 | head -n 20 || true

before=$(find pkg -type f -exec sha256sum {} + | sort | sha256sum)
step "cjfs run pkg -- sh -c 'sed -i s/greet/GREET/ src/*.py; echo crash >&2; exit 3'"
"$cjfs" run pkg -- sh -c 'sed -i s/greet/GREET/ src/*.py; echo "cleaner: crashed half way" >&2; exit 3' || echo "(exit status $?)"
after=$(find pkg -type f -exec sha256sum {} + | sort | sha256sum)
step "is pkg untouched after the failed run?"
[[ $before == "$after" ]] && echo "yes: byte for byte the same"

step "cjfs mount pkg mnt; edit; cjfs status mnt; cjfs rollback mnt"
mkdir mnt
"$cjfs" mount pkg mnt
printf 'scratch\n' > mnt/scratch.txt
"$cjfs" status mnt
"$cjfs" rollback mnt
