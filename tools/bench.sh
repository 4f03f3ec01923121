#!/usr/bin/env bash
# cjfs benchmark: the same workloads on a native directory, kernel overlayfs
# (when root), fuse-overlayfs and cjfs, interleaved round by round (A B C D A B
# C D ...), each round on a fresh copy of the tree with an empty upper layer.
# Reports per workload the median time of each system and the median of its
# per-round ratio to native (paired: measured in the same round).
#
#   tools/bench.sh [-r ROUNDS] [-w LIST] [-s LIST] [--tmpfs] [--scale] [-o FILE]
#     -r N        rounds (default 5)
#     -w LIST     workloads, comma separated (default: all of
#                 sed,clang-format,black,smallfiles,rmrf,stat,git,bigfile)
#     -s LIST     systems (default: native,overlay,fuse-overlayfs,cjfs; also
#                 cjfs-nopt: cjfs with kernel passthrough turned off,
#                 cjfs-devfuse: cjfs with requests through /dev/fuse, not io_uring,
#                 cjfs-base: the cjfs binary named by $CJFS_BASE, say a build of
#                 the commit before a change, for a before/after in one run,
#                 passthrough_ll: libfuse's own passthrough example, built
#                 from libfuse3-dev's examples: no overlay, no backup, the
#                 cost of FUSE itself on this machine)
#     --tmpfs     put trees, layers and the cjfs store on a tmpfs
#     --busy      keep one CPU busy for the whole run (a process spinning in
#                 a loop), so cleaner and daemon share what is left
#     --scale     also run the cjfs-only growth measurements (mount time,
#                 status/commit/rollback vs changed files, daemon RSS)
#     -o FILE     append the markdown report to FILE as well
# Needs: root for kernel overlayfs, dropping caches and turning on the fuse
# module's enable_uring for the run (put back after); black, clang-format,
# git, fuse-overlayfs (tools/setup.sh --bench installs them); libfuse3-dev and
# a C compiler for passthrough_ll.
set -euo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
CJFS=${CJFS:-$here/build/tools/cjfs}
rounds=5
workloads=sed,clang-format,black,smallfiles,rmrf,stat,git,bigfile
systems=native,overlay,fuse-overlayfs,cjfs
use_tmpfs=0
busy=0
busy_pid=
scale=0
outfile=
BLACK_FILES=${BLACK_FILES:-80}
CF_FILES=${CF_FILES:-400}
SMALL_FILES=${SMALL_FILES:-10000}
BIG_MB=${BIG_MB:-1024}

while (($#)); do
	case $1 in
	-r) rounds=$2; shift 2 ;;
	-w) workloads=$2; shift 2 ;;
	-s) systems=$2; shift 2 ;;
	--tmpfs) use_tmpfs=1; shift ;;
	--busy) busy=1; shift ;;
	--scale) scale=1; shift ;;
	-o) outfile=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/{/^set -euo/d;p}' "$0"; exit 0 ;;
	*) echo "bench: unknown argument '$1'" >&2; exit 2 ;;
	esac
done

[[ -x $CJFS ]] || { echo "bench: build cjfs first (meson compile -C build)" >&2; exit 1; }
root=0
[[ $(id -u) == 0 ]] && root=1
if ((!root)) && [[ ,$systems, == *,overlay,* ]]; then
	systems=$(echo ",$systems," | sed 's/,overlay,/,/; s/^,//; s/,$//')
	echo "bench: not root: kernel overlayfs skipped" >&2
fi
command -v fuse-overlayfs >/dev/null || systems=$(echo ",$systems," | sed 's/,fuse-overlayfs,/,/; s/^,//; s/,$//')

base=${BENCH_DIR:-/var/tmp/cjfs-bench}
mkdir -p "$base"
own_tmpfs=0
if ((use_tmpfs)) && ! mountpoint -q "$base"; then
	mount -t tmpfs -o size=8g tmpfs "$base" && own_tmpfs=1
fi
src=$base/src
work=$base/work

