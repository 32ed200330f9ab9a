/* tests/policy/test-policy.c: table-driven tests of the policy parser
 * (policies/ms-policy.c) and of the RelaxNG schema
 * (xml-schemas/memshare-policy.rng), from the files in tests/policy/cases/.
 *
 * Each case is NAME.xml plus NAME.expect. The file name says what NAME.xml
 * is: dom-*.xml is a whole domain XML (ms_policy_parse_domain_xml),
 * pol-*.xml a standalone <memshare:policy> (ms_policy_parse_standalone).
 * NAME.expect: '#' comments, then one of
 *   none      (domain only: parse returns TRUE and no policy)
 *   valid     followed by key=value lines checked against the parsed struct
 *             (keys as printed by dump_policy(); unlisted fields are free)
 *   invalid   followed by message=<the exact GError message> and, for
 *             domains, on_error=ignore when the hook must be told so
 * and optionally
 *   flags=images    parse with MS_POLICY_CHECK_IMAGES against
 *                   tests/policy/store (@STORE@ in messages)
 *   schema=valid|skip   the parser refuses for a reason the schema cannot
 *                   express: 'valid' (the schema accepts the policy element:
 *                   ranges, rules between attributes, the cross-checks
 *                   against the domain), 'skip' (the domain XML around the
 *                   policy is wrong and the schema has no policy to judge).
 *                   A '# semantic:' comment says why. Without a marker the
 *                   schema must give the parser's verdict.
 *
 * Per case: the parse test; for valid ones the canonical XML re-parses
 * (standalone) to an equal policy, validates against the schema, and
 * ms_policy_copy is deep. The example policies (policies/examples/) are
 * validated too.
 *
 * The agreement test (/policy/agree/) judges every case and every entry of
 * the policy fuzz corpus (tests/fuzz/corpus/policy/) by both the parser and
 * the RelaxNG schema (policy-schema.c, libxml2's validator, entities
 * expanded as xmllint does). The rule:
 *   parser accepts  => schema accepts          (no exception, ever)
 *   parser refuses  => schema refuses, except where the case's marker (or,
 *                      for a corpus entry, its line in
 *                      tests/fuzz/policy-semantic.txt with the parser's exact
 *                      message) says the reason is beyond a grammar;
 *   a domain without a policy: the schema finds no policy element either.
 * A marker the schema contradicts (it refuses too) fails as stale, so the
 * list of exceptions stays exactly the set of rules only the parser has.
 * A disagreement fails with the file name and both verdicts. */
#include "ms-policy.h"
#include "ms-units.h"
#include "ms-error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "policy-schema.h"
#include "ms-test-cases.h"

typedef enum { EXPECT_NONE, EXPECT_VALID, EXPECT_INVALID } ExpectKind;
/* The exemption from "parser refuses => schema refuses" (see above). */
typedef enum { SCHEMA_DEFAULT, SCHEMA_VALID, SCHEMA_SKIP } SchemaExpect;

typedef struct {
    char *name;
    char *xml_path;
    char *expect_path;
    gboolean is_domain;
    ExpectKind kind;
    gboolean check_images;
    SchemaExpect schema;        /* exemption marker */
    char *message;              /* invalid: exact message */
    gboolean on_error_ignore;   /* invalid: on_error=ignore */
    GPtrArray *fields;          /* valid: "key=value" */
} Case;

static const char *srcdir;
static char *store_dir;
static xmlRelaxNGPtr schema;

static void
case_free(Case *c)
{
    g_free(c->name);
    g_free(c->xml_path);
    g_free(c->expect_path);
    g_free(c->message);
    g_ptr_array_unref(c->fields);
    g_free(c);
}

/* ---- the struct as key=value --------------------------------------------- */

