// SPDX-License-Identifier: MIT
/*
 * fs/layer.c: the upper-layer encoding (escaped names, whiteouts, opaque and
 * origin markers), the merged lookup, the merged listing, and the offline
 * view that seal and status use when no mount is up. A user's file named
 * like a marker must behave like any other file.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs_int.h"
#include "unit.h"

static char root[PATH_MAX];
static int upfd = -1; /* the upper layer */
static int lofd = -1; /* the lower layer (PKG) */

static void setup(void)
{
	u_tmpdir(root);
	upfd = u_mkdir_open(root, "upper", NULL);
	lofd = u_mkdir_open(root, "lower", NULL);
}

static void teardown(void)
{
	if (upfd >= 0)
		close(upfd);
	if (lofd >= 0)
		close(lofd);
	u_rmtree(root);
}

TestSuite(layer_name, .init = setup, .fini = teardown);
TestSuite(layer_lookup, .init = setup, .fini = teardown);
TestSuite(layer_list, .init = setup, .fini = teardown);
TestSuite(layer_view, .init = setup, .fini = teardown);

/* A name of n bytes, distinct per seed. */
static void long_name(char buf[NAME_MAX + 1], size_t n, char seed)
{
	memset(buf, 'a', n);
	buf[0] = seed;
	buf[n] = '\0';
}

/* Create a user's file in an upper directory, under its encoded name. */
static void upper_file(int dirfd, const char *name, const char *content)
{
	char buf[NAME_MAX + 1];
	const char *uname;

	cr_assert(eq(int, layer_encode(name, buf, &uname), 0));
	u_write(dirfd, uname, content, 0644);
}

static enum layer_where lookup(int u, int l, const char *name, struct stat *st)
{
	enum layer_where where = (enum layer_where) - 1;
	struct stat dummy;
	int r = layer_lookup(u, l, name, st ? st : &dummy, &where);

	cr_assert(eq(int, r, 0), "layer_lookup '%s': %s", name, strerror(-r));
	return where;
}

/* ---- names ---- */

Test(layer_name, ordinary_names_are_not_escaped)
{
	static const char *const names[] = { "a", ".cjfs", ".cjfsX", "x.cjfs~wh.y", ".cjf~", "-" };
	char buf[NAME_MAX + 1];
	const char *u;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		cr_assert(eq(int, layer_encode(names[i], buf, &u), 0));
		cr_assert(u == names[i], "name %s was rewritten to %s", names[i], u);
		cr_assert(layer_decode(names[i]) == names[i]);
	}
}

Test(layer_name, names_with_the_reserved_prefix_are_escaped_and_decoded_back)
{
	static const char *const names[] = {
		".cjfs~",	".cjfs~x",	".cjfs~wh.x", ".cjfs~wH.x",
		".cjfs~opaque", ".cjfs~origin", ".cjfs~u.x",  ".cjfs~new.1",
	};
	char buf[NAME_MAX + 1], expect[NAME_MAX + 1];
	const char *u;

	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		cr_assert(eq(int, layer_encode(names[i], buf, &u), 0));
		snprintf(expect, sizeof(expect), ".cjfs~u.%s", names[i]);
		cr_assert_str_eq(u, expect);
		cr_assert_not_null(layer_decode(u), "escaped %s decodes as a marker", names[i]);
		cr_assert_str_eq(layer_decode(u), names[i]);
		cr_assert_not(layer_is_whiteout(u, &u), "escaped %s is a whiteout", names[i]);
	}
}

Test(layer_name, markers_decode_to_null)
{
	static const char *const markers[] = {
		".cjfs~wh.x",	".cjfs~wH.0123", ".cjfs~opaque",
		".cjfs~origin", ".cjfs~new.42",	 ".cjfs~",
	};

	for (size_t i = 0; i < ARRAY_SIZE(markers); i++)
		cr_assert_null(layer_decode(markers[i]), "marker %s decodes to a name", markers[i]);
}

Test(layer_name, escaped_names_that_do_not_fit_are_refused)
{
	char name[NAME_MAX + 2], buf[NAME_MAX + 1];
	const char *u;

	memcpy(name, ".cjfs~", 6);
	memset(name + 6, 'x', sizeof(name) - 6);
	name[NAME_MAX - 8] = '\0'; /* 247 bytes: 255 once escaped */
	cr_assert(eq(int, layer_encode(name, buf, &u), 0));
	cr_assert(eq(sz, strlen(u), NAME_MAX));
	name[NAME_MAX - 8] = 'x';
	name[NAME_MAX - 7] = '\0'; /* 248 bytes */
	cr_assert(eq(int, layer_encode(name, buf, &u), -ENAMETOOLONG));
	memset(name, 'y', sizeof(name));
	name[NAME_MAX + 1] = '\0';
	cr_assert(eq(int, layer_encode(name, buf, &u), -ENAMETOOLONG));
}