# libfuse's passthrough_ll example: what FUSE alone costs here, with no
# overlay and no backup (writes go straight to the round's own tree).
pll=$base/passthrough_ll
if [[ ,$systems, == *,passthrough_ll,* ]]; then
	ex=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
	[[ -f $ex ]] || { [[ -f $ex.gz ]] && zcat "$ex.gz" >"$base/passthrough_ll.c" && ex=$base/passthrough_ll.c; }
	# Built once per BENCH_DIR, again only when the example is newer.
	if [[ ! -f $ex ]] || { ! [[ -x $pll && $pll -nt $ex ]] &&
		! cc -O2 -o "$pll" "$ex" $(pkg-config --cflags --libs fuse3) 2>/dev/null; }; then
		echo "bench: cannot build libfuse's passthrough_ll example (libfuse3-dev): passthrough_ll skipped" >&2
		systems=$(echo ",$systems," | sed 's/,passthrough_ll,/,/; s/^,//; s/,$//')
	fi
fi
results=$base/results.$(date +%Y%m%d-%H%M%S).tsv
: >"$results"

# FUSE over io_uring is off in the kernel by default; cjfs uses it when it is
# on. As root the run turns it on (cjfs-devfuse shows cjfs without it) and
# puts it back at the end.
uring_param=/sys/module/fuse/parameters/enable_uring
uring_was=
if ((root)) && [[ -w $uring_param ]] && [[ $(cat "$uring_param") != Y ]]; then
	uring_was=$(cat "$uring_param")
	echo Y >"$uring_param" && echo "bench: fuse enable_uring turned on for this run" >&2
fi

cleanup_mounts() {
	[[ -n $busy_pid ]] && kill "$busy_pid" 2>/dev/null
	[[ -n $uring_was ]] && echo "$uring_was" >"$uring_param"
	for m in "$work"/*/mnt; do
		[[ -d $m ]] || continue
		mountpoint -q "$m" 2>/dev/null && { umount "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || umount -l "$m"; }
	done
	# The tmpfs this run mounted goes too; its raw results are kept beside it.
	if ((own_tmpfs)); then
		cd / && cp -f "$results" "${base%/}.$(basename "$results")" 2>/dev/null
		umount "$base" 2>/dev/null || umount -l "$base"
	fi
	return 0
}
trap cleanup_mounts EXIT
if ((busy)); then
	(while :; do :; done) &
	busy_pid=$!
fi

now() { date +%s%N; }
drop_caches() { ((root)) && { sync; echo 3 >/proc/sys/vm/drop_caches; } || true; }

# ---- source trees (built once) ----
prepare_sources() {
	[[ -f $src/.ready ]] && return
	rm -rf "$src"
	mkdir -p "$src"
	cp -a /usr/lib/python3.11 "$src/py"
	find "$src/py" -name __pycache__ -prune -exec rm -rf {} +
	mkdir -p "$src/headers"
	find /usr/include -name '*.h' -size -64k | sort >"$base/headers.list"
	head -n "$CF_FILES" "$base/headers.list" | while read -r h; do
		d=$src/headers/$(dirname "${h#/usr/include/}")
		mkdir -p "$d"
		cp "$h" "$d/"
	done
	mkdir -p "$src/blackslice"
	find "$src/py" -maxdepth 1 -name '*.py' | sort >"$base/black.list"
	head -n "$BLACK_FILES" "$base/black.list" | xargs -I{} cp {} "$src/blackslice/"
	# A git work tree: the Python tree, committed.
	cp -a "$src/py" "$src/gitrepo"
	git -C "$src/gitrepo" init -q
	git -C "$src/gitrepo" -c user.email=b@b -c user.name=b add -A
	git -C "$src/gitrepo" -c user.email=b@b -c user.name=b commit -qm init
	mkdir -p "$src/empty"
	touch "$src/.ready"
}

# cjfs itself, as system $1 wants it.
cj() {
	local sys=$1
	shift
	case $sys in
	cjfs-nopt) CJFS_NO_PASSTHROUGH=1 "$CJFS" "$@" ;;
	cjfs-devfuse) CJFS_NO_URING=1 "$CJFS" "$@" ;;
	cjfs-base) "${CJFS_BASE:?cjfs-base needs CJFS_BASE=/path/to/cjfs}" "$@" ;;
	*) "$CJFS" "$@" ;;
	esac
}

# ---- systems: setup <sys> <tree> -> prints the directory to work in ----
sys_up() {
	local sys=$1 tree=$2 d=$work/$sys
	rm -rf "$d"
	mkdir -p "$d/lower" "$d/upper" "$d/work" "$d/mnt" "$d/store"
	cp -a "$src/$tree/." "$d/lower/"
	case $sys in
	native) echo "$d/lower" ;;
	overlay)
		mount -t overlay overlay -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" "$d/mnt"
		echo "$d/mnt" ;;
	fuse-overlayfs)
		fuse-overlayfs -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" "$d/mnt"
		echo "$d/mnt" ;;
	passthrough_ll)
		"$pll" -o "source=$d/lower" "$d/mnt"
		echo "$d/mnt" ;;
	cjfs*)
		CJFS_HOME=$d/store cj "$sys" mount "$d/lower" "$d/mnt"
		echo "$d/mnt" ;;
	esac
}

sys_down() {
	local sys=$1 d=$work/$sys
	case $sys in
	overlay) umount "$d/mnt" ;;
	fuse-overlayfs | passthrough_ll) fusermount3 -u "$d/mnt" ;;
	cjfs*) CJFS_HOME=$d/store cj "$sys" rollback "$d/mnt" >/dev/null ;;
	esac
	rm -rf "$d"
}

# Remount without changing anything: the next access is "first after mount".
sys_remount() {
	local sys=$1 d=$work/$sys
	case $sys in
	overlay) umount "$d/mnt"; mount -t overlay overlay -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" "$d/mnt" ;;
	fuse-overlayfs) fusermount3 -u "$d/mnt"; fuse-overlayfs -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" "$d/mnt" ;;
	passthrough_ll) fusermount3 -u "$d/mnt"; "$pll" -o "source=$d/lower" "$d/mnt" ;;
	cjfs*)
		local txn
		txn=$(CJFS_HOME=$d/store cj "$sys" status --json | sed -n 's/.*"txn":\([0-9]*\).*/\1/p' | head -n1)
		fusermount3 -u "$d/mnt"
		while CJFS_HOME=$d/store cj "$sys" status | grep -q "	open	"; do sleep 0.01; done
		CJFS_HOME=$d/store cj "$sys" mount --resume "$txn" "$d/mnt" ;;
	native) drop_caches ;;
	esac
}