static void
put(GHashTable *t, const char *key, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void
put(GHashTable *t, const char *key, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_hash_table_insert(t, g_strdup(key), g_strdup_vprintf(fmt, ap));
    va_end(ap);
}

#define U64(v) ((guint64)(v))

/* Every field, named as in ms-policy.h. with_domain=FALSE leaves out the
 * fields that only a domain parse fills (for round-trip comparisons). */
static GHashTable *
dump_policy(const MsPolicy *p, gboolean with_domain)
{
    static const char *const modes[] = { "off", "ksm-share" };
    static const char *const divisions[] = { "equal", "weighted", "contribution" };
    GHashTable *t = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);

    put(t, "on_error", "%s", p->on_error == MS_ON_ERROR_IGNORE ? "ignore" : "refuse");
    put(t, "balloon.mode", "%s", p->balloon.mode <= MS_BALLOON_KSM_SHARE ? modes[p->balloon.mode] : "?");
    put(t, "balloon.division", "%s", p->balloon.division <= MS_DIVIDE_CONTRIBUTION ? divisions[p->balloon.division] : "?");
    put(t, "balloon.weight", "%u", p->balloon.weight);
    put(t, "balloon.base_kib", "%" G_GUINT64_FORMAT, p->balloon.base_kib);
    put(t, "balloon.floor_kib", "%" G_GUINT64_FORMAT, p->balloon.floor_kib);
    put(t, "balloon.ceiling_kib", "%" G_GUINT64_FORMAT, p->balloon.ceiling_kib);
    put(t, "balloon.period_ms", "%" G_GUINT64_FORMAT, p->balloon.period_ms);
    put(t, "balloon.max_step_kib", "%" G_GUINT64_FORMAT, p->balloon.max_step_kib);
    put(t, "balloon.hysteresis_kib", "%" G_GUINT64_FORMAT, p->balloon.hysteresis_kib);
    put(t, "tracking.used_pages", "%s", p->tracking.used_pages ? "on" : "off");
    put(t, "tracking.period_ms", "%" G_GUINT64_FORMAT, p->tracking.period_ms);
    put(t, "tracking.working_set", "%s", p->tracking.working_set ? "on" : "off");
    put(t, "tracking.ws_window_ms", "%" G_GUINT64_FORMAT, p->tracking.ws_window_ms);
    put(t, "tracking.free_page_reporting", "%s", p->tracking.require_free_page_reporting ? "required" : "optional");
    put(t, "images.len", "%u", p->images ? p->images->len : 0);
    for (guint i = 0; p->images && i < p->images->len; i++) {
        const MsSharedImage *img = g_ptr_array_index(p->images, i);
        g_autofree char *k_name = g_strdup_printf("images[%u].name", i);
        g_autofree char *k_mount = g_strdup_printf("images[%u].mount", i);
        g_autofree char *k_mode = g_strdup_printf("images[%u].mode", i);
        g_autofree char *k_fb = g_strdup_printf("images[%u].fallback", i);
        put(t, k_name, "%s", img->name ? img->name : "(null)");
        put(t, k_mount, "%s", img->mount ? img->mount : "");
        put(t, k_mode, "%s", img->mode == MS_IMAGE_BLK ? "blk" : "dax");
        /* fallback means something only for dax images: once the parser
         * switched an image to blk, the flag is history. */
        if (img->mode == MS_IMAGE_DAX)
            put(t, k_fb, "%s", img->fallback_blk ? "blk" : "none");
    }
    put(t, "stats.period_ms", "%" G_GUINT64_FORMAT, p->stats.period_ms);
    put(t, "sharing.group", "%s", p->sharing.group ? p->sharing.group : "");
    put(t, "migration.free_page_hint", "%s", p->migration.free_page_hint ? "on" : "off");
    put(t, "migration.missing_images", "%s", p->migration.fetch_missing_images ? "fetch" : "refuse");
    if (with_domain) {
        put(t, "domain.nosharepages", "%d", p->domain.nosharepages ? 1 : 0);
        put(t, "domain.nova_project", "%s", p->domain.nova_project ? p->domain.nova_project : "");
        put(t, "balloon.base_set", "%d", p->balloon.base_set ? 1 : 0);
        put(t, "balloon.floor_set", "%d", p->balloon.floor_set ? 1 : 0);
        put(t, "balloon.ceiling_set", "%d", p->balloon.ceiling_set ? 1 : 0);
        put(t, "domain.name", "%s", p->domain.name ? p->domain.name : "");
        put(t, "domain.uuid", "%s", p->domain.uuid ? p->domain.uuid : "");
        put(t, "domain.memory_kib", "%" G_GUINT64_FORMAT, p->domain.memory_kib);
        put(t, "domain.current_memory_kib", "%" G_GUINT64_FORMAT, p->domain.current_memory_kib);
        put(t, "domain.max_memory_kib", "%" G_GUINT64_FORMAT, p->domain.max_memory_kib);
        put(t, "domain.max_memory_slots", "%u", p->domain.max_memory_slots);
        put(t, "domain.has_balloon", "%d", p->domain.has_balloon ? 1 : 0);
        put(t, "domain.balloon_alias", "%s", p->domain.balloon_alias ? p->domain.balloon_alias : "");
        put(t, "domain.free_page_reporting", "%d", p->domain.free_page_reporting ? 1 : 0);
        put(t, "domain.free_page_hint", "%d", p->domain.free_page_hint ? 1 : 0);
        put(t, "domain.machine", "%s", p->domain.machine ? p->domain.machine : "");
        put(t, "domain.domain_type", "%s", p->domain.domain_type ? p->domain.domain_type : "");
    }
    return t;
}

