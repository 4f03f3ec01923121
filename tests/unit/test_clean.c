// SPDX-License-Identifier: MIT
/*
 * cleaner/clean.c: the built-in cleaner. CRLF to LF, trailing blanks
 * stripped (not in Markdown or patches), trailing blank lines removed,
 * exactly one final newline; binary files, symlinks and .git left alone;
 * a dry run changes nothing.
 */
#include <criterion/criterion.h>
#include <criterion/new/assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cjfs.h"
#include "unit.h"

static char root[PATH_MAX];
static int treefd = -1;
static int rootfd = -1;

static void setup(void)
{
	u_tmpdir(root);
	rootfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(rootfd >= 0);
	treefd = u_mkdir_open(root, "tree", NULL);
}

static void teardown(void)
{
	if (treefd >= 0)
		close(treefd);
	if (rootfd >= 0)
		close(rootfd);
	u_rmtree(root);
}

TestSuite(clean_text, .init = setup, .fini = teardown);
TestSuite(clean_skip, .init = setup, .fini = teardown);
TestSuite(clean_run, .init = setup, .fini = teardown, .timeout = 60);

static struct cjfs_clean_report clean(bool dry_run)
{
	struct cjfs_clean_report rep;
	int r;

	memset(&rep, 0xff, sizeof(rep));
	r = cjfs_clean_tree(treefd, dry_run, NULL, &rep);
	cr_assert(eq(int, r, 0), "cjfs_clean_tree: %s", strerror(-r));
	return rep;
}

/* Clean one file holding `in` and check it then holds `want`. */
static void check(const char *name, const char *in, const char *want)
{
	size_t len;
	char *c;

	u_write(treefd, name, in, 0644);
	clean(false);
	c = u_read(treefd, name, &len);
	cr_assert_not_null(c, "%s disappeared", name);
	cr_assert_str_eq(c, want, "cleaning %s", name);
	cr_assert(eq(sz, len, strlen(want)));
	free(c);
}

/* ---- text ---- */

Test(clean_text, crlf_becomes_lf)
{
	check("a.c", "int a;\r\nint b;\r\n", "int a;\nint b;\n");
	check("mixed.py", "a\r\nb\nc\r\n", "a\nb\nc\n");
}

Test(clean_text, trailing_blanks_are_stripped)
{
	check("a.py", "def f( x ):  \n\treturn x\t \n", "def f( x ):\n\treturn x\n");
	check("b.txt", "keep  inner  spaces \n", "keep  inner  spaces\n");
	check("c.txt", "  \t\nx\n", "\nx\n");
}

Test(clean_text, markdown_and_patches_keep_trailing_blanks)
{
	/* Two trailing spaces are a line break in Markdown; patches carry context lines. */
	check("README.md", "line  \nnext\n", "line  \nnext\n");
	check("doc.markdown", "line  \nnext\n", "line  \nnext\n");
	check("fix.patch", "@@ -1 +1 @@\n \n-a\n+b\n", "@@ -1 +1 @@\n \n-a\n+b\n");
	check("fix.diff", " ctx \n", " ctx \n");
	/* Line endings are still fixed there. */
	check("crlf.md", "a  \r\nb\r\n", "a  \nb\n");
}

Test(clean_text, trailing_blank_lines_are_removed)
{
	check("a.txt", "a\n\n\n\n", "a\n");
	check("b.txt", "a\n  \n\t\n", "a\n");
	check("c.txt", "a\r\n\r\n\r\n", "a\n");
	check("inner.txt", "a\n\n\nb\n", "a\n\n\nb\n");
}

Test(clean_text, exactly_one_final_newline)
{
	check("none.txt", "no newline", "no newline\n");
	check("one.txt", "one\n", "one\n");
	check("cr.txt", "ends in cr\r", "ends in cr\n");
}

Test(clean_text, empty_file_stays_empty)
{
	struct stat st;

	check("empty.txt", "", "");
	cr_assert(eq(int, fstatat(treefd, "empty.txt", &st, 0), 0));
	cr_assert(eq(i64, (int64_t)st.st_size, 0));
}

Test(clean_text, a_file_of_blank_lines_becomes_empty)
{
	check("blank.txt", "\n\n \n", "");
}

Test(clean_text, mode_is_kept)
{
	char *c;

	u_write(treefd, "run.sh", "#!/bin/sh \r\n", 0751);
	clean(false);
	c = u_read(treefd, "run.sh", NULL);
	cr_assert_str_eq(c, "#!/bin/sh\n");
	free(c);
	cr_assert(eq(u32, (uint32_t)u_mode(treefd, "run.sh"), S_IFREG | 0751));
}