Test(layer_name, whiteout_names_fit_name_max)
{
	char name[NAME_MAX + 1], other[NAME_MAX + 1], wh[NAME_MAX + 1], wh2[NAME_MAX + 1];
	char key[NAME_MAX + 1];
	const char *k;

	layer_whiteout_name("x", wh);
	cr_assert_str_eq(wh, ".cjfs~wh.x");
	cr_assert(layer_is_whiteout(wh, &k));
	cr_assert_str_eq(k, "x");
	cr_assert_str_eq(layer_whiteout_key("x", key), "x");

	/* 246 bytes still fit with the prefix. */
	long_name(name, NAME_MAX - 9, 'b');
	layer_whiteout_name(name, wh);
	cr_assert(eq(sz, strlen(wh), NAME_MAX));
	cr_assert(eq(int, strncmp(wh, ".cjfs~wh.", 9), 0));

	/* 255 bytes: the hashed form. */
	long_name(name, NAME_MAX, 'c');
	long_name(other, NAME_MAX, 'd');
	layer_whiteout_name(name, wh);
	layer_whiteout_name(other, wh2);
	cr_assert(strlen(wh) <= NAME_MAX, "whiteout name is %zu bytes", strlen(wh));
	cr_assert(eq(int, strncmp(wh, ".cjfs~wH.", 9), 0));
	cr_assert(strcmp(wh, wh2) != 0, "two long names share a whiteout");
	cr_assert(layer_is_whiteout(wh, &k));
	cr_assert_str_eq(k, layer_whiteout_key(name, key));
	cr_assert_null(layer_decode(wh));
	/* It is a name the file system accepts. */
	u_write(upfd, wh, "", 0600);
}

Test(layer_name, whiteouts_can_be_set_tested_and_cleared)
{
	char name[NAME_MAX + 1];

	long_name(name, NAME_MAX, 'e');
	cr_assert(eq(int, layer_has_whiteout(upfd, "f"), 0));
	cr_assert(eq(int, layer_set_whiteout(upfd, "f"), 0));
	cr_assert(eq(int, layer_has_whiteout(upfd, "f"), 1));
	cr_assert(eq(int, layer_set_whiteout(upfd, "f"), 0), "setting twice failed");
	cr_assert(eq(int, layer_set_whiteout(upfd, name), 0));
	cr_assert(eq(int, layer_has_whiteout(upfd, name), 1));
	cr_assert(eq(int, layer_clear_whiteout(upfd, "f"), 0));
	cr_assert(eq(int, layer_has_whiteout(upfd, "f"), 0));
	cr_assert(eq(int, layer_clear_whiteout(upfd, "f"), 0), "clearing a missing one failed");
	cr_assert(eq(int, layer_has_whiteout(upfd, name), 1));
}

/* ---- lookup ---- */

Test(layer_lookup, upper_wins_over_lower)
{
	struct stat st, ust;

	u_write(lofd, "a", "lower\n", 0644);
	u_write(upfd, "a", "upper, longer\n", 0644);
	cr_assert(eq(int, fstatat(upfd, "a", &ust, 0), 0));
	cr_assert(eq(int, (int)lookup(upfd, lofd, "a", &st), LAYER_UPPER));
	cr_assert(eq(u64, (uint64_t)st.st_ino, (uint64_t)ust.st_ino));
	cr_assert(eq(int, (int)st.st_size, 14));
}

Test(layer_lookup, lower_only_absent_and_no_upper_dir)
{
	struct stat st;

	u_write(lofd, "l", "lower\n", 0644);
	cr_assert(eq(int, (int)lookup(upfd, lofd, "l", &st), LAYER_LOWER));
	cr_assert(eq(int, (int)st.st_size, 6));
	cr_assert(eq(int, (int)lookup(upfd, lofd, "nothing", NULL), LAYER_NONE));
	cr_assert(eq(int, (int)lookup(-1, lofd, "l", NULL), LAYER_LOWER));
	cr_assert(eq(int, (int)lookup(upfd, -1, "l", NULL), LAYER_NONE));
	u_write(upfd, "u", "u\n", 0644);
	cr_assert(eq(int, (int)lookup(upfd, -1, "u", NULL), LAYER_UPPER));
}