static void
assert_dumps_equal(const char *what, GHashTable *a, GHashTable *b)
{
    GHashTableIter it;
    gpointer k, v;

    g_hash_table_iter_init(&it, a);
    while (g_hash_table_iter_next(&it, &k, &v)) {
        const char *other = g_hash_table_lookup(b, k);
        if (g_strcmp0(other, v) != 0)
            g_error("%s: %s differs: %s vs %s", what, (const char *)k, (const char *)v,
                    other ? other : "(missing)");
    }
    g_assert_cmpuint(g_hash_table_size(a), ==, g_hash_table_size(b));
}

/* ---- reading the cases --------------------------------------------------- */

static Case *
load_case(const char *dir, const char *name)
{
    g_autofree char *expect_path = g_strdup_printf("%s/%s.expect", dir, name);
    g_autofree char *text = NULL;
    g_autoptr(GError) error = NULL;
    Case *c = g_new0(Case, 1);
    gboolean have_kind = FALSE, have_reason = FALSE;

    c->name = g_strdup(name);
    c->xml_path = g_strdup_printf("%s/%s.xml", dir, name);
    c->expect_path = g_strdup(expect_path);
    c->is_domain = g_str_has_prefix(name, "dom-");
    c->fields = g_ptr_array_new_with_free_func(g_free);
    if (!g_file_get_contents(expect_path, &text, NULL, &error))
        g_error("%s", error->message);

    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        const char *line = *l;
        if (g_str_has_prefix(line, "# semantic:"))
            have_reason = TRUE;
        if (*line == '\0' || *line == '#')
            continue;
        if (!have_kind) {
            if (g_str_equal(line, "valid"))
                c->kind = EXPECT_VALID;
            else if (g_str_equal(line, "invalid"))
                c->kind = EXPECT_INVALID;
            else if (g_str_equal(line, "none"))
                c->kind = EXPECT_NONE;
            else
                g_error("%s: first line must be valid, invalid or none, not '%s'", expect_path, line);
            have_kind = TRUE;
            continue;
        }
        const char *eq = strchr(line, '=');
        if (eq == NULL)
            g_error("%s: not key=value: '%s'", expect_path, line);
        g_autofree char *key = g_strndup(line, eq - line);
        const char *value = eq + 1;
        if (g_str_equal(key, "flags")) {
            if (!g_str_equal(value, "images"))
                g_error("%s: unknown flags '%s'", expect_path, value);
            c->check_images = TRUE;
        } else if (g_str_equal(key, "schema")) {
            c->schema = g_str_equal(value, "valid") ? SCHEMA_VALID :
                        g_str_equal(value, "skip") ? SCHEMA_SKIP : SCHEMA_DEFAULT;
            if (c->schema == SCHEMA_DEFAULT)
                g_error("%s: schema must be valid or skip (the exemptions; the default is the "
                        "parser's verdict)", expect_path);
            if (c->kind != EXPECT_INVALID)
                g_error("%s: schema= marks a refusal the schema cannot express: only for invalid cases",
                        expect_path);
        } else if (c->kind == EXPECT_INVALID && g_str_equal(key, "message")) {
            GString *m = g_string_new(value);
            g_string_replace(m, "@STORE@", store_dir, 0);
            c->message = g_string_free(m, FALSE);
        } else if (c->kind == EXPECT_INVALID && g_str_equal(key, "on_error")) {
            c->on_error_ignore = g_str_equal(value, "ignore");
        } else if (c->kind == EXPECT_VALID) {
            g_ptr_array_add(c->fields, g_strdup(line));
        } else {
            g_error("%s: unexpected '%s'", expect_path, line);
        }
    }
    if (!have_kind)
        g_error("%s: empty", expect_path);
    if (c->schema != SCHEMA_DEFAULT && !have_reason)
        g_error("%s: schema= needs a '# semantic: ...' line saying why no grammar can refuse it",
                expect_path);
    if (c->kind == EXPECT_INVALID && c->message == NULL)
        g_error("%s: invalid needs message=", expect_path);
    if (c->kind == EXPECT_NONE && !c->is_domain)
        g_error("%s: 'none' is for domain documents only", expect_path);
    return c;
}

static char *
read_case_xml(const Case *c, gsize *len)
{
    g_autoptr(GError) error = NULL;
    char *xml = NULL;
    if (!g_file_get_contents(c->xml_path, &xml, len, &error))
        g_error("%s", error->message);
    return xml;
}

static gboolean
parse_case(const Case *c, MsPolicy **policy, MsOnError *on_error, GError **error)
{
    gsize len;
    g_autofree char *xml = read_case_xml(c, &len);

    *on_error = MS_ON_ERROR_REFUSE;
    if (c->is_domain)
        return ms_policy_parse_domain_xml(xml, len,
                                          c->check_images ? MS_POLICY_CHECK_IMAGES : MS_POLICY_CHECK_NONE,
                                          store_dir, policy, on_error, error);
    gboolean ok = ms_policy_parse_standalone(xml, len, policy, error);
    if (*policy)
        *on_error = (*policy)->on_error;
    return ok;
}

