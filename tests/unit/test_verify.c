// SPDX-License-Identifier: MIT
/* store_verify(): each kind of finding, on a store built through the store API (no mount). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store.h"

static char dir[PATH_MAX];
static struct store *s;
static int64_t txn;

static void setup(void)
{
	const char *tmp = getenv("TMPDIR");
	char path[PATH_MAX + 16];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s/cjfs-unit.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/store", dir);
	cr_assert_eq(store_open(path, STORE_OPEN_CREATE, &s), 0);
	snprintf(path, sizeof(path), "%s/pkg", dir);
	cr_assert_eq(mkdir(path, 0755), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(store_txn_begin(s, path, &st, NULL, 0, 0, &txn, NULL), 0);
}

static void teardown(void)
{
	char cmd[PATH_MAX + 16];

	store_close(s);
	s = NULL;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)!system(cmd);
}

TestSuite(verify_store, .init = setup, .fini = teardown, .timeout = 60);

/* Store content and record it as the original of path in the transaction. */
static void record(const char *path, const char *content, uint8_t ret[HASH_LEN])
{
	struct store_entry e = { .mode = S_IFREG | 0644, .has_hash = true };

	cr_assert_eq(store_put_buf(s, content, strlen(content), e.hash), 0);
	e.size = strlen(content);
	cr_assert_eq(store_change_record(s, txn, path, &e), 1);
	if (ret)
		memcpy(ret, e.hash, HASH_LEN);
}

static char *blob_path(const uint8_t h[HASH_LEN])
{
	char name[96];

	return util_xasprintf("%s/store/%s", dir, store_blob_name(h, name));
}

static void check(size_t defects, size_t warnings, struct store_verify_report *rep)
{
	cr_assert_eq(store_verify(s, rep), 0);
	cr_assert_eq(rep->defects, defects, "%zu defects, not %zu", rep->defects, defects);
	cr_assert_eq(rep->warnings, warnings, "%zu warnings, not %zu", rep->warnings, warnings);
}

Test(verify_store, a_sound_store_has_no_findings)
{
	struct store_verify_report rep;

	record("a.txt", "alpha\n", NULL);
	record("b.txt", "beta\n", NULL);
	check(0, 0, &rep);
	cr_assert_eq(rep.blobs, 2);
	cr_assert_eq(rep.rows, 2);
	cr_assert_eq(rep.refs, 2);
	store_verify_release(&rep);
}

Test(verify_store, a_corrupt_blob_is_named_with_what_refers_to_it)
{
	struct store_verify_report rep;
	uint8_t h[HASH_LEN];
	char *path, name[96];
	int fd;

	record("src/a.c", "int a;\n", h);
	path = blob_path(h);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	cr_assert(fd >= 0);
	cr_assert_eq(pwrite(fd, "I", 1, 0), 1);
	close(fd);
	check(1, 0, &rep);
	cr_assert_eq(rep.issues[0].kind, STORE_VERIFY_CORRUPT);
	cr_assert(rep.issues[0].has_hash && !memcmp(rep.issues[0].hash, h, HASH_LEN));
	cr_assert_str_eq(rep.issues[0].path, store_blob_name(h, name));
	cr_assert_not_null(strstr(rep.issues[0].detail, "original of 'src/a.c' in transaction 1"),
			   "%s", rep.issues[0].detail);
	store_verify_release(&rep);
	free(path);
}

Test(verify_store, a_missing_blob_is_a_defect)
{
	struct store_verify_report rep;
	uint8_t h[HASH_LEN];
	char *path;

	record("a.txt", "alpha\n", h);
	path = blob_path(h);
	cr_assert_eq(unlink(path), 0);
	check(1, 0, &rep);
	cr_assert_eq(rep.issues[0].kind, STORE_VERIFY_MISSING);
	cr_assert_not_null(strstr(rep.issues[0].detail, "'a.txt'"));
	store_verify_release(&rep);
	free(path);
}

Test(verify_store, stray_files_are_defects_and_orphans_only_warnings)
{
	struct store_verify_report rep;
	uint8_t h[HASH_LEN];
	char path[PATH_MAX + 64], *bp;
	int fd;

	record("a.txt", "alpha\n", NULL);
	/* A valid blob nothing indexes: what a process killed after publishing it leaves. */
	cr_assert_eq(hash_buf("orphan", 6, h), 0);
	bp = blob_path(h);
	*strrchr(bp, '/') = '\0';
	(void)mkdir(bp, 0700);
	*strchr(bp, '\0') = '/';
	fd = open(bp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert(fd >= 0, "%s: %s", bp, strerror(errno));
	cr_assert_eq(write(fd, "orphan", 6), 6);
	close(fd);
	check(0, 1, &rep);
	cr_assert_eq(rep.issues[0].kind, STORE_VERIFY_ORPHAN);
	store_verify_release(&rep);
	/* Not a blob at all. */
	snprintf(path, sizeof(path), "%s/store/objects/junk", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert(fd >= 0);
	close(fd);
	check(1, 1, &rep);
	store_verify_release(&rep);
	free(bp);
}

Test(verify_store, a_change_referring_to_an_unknown_hash_is_a_defect)
{
	struct store_entry e = { .mode = S_IFREG | 0644, .has_hash = true, .size = 3 };
	struct store_verify_report rep;
	char *bp;
	int fd;

	/* Recorded without ever being stored. */
	cr_assert_eq(hash_buf("abc", 3, e.hash), 0);
	cr_assert_eq(store_change_record(s, txn, "ghost.txt", &e), 1);
	check(1, 0, &rep);
	cr_assert_eq(rep.issues[0].kind, STORE_VERIFY_MISSING);
	cr_assert_not_null(strstr(rep.issues[0].detail, "'ghost.txt'"));
	store_verify_release(&rep);
	/*
	 * The bytes appear, but the blob table still does not know them (a
	 * writer killed between its rename and its row): intact, so warnings
	 * (dangling and orphan), not defects; seal and gc index such a blob.
	 */
	bp = blob_path(e.hash);
	*strrchr(bp, '/') = '\0';
	(void)mkdir(bp, 0700);
	*strchr(bp, '\0') = '/';
	fd = open(bp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert(fd >= 0, "%s: %s", bp, strerror(errno));
	cr_assert_eq(write(fd, "abc", 3), 3);
	close(fd);
	check(0, 2, &rep);
	for (size_t i = 0; i < rep.n; i++)
		cr_assert(rep.issues[i].kind == STORE_VERIFY_DANGLING ||
			  rep.issues[i].kind == STORE_VERIFY_ORPHAN);
	store_verify_release(&rep);
	free(bp);
}