Test(layer_lookup, whiteout_hides_the_lower_entry)
{
	char name[NAME_MAX + 1];

	u_write(lofd, "gone", "x", 0644);
	u_mkdir(lofd, "gonedir", 0755);
	long_name(name, NAME_MAX, 'L');
	u_write(lofd, name, "long", 0644);
	cr_assert(eq(int, layer_set_whiteout(upfd, "gone"), 0));
	cr_assert(eq(int, layer_set_whiteout(upfd, "gonedir"), 0));
	cr_assert(eq(int, layer_set_whiteout(upfd, name), 0));
	cr_assert(eq(int, (int)lookup(upfd, lofd, "gone", NULL), LAYER_NONE));
	cr_assert(eq(int, (int)lookup(upfd, lofd, "gonedir", NULL), LAYER_NONE));
	cr_assert(eq(int, (int)lookup(upfd, lofd, name, NULL), LAYER_NONE));
	/* Re-created in upper after the delete: visible again. */
	u_write(upfd, "gone", "again", 0644);
	cr_assert(eq(int, (int)lookup(upfd, lofd, "gone", NULL), LAYER_UPPER));
}

Test(layer_lookup, a_user_file_named_like_a_whiteout_hides_nothing_and_is_visible)
{
	struct stat st;

	u_write(lofd, "x", "lower x\n", 0644);
	upper_file(upfd, ".cjfs~wh.x", "mine\n");
	cr_assert(eq(int, (int)lookup(upfd, lofd, "x", &st), LAYER_LOWER), "x was hidden");
	cr_assert(eq(int, (int)st.st_size, 8));
	cr_assert(eq(int, (int)lookup(upfd, lofd, ".cjfs~wh.x", &st), LAYER_UPPER));
	cr_assert(eq(int, (int)st.st_size, 5));
	/* And a real whiteout of that user's file hides it, not x. */
	cr_assert(eq(int, layer_set_whiteout(upfd, ".cjfs~wh.x"), 0));
	cr_assert(eq(int, (int)lookup(upfd, lofd, "x", NULL), LAYER_LOWER));
}

Test(layer_lookup, lower_files_named_like_markers_are_plain_files)
{
	u_write(lofd, ".cjfs~opaque", "pkg's own\n", 0644);
	u_write(lofd, ".cjfs~wh.y", "pkg's own\n", 0644);
	u_write(lofd, "y", "y\n", 0644);
	cr_assert(eq(int, (int)lookup(upfd, lofd, ".cjfs~opaque", NULL), LAYER_LOWER));
	cr_assert(eq(int, (int)lookup(upfd, lofd, ".cjfs~wh.y", NULL), LAYER_LOWER));
	cr_assert(eq(int, (int)lookup(upfd, lofd, "y", NULL), LAYER_LOWER));
}

/* Open a merged directory found by lookup: its upper and lower fds. */
static void open_dir(const char *name, int *ret_u, int *ret_l)
{
	enum layer_where where = lookup(upfd, lofd, name, NULL);
	int r;

	cr_assert(where != LAYER_NONE, "%s not found", name);
	*ret_u = *ret_l = -2;
	r = layer_open_dir(lofd, upfd, lofd, name, where, ret_u, ret_l);
	cr_assert(eq(int, r, 0), "layer_open_dir '%s': %s", name, strerror(-r));
}

Test(layer_lookup, a_directory_merges_its_lower_namesake)
{
	int u, l;

	u_mkdir(lofd, "d", 0755);
	u_write(lofd, "d/f", "lower f\n", 0644);
	u_mkdir(upfd, "d", 0755);
	u_write(upfd, "d/g", "upper g\n", 0644);
	open_dir("d", &u, &l);
	cr_assert(u >= 0);
	cr_assert(l >= 0, "the lower directory is not merged");
	cr_assert(eq(int, (int)lookup(u, l, "f", NULL), LAYER_LOWER));
	cr_assert(eq(int, (int)lookup(u, l, "g", NULL), LAYER_UPPER));
	close(u);
	close(l);

	/* Only in lower: no upper fd. */
	u_mkdir(lofd, "lo", 0755);
	open_dir("lo", &u, &l);
	cr_assert(eq(int, u, -1));
	cr_assert(l >= 0);
	close(l);
}

