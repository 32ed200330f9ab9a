/* tests/lib/ms-test-cases.h: the reader of the unit tests' case files
 * (tables in text files, libvirt-style "adding a case means adding a
 * line"): every non-blank line not starting with '#', with its file and line
 * number for the failure message, grouped into "case NAME" ... "end" blocks
 * where a file has them; and the one parser of the allocation tables
 * (alloc-cases.txt, alloc-group-cases.txt). A malformed file fails the test
 * with path:line and the reason. */
#pragma once

#include <glib.h>

#include "ms-alloc.h"

typedef struct {
    char *file;  /* the path it was read from */
    guint line;  /* 1-based */
    char *text;  /* stripped */
} MsTestLine;

typedef struct {
    char *name;
    MsTestLine *at;   /* the "case NAME" line */
    GPtrArray *lines; /* MsTestLine *: the lines between "case" and "end" */
} MsTestCase;

/* G_TEST_SRCDIR/DIR/FILE (DIR may be NULL). */
char *ms_test_data_path(const char *dir, const char *file);

/* The data lines of a file, MsTestLine *, in order; never empty. */
GPtrArray *ms_test_lines_load(const char *path);

/* The "case NAME" ... "end" blocks of a file, MsTestCase *; never empty; a
 * line outside a block, a block without "end" or nested fail the test. */
GPtrArray *ms_test_cases_load(const char *path);

/* Registers fn(case) as PREFIX/NAME for every case. */
void ms_test_cases_add(GPtrArray *cases, const char *prefix, GTestDataFunc fn);

G_GNUC_NORETURN G_GNUC_PRINTF(2, 3)
void ms_test_line_fail(const MsTestLine *l, const char *fmt, ...);

/* One case of the allocation tables (format at the top of
 * tests/ksm/data/alloc-cases.txt; a grouped table has a group column after
 * the uuid, '-' for none, and "group NAME MEMBERS SAVED POOL" lines). */
typedef struct {
    char *name;
    MsAllocHost host;
    MsAllocParams params;
    GArray *doms;      /* MsAllocDomain */
    GArray *expect;    /* guint64 target */
    GPtrArray *reason; /* char * */
    GArray *groups;    /* MsAllocGroup expected (grouped tables) */
} MsTestAllocCase;

GPtrArray *ms_test_alloc_cases_load(const char *path, gboolean grouped);

/* Golden expectations. MS_REGENERATE=1 (any value but empty or "0"; the
 * one variable of every suite, tests/lib/README.md) makes a test rewrite
 * what it expects from what the code gives, instead of comparing: review
 * the diff, then commit it. */
gboolean ms_test_regenerating(void);

/* Line LINE (1-based) of PATH becomes TEXT. */
void ms_test_regenerate_line(const char *path, guint line, const char *text);

/* The first "KEY=..." line of PATH becomes "KEY=VALUE". */
void ms_test_regenerate_key(const char *path, const char *key, const char *value);

/* ms_alloc_compute or ms_alloc_compute_grouped. */
typedef void (*MsTestAllocFn)(const MsAllocHost *host, const MsAllocParams *params, const MsAllocDomain *d,
                              gsize n, MsAllocResult *out);

/* Runs FN on case C and checks that every domain got its expected target
 * and reason; returns the results (one per domain of C->doms). */
MsAllocResult *ms_test_alloc_case_run(const MsTestAllocCase *c, MsTestAllocFn fn);

/* Determinism: FN on the domains in reverse order gives every domain the
 * target and reason it has in R. */
void ms_test_alloc_check_reversed(MsTestAllocFn fn, const MsAllocHost *host, const MsAllocParams *params,
                                  const MsAllocDomain *d, gsize n, const MsAllocResult *r);

/* A random snapshot for the allocation's property tests: HOST, PARAMS and
 * 1 to 8 domains (returned, *N of them; groups left empty). */
MsAllocDomain *ms_test_alloc_random(GRand *rand, MsAllocHost *host, MsAllocParams *params, gsize *n);
