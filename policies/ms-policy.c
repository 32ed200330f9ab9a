/* policies/ms-policy.c: the memshare policy parser. Owns the policy language
 * (docs/policy.md, xml-schemas/memshare-policy.rng): reading the
 * <policy> element of a domain's <metadata> with libxml2 into an MsPolicy,
 * the documented defaults, the syntax checks, the cross-checks against the
 * rest of the domain XML, and the canonical serialisation.
 *
 * Everything here runs inside the hook at `prepare`, i.e. while libvirtd
 * waits, on XML that a user (or anyone allowed to edit a domain) wrote. So:
 * no network, no entity expansion, bounded input, and every refusal names
 * the domain, the element, the attribute, its value and the reason, because
 * that message is all `virsh start` shows. */
#include "ms-policy.h"
#include "ms-units.h"
#include "ms-util.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

G_DEFINE_QUARK(ms-policy-error-quark, ms_policy_error)

/* libvirt's own domain XML limit is 10 MiB, but real domains are a few KiB;
 * 4 MiB leaves room for huge <metadata> without letting a hostile one
 * make the hook allocate without bound. */
#define MS_POLICY_MAX_XML (4 * 1024 * 1024)
#define MS_POLICY_MAX_IMAGES 16
#define MS_POLICY_MAX_VALUE 256       /* longest attribute value we accept */
#define MS_POLICY_MAX_WEIGHT 1000

#define DEFAULT_PERIOD_MS 5000
#define DEFAULT_WINDOW_MS 30000
#define DEFAULT_MAX_STEP_KIB (64 * 1024)
#define DEFAULT_HYSTERESIS_KIB (16 * 1024)
#define HOUR_MS (3600 * 1000)

/* Parse state: what error messages need beyond the struct (the prefix and
 * the attribute values exactly as the user wrote them). */
typedef struct {
    char *prefix;          /* "domain 'web1': " or "" */
    MsPolicy *policy;
    /* raw attribute values for messages about derived checks */
    char *raw_base, *raw_floor, *raw_ceiling;
    gboolean seen_balloon, seen_tracking, seen_stats, seen_sharing, seen_migration;
} ParseCtx;

static void
ctx_clear(ParseCtx *ctx)
{
    g_free(ctx->prefix);
    g_free(ctx->raw_base);
    g_free(ctx->raw_floor);
    g_free(ctx->raw_ceiling);
}

static void G_GNUC_PRINTF(4, 5)
set_error(GError **error, const ParseCtx *ctx, MsPolicyErrorCode code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, MS_POLICY_ERROR, code, "%s%s", ctx && ctx->prefix ? ctx->prefix : "", msg);
}

/* "<balloon floor='2GiB'>: " */
static char *
where_attr(const char *elem, const char *attr, const char *value)
{
    g_autofree char *v = ms_printable(value);
    return g_strdup_printf("<%s %s='%s'>", elem, attr, v);
}

/* Largest exact binary unit, as the messages and the canonical XML show
 * sizes: 1GiB, 1536MiB, 100KiB. */
static char *
format_size_kib(guint64 kib)
{
    if (kib != 0 && kib % (G_GUINT64_CONSTANT(1) << 30) == 0)
        return g_strdup_printf("%" G_GUINT64_FORMAT "TiB", kib >> 30);
    if (kib != 0 && kib % (1 << 20) == 0)
        return g_strdup_printf("%" G_GUINT64_FORMAT "GiB", kib >> 20);
    if (kib != 0 && kib % (1 << 10) == 0)
        return g_strdup_printf("%" G_GUINT64_FORMAT "MiB", kib >> 10);
    return g_strdup_printf("%" G_GUINT64_FORMAT "KiB", kib);
}

static char *
format_period_ms(guint64 ms)
{
    if (ms != 0 && ms % HOUR_MS == 0)
        return g_strdup_printf("%" G_GUINT64_FORMAT "h", ms / HOUR_MS);
    if (ms != 0 && ms % 60000 == 0)
        return g_strdup_printf("%" G_GUINT64_FORMAT "m", ms / 60000);
    if (ms != 0 && ms % 1000 == 0)
        return g_strdup_printf("%" G_GUINT64_FORMAT "s", ms / 1000);
    return g_strdup_printf("%" G_GUINT64_FORMAT "ms", ms);
}

/* ---- attribute helpers -------------------------------------------------- */

static gboolean
is_ours(const xmlNode *node)
{
    return node->ns && node->ns->href && strcmp((const char *)node->ns->href, MS_POLICY_NS) == 0;
}

/* "a, b or c" */
static char *
join_or(const char *const *values)
{
    guint n = g_strv_length((char **)values);
    GString *s = g_string_new(NULL);
    for (guint i = 0; i < n; i++)
        g_string_append_printf(s, "%s%s", values[i], i + 2 < n ? ", " : (i + 1 < n ? " or " : ""));
    return g_string_free(s, FALSE);
}

/* A name as the user wrote it: "x:future", or "future" without a prefix. */
static char *
qualified_name(const xmlNs *ns, const xmlChar *name)
{
    g_autofree char *n = ms_printable((const char *)name);
    if (ns && ns->prefix) {
        g_autofree char *p = ms_printable((const char *)ns->prefix);
        return g_strdup_printf("%s:%s", p, n);
    }
    return g_steal_pointer(&n);
}

/* The language is closed (docs/policy.md, and the schema says the same):
 * policy attributes are unqualified, and an attribute in any namespace,
 * memshare's, an extension's or xml:lang, is refused rather than ignored,
 * so that a typo or a misplaced prefix cannot drop a setting unnoticed. */
static gboolean
check_attributes(const ParseCtx *ctx, const xmlNode *node, const char *const *allowed, GError **error)
{
    for (const xmlAttr *a = node->properties; a; a = a->next) {
        if (a->ns == NULL && g_strv_contains(allowed, (const char *)a->name))
            continue;
        xmlChar *v = xmlNodeGetContent((const xmlNode *)a);
        g_autofree char *qn = qualified_name(a->ns, a->name);
        g_autofree char *w = where_attr((const char *)node->name, qn, v ? (const char *)v : "");
        g_autofree char *list = join_or(allowed);
        xmlFree(v);
        if (a->ns == NULL) {
            set_error(error, ctx, MS_POLICY_ERROR_INVALID, "%s: unknown attribute (expected %s)", w, list);
        } else if (a->ns->href && strcmp((const char *)a->ns->href, MS_POLICY_NS) == 0 &&
                   g_strv_contains(allowed, (const char *)a->name)) {
            g_autofree char *n = ms_printable((const char *)a->name);
            set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                      "%s: attribute in the memshare namespace (write %s=, without a prefix)", w, n);
        } else {
            g_autofree char *href = ms_printable(a->ns->href ? (const char *)a->ns->href : "");
            set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                      "%s: attribute of namespace '%s' (expected only %s, without a prefix)", w, href, list);
        }
        return FALSE;
    }
    return TRUE;
}