Test(layer_lookup, an_opaque_directory_hides_its_lower_namesake)
{
	int u, l, dfd;

	u_mkdir(lofd, "d", 0755);
	u_write(lofd, "d/f", "lower f\n", 0644);
	u_mkdir(upfd, "d", 0755);
	dfd = openat(upfd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(dfd >= 0);
	cr_assert(eq(int, layer_set_opaque(dfd), 0));
	close(dfd);
	open_dir("d", &u, &l);
	cr_assert(eq(int, l, -1), "an opaque directory merged its lower namesake");
	cr_assert(eq(int, (int)lookup(u, l, "f", NULL), LAYER_NONE));
	cr_assert(eq(int, (int)lookup(u, l, ".cjfs~opaque", NULL), LAYER_NONE),
		  "the marker is visible");
	close(u);
}

Test(layer_lookup, a_user_file_named_like_the_opaque_marker_does_not_make_it_opaque)
{
	int u, l, dfd;
	bool opaque = true;
	struct strbuf origin = STRBUF_INIT;

	u_mkdir(lofd, "d", 0755);
	u_write(lofd, "d/f", "lower f\n", 0644);
	u_mkdir(upfd, "d", 0755);
	dfd = openat(upfd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(dfd >= 0);
	upper_file(dfd, ".cjfs~opaque", "user's\n");
	upper_file(dfd, ".cjfs~origin", "elsewhere");
	cr_assert(eq(int, layer_read_dirinfo(dfd, &opaque, &origin), 0));
	cr_assert_not(opaque);
	cr_assert_null(origin.buf, "a user's file was read as an origin");
	close(dfd);
	open_dir("d", &u, &l);
	cr_assert(l >= 0, "the user's file made the directory opaque");
	cr_assert(eq(int, (int)lookup(u, l, "f", NULL), LAYER_LOWER));
	cr_assert(eq(int, (int)lookup(u, l, ".cjfs~opaque", NULL), LAYER_UPPER));
	close(u);
	close(l);
}

Test(layer_lookup, an_origin_marker_redirects_to_the_renamed_lower_directory)
{
	struct strbuf origin = STRBUF_INIT;
	bool opaque = true;
	int u, l, dfd;
	char *c;

	u_mkdir(lofd, "old", 0755);
	u_mkdir(lofd, "old/deep", 0755);
	u_write(lofd, "old/deep/f", "moved\n", 0644);
	u_mkdir(upfd, "new", 0755);
	dfd = openat(upfd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(dfd >= 0);
	cr_assert(eq(int, layer_set_origin(dfd, "old/deep"), 0));
	cr_assert(eq(int, layer_read_dirinfo(dfd, &opaque, &origin), 0));
	cr_assert_not(opaque);
	cr_assert_str_eq(origin.buf, "old/deep");
	strbuf_release(&origin);
	close(dfd);

	open_dir("new", &u, &l);
	cr_assert(l >= 0, "the origin was not followed");
	cr_assert(eq(int, (int)lookup(u, l, "f", NULL), LAYER_LOWER));
	c = u_read(l, "f", NULL);
	cr_assert_str_eq(c, "moved\n");
	free(c);
	cr_assert(eq(int, (int)lookup(u, l, ".cjfs~origin", NULL), LAYER_NONE));
	close(u);
	close(l);
}

Test(layer_lookup, an_empty_origin_is_the_lower_root)
{
	int u, l, dfd;

	u_write(lofd, "top", "top\n", 0644);
	u_mkdir(upfd, "r", 0755);
	dfd = openat(upfd, "r", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(dfd >= 0);
	cr_assert(eq(int, layer_set_origin(dfd, ""), 0));
	close(dfd);
	open_dir("r", &u, &l);
	cr_assert(l >= 0);
	cr_assert(eq(int, (int)lookup(u, l, "top", NULL), LAYER_LOWER));
	close(u);
	close(l);
}

Test(layer_lookup, opaque_and_origin_replace_each_other)
{
	struct strbuf origin = STRBUF_INIT;
	bool opaque = false;

	cr_assert(eq(int, layer_set_origin(upfd, "a"), 0));
	cr_assert(eq(int, layer_set_opaque(upfd), 0));
	cr_assert(eq(int, layer_read_dirinfo(upfd, &opaque, &origin), 0));
	cr_assert(opaque);
	cr_assert_null(origin.buf);
	cr_assert(eq(int, layer_set_origin(upfd, "b"), 0));
	cr_assert(eq(int, layer_read_dirinfo(upfd, &opaque, &origin), 0));
	cr_assert_not(opaque);
	cr_assert_str_eq(origin.buf, "b");
	strbuf_release(&origin);
	cr_assert(eq(int, layer_clear_markers(upfd), 0));
	cr_assert(eq(int, layer_read_dirinfo(upfd, &opaque, &origin), 0));
	cr_assert_not(opaque);
	cr_assert_null(origin.buf);
	cr_assert(eq(sz, u_count_names(upfd, ".cjfs~"), 0), "markers or temporaries left");
}

Test(layer_lookup, a_damaged_origin_never_leads_out_of_pkg)
{
	int u = -2, l = -2, dfd, outfd;

	outfd = u_mkdir_open(root, "outside", NULL);
	u_write(outfd, "secret", "s\n", 0600);
	close(outfd);
	u_mkdir(upfd, "bad", 0755);
	u_write(upfd, "bad/.cjfs~origin", "../outside", 0600);
	cr_assert(eq(int, layer_open_dir(lofd, upfd, lofd, "bad", LAYER_UPPER, &u, &l), -EUCLEAN));

	/* A symlink in PKG where the origin points: not followed. */
	u_symlink(lofd, "../outside", "lnk");
	u_mkdir(upfd, "via", 0755);
	dfd = openat(upfd, "via", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(dfd >= 0);
	cr_assert(eq(int, layer_set_origin(dfd, "lnk"), 0));
	close(dfd);
	open_dir("via", &u, &l);
	cr_assert(eq(int, l, -1), "followed a symlink out of PKG");
	cr_assert(eq(int, (int)lookup(u, l, "secret", NULL), LAYER_NONE));
	close(u);
}

/* ---- merged listing ---- */

static bool listed(const struct fs_dirent *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return true;
	return false;
}

Test(layer_list, upper_wins_whiteouts_and_markers_are_hidden)
{
	struct fs_dirent *v = NULL;
	size_t n = 0;

	u_write(lofd, "both", "l", 0644);
	u_write(lofd, "lower-only", "l", 0644);
	u_write(lofd, "deleted", "l", 0644);
	u_write(upfd, "both", "u", 0644);
	u_write(upfd, "upper-only", "u", 0644);
	cr_assert(eq(int, layer_set_whiteout(upfd, "deleted"), 0));
	cr_assert(eq(int, layer_set_opaque(upfd), 0));
	cr_assert(eq(int, fs_list_merged(NULL, upfd, lofd, &v, &n), 0));
	cr_assert(eq(sz, n, 3));
	cr_assert(listed(v, n, "both"));
	cr_assert(listed(v, n, "lower-only"));
	cr_assert(listed(v, n, "upper-only"));
	fs_dirents_free(v, n);
}

Test(layer_list, a_user_file_named_like_a_whiteout_hides_nothing_and_is_listed)
{
	struct fs_dirent *v = NULL;
	size_t n = 0;

	u_write(lofd, "x", "lower x\n", 0644);
	upper_file(upfd, ".cjfs~wh.x", "mine\n");
	upper_file(upfd, ".cjfs~opaque", "mine\n");
	cr_assert(eq(int, fs_list_merged(NULL, upfd, lofd, &v, &n), 0));
	cr_assert(listed(v, n, "x"), "x was hidden by the user's file");
	cr_assert(listed(v, n, ".cjfs~wh.x"), "the user's file is not listed");
	cr_assert(listed(v, n, ".cjfs~opaque"), "the user's file is not listed");
	cr_assert(eq(sz, n, 3));
	fs_dirents_free(v, n);
}

Test(layer_list, a_user_file_named_like_a_long_whiteout_hides_nothing)
{
	char name[NAME_MAX + 1], wh[NAME_MAX + 1];
	struct fs_dirent *v = NULL;
	size_t n = 0;

	long_name(name, NAME_MAX, 'Z');
	u_write(lofd, name, "lower long\n", 0644);
	layer_whiteout_name(name, wh); /* ".cjfs~wH.<sha256>": a name anyone can compute */
	upper_file(upfd, wh, "mine\n");
	cr_assert(eq(int, (int)lookup(upfd, lofd, name, NULL), LAYER_LOWER));
	cr_assert(eq(int, fs_list_merged(NULL, upfd, lofd, &v, &n), 0));
	cr_assert(listed(v, n, wh), "the user's file is not listed");
	cr_assert(listed(v, n, name), "the long lower name was hidden by the user's file");
	fs_dirents_free(v, n);

	/* A real long whiteout does hide it. */
	cr_assert(eq(int, layer_set_whiteout(upfd, name), 0));
	cr_assert(eq(int, fs_list_merged(NULL, upfd, lofd, &v, &n), 0));
	cr_assert_not(listed(v, n, name));
	cr_assert(listed(v, n, wh));
	fs_dirents_free(v, n);
}

/* ---- the offline view ---- */

/*
 * PKG (lower) and a transaction's upper layer as the daemon leaves them:
 * a copied-up file, a deletion, a directory with its own changes, an opaque
 * (recreated) directory, a renamed directory (origin), symlinks in both
 * layers and a user file named like a whiteout.
 */
static void build_layers(void)
{
	int d;

	u_write(lofd, "a.txt", "lower a\n", 0644);
	u_write(lofd, "b.txt", "lower b\n", 0644);
	u_mkdir(lofd, "dir", 0755);
	u_write(lofd, "dir/x", "lower x\n", 0644);
	u_write(lofd, "dir/y", "lower y\n", 0644);
	u_mkdir(lofd, "odir", 0755);
	u_write(lofd, "odir/hidden", "hidden\n", 0644);
	u_mkdir(lofd, "old", 0755);
	u_write(lofd, "old/f", "moved f\n", 0644);
	u_symlink(lofd, "a.txt", "link");
	u_write(lofd, "x", "lower top x\n", 0644);
	u_mkdir(lofd, "deep", 0755);
	u_mkdir(lofd, "deep/sub", 0755);
	u_write(lofd, "deep/sub/z", "z\n", 0644);

	u_write(upfd, "a.txt", "upper a, copied up\n", 0644);
	cr_assert(eq(int, layer_set_whiteout(upfd, "b.txt"), 0));
	u_mkdir(upfd, "dir", 0755);
	u_write(upfd, "dir/new", "upper new\n", 0644);
	d = openat(upfd, "dir", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(d >= 0);
	cr_assert(eq(int, layer_set_whiteout(d, "y"), 0));
	close(d);
	u_mkdir(upfd, "odir", 0755);
	u_write(upfd, "odir/fresh", "fresh\n", 0644);
	d = openat(upfd, "odir", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(d >= 0);
	cr_assert(eq(int, layer_set_opaque(d), 0));
	close(d);
	u_mkdir(upfd, "new", 0755);
	u_write(upfd, "new/added", "added\n", 0644);
	d = openat(upfd, "new", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(d >= 0);
	cr_assert(eq(int, layer_set_origin(d, "old"), 0));
	close(d);
	cr_assert(eq(int, layer_set_whiteout(upfd, "old"), 0));
	u_symlink(upfd, "dir/new", "ulink");
	upper_file(upfd, ".cjfs~wh.x", "user marker-named\n");
}

struct lview {
	struct fs_layer *l;
	struct store_view v;
};

static void lview_open_(struct lview *lv)
{
	cr_assert(eq(int, fs_layer_new(lofd, upfd, &lv->l), 0));
	fs_layer_view(lv->l, &lv->v);
}

static int vstat(struct lview *lv, const char *path, struct stat *st)
{
	struct stat dummy;

	return lv->v.lstat(lv->v.ctx, path, st ? st : &dummy);
}

/* Content of a regular file through the view (malloc'd), asserting it opens. */
static char *vread(struct lview *lv, const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	int fd = lv->v.open(lv->v.ctx, path);

	cr_assert(fd >= 0, "open %s through the view: %s", path, strerror(-fd));
	cr_assert(eq(int, strbuf_read_fd(&sb, fd, 0), 0));
	close(fd);
	return strbuf_detach(&sb);
}

static void assert_content(struct lview *lv, const char *path, const char *want)
{
	char *c = vread(lv, path);

	cr_assert_str_eq(c, want, "content of %s", path);
	free(c);
}

Test(layer_view, files_resolve_to_the_layer_that_has_them)
{
	struct lview lv;
	struct stat st;

	build_layers();
	lview_open_(&lv);
	cr_assert(eq(int, vstat(&lv, "a.txt", &st), 0));
	cr_assert(eq(int, (int)st.st_size, 19), "stat of a copied-up file comes from lower");
	assert_content(&lv, "a.txt", "upper a, copied up\n");
	assert_content(&lv, "x", "lower top x\n");
	assert_content(&lv, "dir/x", "lower x\n");
	assert_content(&lv, "dir/new", "upper new\n");
	assert_content(&lv, "deep/sub/z", "z\n");
	cr_assert(eq(int, vstat(&lv, "missing", NULL), -ENOENT));
	cr_assert(eq(int, vstat(&lv, "missing/below", NULL), -ENOENT));
	cr_assert(eq(int, vstat(&lv, "a.txt/below", NULL), -ENOTDIR));
	cr_assert(eq(int, vstat(&lv, "dir", &st), 0));
	cr_assert(eq(u32, st.st_mode & S_IFMT, S_IFDIR));
	fs_layer_free(lv.l);
}

Test(layer_view, whiteouts_hide_deleted_entries)
{
	struct lview lv;

	build_layers();
	lview_open_(&lv);
	cr_assert(eq(int, vstat(&lv, "b.txt", NULL), -ENOENT));
	cr_assert(eq(int, lv.v.open(lv.v.ctx, "b.txt"), -ENOENT));
	cr_assert(eq(int, vstat(&lv, "dir/y", NULL), -ENOENT));
	cr_assert(eq(int, vstat(&lv, "old", NULL), -ENOENT));
	cr_assert(eq(int, vstat(&lv, "old/f", NULL), -ENOENT));
	fs_layer_free(lv.l);
}

Test(layer_view, opaque_directories_hide_lower_content)
{
	struct lview lv;

	build_layers();
	lview_open_(&lv);
	cr_assert(eq(int, vstat(&lv, "odir/hidden", NULL), -ENOENT));
	assert_content(&lv, "odir/fresh", "fresh\n");
	fs_layer_free(lv.l);
}

Test(layer_view, origin_shows_a_renamed_directory_under_its_new_name)
{
	struct lview lv;

	build_layers();
	lview_open_(&lv);
	assert_content(&lv, "new/f", "moved f\n");
	assert_content(&lv, "new/added", "added\n");
	fs_layer_free(lv.l);
}

Test(layer_view, symlinks_are_read_not_followed)
{
	struct strbuf sb = STRBUF_INIT;
	struct lview lv;
	struct stat st;

	build_layers();
	lview_open_(&lv);
	cr_assert(eq(int, vstat(&lv, "link", &st), 0));
	cr_assert(eq(u32, st.st_mode & S_IFMT, S_IFLNK));
	cr_assert(eq(int, lv.v.readlink(lv.v.ctx, "link", &sb), 0));
	cr_assert_str_eq(sb.buf, "a.txt");
	strbuf_reset(&sb);
	cr_assert(eq(int, lv.v.readlink(lv.v.ctx, "ulink", &sb), 0));
	cr_assert_str_eq(sb.buf, "dir/new");
	strbuf_release(&sb);
	cr_assert(lv.v.open(lv.v.ctx, "link") < 0, "opened a symlink by following it");
	fs_layer_free(lv.l);
}

Test(layer_view, markers_are_invisible_and_marker_named_user_files_are_plain)
{
	struct lview lv;

	build_layers();
	lview_open_(&lv);
	assert_content(&lv, ".cjfs~wh.x", "user marker-named\n");
	assert_content(&lv, "x", "lower top x\n");
	cr_assert(eq(int, vstat(&lv, ".cjfs~wh.b.txt", NULL), -ENOENT));
	cr_assert(eq(int, vstat(&lv, "odir/.cjfs~opaque", NULL), -ENOENT));
	cr_assert(eq(int, vstat(&lv, "new/.cjfs~origin", NULL), -ENOENT));
	cr_assert(eq(int, vstat(&lv, ".cjfs~u..cjfs~wh.x", NULL), -ENOENT),
		  "the encoded name leaks through the view");
	fs_layer_free(lv.l);
}

Test(layer_view, a_user_directory_with_the_reserved_prefix_merges_like_any_other)
{
	char buf[NAME_MAX + 1], path[PATH_MAX];
	struct fs_dirent *v = NULL;
	const char *uname;
	struct lview lv;
	size_t n = 0;
	int u, l;

	u_mkdir(lofd, ".cjfs~d", 0755);
	u_write(lofd, ".cjfs~d/lf", "lower\n", 0644);
	cr_assert(eq(int, layer_encode(".cjfs~d", buf, &uname), 0));
	u_mkdir(upfd, uname, 0755);
	snprintf(path, sizeof(path), "%s/uf", uname);
	u_write(upfd, path, "upper\n", 0644);

	lview_open_(&lv);
	assert_content(&lv, ".cjfs~d/lf", "lower\n");
	assert_content(&lv, ".cjfs~d/uf", "upper\n");
	fs_layer_free(lv.l);
	open_dir(".cjfs~d", &u, &l);
	cr_assert(eq(int, fs_list_merged(NULL, u, l, &v, &n), 0));
	cr_assert(eq(sz, n, 2));
	cr_assert(listed(v, n, "lf"));
	cr_assert(listed(v, n, "uf"));
	fs_dirents_free(v, n);
	close(u);
	close(l);
	cr_assert(eq(int, fs_list_merged(NULL, upfd, lofd, &v, &n), 0));
	cr_assert(eq(sz, n, 1), "the directory is listed twice or not at all");
	cr_assert_str_eq(v[0].name, ".cjfs~d");
	fs_dirents_free(v, n);
}

Test(layer_view, seal_reads_entries_through_it)
{
	char spath[PATH_MAX];
	struct store *s = NULL;
	struct store_entry e;
	struct lview lv;
	uint8_t want[HASH_LEN];

	build_layers();
	lview_open_(&lv);
	snprintf(spath, sizeof(spath), "%s/store", root);
	cr_assert(eq(int, store_open(spath, STORE_OPEN_CREATE, &s), 0));
	cr_assert(eq(int, store_entry_from_view(s, &lv.v, "new/f", STORE_ENTRY_HASH, &e), 0));
	cr_assert(eq(int, hash_buf("moved f\n", 8, want), 0));
	cr_assert(eq(int, memcmp(e.hash, want, HASH_LEN), 0));
	cr_assert(eq(int, store_entry_from_view(s, &lv.v, "b.txt", STORE_ENTRY_HASH, &e), 0));
	cr_assert(eq(u32, e.mode, 0), "a whited-out file has a state");
	cr_assert(eq(int, store_entry_from_view(s, &lv.v, "ulink", STORE_ENTRY_HASH, &e), 0));
	cr_assert(eq(int, hash_buf("dir/new", 7, want), 0));
	cr_assert(eq(int, memcmp(e.hash, want, HASH_LEN), 0));
	store_close(s);
	fs_layer_free(lv.l);
}

/*
 * The view keeps the directories it last found files in. 80 directories
 * (more than it keeps), each with a lower file, a copied-up file, a deleted
 * one and a new one, read in path order, in reverse and in a stride that
 * revisits evicted directories, then all at once from every CPU: every
 * answer must be the one a fresh walk from the roots gives.
 */
#define MANY_DIRS 80

static const char *const many_names[] = { "low", "up", "gone", "new" };

struct many_ctx {
	struct lview *lv;
	int bad; /* atomic */
};

/* Path k (directory k / 4, name k % 4) reads as it should: 0, else -1. */
static int many_check(struct lview *lv, size_t k)
{
	char path[64], want[64], got[64];
	size_t dir = k / 4, which = k % 4;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "d%zu/%s", dir, many_names[which]);
	if (which == 2)
		return vstat(lv, path, NULL) == -ENOENT ? 0 : -1;
	snprintf(want, sizeof(want), "%s %zu\n", many_names[which], dir);
	fd = lv->v.open(lv->v.ctx, path);
	if (fd < 0)
		return -1;
	n = read(fd, got, sizeof(got) - 1);
	close(fd);
	if (n < 0)
		return -1;
	got[n] = '\0';
	return strcmp(got, want) == 0 ? 0 : -1;
}

static int many_worker(void *ctx, size_t i)
{
	struct many_ctx *c = ctx;

	if (many_check(c->lv, i % (MANY_DIRS * 4)) < 0)
		__atomic_store_n(&c->bad, 1, __ATOMIC_RELAXED);
	return 0;
}

Test(layer_view, kept_directories_give_the_same_answers_as_a_walk_from_the_roots)
{
	struct many_ctx c = { 0 };
	struct lview lv;
	char p[64], content[64];

	for (size_t d = 0; d < MANY_DIRS; d++) {
		int dfd;

		snprintf(p, sizeof(p), "d%zu", d);
		u_mkdir(lofd, p, 0755);
		u_mkdir(upfd, p, 0755);
		/* In PKG: low (as is), up (copied up below), gone (deleted below). */
		snprintf(p, sizeof(p), "d%zu/low", d);
		snprintf(content, sizeof(content), "low %zu\n", d);
		u_write(lofd, p, content, 0644);
		snprintf(p, sizeof(p), "d%zu/up", d);
		u_write(lofd, p, "PKG's up\n", 0644);
		snprintf(p, sizeof(p), "d%zu/gone", d);
		u_write(lofd, p, "PKG's gone\n", 0644);
		snprintf(p, sizeof(p), "d%zu/up", d);
		snprintf(content, sizeof(content), "up %zu\n", d);
		u_write(upfd, p, content, 0644);
		snprintf(p, sizeof(p), "d%zu/new", d);
		snprintf(content, sizeof(content), "new %zu\n", d);
		u_write(upfd, p, content, 0644);
		snprintf(p, sizeof(p), "d%zu", d);
		dfd = openat(upfd, p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		cr_assert(dfd >= 0);
		cr_assert(eq(int, layer_set_whiteout(dfd, "gone"), 0));
		close(dfd);
	}
	lview_open_(&lv);
	for (size_t k = 0; k < MANY_DIRS * 4; k++)
		cr_assert(eq(int, many_check(&lv, k), 0), "in order, path %zu", k);
	for (size_t k = MANY_DIRS * 4; k-- > 0;)
		cr_assert(eq(int, many_check(&lv, k), 0), "in reverse, path %zu", k);
	for (size_t k = 0; k < MANY_DIRS * 4; k++)
		cr_assert(eq(int, many_check(&lv, (k * 37) % (MANY_DIRS * 4)), 0),
			  "strided, step %zu", k);
	c.lv = &lv;
	cr_assert(eq(int, util_parallel_for(MANY_DIRS * 4 * 20, many_worker, &c), 0));
	cr_assert(eq(int, c.bad, 0), "a parallel reader got a wrong answer");
	/* A path below a file, and one whose directory is gone, still fail as before. */
	cr_assert(eq(int, vstat(&lv, "d1/low/x", NULL), -ENOTDIR));
	cr_assert(eq(int, vstat(&lv, "d1/gone/x", NULL), -ENOENT));
	cr_assert(eq(int, vstat(&lv, "d1/", NULL), -EINVAL));
	cr_assert(eq(int, vstat(&lv, "/d1", NULL), -EINVAL));
	fs_layer_free(lv.l);
}
