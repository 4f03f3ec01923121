#!/usr/bin/env bash
# Install what cjfs needs on Debian 12 (bookworm) and build it into build/.
#   tools/setup.sh          runtime and build dependencies
#   tools/setup.sh --tests  also what the test suite runs (real formatters, git, ...)
set -euo pipefail
cd "$(dirname "$0")/.."

pkgs=(build-essential meson ninja-build pkg-config fuse3 libfuse3-dev libssl-dev
      libsqlite3-dev libzstd-dev liburing-dev libcriterion-dev diffutils)
if [[ ${1:-} == --tests ]]; then
	pkgs+=(black clang-format python3 git sed perl valgrind e2fsprogs util-linux zstd
	       shfmt tar coreutils attr)
	# npm for prettier, unless a node installation already brings one.
	command -v npm >/dev/null 2>&1 || pkgs+=(npm)
fi

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	sudo=
	[[ $(id -u) == 0 ]] || sudo=sudo
	echo "setup: installing ${missing[*]}"
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ ${1:-} == --tests ]]; then
	# prettier for the tools tests, pinned, in the test cache (tests/integration/test_tools.c).
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/cjfs-tests
	if [[ ! -x $cache/node_modules/.bin/prettier ]]; then
		mkdir -p "$cache"
		timeout 300 npm install --prefix "$cache" --no-audit --no-fund --loglevel=error \
			prettier@3.3.3 >/dev/null 2>&1 ||
			echo "setup: npm could not install prettier; its test will be skipped"
	fi
fi

[[ -f build/build.ninja ]] || meson setup build >/dev/null
meson compile -C build >/dev/null
echo "setup: built $(pwd)/build/tools/cjfs"
