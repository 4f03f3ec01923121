#!/usr/bin/env bash
# Install, build and run the whole test suite: unit and integration tests on
# the normal build, then again on an ASan/UBSan build. Ends with the line
# "N passed, N failed" (N counts Criterion test cases).
set -uo pipefail
cd "$(dirname "$0")/.."

tools/setup.sh --tests || exit 1

# FUSE over io_uring (fs/uring.c) is used when the fuse module allows it,
# which is off by default: turn it on for the run, so that the suite covers
# the ring, and put it back after. test_uring and one of the nobody runs
# below cover requests through /dev/fuse.
uring_param=/sys/module/fuse/parameters/enable_uring
uring_was=
if [[ $(id -u) == 0 && -w $uring_param ]]; then
	uring_was=$(cat "$uring_param")
	echo Y >"$uring_param" 2>/dev/null || uring_was=
	trap 'if [[ -n $uring_was ]]; then echo "$uring_was" >"$uring_param"; fi' EXIT
fi

status=0
run_suite() { # build-dir
	local dir=$1
	echo "== meson test -C $dir"
	if ! meson test -C "$dir" --print-errorlogs --num-processes 1; then
		status=1
	fi
}

# The normal build's fault-injection suite fails every durable call of a
# commit in turn, not a sample (about 2 minutes here); the sanitizer build
# keeps the sample. CJFS_TEST_FAULT_ALL=0 samples here too.
CJFS_TEST_FAULT_ALL=${CJFS_TEST_FAULT_ALL:-1} run_suite build

# The transaction suite once more as an ordinary user, who mounts through the
# setuid fusermount3 (root mounts directly): once over the ring (when the
# kernel allows it) and once through /dev/fuse. The binaries are
# self-contained; copies in a world-readable directory let the user run them
# wherever this clone lives. /dev/fuse is opened to others for the run if it
# is not already (Debian's default is 0666; some containers ship 0600) and
# put back after.
nonroot_log=$(mktemp /tmp/cjfs-nonroot.XXXXXX.log)
run_nonroot() {
	local dir mode rc=0 no_uring log
	dir=$(mktemp -d /tmp/cjfs-nonroot.XXXXXX) || return 1
	cp build/tests/itest_transaction build/tools/cjfs "$dir" && chmod 755 "$dir" || return 1
	mode=$(stat -c %a /dev/fuse)
	chmod o+rw /dev/fuse
	log=$(mktemp /tmp/cjfs-nonroot.XXXXXX.log)
	for no_uring in 0 1; do
		echo "== itest_transaction as nobody (CJFS_NO_URING=$no_uring)"
		(cd /tmp && timeout 600 setpriv --reuid=nobody --regid=nogroup --clear-groups \
			env HOME=/tmp CJFS_NO_URING=$no_uring CJFS_BIN="$dir/cjfs" \
			"$dir/itest_transaction" --verbose=0) >"$log" 2>&1 || rc=1
		cat "$log"
		grep -q 'Synthesis:' "$log" ||
			echo "Synthesis: Tested: 1 | Passing: 0 | Failing: 0 | Crashing: 1" >>"$log"
		cat "$log" >>"$nonroot_log"
	done
	chmod "$mode" /dev/fuse
	rm -rf "$dir" "$log"
	return $rc
}
if [[ $(id -u) == 0 && -c /dev/fuse ]] && id nobody >/dev/null 2>&1 && command -v setpriv >/dev/null; then
	run_nonroot || status=1
fi

if [[ ${CJFS_NO_ASAN:-} != 1 ]]; then
	if [[ ! -f build-asan/build.ninja ]]; then
		meson setup build-asan -Db_sanitize=address,undefined -Db_lundef=false >/dev/null || exit 1
	fi
	meson compile -C build-asan >/dev/null || exit 1
	run_suite build-asan
fi

# Sum Criterion's per-executable synthesis lines; an executable that died
# before reporting counts as one failure.
passed=0
failed=0
for log in build/meson-logs/testlog.txt build-asan/meson-logs/testlog.txt "$nonroot_log"; do
	[[ -f $log ]] || continue
	while read -r p f c; do
		passed=$((passed + p))
		failed=$((failed + f + c))
	done < <(sed -n 's/.*Synthesis: Tested: [0-9]* | Passing: \([0-9]*\) | Failing: \([0-9]*\) | Crashing: \([0-9]*\).*/\1 \2 \3/p' "$log")
	n_exe_fail=$(grep -cE '^ *[0-9]+/[0-9]+ .* (FAIL|TIMEOUT)' "$log" || true)
	n_synth_fail=$(sed -n 's/.*Synthesis:.*Failing: \([0-9]*\) | Crashing: \([0-9]*\).*/\1 \2/p' "$log" | awk '$1+$2>0' | wc -l)
	if ((n_exe_fail > n_synth_fail)); then
		failed=$((failed + n_exe_fail - n_synth_fail))
	fi
done
if ((status != 0 && failed == 0)); then
	failed=1
fi
rm -f "$nonroot_log"
echo "$passed passed, $failed failed"
((failed == 0))