/* The parser does not expand entities (read_doc), and a reference it
 * skipped would hide whatever the entity holds; a validator sees the
 * expanded content instead. Refused, whatever it expands to. */
static gboolean
refuse_entity_ref(const ParseCtx *ctx, const xmlNode *parent, const xmlNode *ref, GError **error)
{
    g_autofree char *n = ms_printable((const char *)ref->name);
    set_error(error, ctx, MS_POLICY_ERROR_INVALID,
              "<%s>: entity reference &%s; (write its content in place)", parent->name, n);
    return FALSE;
}

/* Returns a g_malloc'd copy of the attribute or NULL. */
static char *
get_attr(const xmlNode *node, const char *name)
{
    xmlChar *v = xmlGetNoNsProp(node, (const xmlChar *)name);
    if (v == NULL)
        return NULL;
    char *r = g_strdup((const char *)v);
    xmlFree(v);
    return r;
}

static gboolean
attr_size(const ParseCtx *ctx, const xmlNode *node, const char *name, guint64 *kib,
          char **raw_out, gboolean *present, GError **error)
{
    g_autofree char *v = get_attr(node, name);
    g_autoptr(GError) local = NULL;

    if (present)
        *present = v != NULL;
    if (v == NULL)
        return TRUE;
    if (!ms_units_parse_size_kib(v, "KiB", kib, &local)) {
        g_autofree char *w = where_attr((const char *)node->name, name, v);
        set_error(error, ctx, MS_POLICY_ERROR_INVALID, "%s: %s", w, local->message);
        return FALSE;
    }
    if (raw_out)
        *raw_out = g_steal_pointer(&v);
    return TRUE;
}

static gboolean
attr_period(const ParseCtx *ctx, const xmlNode *node, const char *name, guint64 min_ms,
            guint64 *ms, GError **error)
{
    g_autofree char *v = get_attr(node, name);
    g_autoptr(GError) local = NULL;

    if (v == NULL)
        return TRUE;
    g_autofree char *w = where_attr((const char *)node->name, name, v);
    if (!ms_units_parse_period_ms(v, ms, &local)) {
        set_error(error, ctx, MS_POLICY_ERROR_INVALID, "%s: %s", w, local->message);
        return FALSE;
    }
    if (*ms < min_ms || *ms > HOUR_MS) {
        g_autofree char *lo = format_period_ms(min_ms);
        set_error(error, ctx, MS_POLICY_ERROR_INVALID, "%s: out of range (%s to 1h)", w, lo);
        return FALSE;
    }
    return TRUE;
}

/* Enumerations: returns the index into values, or -1 if absent. */
static gboolean
attr_enum(const ParseCtx *ctx, const xmlNode *node, const char *name,
          const char *const *values, int *out, GError **error)
{
    g_autofree char *v = get_attr(node, name);

    *out = -1;
    if (v == NULL)
        return TRUE;
    for (int i = 0; values[i]; i++) {
        if (strcmp(values[i], v) == 0) {
            *out = i;
            return TRUE;
        }
    }
    g_autofree char *w = where_attr((const char *)node->name, name, v);
    g_autofree char *list = join_or(values);
    set_error(error, ctx, MS_POLICY_ERROR_INVALID, "%s: must be one of %s", w, list);
    return FALSE;
}

/* on/off and yes/no, as libvirt's own XML mixes both. */
static gboolean
attr_bool(const ParseCtx *ctx, const xmlNode *node, const char *name, gboolean *out, GError **error)
{
    static const char *const values[] = { "on", "off", "yes", "no", NULL };
    int i;
    g_autofree char *v = get_attr(node, name);

    if (v == NULL)
        return TRUE;
    for (i = 0; values[i]; i++)
        if (strcmp(values[i], v) == 0)
            break;
    if (values[i] == NULL) {
        g_autofree char *w = where_attr((const char *)node->name, name, v);
        set_error(error, ctx, MS_POLICY_ERROR_INVALID, "%s: must be on or off", w);
        return FALSE;
    }
    *out = i == 0 || i == 2;
    return TRUE;
}

/* Policy leaf elements have no content: only whitespace, comments and
 * processing instructions may appear in them (as in the schema). */
static gboolean
check_empty(const ParseCtx *ctx, const xmlNode *node, GError **error)
{
    for (const xmlNode *c = node->children; c; c = c->next) {
        if (c->type == XML_COMMENT_NODE || c->type == XML_PI_NODE)
            continue;
        if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
            for (const xmlChar *p = c->content; p && *p; p++) {
                if (!g_ascii_isspace(*p)) {
                    set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                              "<%s>: unexpected text (this element takes attributes only)", node->name);
                    return FALSE;
                }
            }
            continue;
        }
        if (c->type == XML_ENTITY_REF_NODE)
            return refuse_entity_ref(ctx, node, c, error);
        g_autofree char *qn = c->type == XML_ELEMENT_NODE ? qualified_name(c->ns, c->name) : NULL;
        set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                  "<%s>: unexpected child %s%s%s (this element takes attributes only)", node->name,
                  qn ? "element <" : "node", qn ? qn : "", qn ? ">" : "");
        return FALSE;
    }
    return TRUE;
}

static gboolean
check_once(const ParseCtx *ctx, const xmlNode *node, gboolean *seen, GError **error)
{
    if (*seen) {
        set_error(error, ctx, MS_POLICY_ERROR_INVALID, "<%s>: appears more than once", node->name);
        return FALSE;
    }
    *seen = TRUE;
    return TRUE;
}

/* ---- the policy elements ------------------------------------------------ */

