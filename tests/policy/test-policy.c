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
 *   schema=valid|invalid|skip   what the RNG says of the policy element
 *                   (default: same as the parser; 'valid' marks the checks
 *                   a grammar cannot express, 'skip' documents without one)
 *
 * Per case: the parse test; for valid ones the canonical XML re-parses
 * (standalone) to an equal policy, validates against the schema, and
 * ms_policy_copy is deep; the schema test validates the case's policy
 * element. The example policies (policies/examples/) are validated too. */
#include "ms-policy.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/relaxng.h>
#include <libxml/tree.h>

typedef enum { EXPECT_NONE, EXPECT_VALID, EXPECT_INVALID } ExpectKind;
typedef enum { SCHEMA_DEFAULT, SCHEMA_VALID, SCHEMA_INVALID, SCHEMA_SKIP } SchemaExpect;

typedef struct {
    char *name;
    char *xml_path;
    gboolean is_domain;
    ExpectKind kind;
    gboolean check_images;
    SchemaExpect schema;
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
    if (with_domain) {
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
    gboolean have_kind = FALSE;

    c->name = g_strdup(name);
    c->xml_path = g_strdup_printf("%s/%s.xml", dir, name);
    c->is_domain = g_str_has_prefix(name, "dom-");
    c->fields = g_ptr_array_new_with_free_func(g_free);
    if (!g_file_get_contents(expect_path, &text, NULL, &error))
        g_error("%s", error->message);

    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    for (char **l = lines; *l; l++) {
        const char *line = *l;
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
                        g_str_equal(value, "invalid") ? SCHEMA_INVALID :
                        g_str_equal(value, "skip") ? SCHEMA_SKIP : SCHEMA_DEFAULT;
            if (c->schema == SCHEMA_DEFAULT)
                g_error("%s: schema must be valid, invalid or skip", expect_path);
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
    if (c->kind == EXPECT_INVALID && c->message == NULL)
        g_error("%s: invalid needs message=", expect_path);
    if (c->kind == EXPECT_NONE && !c->is_domain)
        g_error("%s: 'none' is for domain documents only", expect_path);
    if (c->schema == SCHEMA_DEFAULT)
        c->schema = c->kind == EXPECT_VALID ? SCHEMA_VALID :
                    c->kind == EXPECT_INVALID ? SCHEMA_INVALID : SCHEMA_SKIP;
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

/* ---- schema --------------------------------------------------------------- */

static xmlRelaxNGPtr
load_schema(const char *path)
{
    xmlRelaxNGParserCtxtPtr pctx = xmlRelaxNGNewParserCtxt(path);
    g_assert_nonnull(pctx);
    xmlRelaxNGPtr s = xmlRelaxNGParse(pctx);
    xmlRelaxNGFreeParserCtxt(pctx);
    if (s == NULL)
        g_error("%s: not a valid RelaxNG schema", path);
    return s;
}

static void
quiet_errors(void *ctx, const char *msg, ...)
{
    (void)ctx;
    (void)msg;
}

static void
print_errors(void *ctx, const char *msg, ...)
{
    va_list ap;
    (void)ctx;
    va_start(ap, msg);
    vfprintf(stderr, msg, ap);
    va_end(ap);
}

/* TRUE when the document validates. */
static gboolean
schema_accepts(xmlDoc *doc)
{
    xmlRelaxNGValidCtxtPtr v = xmlRelaxNGNewValidCtxt(schema);
    if (g_test_verbose())
        xmlRelaxNGSetValidErrors(v, print_errors, print_errors, NULL);
    else
        xmlRelaxNGSetValidErrors(v, quiet_errors, quiet_errors, NULL);
    int rc = xmlRelaxNGValidateDoc(v, doc);
    xmlRelaxNGFreeValidCtxt(v);
    g_assert_cmpint(rc, >=, 0);
    return rc == 0;
}

static gboolean
schema_accepts_string(const char *xml)
{
    xmlDoc *doc = xmlReadMemory(xml, (int)strlen(xml), "policy.xml", NULL, XML_PARSE_NONET);
    g_assert_nonnull(doc);
    gboolean ok = schema_accepts(doc);
    xmlFreeDoc(doc);
    return ok;
}

/* The policy element of a domain, copied into a document of its own (as
 * `virsh metadata` would print it; namespace declarations of ancestors are
 * reconciled by the copy). */
static xmlDoc *
extract_policy(xmlDoc *domain)
{
    xmlNode *root = xmlDocGetRootElement(domain);
    for (xmlNode *m = root ? root->children : NULL; m; m = m->next) {
        if (m->type != XML_ELEMENT_NODE || strcmp((const char *)m->name, "metadata") != 0)
            continue;
        for (xmlNode *p = m->children; p; p = p->next) {
            if (p->type == XML_ELEMENT_NODE && p->ns &&
                strcmp((const char *)p->ns->href, MS_POLICY_NAMESPACE) == 0 &&
                strcmp((const char *)p->name, "policy") == 0) {
                xmlDoc *doc = xmlNewDoc((const xmlChar *)"1.0");
                xmlNode *copy = xmlDocCopyNode(p, doc, 1);
                xmlDocSetRootElement(doc, copy);
                xmlReconciliateNs(doc, copy);
                return doc;
            }
        }
    }
    return NULL;
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
            g_error("%s: no field '%s' in the policy dump", c->name, key);
        const char *have = g_hash_table_lookup(got, key);
        if (!g_str_equal(have, want))
            g_error("%s: %s is '%s', expected '%s'", c->name, key, have, want);
    }

    /* The canonical form is a standalone policy that the schema accepts
     * and that re-parses to the same policy. */
    g_autofree char *canon = ms_policy_to_xml(policy);
    g_assert_nonnull(canon);
    if (!schema_accepts_string(canon))
        g_error("%s: canonical XML does not validate:\n%s", c->name, canon);
    g_autoptr(MsPolicy) again = NULL;
    if (!ms_policy_parse_standalone(canon, -1, &again, &error))
        g_error("%s: canonical XML does not re-parse: %s\n%s", c->name, error->message, canon);
    g_autoptr(GHashTable) a = dump_policy(policy, FALSE);
    g_autoptr(GHashTable) b = dump_policy(again, FALSE);
    assert_dumps_equal(c->name, a, b);
    /* ... and is a fixed point. */
    g_autofree char *canon2 = ms_policy_to_xml(again);
    g_assert_cmpstr(canon, ==, canon2);

    check_copy_is_deep(policy);
}

static void
test_schema(gconstpointer data)
{
    const Case *c = data;
    gsize len;
    g_autofree char *xml = read_case_xml(c, &len);

    if (c->schema == SCHEMA_SKIP) {
        g_test_skip("no policy element to validate");
        return;
    }
    xmlDoc *doc = xmlReadMemory(xml, (int)len, c->xml_path, NULL, XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    g_assert_nonnull(doc);
    if (c->is_domain) {
        xmlDoc *pdoc = extract_policy(doc);
        xmlFreeDoc(doc);
        g_assert_nonnull(pdoc);
        doc = pdoc;
    }
    gboolean accepted = schema_accepts(doc);
    xmlFreeDoc(doc);
    if (c->schema == SCHEMA_VALID && !accepted)
        g_error("%s: the schema rejects it (run with --verbose for the reason)", c->name);
    if (c->schema == SCHEMA_INVALID && accepted)
        g_error("%s: the schema accepts it, the parser does not (mark schema=valid if no grammar can tell)", c->name);
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

/* The size and period helpers directly (the hook and agent use them). */
static void
test_size_helpers(void)
{
    guint64 v;
    g_autoptr(GError) error = NULL;

    g_assert_true(ms_policy_parse_size_kib("512", "MiB", &v, NULL));
    g_assert_cmpuint(v, ==, 524288);
    g_assert_true(ms_policy_parse_size_kib("1", "b", &v, NULL));
    g_assert_cmpuint(v, ==, 1);
    g_assert_true(ms_policy_parse_size_kib("0", NULL, &v, NULL));
    g_assert_cmpuint(v, ==, 0);
    g_assert_false(ms_policy_parse_size_kib("", NULL, &v, &error));
    g_assert_error(error, MS_POLICY_ERROR, MS_POLICY_ERROR_INVALID);
    g_clear_error(&error);
    g_assert_false(ms_policy_parse_size_kib("1.5GiB", NULL, &v, &error));
    g_clear_error(&error);
    g_assert_true(ms_policy_parse_period_ms("250ms", &v, NULL));
    g_assert_cmpuint(v, ==, 250);
    g_assert_true(ms_policy_parse_period_ms("3", &v, NULL));
    g_assert_cmpuint(v, ==, 3000);
    g_assert_false(ms_policy_parse_period_ms("3x", &v, &error));
    g_assert_error(error, MS_POLICY_ERROR, MS_POLICY_ERROR_INVALID);
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
    store_dir = g_build_filename(srcdir, "store", NULL);
    schema = load_schema(rng ? rng : rng_default);

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
        g_autofree char *p2 = g_strdup_printf("/policy/schema/%s", name);
        g_test_add_data_func(p1, c, test_parse);
        g_test_add_data_func(p2, c, test_schema);
    }

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
    g_free(store_dir);
    return rc;
}
