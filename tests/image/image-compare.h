/* tests/image/image-compare.h: helpers shared by the image tests: a source
 * tree with every file type and odd names, and a comparison of an image with
 * its source at the libext2fs level (no mount needed). */
#pragma once

#include <glib.h>

/* Creates the "every file type" tree under DIR (which exists). Returns FALSE
 * and skips nothing: every step is asserted. */
void ms_test_make_tree(const char *dir);

/* Walks SOURCE and IMAGE in parallel and asserts that names, types, modes,
 * owners, sizes, content (sha256), link targets, device numbers, xattrs,
 * link counts and hard-link identity agree; every inode's times must be
 * EPOCH. SELECTED: if non-NULL, only these paths (and their parents) are
 * expected. Returns the number of entries compared. */
guint ms_test_compare_image(const char *source, const char *image, guint32 epoch,
                            const char *const *selected);

/* Runs ARGV and returns its exit status; stdout+stderr into *output. */
int ms_test_run(const char *const *argv, char **output);

/* sha256 of a file's content, or NULL. */
char *ms_test_file_sha256(const char *path);