static gboolean
parse_balloon(ParseCtx *ctx, const xmlNode *node, GError **error)
{
    static const char *const attrs[] = { "mode", "division", "weight", "base", "floor", "ceiling",
                                         "period", "max-step", "hysteresis", NULL };
    static const char *const modes[] = { "off", "ksm-share", NULL };
    static const char *const divisions[] = { "equal", "weighted", "contribution", NULL };
    MsPolicy *p = ctx->policy;
    int mode, division;

    if (!check_once(ctx, node, &ctx->seen_balloon, error) ||
        !check_attributes(ctx, node, attrs, error) ||
        !check_empty(ctx, node, error))
        return FALSE;

    if (!attr_enum(ctx, node, "mode", modes, &mode, error))
        return FALSE;
    if (mode < 0) {
        set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                  "<balloon>: missing attribute mode (off or ksm-share)");
        return FALSE;
    }
    p->balloon.mode = mode == 1 ? MS_BALLOON_KSM_SHARE : MS_BALLOON_OFF;
    if (!attr_enum(ctx, node, "division", divisions, &division, error))
        return FALSE;
    if (division >= 0)
        p->balloon.division = (MsDivision)division;

    g_autofree char *weight = get_attr(node, "weight");
    if (weight) {
        guint64 w;
        g_autofree char *where = where_attr("balloon", "weight", weight);
        if (!ms_parse_u64(weight, "weight", &w, NULL) || w < 1 || w > MS_POLICY_MAX_WEIGHT) {
            set_error(error, ctx, MS_POLICY_ERROR_INVALID, "%s: must be a whole number from 1 to %d",
                      where, MS_POLICY_MAX_WEIGHT);
            return FALSE;
        }
        if (p->balloon.division != MS_DIVIDE_WEIGHTED) {
            set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                      "%s: weight is only used with division='weighted'", where);
            return FALSE;
        }
        p->balloon.weight = (guint)w;
    }

    if (!attr_size(ctx, node, "base", &p->balloon.base_kib, &ctx->raw_base, &p->balloon.base_set, error) ||
        !attr_size(ctx, node, "floor", &p->balloon.floor_kib, &ctx->raw_floor, &p->balloon.floor_set, error) ||
        !attr_size(ctx, node, "ceiling", &p->balloon.ceiling_kib, &ctx->raw_ceiling, &p->balloon.ceiling_set, error) ||
        !attr_size(ctx, node, "hysteresis", &p->balloon.hysteresis_kib, NULL, NULL, error))
        return FALSE;

    gboolean step_set = FALSE;
    g_autofree char *step_raw = NULL;
    if (!attr_size(ctx, node, "max-step", &p->balloon.max_step_kib, &step_raw, &step_set, error))
        return FALSE;
    if (step_set && p->balloon.max_step_kib == 0) {
        g_autofree char *w = where_attr("balloon", "max-step", step_raw);
        set_error(error, ctx, MS_POLICY_ERROR_INVALID, "%s: must be larger than 0", w);
        return FALSE;
    }
    /* The balloon moves at most once per period; faster than 1 s only
     * makes QEMU and the guest busy without KSM having changed. */
    if (!attr_period(ctx, node, "period", 1000, &p->balloon.period_ms, error))
        return FALSE;
    return TRUE;
}

static gboolean
parse_tracking(ParseCtx *ctx, const xmlNode *node, GError **error)
{
    static const char *const attrs[] = { "used-pages", "period", "working-set", "window",
                                         "free-page-reporting", NULL };
    static const char *const fpr[] = { "optional", "required", NULL };
    MsPolicy *p = ctx->policy;
    int req;

    if (!check_once(ctx, node, &ctx->seen_tracking, error) ||
        !check_attributes(ctx, node, attrs, error) ||
        !check_empty(ctx, node, error) ||
        !attr_bool(ctx, node, "used-pages", &p->tracking.used_pages, error) ||
        !attr_period(ctx, node, "period", 100, &p->tracking.period_ms, error) ||
        !attr_bool(ctx, node, "working-set", &p->tracking.working_set, error) ||
        !attr_period(ctx, node, "window", 100, &p->tracking.ws_window_ms, error) ||
        !attr_enum(ctx, node, "free-page-reporting", fpr, &req, error))
        return FALSE;
    if (req >= 0)
        p->tracking.require_free_page_reporting = req == 1;

    /* The working set is estimated by the used-page scanner: without it
     * there is nothing to estimate from. */
    if (p->tracking.working_set && !p->tracking.used_pages) {
        set_error(error, ctx, MS_POLICY_ERROR_INVALID, "<tracking working-set='on'>: needs used-pages='on'");
        return FALSE;
    }
    if (p->tracking.ws_window_ms < p->tracking.period_ms) {
        g_autofree char *w = format_period_ms(p->tracking.ws_window_ms);
        g_autofree char *per = format_period_ms(p->tracking.period_ms);
        set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                  "<tracking window='%s'>: shorter than the scan period (%s)", w, per);
        return FALSE;
    }
    return TRUE;
}

/* Image names become file names inside the store: one conservative
 * character set, no leading dot, so no traversal, no hidden files, no
 * option-looking names. The store (ms_image_name_is_valid) calls this. */
gboolean
ms_policy_image_name_is_valid(const char *name)
{
    if (name == NULL)
        return FALSE;
    gsize n = strlen(name);
    if (n == 0 || n > MS_POLICY_IMAGE_NAME_MAX || !g_ascii_isalnum(name[0]))
        return FALSE;
    for (gsize i = 0; i < n; i++)
        if (!g_ascii_isalnum(name[i]) && name[i] != '.' && name[i] != '_' && name[i] != '-')
            return FALSE;
    return TRUE;
}

static gboolean
mount_is_valid(const char *mount)
{
    if (mount[0] != '/' || strlen(mount) > 255)
        return FALSE;
    g_auto(GStrv) parts = g_strsplit(mount, "/", -1);
    for (char **c = parts; *c; c++)
        if (strcmp(*c, "..") == 0 || strcmp(*c, ".") == 0)
            return FALSE;
    for (const char *q = mount; *q; q++)
        if (!g_ascii_isprint(*q))
            return FALSE;
    return TRUE;
}

static void
shared_image_free(MsSharedImage *img)
{
    if (img == NULL)
        return;
    g_free(img->name);
    g_free(img->mount);
    g_free(img);
}

static gboolean
parse_shared_image(ParseCtx *ctx, const xmlNode *node, GError **error)
{
    static const char *const attrs[] = { "name", "mount", "mode", "fallback", NULL };
    static const char *const modes[] = { "dax", "blk", NULL };
    static const char *const fallbacks[] = { "none", "blk", NULL };
    MsPolicy *p = ctx->policy;
    int mode, fallback;

    if (!check_attributes(ctx, node, attrs, error) || !check_empty(ctx, node, error))
        return FALSE;
    if (p->images->len >= MS_POLICY_MAX_IMAGES) {
        set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                  "<shared-image>: more than %d shared images", MS_POLICY_MAX_IMAGES);
        return FALSE;
    }
    g_autofree char *name = get_attr(node, "name");
    if (name == NULL) {
        set_error(error, ctx, MS_POLICY_ERROR_INVALID, "<shared-image>: missing attribute name");
        return FALSE;
    }
    if (!ms_policy_image_name_is_valid(name)) {
        g_autofree char *w = where_attr("shared-image", "name", name);
        set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                  "%s: not a valid image name (1 to 64 of A-Z a-z 0-9 . _ -, starting with a "
                  "letter or digit; images are named, never given by path)", w);
        return FALSE;
    }
    g_autofree char *mount = get_attr(node, "mount");
    if (mount && !mount_is_valid(mount)) {
        g_autofree char *w = where_attr("shared-image", "mount", mount);
        set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                  "%s: not an absolute path without '.' or '..' components (at most 255 bytes)", w);
        return FALSE;
    }
    if (!attr_enum(ctx, node, "mode", modes, &mode, error) ||
        !attr_enum(ctx, node, "fallback", fallbacks, &fallback, error))
        return FALSE;
    if (fallback == 1 && mode == 1) {
        set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                  "<shared-image name='%s' fallback='blk'>: fallback is only used with mode='dax'", name);
        return FALSE;
    }
    for (guint i = 0; i < p->images->len; i++) {
        const MsSharedImage *o = g_ptr_array_index(p->images, i);
        if (strcmp(o->name, name) == 0) {
            set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                      "<shared-image name='%s'>: named more than once", name);
            return FALSE;
        }
        if (mount && o->mount && strcmp(o->mount, mount) == 0) {
            g_autofree char *w = where_attr("shared-image", "mount", mount);
            set_error(error, ctx, MS_POLICY_ERROR_INVALID, "%s: image '%s' is already mounted there",
                      w, o->name);
            return FALSE;
        }
    }

    MsSharedImage *img = g_new0(MsSharedImage, 1);
    img->name = g_steal_pointer(&name);
    img->mount = g_steal_pointer(&mount);
    img->mode = mode == 1 ? MS_IMAGE_BLK : MS_IMAGE_DAX;
    img->fallback_blk = fallback == 1;
    g_ptr_array_add(p->images, img);
    return TRUE;
}