/* ---- schema and agreement ----------------------------------------------- */

static gboolean
schema_accepts_string(const char *xml)
{
    g_autofree char *reason = NULL;
    MsSchemaVerdict v = ms_test_schema_judge(schema, xml, strlen(xml), FALSE, &reason);
    if (v != MS_SCHEMA_ACCEPTS && g_test_verbose())
        g_printerr("schema: %s\n", reason ? reason : ms_test_schema_verdict_name(v));
    return v == MS_SCHEMA_ACCEPTS;
}

typedef enum { PARSER_ACCEPTS, PARSER_REFUSES, PARSER_NO_POLICY } ParserVerdict;

/* "parser refuses (<msg>)", "schema accepts" */
static char *
describe(const char *who, const char *verdict, const char *why)
{
    return why ? g_strdup_printf("%s %s (%s)", who, verdict, why) : g_strdup_printf("%s %s", who, verdict);
}

/* The rule of the header comment. what names the file; exempt is the
 * marker of a case or corpus entry (SCHEMA_DEFAULT: none). A failure does
 * not abort, so that one run lists every disagreement. */
static void
check_agreement(const char *what, ParserVerdict pv, const char *pmsg, MsSchemaVerdict sv,
                const char *sreason, SchemaExpect exempt, const char *how_to_mark)
{
    static const char *const pnames[] = { "accepts", "refuses", "finds no policy" };
    g_autofree char *p = describe("parser", pnames[pv], pv == PARSER_REFUSES ? pmsg : NULL);
    g_autofree char *sch = describe("schema", ms_test_schema_verdict_name(sv), sreason);

    switch (pv) {
    case PARSER_NO_POLICY:
        if (sv != MS_SCHEMA_NO_POLICY)
            g_test_fail_printf("%s: the parser and the schema disagree: %s, %s", what, p, sch);
        break;
    case PARSER_ACCEPTS:
        if (sv != MS_SCHEMA_ACCEPTS)
            g_test_fail_printf("%s: the parser and the schema disagree: %s, %s (the parser is too lax, "
                               "or the schema too strict)", what, p, sch);
        break;
    case PARSER_REFUSES:
        if (sv == MS_SCHEMA_REFUSES && exempt != SCHEMA_DEFAULT)
            g_test_fail_printf("%s: marked as a refusal the schema cannot express, but %s: remove the "
                               "mark (%s)", what, sch, p);
        if (sv == MS_SCHEMA_ACCEPTS && exempt != SCHEMA_VALID)
            g_test_fail_printf("%s: the parser and the schema disagree: %s, %s (make the schema refuse "
                               "it; only if no grammar can, %s schema=valid)", what, p, sch, how_to_mark);
        if (sv == MS_SCHEMA_NO_POLICY && exempt != SCHEMA_SKIP)
            g_test_fail_printf("%s: the parser and the schema disagree: %s, %s (%s schema=skip if the "
                               "domain around the policy is what is wrong)", what, p, sch, how_to_mark);
        break;
    }
}

/* ---- the tests ------------------------------------------------------------ */

static void
check_copy_is_deep(MsPolicy *orig)
{
    g_autoptr(GHashTable) before = dump_policy(orig, TRUE);
    MsPolicy *copy = ms_policy_copy(orig);

    g_assert_true(copy != orig);
    g_assert_true(copy->images != orig->images);
    for (guint i = 0; i < orig->images->len; i++) {
        MsSharedImage *a = g_ptr_array_index(orig->images, i);
        MsSharedImage *b = g_ptr_array_index(copy->images, i);
        g_assert_true(a != b);
        g_assert_true(a->name != b->name);
        g_assert_true(a->mount == NULL || a->mount != b->mount);
    }
    g_assert_true(orig->domain.name == NULL || orig->domain.name != copy->domain.name);
    g_assert_true(orig->domain.uuid == NULL || orig->domain.uuid != copy->domain.uuid);
    g_assert_true(orig->sharing.group == NULL || orig->sharing.group != copy->sharing.group);
    g_assert_true(orig->domain.nova_project == NULL || orig->domain.nova_project != copy->domain.nova_project);
    g_assert_true(orig->domain.balloon_alias == NULL || orig->domain.balloon_alias != copy->domain.balloon_alias);
    g_assert_true(orig->domain.machine == NULL || orig->domain.machine != copy->domain.machine);

    /* Scribble over the original before freeing it: a shallow copy would
     * show the change (or a use after free under ASan/valgrind). */
    for (guint i = 0; i < orig->images->len; i++) {
        MsSharedImage *a = g_ptr_array_index(orig->images, i);
        memset(a->name, 'X', strlen(a->name));
    }
    if (orig->domain.name)
        memset(orig->domain.name, 'X', strlen(orig->domain.name));
    g_ptr_array_set_size(orig->images, 0);
    g_autoptr(GHashTable) after = dump_policy(copy, TRUE);
    assert_dumps_equal("copy", before, after);
    ms_policy_free(copy);
}

