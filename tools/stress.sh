#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Stress the all-or-nothing commit: kill -9 `cjfs commit` (and sometimes the
# `cjfs recover` after it) at random instants, over and over, and check after
# each that recovery leaves PKG exactly old or exactly new, with no .cjfs-
# temporaries, and a store that `cjfs verify` passes. Exits 1 at the first
# violation (keeping its directory for a post-mortem), 0 after all
# iterations. Not run by CI (tests/integration/test_kill.c is its short form).
#
# Needs FUSE (root, or fusermount3), a built cjfs, and getfattr/setfattr
# (Debian's attr package; tools/setup.sh --tests installs it).
set -uo pipefail

usage() {
	cat <<EOF
usage: tools/stress.sh [-n ITERATIONS] [-s SEED] [-f FILES] [-b CJFS] [-d DIR] [-t SIZE] [-k]

  -n N     iterations (default \$STRESS_ITER or 100)
  -s SEED  seed for the changes and the delays (default \$STRESS_SEED or 1)
  -f N     files in the package (default 2000); the transaction changes ~80%
  -b PATH  the cjfs binary (default build/tools/cjfs)
  -d DIR   work below DIR (default \$TMPDIR or /tmp)
  -t SIZE  work on a private tmpfs of SIZE (e.g. 1g; root only): many more
           iterations per minute than on a disk
  -k       keep the work directory even on success
EOF
}

iters=${STRESS_ITER:-100}
seed=${STRESS_SEED:-1}
files=2000
here=$(cd "$(dirname "$0")/.." && pwd)
cjfs=$here/build/tools/cjfs
base=${TMPDIR:-/tmp}
keep=0
tmpfs=
while getopts "n:s:f:b:d:t:kh" opt; do
	case $opt in
	n) iters=$OPTARG ;;
	s) seed=$OPTARG ;;
	f) files=$OPTARG ;;
	b) cjfs=$OPTARG ;;
	d) base=$OPTARG ;;
	t) tmpfs=$OPTARG ;;
	k) keep=1 ;;
	h) usage; exit 0 ;;
	*) usage >&2; exit 2 ;;
	esac
done
[[ -x $cjfs ]] || { echo "stress: no cjfs at '$cjfs': build it or give -b" >&2; exit 2; }
command -v setfattr >/dev/null && command -v getfattr >/dev/null ||
	{ echo "stress: needs setfattr and getfattr: run tools/setup.sh --tests (or apt-get install attr)" >&2; exit 2; }

work=$(mktemp -d "$base/cjfs-stress.XXXXXX") || exit 2
pkg=$work/pkg mnt=$work/mnt store=$work/store

# Unmount what we mounted below $work (deepest first), keep a copy of a
# failure's tmpfs for the post-mortem, unmount it, and remove $work.
cleanup() {
	local status=$? kept=$work
	awk -v w="$work" 'index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo |
		sort -r | while read -r m; do
		umount "$m" 2>/dev/null || fusermount3 -u "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
	done
	if [[ -n $tmpfs ]] && grep -q " $work " /proc/self/mountinfo; then
		if ((status != 0 || keep)); then
			kept=$work.kept
			cp -a "$work" "$kept"
		fi
		umount "$work" 2>/dev/null || umount -l "$work"
	fi
	if ((status == 0 && keep == 0)); then
		rm -rf "$work"
	else
		[[ $kept == "$work" ]] || rm -rf "$work"
		echo "stress: work directory kept: $kept" >&2
	fi
	exit $status
}
trap cleanup EXIT
trap 'exit 130' INT TERM
if [[ -n $tmpfs ]]; then
	mount -t tmpfs -o "size=$tmpfs" tmpfs "$work" || { echo "stress: cannot mount a tmpfs (root only)" >&2; exit 2; }
fi
mkdir "$pkg" "$mnt" || exit 2

c() { "$cjfs" --store "$store" "$@"; }
# In the background, as the process itself (so that $! is cjfs, not a subshell, and kill -9 hits it).
c_bg() { exec "$cjfs" --store "$store" "$@" >/dev/null 2>&1; }

# A digest of a tree: types, modes, sizes, file mtimes, link targets, contents,
# FIFOs, which names are one file, xattrs; the top directory's mode and xattrs.
snapshot() {
	(
		cd "$1" || exit 1
		find . -mindepth 1 -type f -printf '%p f %m %s %T@\n'
		find . -type d -printf '%p d %m\n'
		find . -mindepth 1 -type l -printf '%p l %l\n'
		find . -mindepth 1 -type p -printf '%p p %m %T@\n'
		find . -type f -print0 | sort -z | xargs -0 -r sha256sum
		# Which names are one file (not the inode numbers: they change), and xattrs.
		find . -type f -links +1 -printf '%i %p\n' | sort -k1,1n -k2 |
			awk '{ g[$1] = g[$1] " " $2 } END { for (i in g) print "links" g[i] }'
		find . \( -type f -o -type d \) -print0 |
			xargs -0 -r getfattr -d -m - --absolute-names 2>/dev/null |
			awk '/^# file: / { f = $3; next } NF { print f, $0 }'
	) | LC_ALL=C sort | sha256sum | cut -d' ' -f1
}