static gboolean
parse_stats(ParseCtx *ctx, const xmlNode *node, GError **error)
{
    static const char *const attrs[] = { "period", NULL };

    return check_once(ctx, node, &ctx->seen_stats, error) &&
           check_attributes(ctx, node, attrs, error) &&
           check_empty(ctx, node, error) &&
           attr_period(ctx, node, "period", 1000, &ctx->policy->stats.period_ms, error);
}

/* <sharing group='NAME'/>: the domain's trust group (docs/security.md).
 * The name may later name a directory of the image store, so it has the
 * image names' alphabet, and no ':' (the derived groups' namespace). */
static gboolean
parse_sharing(ParseCtx *ctx, const xmlNode *node, GError **error)
{
    static const char *const attrs[] = { "group", NULL };
    g_autoptr(GError) local = NULL;

    if (!check_once(ctx, node, &ctx->seen_sharing, error) ||
        !check_attributes(ctx, node, attrs, error) ||
        !check_empty(ctx, node, error))
        return FALSE;
    g_autofree char *group = get_attr(node, "group");
    if (group == NULL) {
        set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                  "<sharing>: missing attribute group (a name such as 'tenant-a'; without <sharing> "
                  "the host's [sharing] default-group applies)");
        return FALSE;
    }
    if (!ms_sharing_name_check(group, strlen(group), &local)) {
        g_autofree char *w = where_attr("sharing", "group", group);
        set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                  "%s: not a valid group name: %s (1 to %d of A-Z a-z 0-9 . _ -, starting with a "
                  "letter or digit)", w, local->message, MS_SHARING_NAME_MAX);
        return FALSE;
    }
    ctx->policy->sharing.group = g_steal_pointer(&group);
    return TRUE;
}

/* <migration free-page-hint='on' missing-images='fetch'/>: what a live
 * migration of the domain may use. The hint is a device property only the domain's definition can
 * carry (the hook cannot change the XML at start), so the parser records
 * the wish and the domain facts say whether the definition has it. */
static gboolean
parse_migration(ParseCtx *ctx, const xmlNode *node, GError **error)
{
    static const char *const attrs[] = { "free-page-hint", "missing-images", NULL };
    /* which peers may be asked is the host's word (memshare.conf), never
     * the metadata's: the policy only allows asking */
    static const char *const missing[] = { "refuse", "fetch", NULL };
    int m = -1;

    if (!(check_once(ctx, node, &ctx->seen_migration, error) &&
          check_attributes(ctx, node, attrs, error) &&
          check_empty(ctx, node, error) &&
          attr_bool(ctx, node, "free-page-hint", &ctx->policy->migration.free_page_hint, error) &&
          attr_enum(ctx, node, "missing-images", missing, &m, error)))
        return FALSE;
    ctx->policy->migration.fetch_missing_images = m == 1;
    return TRUE;
}

static MsPolicy *
policy_new_defaults(void)
{
    MsPolicy *p = g_new0(MsPolicy, 1);
    p->on_error = MS_ON_ERROR_REFUSE;
    p->balloon.mode = MS_BALLOON_OFF;
    p->balloon.division = MS_DIVIDE_EQUAL;
    p->balloon.weight = 1;
    p->balloon.period_ms = DEFAULT_PERIOD_MS;
    p->balloon.max_step_kib = DEFAULT_MAX_STEP_KIB;
    p->balloon.hysteresis_kib = DEFAULT_HYSTERESIS_KIB;
    p->tracking.period_ms = DEFAULT_PERIOD_MS;
    p->tracking.ws_window_ms = DEFAULT_WINDOW_MS;
    p->stats.period_ms = DEFAULT_PERIOD_MS;
    p->images = g_ptr_array_new_with_free_func((GDestroyNotify)shared_image_free);
    return p;
}

/* Reads on-error before anything else may fail, so that the hook can
 * honour on-error='ignore' even for a policy that is otherwise broken. */
static gboolean
read_on_error(const ParseCtx *ctx, const xmlNode *node, MsOnError *out, GError **error)
{
    static const char *const values[] = { "refuse", "ignore", NULL };
    int v;

    if (!attr_enum(ctx, node, "on-error", values, &v, error))
        return FALSE;
    *out = v == 1 ? MS_ON_ERROR_IGNORE : MS_ON_ERROR_REFUSE;
    return TRUE;
}

static const char *const policy_elements[] = { "balloon", "tracking", "shared-image", "stats", "sharing",
                                               "migration", NULL };

/* An element of <policy> outside the memshare namespace. Ignoring it is
 * what made a forgotten prefix start a domain without its balloon or
 * image (issue 17): it is refused, with the spelling that would work when
 * the name is one of ours. */
static gboolean
refuse_foreign_element(const ParseCtx *ctx, const xmlNode *policy, const xmlNode *c, GError **error)
{
    g_autofree char *qn = qualified_name(c->ns, c->name);
    g_autofree char *where = c->ns && c->ns->href ? ms_printable((const char *)c->ns->href) : NULL;
    g_autofree char *reason = where ? g_strdup_printf("in namespace '%s', not the memshare namespace", where)
                                    : g_strdup("not in the memshare namespace");

    if (g_strv_contains(policy_elements, (const char *)c->name)) {
        g_autofree char *n = ms_printable((const char *)c->name);
        if (policy->ns->prefix) {
            g_autofree char *pp = ms_printable((const char *)policy->ns->prefix);
            set_error(error, ctx, MS_POLICY_ERROR_INVALID, "<%s>: %s (write <%s:%s>)", qn, reason, pp, n);
        } else {
            set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                      "<%s>: %s (write <%s> in namespace '%s', as <policy> is)", qn, reason, n, MS_POLICY_NS);
        }
    } else {
        g_autofree char *list = join_or(policy_elements);
        set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                  "<%s>: %s (expected one of the memshare elements %s)", qn, reason, list);
    }
    return FALSE;
}