static void
test_parse(gconstpointer data)
{
    const Case *c = data;
    g_autoptr(MsPolicy) policy = NULL;
    g_autoptr(GError) error = NULL;
    MsOnError on_error;

    gboolean ok = parse_case(c, &policy, &on_error, &error);
    switch (c->kind) {
    case EXPECT_NONE:
        g_assert_no_error(error);
        g_assert_true(ok);
        g_assert_null(policy);
        return;
    case EXPECT_INVALID:
        g_assert_false(ok);
        g_assert_null(policy);
        g_assert_nonnull(error);
        g_assert_true(error->domain == MS_POLICY_ERROR);
        if (ms_test_regenerating() && !g_str_equal(error->message, c->message)) {
            GString *m = g_string_new(error->message);
            g_string_replace(m, store_dir, "@STORE@", 0);
            ms_test_regenerate_key(c->expect_path, "message", m->str);
            g_string_free(m, TRUE);
            return;
        }
        g_assert_cmpstr(error->message, ==, c->message);
        if (strstr(c->message, "not well-formed XML"))
            g_assert_cmpint(error->code, ==, MS_POLICY_ERROR_XML);
        else
            g_assert_cmpint(error->code, ==, MS_POLICY_ERROR_INVALID);
        if (c->is_domain)
            g_assert_cmpint(on_error, ==, c->on_error_ignore ? MS_ON_ERROR_IGNORE : MS_ON_ERROR_REFUSE);
        return;
    case EXPECT_VALID:
        break;
    }
    g_assert_no_error(error);
    g_assert_true(ok);
    g_assert_nonnull(policy);
    if (c->is_domain)
        g_assert_cmpint(on_error, ==, policy->on_error);

    g_autoptr(GHashTable) got = dump_policy(policy, TRUE);
    for (guint i = 0; i < c->fields->len; i++) {
        const char *line = g_ptr_array_index(c->fields, i);
        const char *eq = strchr(line, '=');
        g_autofree char *key = g_strndup(line, eq - line);
        const char *want = eq + 1;
        if (!g_hash_table_contains(got, key))
            g_test_fail_printf("%s: no field '%s' in the policy dump", c->name, key);
        const char *have = g_hash_table_lookup(got, key);
        if (have != NULL && !g_str_equal(have, want) && ms_test_regenerating())
            ms_test_regenerate_key(c->expect_path, key, have);
        else if (have != NULL && !g_str_equal(have, want))
            g_test_fail_printf("%s: %s is '%s', expected '%s'", c->name, key, have, want);
    }

    /* The canonical form is a standalone policy that the schema accepts
     * and that re-parses to the same policy. */
    g_autofree char *canon = ms_policy_to_xml(policy);
    g_assert_nonnull(canon);
    if (!schema_accepts_string(canon))
        g_test_fail_printf("%s: canonical XML does not validate:\n%s", c->name, canon);
    g_autoptr(MsPolicy) again = NULL;
    if (!ms_policy_parse_standalone(canon, -1, &again, &error))
        g_test_fail_printf("%s: canonical XML does not re-parse: %s\n%s", c->name, error->message, canon);
    g_autoptr(GHashTable) a = dump_policy(policy, FALSE);
    g_autoptr(GHashTable) b = dump_policy(again, FALSE);
    assert_dumps_equal(c->name, a, b);
    /* ... and is a fixed point. */
    g_autofree char *canon2 = ms_policy_to_xml(again);
    g_assert_cmpstr(canon, ==, canon2);

    check_copy_is_deep(policy);
}

static void
test_agree_case(gconstpointer data)
{
    const Case *c = data;
    g_autoptr(MsPolicy) policy = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char *reason = NULL;
    MsOnError on_error;
    gsize len;
    g_autofree char *xml = read_case_xml(c, &len);

    gboolean ok = parse_case(c, &policy, &on_error, &error);
    ParserVerdict pv = !ok ? PARSER_REFUSES : policy ? PARSER_ACCEPTS : PARSER_NO_POLICY;
    MsSchemaVerdict sv = ms_test_schema_judge(schema, xml, len, c->is_domain, &reason);
    g_autofree char *what = g_strdup_printf("%s.xml", c->name);
    check_agreement(what, pv, error ? error->message : NULL, sv, reason, c->schema,
                    "mark it in its .expect with");
}

/* tests/fuzz/policy-semantic.txt: the corpus entries the parser refuses for
 * a reason the schema cannot express, "FILE: schema=valid|skip: MESSAGE". */
typedef struct {
    SchemaExpect mark;
    char *message;
} CorpusMark;

static void
corpus_mark_free(CorpusMark *m)
{
    g_free(m->message);
    g_free(m);
}