fail() {
	echo "stress: iteration $i (seed $seed, delay ${delay}ms): $*" >&2
	exit 1
}

# The package, and one transaction over it made through the mount.
RANDOM=$seed
dirs=$(((files + 99) / 100))
for ((d = 0; d < dirs; d++)); do
	mkdir "$pkg/d$d"
	for ((f = 0; f < 100 && d * 100 + f < files; f++)); do
		printf 'file %d %d %d\n' "$d" "$f" "$RANDOM" >"$pkg/d$d/f$f.txt"
	done
done
old=$(snapshot "$pkg")
c mount "$pkg" "$mnt" || exit 1
(
	cd "$mnt" || exit 1
	for ((d = 0; d < dirs; d++)); do
		case $((RANDOM % 6)) in
		0) for x in d$d/f*.txt; do printf 'changed %d\n' $RANDOM >>"$x"; done ;;
		1) rm -r "d$d" ;;
		2) mkdir "d$d/new" && for ((f = 0; f < 50; f++)); do printf 'n\n' >"d$d/new/n$f"; done ;;
		3) chmod 700 d$d/f*.txt && ln -s "f1.txt" "d$d/link" ;;
		4) mv "d$d" "d$d.renamed" ;;
		5) ln "d$d/f1.txt" "d$d/hard" && mkfifo "d$d/fifo" && printf 'x\n' >>"d$d/f2.txt" &&
			setfattr -n user.stress -v "$RANDOM" "d$d/f2.txt" "d$d" ;;
		esac
	done
	# The top directory itself is part of the transaction too.
	chmod 750 . && setfattr -n user.stress-root -v "$RANDOM" .
) || exit 1
new=$(snapshot "$mnt")
txn=$(c status --json | sed -n 's/.*"txn":\([0-9]*\).*/\1/p' | head -1)
umount "$mnt" 2>/dev/null || fusermount3 -u "$mnt" || exit 1
for ((w = 0; w < 500; w++)); do
	c status | grep -q "^$txn	orphaned" && break
	sleep 0.01
done
cp -a "$pkg" "$work/tmpl-pkg" && cp -a "$store" "$work/tmpl-store" || exit 1

reset() {
	# cp -a gives PKG's top directory the template's mode and xattrs, but
	# leaves one it does not have: the commit's own.
	{ setfattr -x user.stress-root "$pkg" 2>/dev/null || true; } &&
		find "$pkg" -mindepth 1 -delete && cp -a "$work/tmpl-pkg/." "$pkg/" &&
		rm -rf "$store" && cp -a "$work/tmpl-store" "$store"
}

# How long an uninterrupted commit takes: delays are drawn from 0 to 1.2 times that.
reset || exit 1
t0=$(date +%s%N)
c commit "$txn" >/dev/null || fail "an uninterrupted commit failed"
full=$((($(date +%s%N) - t0) / 1000000))
[[ $(snapshot "$pkg") == "$new" ]] || fail "an uninterrupted commit did not give the mount's tree"
echo "stress: $files files, transaction $txn, a full commit takes ${full} ms; $iters iterations, seed $seed"

olds=0 news=0 rkills=0
for ((i = 1; i <= iters; i++)); do
	reset || fail "cannot reset"
	delay=$((RANDOM * (full * 12 / 10 + 1) / 32768))
	c_bg commit "$txn" &
	pid=$!
	sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
	kill -9 $pid 2>/dev/null
	wait $pid 2>/dev/null
	if ((RANDOM % 2)); then
		rdelay=$((RANDOM % (full / 3 + 1)))
		c_bg recover &
		pid=$!
		sleep "$(printf '%d.%03d' $((rdelay / 1000)) $((rdelay % 1000)))"
		kill -9 $pid 2>/dev/null
		wait $pid 2>/dev/null
		rkills=$((rkills + 1))
	fi
	out=$(c recover 2>&1) || fail "cjfs recover failed: $out"
	out=$(c recover 2>&1) || fail "a second cjfs recover failed: $out"
	[[ $out == "0 commit(s) finished, 0 reopened, 0 leftover(s) removed, 0 failed" ]] ||
		fail "a second recovery still had work to do: $out"
	now=$(snapshot "$pkg")
	state=$(c status | awk -v t="$txn" '$1 == t { print $2 }')
	if [[ $now == "$old" ]]; then
		[[ $state == orphaned ]] || fail "PKG is the old tree but transaction $txn is '$state'"
		olds=$((olds + 1))
	elif [[ $now == "$new" ]]; then
		[[ -z $state ]] || fail "PKG is the new tree but transaction $txn is '$state'"
		news=$((news + 1))
	else
		fail "PKG is neither the old nor the new tree"
	fi
	litter=$(find "$pkg" -name '.cjfs-*' | head -3)
	[[ -z $litter ]] || fail "temporaries left in PKG: $litter"
	out=$(c verify 2>&1) || fail "cjfs verify failed: $out"
	((i % 10 == 0)) && echo "stress: $i/$iters: $olds old, $news new, $rkills recoveries killed"
done
echo "stress: ok: $iters kills, $olds old, $news new, $rkills recoveries killed too"