static gboolean
parse_policy_element(ParseCtx *ctx, const xmlNode *node, MsOnError *on_error_out, GError **error)
{
    static const char *const attrs[] = { "on-error", NULL };
    MsPolicy *p = ctx->policy;

    if (!read_on_error(ctx, node, &p->on_error, error))
        return FALSE;
    if (on_error_out)
        *on_error_out = p->on_error;
    if (!check_attributes(ctx, node, attrs, error))
        return FALSE;

    for (const xmlNode *c = node->children; c; c = c->next) {
        if (c->type == XML_COMMENT_NODE || c->type == XML_PI_NODE)
            continue;
        if (c->type == XML_TEXT_NODE || c->type == XML_CDATA_SECTION_NODE) {
            for (const xmlChar *q = c->content; q && *q; q++) {
                if (!g_ascii_isspace(*q)) {
                    set_error(error, ctx, MS_POLICY_ERROR_INVALID, "<policy>: unexpected text");
                    return FALSE;
                }
            }
            continue;
        }
        if (c->type == XML_ENTITY_REF_NODE)
            return refuse_entity_ref(ctx, node, c, error);
        if (c->type != XML_ELEMENT_NODE) {
            set_error(error, ctx, MS_POLICY_ERROR_INVALID, "<policy>: unexpected node");
            return FALSE;
        }
        if (!is_ours(c))
            return refuse_foreign_element(ctx, node, c, error);
        const char *n = (const char *)c->name;
        gboolean ok;
        if (strcmp(n, "balloon") == 0)
            ok = parse_balloon(ctx, c, error);
        else if (strcmp(n, "tracking") == 0)
            ok = parse_tracking(ctx, c, error);
        else if (strcmp(n, "shared-image") == 0)
            ok = parse_shared_image(ctx, c, error);
        else if (strcmp(n, "stats") == 0)
            ok = parse_stats(ctx, c, error);
        else if (strcmp(n, "sharing") == 0)
            ok = parse_sharing(ctx, c, error);
        else if (strcmp(n, "migration") == 0)
            ok = parse_migration(ctx, c, error);
        else {
            g_autofree char *qn = qualified_name(c->ns, c->name);
            g_autofree char *list = join_or(policy_elements);
            set_error(error, ctx, MS_POLICY_ERROR_INVALID, "<%s>: unknown element (expected %s)", qn, list);
            ok = FALSE;
        }
        if (!ok)
            return FALSE;
    }
    return TRUE;
}

/* ---- the domain around the policy ---------------------------------------- */

static const xmlNode *
child(const xmlNode *node, const char *name)
{
    for (const xmlNode *c = node ? node->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && c->ns == NULL && strcmp((const char *)c->name, name) == 0)
            return c;
    return NULL;
}

static char *
child_text(const xmlNode *node, const char *name)
{
    const xmlNode *c = child(node, name);
    if (c == NULL)
        return NULL;
    xmlChar *t = xmlNodeGetContent(c);
    char *r = g_strdup(t ? g_strstrip((char *)t) : "");
    xmlFree(t);
    return r;
}

/* <memory unit='MiB'>512</memory>: libvirt's default unit is KiB. */
static gboolean
domain_size(const ParseCtx *ctx, const xmlNode *dom, const char *name, gboolean required,
            guint64 *kib, GError **error)
{
    const xmlNode *n = child(dom, name);
    g_autoptr(GError) local = NULL;

    if (n == NULL) {
        if (required)
            set_error(error, ctx, MS_POLICY_ERROR_INVALID, "<%s>: missing from the domain XML", name);
        return !required;
    }
    g_autofree char *unit = get_attr(n, "unit");
    g_autofree char *text = child_text(dom, name);
    if (!ms_units_parse_size_kib(text, unit ? unit : "KiB", kib, &local)) {
        g_autofree char *v = ms_printable(text);
        set_error(error, ctx, MS_POLICY_ERROR_INVALID, "<%s>%s</%s>: %s", name, v, name, local->message);
        return FALSE;
    }
    return TRUE;
}

#define NOVA_NS "http://openstack.org/xmlns/libvirt/nova/1.1"
#define QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"

/* The first child element NAME in namespace NS (by href, never by prefix). */
static const xmlNode *
ns_child_after(const xmlNode *node, const xmlNode *after, const char *ns, const char *name)
{
    for (const xmlNode *c = after ? after->next : node ? node->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && c->ns && c->ns->href &&
            strcmp((const char *)c->ns->href, ns) == 0 && strcmp((const char *)c->name, name) == 0)
            return c;
    return NULL;
}

static const xmlNode *
nova_child(const xmlNode *node, const char *name)
{
    return ns_child_after(node, NULL, NOVA_NS, name);
}

/* The project Nova recorded as the instance's owner. Read by namespace,
 * never by prefix; its form is judged only if it becomes a group. */
static char *
nova_project(const xmlNode *dom)
{
    const xmlNode *inst = nova_child(child(dom, "metadata"), "instance");
    const xmlNode *proj = nova_child(nova_child(inst, "owner"), "project");
    return proj ? get_attr(proj, "uuid") : NULL;
}

/* Whether <qemu:override> turns the balloon's free-page-hint on:
 * <qemu:device alias='balloon0'><qemu:frontend><qemu:property
 * name='free-page-hint' value='true'|'on'/>. The alias is the balloon's
 * own (live XML) or libvirt's default for the only balloon, balloon0. */
static gboolean
override_free_page_hint(const xmlNode *dom)
{
    const xmlNode *mb = child(child(dom, "devices"), "memballoon");
    const xmlNode *an = child(mb, "alias");
    g_autofree char *alias = an ? get_attr(an, "name") : NULL;
    const xmlNode *ov = ns_child_after(dom, NULL, QEMU_NS, "override");

    for (const xmlNode *dev = ns_child_after(ov, NULL, QEMU_NS, "device"); dev;
         dev = ns_child_after(ov, dev, QEMU_NS, "device")) {
        g_autofree char *da = get_attr(dev, "alias");
        if (g_strcmp0(da, alias ? alias : "balloon0") != 0)
            continue;
        const xmlNode *fe = ns_child_after(dev, NULL, QEMU_NS, "frontend");
        for (const xmlNode *pr = ns_child_after(fe, NULL, QEMU_NS, "property"); pr;
             pr = ns_child_after(fe, pr, QEMU_NS, "property")) {
            g_autofree char *n = get_attr(pr, "name");
            g_autofree char *v = get_attr(pr, "value");
            if (g_strcmp0(n, "free-page-hint") == 0)
                return g_strcmp0(v, "true") == 0 || g_strcmp0(v, "on") == 0;
        }
    }
    return FALSE;
}