record() { # workload sys round seconds
	printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$results"
}

timeit() { # prints seconds taken by "$@" (run in the current directory)
	local t0 t1
	t0=$(now)
	"$@" >/dev/null 2>&1
	t1=$(now)
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }'
}

# ---- workloads: each runs in its own fresh tree per system ----
w_sed() { find . -name '*.py' -print0 | xargs -0 sed -i 's/[ \t]*$//'; }
w_clang_format() { find . -name '*.h' -print0 | xargs -0 clang-format -i; }
w_black() { black -q . || true; }
w_small_create() {
	local i
	mkdir small
	for ((i = 0; i < SMALL_FILES; i += 1000)); do
		(cd small && seq -f "f%g" "$i" $((i + 999)) | xargs touch)
	done
}
w_small_delete() { rm -rf small; }
w_rmrf() { rm -rf ./*; }
w_stat() { find . -type f -print0 | xargs -0 stat >/dev/null; }
w_git() { git status --porcelain >/dev/null; }
w_bigwrite() { dd if=/dev/zero of=big bs=1M count="$BIG_MB" conv=fsync status=none; }
w_bigread() { dd if=big of=/dev/null bs=1M status=none; }

run_workload() { # workload round sys
	local w=$1 r=$2 sys=$3 dir t
	case $w in
	sed)
		dir=$(sys_up "$sys" py); cd "$dir"; t=$(timeit w_sed); record sed "$sys" "$r" "$t" ;;
	clang-format)
		dir=$(sys_up "$sys" headers); cd "$dir"; t=$(timeit w_clang_format); record clang-format "$sys" "$r" "$t" ;;
	black)
		dir=$(sys_up "$sys" blackslice); cd "$dir"; t=$(timeit w_black); record black "$sys" "$r" "$t" ;;
	smallfiles)
		dir=$(sys_up "$sys" empty); cd "$dir"
		t=$(timeit w_small_create); record "create ${SMALL_FILES}" "$sys" "$r" "$t"
		t=$(timeit w_small_delete); record "delete ${SMALL_FILES}" "$sys" "$r" "$t" ;;
	rmrf)
		dir=$(sys_up "$sys" py); cd "$dir"; t=$(timeit w_rmrf); record "rm -rf tree" "$sys" "$r" "$t" ;;
	stat)
		dir=$(sys_up "$sys" py); sys_remount "$sys"; cd "$dir"
		t=$(timeit w_stat); record "find+stat first" "$sys" "$r" "$t"
		t=$(timeit w_stat); record "find+stat again" "$sys" "$r" "$t" ;;
	git)
		dir=$(sys_up "$sys" gitrepo); sys_remount "$sys"; cd "$dir"
		t=$(timeit w_git); record "git status first" "$sys" "$r" "$t"
		t=$(timeit w_git); record "git status again" "$sys" "$r" "$t" ;;
	bigfile)
		dir=$(sys_up "$sys" empty); cd "$dir"
		t=$(timeit w_bigwrite); record "${BIG_MB} MiB write+fsync" "$sys" "$r" "$t"
		cd /; sys_remount "$sys"; drop_caches; cd "$dir"
		t=$(timeit w_bigread); record "${BIG_MB} MiB read cold" "$sys" "$r" "$t"
		t=$(timeit w_bigread); record "${BIG_MB} MiB read warm" "$sys" "$r" "$t" ;;
	esac
	cd /
	sys_down "$sys"
}

prepare_sources
mkdir -p "$work"
IFS=, read -r -a wl <<<"$workloads"
IFS=, read -r -a sl <<<"$systems"
for ((r = 1; r <= rounds; r++)); do
	for w in "${wl[@]}"; do
		for s in "${sl[@]}"; do
			run_workload "$w" "$r" "$s"
		done
	done
	echo "bench: round $r/$rounds done" >&2
done

# ---- report ----
report() {
	echo "### $(date -u +%Y-%m-%d) — $rounds rounds, $(nproc) CPUs, $(uname -r)$( ((use_tmpfs)) && echo ', all on tmpfs')$( ((busy)) && echo ', one CPU kept busy')"
	echo
	echo "Versions: $("$CJFS" --version), $( (fuse-overlayfs --version 2>&1 || echo 'no fuse-overlayfs') | grep -m1 -E 'fuse-overlayfs'), black $(black --version 2>/dev/null | head -n1 | awk '{print $2}'), $(clang-format --version | awk '{print $NF}'), $(git --version), libfuse $(pkg-config --modversion fuse3 2>/dev/null || echo unknown)."
	echo "Backing file system: $(df -T "$base" | awk 'NR==2 {print $2}'); fuse enable_uring: $(cat /sys/module/fuse/parameters/enable_uring 2>/dev/null || echo absent). Median seconds (median of per-round ratio to native)."
	echo
	awk -F'\t' -v systems="${systems}" '
	function median(arr, n,   i, j, t) {
		for (i = 2; i <= n; i++) { t = arr[i]; for (j = i - 1; j >= 1 && arr[j] > t; j--) arr[j + 1] = arr[j]; arr[j + 1] = t }
		return n % 2 ? arr[(n + 1) / 2] : (arr[n / 2] + arr[n / 2 + 1]) / 2
	}
	function header(cols, nc,   c) {
		printf "| workload |"; for (c = 1; c <= nc; c++) printf " %s |", cols[c]
		printf "\n|---|"; for (c = 1; c <= nc; c++) printf "---|"; printf "\n"
	}
	{ key = $1 SUBSEP $2 SUBSEP $3; t[key] = $4; if (!($1 in seen)) { seen[$1] = 1; order[++nw] = $1 } rounds[$3] = 1 }
	END {
		ns = split(systems, sys, ",")
		header(sys, ns)
		for (k = 1; k <= nw; k++) {
			w = order[k]; printf "| %s |", w
			for (s = 1; s <= ns; s++) {
				n = 0; m = 0
				for (r in rounds) {
					if ((w SUBSEP sys[s] SUBSEP r) in t) { v[++n] = t[w SUBSEP sys[s] SUBSEP r]
						if ((w SUBSEP "native" SUBSEP r) in t && t[w SUBSEP "native" SUBSEP r] > 0) rt[++m] = v[n] / t[w SUBSEP "native" SUBSEP r] }
				}
				if (!n) { printf " – |"; continue }
				med = median(v, n)
				if (sys[s] == "native" || !m) printf " %.3f |", med
				else printf " %.3f (%.2fx) |", med, median(rt, m)
			}
			printf "\n"
		}
		# The issue asks for strictly faster than fuse-overlayfs: paired round by round.
		ref = "fuse-overlayfs"; nc = 0
		for (s = 1; s <= ns; s++) if (sys[s] != "native" && sys[s] != ref) cmp[++nc] = sys[s]
		if (index("," systems ",", "," ref ",") && nc) {
			printf "\nAgainst fuse-overlayfs in the same round (median of per-round ratios; rounds faster):\n\n"
			header(cmp, nc)
			for (k = 1; k <= nw; k++) {
				w = order[k]; printf "| %s |", w
				for (s = 1; s <= nc; s++) {
					m = 0; fast = 0
					for (r in rounds) {
						a = w SUBSEP cmp[s] SUBSEP r; b = w SUBSEP ref SUBSEP r
						if ((a in t) && (b in t) && t[b] > 0) { rt[++m] = t[a] / t[b]; if (t[a] < t[b]) fast++ }
					}
					if (!m) printf " – |"
					else printf " %.2f (%d of %d) |", median(rt, m), fast, m
				}
				printf "\n"
			}
		}
	}' "$results"
	echo
}

scale_report() {
	local d=$base/scale s n t0 t1 txn rss
	echo "#### cjfs growth"
	echo
	echo "| measure | 1k | 10k | 100k |"
	echo "|---|---|---|---|"
	printf '| mount time, tree of N files (ms) |'
	for n in 1000 10000 100000; do
		rm -rf "$d"; mkdir -p "$d/pkg" "$d/mnt"
		for ((i = 0; i < n; i += 1000)); do mkdir -p "$d/pkg/d$i"; (cd "$d/pkg/d$i" && seq -f 'f%g' 1 1000 | xargs touch); done
		t0=$(now); CJFS_HOME=$d/store "$CJFS" mount "$d/pkg" "$d/mnt"; stat "$d/mnt" >/dev/null; t1=$(now)
		printf ' %.1f |' "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print (b-a)/1e6}')"
		if ((n == 100000)); then
			find "$d/mnt" -type f -print0 | xargs -0 cat >/dev/null
			rss=$(awk '/VmHWM/ {print $2}' /proc/"$(pgrep -f "cjfs mount $d/pkg" | head -n1)"/status)
		fi
		CJFS_HOME=$d/store "$CJFS" rollback "$d/mnt" >/dev/null
	done
	echo
	echo "| daemon peak RSS after find \\| xargs cat of 100k files | | | ${rss} KiB |"
	echo
	# Each changed file gets content of its own (its path), as a formatter's
	# output is: one new blob per file. "status, not mounted" reads the
	# layers offline (the transaction left open, its mount taken down).
	echo "| measure, N changed files in a 100k-file tree | 100 | 1,000 | 10,000 |"
	echo "|---|---|---|---|"
	for op in status status-offline commit rollback; do
		printf '| %s (ms) |' "${op/-offline/, not mounted}"
		for n in 100 1000 10000; do
			rm -rf "$d/store"
			CJFS_HOME=$d/store "$CJFS" mount "$d/pkg" "$d/mnt"
			find "$d/mnt" -type f >"$d/files.list"
			head -n "$n" "$d/files.list" | while read -r f; do echo "changed $f" >>"$f"; done
			if [[ $op == status-offline ]]; then
				# The mount down and its daemon gone: status reads the layers.
				fusermount3 -u "$d/mnt"
				while pgrep -f "cjfs mount $d/pkg" >/dev/null; do sleep 0.05; done
			fi
			t0=$(now)
			case $op in
			status) CJFS_HOME=$d/store "$CJFS" status "$d/mnt" >/dev/null ;;
			status-offline) CJFS_HOME=$d/store "$CJFS" status 1 >/dev/null ;;
			commit) CJFS_HOME=$d/store "$CJFS" commit "$d/mnt" >/dev/null ;;
			rollback) CJFS_HOME=$d/store "$CJFS" rollback "$d/mnt" >/dev/null ;;
			esac
			t1=$(now)
			case $op in
			status) CJFS_HOME=$d/store "$CJFS" rollback "$d/mnt" >/dev/null ;;
			status-offline) CJFS_HOME=$d/store "$CJFS" rollback 1 >/dev/null ;;
			esac
			printf ' %.1f |' "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print (b-a)/1e6}')"
		done
		echo
	done
	rm -rf "$d"
	echo
}

{
	report
	if ((scale)); then scale_report; fi
} | tee -a "${outfile:-/dev/null}"
echo "bench: raw results in $( ((own_tmpfs)) && echo "${base%/}.$(basename "$results")" || echo "$results")" >&2