static GHashTable *corpus_marks;  /* file name -> CorpusMark */
static char *corpus_marks_path;

static void
load_corpus_marks(const char *path)
{
    g_autofree char *text = NULL;
    g_autoptr(GError) error = NULL;

    corpus_marks = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, (GDestroyNotify)corpus_mark_free);
    corpus_marks_path = g_strdup(path);
    if (!g_file_get_contents(path, &text, NULL, &error))
        g_error("%s", error->message);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        if (**l == '\0' || **l == '#')
            continue;
        g_auto(GStrv) f = g_strsplit(*l, ": ", 3);
        if (g_strv_length(f) != 3 || !(g_str_equal(f[1], "schema=valid") || g_str_equal(f[1], "schema=skip")))
            g_error("%s: not 'FILE: schema=valid|skip: MESSAGE': '%s'", path, *l);
        if (g_hash_table_contains(corpus_marks, f[0]))
            g_error("%s: %s listed twice", path, f[0]);
        CorpusMark *m = g_new0(CorpusMark, 1);
        m->mark = g_str_equal(f[1], "schema=valid") ? SCHEMA_VALID : SCHEMA_SKIP;
        m->message = g_strdup(f[2]);
        g_hash_table_insert(corpus_marks, g_strdup(f[0]), m);
    }
}

/* A corpus entry is judged as memsharectl policy validate judges a file:
 * a domain if its root is <domain>, else a standalone policy; images are
 * not looked up (that is the host's state, not the policy's). */
static void
test_agree_corpus(gconstpointer data)
{
    const char *path = data;
    g_autofree char *base = g_path_get_basename(path);
    g_autofree char *xml = NULL;
    gsize len;
    g_autoptr(GError) error = NULL;
    g_autoptr(MsPolicy) policy = NULL;
    g_autofree char *reason = NULL;
    MsOnError on_error;
    gboolean ok;

    if (!g_file_get_contents(path, &xml, &len, &error))
        g_error("%s", error->message);
    gboolean is_domain = ms_test_is_domain_document(xml, len);
    if (is_domain)
        ok = ms_policy_parse_domain_xml(xml, len, MS_POLICY_CHECK_NONE, NULL, &policy, &on_error, &error);
    else
        ok = ms_policy_parse_standalone(xml, len, &policy, &error);
    ParserVerdict pv = !ok ? PARSER_REFUSES : policy ? PARSER_ACCEPTS : PARSER_NO_POLICY;
    MsSchemaVerdict sv = ms_test_schema_judge(schema, xml, len, is_domain, &reason);

    const CorpusMark *m = g_hash_table_lookup(corpus_marks, base);
    if (m && (pv != PARSER_REFUSES || !g_str_equal(m->message, error->message))) {
        g_test_fail_printf("%s: %s lists it as refused with '%s', but the parser %s%s", base,
                           corpus_marks_path, m->message,
                           pv == PARSER_REFUSES ? "says: " : "does not refuse it",
                           pv == PARSER_REFUSES ? error->message : "");
        return;
    }
    g_autofree char *how = g_strdup_printf("add '%s: schema=...: <message>' to %s, i.e.", base,
                                           corpus_marks_path);
    check_agreement(base, pv, error ? error->message : NULL, sv, reason,
                    m ? m->mark : SCHEMA_DEFAULT, how);
}

/* Every line of the exemption list names a corpus entry. */
static void
test_corpus_marks_exist(gconstpointer data)
{
    const char *corpus_dir = data;
    GHashTableIter it;
    gpointer k;

    g_hash_table_iter_init(&it, corpus_marks);
    while (g_hash_table_iter_next(&it, &k, NULL)) {
        g_autofree char *p = g_build_filename(corpus_dir, (const char *)k, NULL);
        if (!g_file_test(p, G_FILE_TEST_IS_REGULAR))
            g_error("%s: lists %s, which is not in %s", corpus_marks_path, (const char *)k, corpus_dir);
    }
}

static void
test_example(gconstpointer data)
{
    const char *path = data;
    g_autofree char *xml = NULL;
    gsize len;
    g_autoptr(GError) error = NULL;
    g_autoptr(MsPolicy) policy = NULL;

    g_assert_true(g_file_get_contents(path, &xml, &len, NULL));
    if (!ms_policy_parse_standalone(xml, len, &policy, &error))
        g_error("%s: %s", path, error->message);
    g_assert_true(schema_accepts_string(xml));
    g_autofree char *canon = ms_policy_to_xml(policy);
    g_assert_true(schema_accepts_string(canon));
}

/* An empty policy's canonical form is what `memsharectl policy defaults`
 * prints; it must be a valid policy with every default spelled out. */