static gboolean
read_domain_info(ParseCtx *ctx, const xmlNode *dom, MsDomainInfo *info, GError **error)
{
    info->name = child_text(dom, "name");
    info->uuid = child_text(dom, "uuid");
    info->domain_type = get_attr(dom, "type");
    g_free(ctx->prefix);
    if (info->name) {
        g_autofree char *pn = ms_printable(info->name);
        ctx->prefix = g_strdup_printf("domain '%s': ", pn);
    } else {
        ctx->prefix = g_strdup("domain (without <name>): ");
    }

    if (!domain_size(ctx, dom, "memory", TRUE, &info->memory_kib, error))
        return FALSE;
    info->current_memory_kib = info->memory_kib;
    if (!domain_size(ctx, dom, "currentMemory", FALSE, &info->current_memory_kib, error) ||
        !domain_size(ctx, dom, "maxMemory", FALSE, &info->max_memory_kib, error))
        return FALSE;
    const xmlNode *mm = child(dom, "maxMemory");
    if (mm) {
        g_autofree char *slots = get_attr(mm, "slots");
        guint64 s = 0;
        if (slots && (!ms_parse_u64(slots, "slots", &s, NULL) || s > 255)) {
            g_autofree char *w = where_attr("maxMemory", "slots", slots);
            set_error(error, ctx, MS_POLICY_ERROR_INVALID, "%s: not a slot count (0 to 255)", w);
            return FALSE;
        }
        info->max_memory_slots = (guint)s;
    }

    const xmlNode *os = child(dom, "os");
    const xmlNode *type = child(os, "type");
    if (type)
        info->machine = get_attr(type, "machine");

    info->nosharepages = child(child(dom, "memoryBacking"), "nosharepages") != NULL;
    info->nova_project = nova_project(dom);

    const xmlNode *devices = child(dom, "devices");
    const xmlNode *mb = child(devices, "memballoon");
    if (mb) {
        g_autofree char *model = get_attr(mb, "model");
        g_autofree char *fpr = get_attr(mb, "freePageReporting");
        info->has_balloon = model && g_str_has_prefix(model, "virtio");
        info->free_page_reporting = info->has_balloon && g_strcmp0(fpr, "on") == 0;
        const xmlNode *alias = child(mb, "alias");
        if (alias)
            info->balloon_alias = get_attr(alias, "name");
    }
    info->free_page_hint = info->has_balloon && override_free_page_hint(dom);
    return TRUE;
}

void
ms_policy_rebase(MsPolicy *p, guint64 current_memory_kib)
{
    if (p->domain.memory_kib && current_memory_kib > p->domain.memory_kib)
        current_memory_kib = p->domain.memory_kib;
    p->domain.current_memory_kib = current_memory_kib;
    if (!p->balloon.base_set)
        p->balloon.base_kib = current_memory_kib;
    if (!p->balloon.floor_set)
        p->balloon.floor_kib = MIN(p->balloon.base_kib, current_memory_kib);
}

/* Cross-checks that need the domain: what the policy asks must be
 * possible with this domain's memory and devices. */
static gboolean
check_against_domain(ParseCtx *ctx, MsPolicyCheckFlags flags, const char *image_store, GError **error)
{
    MsPolicy *p = ctx->policy;
    const MsDomainInfo *d = &p->domain;

    if (!p->balloon.base_set)
        p->balloon.base_kib = d->current_memory_kib;
    if (!p->balloon.floor_set)
        p->balloon.floor_kib = p->balloon.base_kib;
    if (!p->balloon.ceiling_set)
        p->balloon.ceiling_kib = d->memory_kib;

    if (p->balloon.mode == MS_BALLOON_KSM_SHARE) {
        if (!d->has_balloon) {
            set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                      "<balloon mode='ksm-share'>: the domain has no virtio <memballoon> device");
            return FALSE;
        }
        g_autofree char *mem = format_size_kib(d->memory_kib);
        /* A balloon can give back only what the guest booted with:
         * <memory> is the hard ceiling of every target. */
        struct { const char *attr; const char *raw; guint64 kib; } sz[] = {
            { "floor", ctx->raw_floor, p->balloon.floor_kib },
            { "base", ctx->raw_base, p->balloon.base_kib },
            { "ceiling", ctx->raw_ceiling, p->balloon.ceiling_kib },
        };
        for (gsize i = 0; i < G_N_ELEMENTS(sz); i++) {
            if (sz[i].raw && sz[i].kib > d->memory_kib) {
                g_autofree char *w = where_attr("balloon", sz[i].attr, sz[i].raw);
                set_error(error, ctx, MS_POLICY_ERROR_INVALID, "%s: larger than <memory> (%s)", w, mem);
                return FALSE;
            }
        }
        if (p->balloon.floor_kib > p->balloon.base_kib) {
            g_autofree char *w = where_attr("balloon", "floor", ctx->raw_floor);
            g_autofree char *b = format_size_kib(p->balloon.base_kib);
            set_error(error, ctx, MS_POLICY_ERROR_INVALID, "%s: larger than base (%s%s)", w, b,
                      ctx->raw_base ? "" : ", from <currentMemory>");
            return FALSE;
        }
        if (p->balloon.base_kib > p->balloon.ceiling_kib) {
            if (ctx->raw_base) {
                g_autofree char *w = where_attr("balloon", "base", ctx->raw_base);
                g_autofree char *c = format_size_kib(p->balloon.ceiling_kib);
                set_error(error, ctx, MS_POLICY_ERROR_INVALID, "%s: larger than ceiling (%s)", w, c);
            } else if (!ctx->raw_ceiling) {
                /* Neither given: base came from <currentMemory>, ceiling
                 * from <memory>; the domain XML itself is inconsistent. */
                g_autofree char *m = format_size_kib(d->memory_kib);
                g_autofree char *b = format_size_kib(p->balloon.base_kib);
                set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                          "<currentMemory> (%s): larger than <memory> (%s)", b, m);
            } else {
                g_autofree char *w = where_attr("balloon", "ceiling", ctx->raw_ceiling);
                g_autofree char *b = format_size_kib(p->balloon.base_kib);
                set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                          "%s: smaller than base (%s, from <currentMemory>)", w, b);
            }
            return FALSE;
        }
    }

    /* The hint is a property of the virtio balloon device; the override
     * itself may still be missing (memsharectl policy set --config writes
     * it into the definition; docs/migration.md). */
    if (p->migration.free_page_hint && !d->has_balloon) {
        set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                  "<migration free-page-hint='on'>: the domain has no virtio <memballoon> device");
        return FALSE;
    }

    if (p->tracking.require_free_page_reporting && !d->free_page_reporting) {
        set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                  "<tracking free-page-reporting='required'>: the domain's <memballoon> lacks "
                  "freePageReporting='on'");
        return FALSE;
    }

    /* Each DAX image is a virtio-pmem device, i.e. one memory hotplug slot. */
    guint dax = 0;
    for (guint i = 0; i < p->images->len; i++) {
        MsSharedImage *img = g_ptr_array_index(p->images, i);
        if (img->mode != MS_IMAGE_DAX)
            continue;
        if (dax < d->max_memory_slots) {
            dax++;
            continue;
        }
        if (img->fallback_blk) {
            img->mode = MS_IMAGE_BLK;
            continue;
        }
        set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                  "<shared-image name='%s' mode='dax'>: the domain has no free memory hotplug slot "
                  "(add <maxMemory slots='N' ...>)", img->name);
        return FALSE;
    }

    if ((flags & MS_POLICY_CHECK_IMAGES) && p->images->len > 0) {
        const char *store = image_store ? image_store : "/var/lib/memshare/images";
        for (guint i = 0; i < p->images->len; i++) {
            const MsSharedImage *img = g_ptr_array_index(p->images, i);
            g_autofree char *file = g_strconcat(img->name, ".json", NULL);
            g_autofree char *path = g_build_filename(store, "names", file, NULL);
            struct stat st;
            /* lstat: a manifest that is a symlink could point anywhere. */
            if (lstat(path, &st) < 0) {
                int e = errno;
                set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                          "<shared-image name='%s'>: %s (%s)", img->name,
                          e == ENOENT ? "no such image in the store" : g_strerror(e), store);
                return FALSE;
            }
            if (!S_ISREG(st.st_mode)) {
                set_error(error, ctx, MS_POLICY_ERROR_INVALID,
                          "<shared-image name='%s'>: %s is not a regular file", img->name, path);
                return FALSE;
            }
        }
    }
    return TRUE;
}