Test(clean_text, cleaning_twice_changes_nothing_more)
{
	static const char *const inputs[] = {
		"x\r \n",  "x \r\n",   "x\t\r\t\r\n", "a\r\r\n", "\r\n\r\n", " \r",
		"a\n\r\n", "a\n \n\r", "a\rb\r\n",    "\t",	 "a\r",
	};
	struct cjfs_clean_report rep;
	char *once, *twice;

	for (size_t i = 0; i < 2 * ARRAY_SIZE(inputs); i++) {
		const char *name = i % 2 ? "f.md" : "f.txt"; /* with and without stripping */

		u_write(treefd, name, inputs[i / 2], 0644);
		clean(false);
		once = u_read(treefd, name, NULL);
		cr_assert_null(strstr(once, "\r\n"), "input %zu left a CRLF in %s", i / 2, name);
		rep = clean(false);
		twice = u_read(treefd, name, NULL);
		cr_assert_str_eq(twice, once, "input %zu changed again in %s", i / 2, name);
		cr_assert(eq(sz, rep.changed, 0), "input %zu changed again in %s", i / 2, name);
		free(once);
		free(twice);
		cr_assert(eq(int, unlinkat(treefd, name, 0), 0));
	}
}

/* ---- what is left alone ---- */

Test(clean_skip, binary_files_are_untouched)
{
	static const char bin[] = "\x7f"
				  "ELF\0\r\n  \r\n\n\n";
	struct cjfs_clean_report rep;
	char *c;
	size_t len;

	u_write_n(treefd, "prog", bin, sizeof(bin) - 1, 0755);
	rep = clean(false);
	c = u_read(treefd, "prog", &len);
	cr_assert(eq(sz, len, sizeof(bin) - 1));
	cr_assert(eq(int, memcmp(c, bin, len), 0), "a binary file was rewritten");
	free(c);
	cr_assert(eq(sz, rep.changed, 0));
	cr_assert(eq(sz, rep.skipped, 1));
}

Test(clean_skip, symlinks_are_untouched_and_not_followed)
{
	int outfd = u_mkdir_open(root, "outside", NULL);
	char *c;

	u_write(outfd, "dirty.txt", "outside  \r\n\n\n", 0644);
	u_symlink(treefd, "../outside/dirty.txt", "out-link");
	u_write(treefd, "in.txt", "inside  \n", 0644);
	u_symlink(treefd, "in.txt", "in-link");
	clean(false);
	c = u_read(outfd, "dirty.txt", NULL);
	cr_assert_str_eq(c, "outside  \r\n\n\n", "a file outside the tree was cleaned");
	free(c);
	close(outfd);
	cr_assert(u_is_link(treefd, "out-link"), "the symlink was replaced");
	cr_assert(u_is_link(treefd, "in-link"), "the symlink was replaced");
	c = u_read(treefd, "in.txt", NULL);
	cr_assert_str_eq(c, "inside\n");
	free(c);
}