static void
test_defaults_canonical(void)
{
    g_autoptr(MsPolicy) p = NULL;
    g_autoptr(GError) error = NULL;
    const char *empty = "<policy xmlns='" MS_POLICY_NAMESPACE "'/>";

    g_assert_true(ms_policy_parse_standalone(empty, -1, &p, &error));
    g_autofree char *canon = ms_policy_to_xml(p);
    g_assert_true(schema_accepts_string(canon));
    g_assert_nonnull(strstr(canon, "period='5s'"));
    g_assert_nonnull(strstr(canon, "max-step='64MiB'"));
    g_assert_nonnull(strstr(canon, "hysteresis='16MiB'"));
    g_assert_nonnull(strstr(canon, "window='30s'"));
    g_assert_nonnull(strstr(canon, "on-error='refuse'"));
}

/* Input bound: more than 4 MiB of domain XML is refused before parsing. */
static void
test_oversized(void)
{
    gsize n = 4 * 1024 * 1024 + 1;
    g_autofree char *xml = g_malloc(n + 1);
    const char *head = "<domain><name>big</name><description>";
    memset(xml, 'x', n);
    memcpy(xml, head, strlen(head));
    xml[n] = '\0';
    g_autoptr(MsPolicy) p = NULL;
    g_autoptr(GError) error = NULL;
    MsOnError oe;

    g_assert_false(ms_policy_parse_domain_xml(xml, n, MS_POLICY_CHECK_NONE, NULL, &p, &oe, &error));
    g_assert_error(error, MS_POLICY_ERROR, MS_POLICY_ERROR_XML);
    g_assert_null(p);
    g_clear_error(&error);
    g_assert_false(ms_policy_parse_standalone(xml, n, &p, &error));
    g_assert_error(error, MS_POLICY_ERROR, MS_POLICY_ERROR_XML);
}

/* ms_policy_rebase: the agent re-derives base and floor from the boot
 * <currentMemory> (libvirt's live XML shows the balloon's size there);
 * values set in the policy stay, and the boot value is clamped to <memory>. */
static void
test_rebase(void)
{
    const char *xml =
        "<domain type='kvm'><name>r</name><uuid>6f0c1e1a-3b5e-4c1d-9a7e-2f4b8d9c0a11</uuid>"
        "<memory unit='MiB'>768</memory><currentMemory unit='MiB'>768</currentMemory>"
        "<devices><memballoon model='virtio'/></devices><metadata>"
        "<memshare:policy xmlns:memshare='" MS_POLICY_NAMESPACE "'>"
        "<memshare:balloon mode='ksm-share'%s/></memshare:policy></metadata></domain>";
    g_autofree char *plain = g_strdup_printf(xml, "");
    g_autofree char *withfloor = g_strdup_printf(xml, " floor='256MiB'");
    g_autoptr(MsPolicy) p = NULL, q = NULL;
    g_autoptr(GError) error = NULL;
    MsOnError oe;

    g_assert_true(ms_policy_parse_domain_xml(plain, -1, MS_POLICY_CHECK_NONE, NULL, &p, &oe, &error));
    g_assert_cmpuint(p->balloon.base_kib, ==, 768 * 1024);
    ms_policy_rebase(p, 512 * 1024);
    g_assert_cmpuint(p->domain.current_memory_kib, ==, 512 * 1024);
    g_assert_cmpuint(p->balloon.base_kib, ==, 512 * 1024);
    g_assert_cmpuint(p->balloon.floor_kib, ==, 512 * 1024);
    g_assert_cmpuint(p->balloon.ceiling_kib, ==, 768 * 1024);
    ms_policy_rebase(p, 4096 * 1024);
    g_assert_cmpuint(p->balloon.base_kib, ==, 768 * 1024);

    g_assert_true(ms_policy_parse_domain_xml(withfloor, -1, MS_POLICY_CHECK_NONE, NULL, &q, &oe, &error));
    ms_policy_rebase(q, 512 * 1024);
    g_assert_cmpuint(q->balloon.base_kib, ==, 512 * 1024);
    g_assert_cmpuint(q->balloon.floor_kib, ==, 256 * 1024);
}

/* The size and period parser of formats/ms-units.c directly (the policy
 * parser and the agent's config use it). */