/* ---- documents ----------------------------------------------------------- */

static xmlDoc *
read_doc(const char *xml, gssize len, const char *what, GError **error)
{
    if (xml == NULL) {
        g_set_error(error, MS_POLICY_ERROR, MS_POLICY_ERROR_XML, "%s: no XML given", what);
        return NULL;
    }
    gsize n = len < 0 ? strlen(xml) : (gsize)len;
    if (n > MS_POLICY_MAX_XML) {
        g_set_error(error, MS_POLICY_ERROR, MS_POLICY_ERROR_XML,
                    "%s: larger than %d MiB (%" G_GSIZE_FORMAT " bytes)", what,
                    MS_POLICY_MAX_XML >> 20, n);
        return NULL;
    }
    xmlParserCtxtPtr pctx = xmlNewParserCtxt();
    if (pctx == NULL) {
        g_set_error(error, MS_POLICY_ERROR, MS_POLICY_ERROR_XML, "%s: out of memory", what);
        return NULL;
    }
    /* No network, no entity substitution, no DTD loading: the XML comes
     * from whoever may edit the domain. libxml2 bounds entity amplification
     * itself as long as XML_PARSE_HUGE is not given. */
    xmlDoc *doc = xmlCtxtReadMemory(pctx, xml, (int)n, "domain.xml", NULL,
                                    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (doc == NULL) {
        const xmlError *e = xmlCtxtGetLastError(pctx);
        g_autofree char *msg = g_strdup(e && e->message ? e->message : "unknown error");
        g_strchomp(msg);
        g_set_error(error, MS_POLICY_ERROR, MS_POLICY_ERROR_XML, "%s: not well-formed XML: %s (line %d)",
                    what, msg, e ? e->line : 0);
    }
    xmlFreeParserCtxt(pctx);
    return doc;
}

gboolean
ms_policy_parse_domain_xml(const char *xml, gssize len, MsPolicyCheckFlags flags,
                           const char *image_store, MsPolicy **policy_out,
                           MsOnError *on_error_out, GError **error)
{
    ParseCtx ctx = { 0 };
    gboolean ok = FALSE;

    *policy_out = NULL;
    if (on_error_out)
        *on_error_out = MS_ON_ERROR_REFUSE;

    xmlDoc *doc = read_doc(xml, len, "domain XML", error);
    if (doc == NULL)
        return FALSE;
    const xmlNode *dom = xmlDocGetRootElement(doc);
    if (dom == NULL || dom->ns != NULL || strcmp((const char *)dom->name, "domain") != 0) {
        g_set_error(error, MS_POLICY_ERROR, MS_POLICY_ERROR_INVALID,
                    "domain XML: the root element is <%s>, not <domain>", dom ? (const char *)dom->name : "");
        goto out;
    }

    /* Find the policy first: a domain without one must not be judged at
     * all (the hook has zero effect on it), even if its XML is odd. */
    const xmlNode *metadata = child(dom, "metadata");
    const xmlNode *pnode = NULL;
    for (const xmlNode *c = metadata ? metadata->children : NULL; c; c = c->next) {
        if (c->type != XML_ELEMENT_NODE || !is_ours(c))
            continue;
        if (strcmp((const char *)c->name, "policy") != 0 || pnode) {
            g_autofree char *name = child_text(dom, "name");
            g_autofree char *pn = ms_printable(name ? name : "?");
            g_set_error(error, MS_POLICY_ERROR, MS_POLICY_ERROR_INVALID,
                        "domain '%s': <metadata>: %s", pn,
                        pnode ? "more than one memshare <policy>" : "unknown memshare element (expected <policy>)");
            goto out;
        }
        pnode = c;
    }
    if (pnode == NULL) {
        ok = TRUE;
        goto out;
    }

    ctx.policy = policy_new_defaults();
    if (!read_domain_info(&ctx, dom, &ctx.policy->domain, error)) {
        /* still honour on-error='ignore' for a domain we cannot read */
        MsOnError oe;
        if (on_error_out && read_on_error(&ctx, pnode, &oe, NULL))
            *on_error_out = oe;
        goto out;
    }
    if (!parse_policy_element(&ctx, pnode, on_error_out, error) ||
        !check_against_domain(&ctx, flags, image_store, error))
        goto out;

    *policy_out = g_steal_pointer(&ctx.policy);
    ok = TRUE;

out:
    g_clear_pointer(&ctx.policy, ms_policy_free);
    ctx_clear(&ctx);
    xmlFreeDoc(doc);
    return ok;
}

gboolean
ms_policy_parse_standalone(const char *xml, gssize len, MsPolicy **policy_out, GError **error)
{
    ParseCtx ctx = { 0 };
    gboolean ok = FALSE;

    *policy_out = NULL;
    xmlDoc *doc = read_doc(xml, len, "policy", error);
    if (doc == NULL)
        return FALSE;
    const xmlNode *root = xmlDocGetRootElement(doc);
    if (root == NULL || !is_ours(root) || strcmp((const char *)root->name, "policy") != 0) {
        g_set_error(error, MS_POLICY_ERROR, MS_POLICY_ERROR_INVALID,
                    "<%s>: not a memshare policy (expected <policy xmlns='%s'>)",
                    root ? (const char *)root->name : "", MS_POLICY_NS);
        goto out;
    }
    ctx.prefix = g_strdup("");
    ctx.policy = policy_new_defaults();
    if (!parse_policy_element(&ctx, root, NULL, error))
        goto out;
    *policy_out = g_steal_pointer(&ctx.policy);
    ok = TRUE;

out:
    g_clear_pointer(&ctx.policy, ms_policy_free);
    ctx_clear(&ctx);
    xmlFreeDoc(doc);
    return ok;
}

/* ---- canonical form, copy, free ------------------------------------------ */

char *
ms_policy_to_xml(const MsPolicy *p)
{
    static const char *const divisions[] = { "equal", "weighted", "contribution" };
    GString *s = g_string_new(NULL);
    g_autofree char *bper = format_period_ms(p->balloon.period_ms);
    g_autofree char *step = format_size_kib(p->balloon.max_step_kib);
    g_autofree char *hyst = format_size_kib(p->balloon.hysteresis_kib);
    g_autofree char *tper = format_period_ms(p->tracking.period_ms);
    g_autofree char *win = format_period_ms(p->tracking.ws_window_ms);
    g_autofree char *sper = format_period_ms(p->stats.period_ms);

    g_string_append_printf(s, "<memshare:policy xmlns:memshare='%s' on-error='%s'>\n", MS_POLICY_NS,
                           p->on_error == MS_ON_ERROR_IGNORE ? "ignore" : "refuse");
    g_string_append_printf(s, "  <memshare:balloon mode='%s' division='%s'",
                           p->balloon.mode == MS_BALLOON_KSM_SHARE ? "ksm-share" : "off",
                           divisions[p->balloon.division]);
    if (p->balloon.division == MS_DIVIDE_WEIGHTED)
        g_string_append_printf(s, " weight='%u'", p->balloon.weight);
    /* base/floor/ceiling: explicit when the user wrote them or when a
     * domain resolved them; a standalone policy leaves them derived. */
    struct { const char *name; gboolean set; guint64 kib; } sz[] = {
        { "base", p->balloon.base_set || p->domain.memory_kib, p->balloon.base_kib },
        { "floor", p->balloon.floor_set || p->domain.memory_kib, p->balloon.floor_kib },
        { "ceiling", p->balloon.ceiling_set || p->domain.memory_kib, p->balloon.ceiling_kib },
    };
    for (gsize i = 0; i < G_N_ELEMENTS(sz); i++) {
        if (sz[i].set) {
            g_autofree char *v = format_size_kib(sz[i].kib);
            g_string_append_printf(s, " %s='%s'", sz[i].name, v);
        }
    }
    g_string_append_printf(s, " period='%s' max-step='%s' hysteresis='%s'/>\n", bper, step, hyst);
    g_string_append_printf(s, "  <memshare:tracking used-pages='%s' period='%s' working-set='%s' "
                           "window='%s' free-page-reporting='%s'/>\n",
                           p->tracking.used_pages ? "on" : "off", tper,
                           p->tracking.working_set ? "on" : "off", win,
                           p->tracking.require_free_page_reporting ? "required" : "optional");
    for (guint i = 0; p->images && i < p->images->len; i++) {
        const MsSharedImage *img = g_ptr_array_index(p->images, i);
        g_autofree char *name = g_markup_escape_text(img->name, -1);
        g_string_append_printf(s, "  <memshare:shared-image name='%s'", name);
        if (img->mount) {
            g_autofree char *m = g_markup_escape_text(img->mount, -1);
            g_string_append_printf(s, " mount='%s'", m);
        }
        g_string_append_printf(s, " mode='%s'", img->mode == MS_IMAGE_BLK ? "blk" : "dax");
        if (img->mode == MS_IMAGE_DAX)
            g_string_append_printf(s, " fallback='%s'", img->fallback_blk ? "blk" : "none");
        g_string_append(s, "/>\n");
    }
    g_string_append_printf(s, "  <memshare:stats period='%s'/>\n", sper);
    if (p->sharing.group) {
        g_autofree char *g = g_markup_escape_text(p->sharing.group, -1);
        g_string_append_printf(s, "  <memshare:sharing group='%s'/>\n", g);
    }
    /* only when on: the canonical form of every policy without it stays as it was */
    if (p->migration.free_page_hint || p->migration.fetch_missing_images)
        g_string_append_printf(s, "  <memshare:migration%s%s/>\n",
                               p->migration.free_page_hint ? " free-page-hint='on'" : "",
                               p->migration.fetch_missing_images ? " missing-images='fetch'" : "");
    g_string_append(s, "</memshare:policy>\n");
    return g_string_free(s, FALSE);
}

MsPolicy *
ms_policy_copy(const MsPolicy *policy)
{
    if (policy == NULL)
        return NULL;
    MsPolicy *p = g_new0(MsPolicy, 1);
    *p = *policy;
    p->domain.name = g_strdup(policy->domain.name);
    p->domain.uuid = g_strdup(policy->domain.uuid);
    p->domain.balloon_alias = g_strdup(policy->domain.balloon_alias);
    p->domain.machine = g_strdup(policy->domain.machine);
    p->domain.domain_type = g_strdup(policy->domain.domain_type);
    p->domain.nova_project = g_strdup(policy->domain.nova_project);
    p->sharing.group = g_strdup(policy->sharing.group);
    p->images = g_ptr_array_new_with_free_func((GDestroyNotify)shared_image_free);
    for (guint i = 0; policy->images && i < policy->images->len; i++) {
        const MsSharedImage *o = g_ptr_array_index(policy->images, i);
        MsSharedImage *img = g_new0(MsSharedImage, 1);
        *img = *o;
        img->name = g_strdup(o->name);
        img->mount = g_strdup(o->mount);
        g_ptr_array_add(p->images, img);
    }
    return p;
}

void
ms_policy_free(MsPolicy *policy)
{
    if (policy == NULL)
        return;
    g_free(policy->domain.name);
    g_free(policy->domain.uuid);
    g_free(policy->domain.balloon_alias);
    g_free(policy->domain.machine);
    g_free(policy->domain.domain_type);
    g_free(policy->domain.nova_project);
    g_free(policy->sharing.group);
    if (policy->images)
        g_ptr_array_unref(policy->images);
    g_free(policy);
}