Test(clean_skip, version_control_directories_are_untouched)
{
	char *before, *after;
	int gfd;

	u_mkdir(treefd, ".git", 0755);
	u_write(treefd, ".git/config", "[core]  \r\n\n\n", 0644);
	u_mkdir(treefd, "sub", 0755);
	u_mkdir(treefd, "sub/.git", 0755);
	u_write(treefd, "sub/.git/HEAD", "ref: x  \n\n", 0644);
	u_mkdir(treefd, ".hg", 0755);
	u_write(treefd, ".hg/hgrc", "x  \n", 0644);
	u_write(treefd, "sub/code.c", "x;  \n", 0644);
	gfd = openat(treefd, ".git", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert(gfd >= 0);
	before = u_snapshot(gfd, true);
	clean(false);
	after = u_snapshot(gfd, true);
	cr_assert_str_eq(after, before, ".git was changed");
	free(before);
	free(after);
	close(gfd);
	before = u_read(treefd, "sub/.git/HEAD", NULL);
	cr_assert_str_eq(before, "ref: x  \n\n");
	free(before);
	before = u_read(treefd, ".hg/hgrc", NULL);
	cr_assert_str_eq(before, "x  \n");
	free(before);
	before = u_read(treefd, "sub/code.c", NULL);
	cr_assert_str_eq(before, "x;\n", "the rest of the tree was not cleaned");
	free(before);
}

/* ---- whole runs ---- */

static void dirty_tree(void)
{
	u_write(treefd, "clean.txt", "already clean\n", 0644);
	u_write(treefd, "crlf.txt", "a\r\n", 0644);
	u_mkdir(treefd, "src", 0755);
	u_mkdir(treefd, "src/deep", 0755);
	u_write(treefd, "src/deep/x.c", "x;  \n\n", 0644);
	u_write_n(treefd, "bin", "a\0b  \n", 6, 0644);
}

Test(clean_run, dry_run_changes_nothing_and_reports_what_it_would_do)
{
	struct cjfs_clean_report rep;
	char *before, *after, *out = NULL;
	size_t outlen = 0;
	FILE *f;

	dirty_tree();
	before = u_snapshot(treefd, true);
	f = open_memstream(&out, &outlen);
	cr_assert_not_null(f);
	cr_assert(eq(int, cjfs_clean_tree(treefd, true, f, &rep), 0));
	cr_assert(eq(int, fclose(f), 0));
	after = u_snapshot(treefd, true);
	cr_assert_str_eq(after, before, "a dry run changed the tree");
	cr_assert(eq(sz, rep.changed, 2));
	cr_assert(eq(sz, rep.scanned, 4));
	cr_assert_not_null(strstr(out, "would clean crlf.txt\n"), "output: %s", out);
	cr_assert_not_null(strstr(out, "would clean src/deep/x.c\n"), "output: %s", out);
	cr_assert_null(strstr(out, "clean.txt"), "output: %s", out);
	cr_assert_null(strstr(out, "bin"), "output: %s", out);
	free(out);
	free(before);
	free(after);
}

Test(clean_run, reports_counts_names_paths_and_is_idempotent)
{
	struct cjfs_clean_report rep;
	char *out = NULL, *snap, *snap2;
	size_t outlen = 0;
	FILE *f;

	dirty_tree();
	f = open_memstream(&out, &outlen);
	cr_assert_not_null(f);
	cr_assert(eq(int, cjfs_clean_tree(treefd, false, f, &rep), 0));
	cr_assert(eq(int, fclose(f), 0));
	cr_assert(eq(sz, rep.scanned, 4));
	cr_assert(eq(sz, rep.changed, 2));
	cr_assert(eq(sz, rep.skipped, 1));
	cr_assert_not_null(strstr(out, "cleaned src/deep/x.c\n"), "output: %s", out);
	free(out);
	cr_assert(eq(sz, u_count_names(treefd, ".cjfs"), 0), "temporaries left behind");

	snap = u_snapshot(treefd, true);
	rep = clean(false);
	cr_assert(eq(sz, rep.changed, 0), "a second run found more to clean");
	snap2 = u_snapshot(treefd, true);
	cr_assert_str_eq(snap2, snap);
	free(snap);
	free(snap2);
}

static int count_fds(void)
{
	int fd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	int n = 0;
	DIR *d;

	cr_assert(fd >= 0);
	d = fdopendir(fd);
	cr_assert_not_null(d);
	while ((de = readdir(d)))
		n++;
	closedir(d);
	return n;
}

Test(clean_run, an_overly_deep_tree_fails_without_leaking_descriptors)
{
	int before, after, fd = dup(treefd);

	cr_assert(fd >= 0);
	for (int i = 0; i < 300; i++) {
		int sub;

		u_mkdir(fd, "d", 0755);
		sub = openat(fd, "d", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		cr_assert(sub >= 0);
		close(fd);
		fd = sub;
	}
	u_write(fd, "deep.txt", "deep \n", 0644);
	close(fd);
	before = count_fds();
	cr_assert(eq(int, cjfs_clean_tree(treefd, false, NULL, NULL), -ELOOP));
	after = count_fds();
	cr_assert(eq(int, after, before), "descriptors leaked");
}

Test(clean_run, a_text_file_at_the_size_limit_is_cleaned)
{
	size_t n = 16u << 20; /* the cleaner's limit */
	char *data = malloc(n), *c;
	size_t len;

	cr_assert_not_null(data);
	for (size_t i = 0; i < n; i++)
		data[i] = i % 64 == 63 ? '\n' : 'x';
	data[n - 2] = ' '; /* a trailing blank on the last line */
	u_write_n(treefd, "big.txt", data, n, 0644);
	clean(false);
	c = u_read(treefd, "big.txt", &len);
	cr_assert(eq(sz, len, n - 1));
	cr_assert(eq(int, memcmp(c, data, n - 2), 0));
	cr_assert(eq(chr, c[n - 2], '\n'));
	free(c);
	free(data);
}

Test(clean_run, a_file_over_the_size_limit_is_skipped)
{
	size_t n = (16u << 20) + 1;
	char *data = malloc(n), *c;
	struct cjfs_clean_report rep;
	size_t len;

	cr_assert_not_null(data);
	memset(data, 'y', n);
	data[n - 1] = ' ';
	u_write_n(treefd, "huge.txt", data, n, 0644);
	u_write(treefd, "small.txt", "small \n", 0644);
	rep = clean(false);
	cr_assert(eq(sz, rep.skipped, 1));
	cr_assert(eq(sz, rep.changed, 1));
	c = u_read(treefd, "huge.txt", &len);
	cr_assert(eq(sz, len, n));
	cr_assert(eq(int, memcmp(c, data, n), 0));
	free(c);
	free(data);
}