static void
test_size_helpers(void)
{
    guint64 v;
    g_autoptr(GError) error = NULL;

    g_assert_true(ms_units_parse_size_kib("512", "MiB", &v, NULL));
    g_assert_cmpuint(v, ==, 524288);
    g_assert_true(ms_units_parse_size_kib("1", "b", &v, NULL));
    g_assert_cmpuint(v, ==, 1);
    g_assert_true(ms_units_parse_size_kib("0", NULL, &v, NULL));
    g_assert_cmpuint(v, ==, 0);
    g_assert_false(ms_units_parse_size_kib("", NULL, &v, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
    g_clear_error(&error);
    g_assert_false(ms_units_parse_size_kib("1.5GiB", NULL, &v, &error));
    g_clear_error(&error);
    g_assert_true(ms_units_parse_period_ms("250ms", &v, NULL));
    g_assert_cmpuint(v, ==, 250);
    g_assert_true(ms_units_parse_period_ms("3", &v, NULL));
    g_assert_cmpuint(v, ==, 3000);
    g_assert_false(ms_units_parse_period_ms("3x", &v, &error));
    g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
}

/* g_ptr_array_sort passes pointers to the elements. */
static gint
compare_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    srcdir = g_getenv("G_TEST_SRCDIR");
    if (srcdir == NULL)
        g_error("G_TEST_SRCDIR must point at tests/policy");
    const char *rng = g_getenv("MS_POLICY_RNG");
    g_autofree char *rng_default = g_build_filename(srcdir, "..", "..", "xml-schemas", "memshare-policy.rng", NULL);
    g_autofree char *cases_dir = g_build_filename(srcdir, "cases", NULL);
    g_autofree char *examples_dir = g_build_filename(srcdir, "..", "..", "policies", "examples", NULL);
    g_autofree char *corpus_dir = g_build_filename(srcdir, "..", "fuzz", "corpus", "policy", NULL);
    g_autofree char *marks = g_build_filename(srcdir, "..", "fuzz", "policy-semantic.txt", NULL);
    store_dir = g_build_filename(srcdir, "store", NULL);
    schema = ms_test_schema_load(rng ? rng : rng_default);
    if (schema == NULL)
        g_error("cannot load the schema");
    load_corpus_marks(marks);

    g_autoptr(GError) error = NULL;
    g_autoptr(GDir) dir = g_dir_open(cases_dir, 0, &error);
    if (dir == NULL)
        g_error("%s", error->message);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    for (const char *n; (n = g_dir_read_name(dir)) != NULL;)
        if (g_str_has_suffix(n, ".xml"))
            g_ptr_array_add(names, g_strndup(n, strlen(n) - 4));
    g_ptr_array_sort(names, compare_names);
    if (names->len < 40)
        g_error("%s: only %u cases", cases_dir, names->len);

    g_autoptr(GPtrArray) cases = g_ptr_array_new_with_free_func((GDestroyNotify)case_free);
    for (guint i = 0; i < names->len; i++) {
        const char *name = g_ptr_array_index(names, i);
        if (!g_str_has_prefix(name, "dom-") && !g_str_has_prefix(name, "pol-"))
            g_error("%s: case names start with dom- or pol-", name);
        Case *c = load_case(cases_dir, name);
        g_ptr_array_add(cases, c);
        g_autofree char *p1 = g_strdup_printf("/policy/parse/%s", name);
        g_autofree char *p2 = g_strdup_printf("/policy/agree/case/%s", name);
        g_test_add_data_func(p1, c, test_parse);
        g_test_add_data_func(p2, c, test_agree_case);
    }

    g_autoptr(GPtrArray) corpus = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GDir) cdir = g_dir_open(corpus_dir, 0, &error);
    if (cdir == NULL)
        g_error("%s", error->message);
    for (const char *n; (n = g_dir_read_name(cdir)) != NULL;)
        g_ptr_array_add(corpus, g_build_filename(corpus_dir, n, NULL));
    g_ptr_array_sort(corpus, compare_names);
    if (corpus->len < 40)
        g_error("%s: only %u entries", corpus_dir, corpus->len);
    for (guint i = 0; i < corpus->len; i++) {
        const char *path = g_ptr_array_index(corpus, i);
        g_autofree char *base = g_path_get_basename(path);
        g_autofree char *tp = g_strdup_printf("/policy/agree/corpus/%s", base);
        g_test_add_data_func(tp, path, test_agree_corpus);
    }
    g_test_add_data_func("/policy/agree/corpus-list", corpus_dir, test_corpus_marks_exist);

    g_autoptr(GPtrArray) examples = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GDir) edir = g_dir_open(examples_dir, 0, &error);
    if (edir == NULL)
        g_error("%s", error->message);
    for (const char *n; (n = g_dir_read_name(edir)) != NULL;) {
        if (!g_str_has_suffix(n, ".xml"))
            continue;
        g_ptr_array_add(examples, g_build_filename(examples_dir, n, NULL));
        g_autofree char *path = g_strdup_printf("/policy/example/%s", n);
        g_test_add_data_func(path, g_ptr_array_index(examples, examples->len - 1), test_example);
    }
    g_test_add_func("/policy/defaults-canonical", test_defaults_canonical);
    g_test_add_func("/policy/oversized", test_oversized);
    g_test_add_func("/policy/size-helpers", test_size_helpers);
    g_test_add_func("/policy/rebase", test_rebase);

    int rc = g_test_run();
    xmlRelaxNGFree(schema);
    g_hash_table_unref(corpus_marks);
    g_free(corpus_marks_path);
    g_free(store_dir);
    return rc;
}
