/* formats/ms-dax-carry.c: the <migration> metadata element that carries a
 * DAX image's placement from the source agent to the destination's hook,
 * and the <qemu:commandline> edit the hook makes from it (ms-dax-carry.h,
 * docs/migration.md). */
#include "ms-dax-carry.h"
#include "ms-error.h"
#include "ms-util.h"

#include <libxml/xmlsave.h>
#include <string.h>

/* the agent numbers its images from the policy; no policy has this many */
#define MS_DAX_CARRY_MAX_INDEX 64
#define MS_DAX_CARRY_ALIGN (2 * 1024 * 1024)

void
ms_dax_carry_free(MsDaxCarry *c)
{
    if (c == NULL)
        return;
    g_free(c->name);
    g_free(c->sha256);
    g_free(c->bus);
    g_free(c);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlDoc, xmlFreeDoc)
G_DEFINE_AUTOPTR_CLEANUP_FUNC(xmlBuffer, xmlBufferFree)

char *
ms_dax_carry_format(GPtrArray *entries)
{
    g_autoptr(xmlDoc) doc = xmlNewDoc(BAD_CAST "1.0");
    xmlNodePtr root = xmlNewDocNode(doc, NULL, BAD_CAST "migration", NULL);
    xmlDocSetRootElement(doc, root);
    xmlNsPtr ns = xmlNewNs(root, BAD_CAST MS_DAX_CARRY_NS, NULL);
    xmlSetNs(root, ns);
    for (guint i = 0; i < entries->len; i++) {
        const MsDaxCarry *c = g_ptr_array_index(entries, i);
        xmlNodePtr d = xmlNewChild(root, ns, BAD_CAST "dax", NULL);
        g_autofree char *size = g_strdup_printf("%" G_GUINT64_FORMAT, c->size);
        g_autofree char *index = g_strdup_printf("%u", c->index);
        g_autofree char *addr = g_strdup_printf("%u", c->addr);
        g_autofree char *memaddr = g_strdup_printf("%" G_GUINT64_FORMAT, c->memaddr);
        xmlNewProp(d, BAD_CAST "name", BAD_CAST c->name);
        xmlNewProp(d, BAD_CAST "sha256", BAD_CAST c->sha256);
        xmlNewProp(d, BAD_CAST "size", BAD_CAST size);
        xmlNewProp(d, BAD_CAST "index", BAD_CAST index);
        xmlNewProp(d, BAD_CAST "bus", BAD_CAST c->bus);
        xmlNewProp(d, BAD_CAST "addr", BAD_CAST addr);
        xmlNewProp(d, BAD_CAST "memaddr", BAD_CAST memaddr);
    }
    g_autoptr(xmlBuffer) buf = xmlBufferCreate();
    xmlSaveCtxtPtr save = xmlSaveToBuffer(buf, "UTF-8", XML_SAVE_NO_DECL);
    xmlSaveTree(save, root);
    xmlSaveClose(save);
    return g_strndup((const char *)xmlBufferContent(buf), (gsize)xmlBufferLength(buf));
}

/* The attribute NAME of D, or an error naming it. */
static char *
ms_dax_carry_attr(xmlNode *d, const char *name, GError **error)
{
    xmlChar *v = xmlGetProp(d, BAD_CAST name);
    if (v == NULL) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "<dax>: attribute '%s' is missing", name);
        return NULL;
    }
    char *out = g_strdup((const char *)v);
    xmlFree(v);
    return out;
}

static gboolean
ms_dax_carry_u64(xmlNode *d, const char *name, guint64 max, guint64 *out, GError **error)
{
    g_autofree char *v = ms_dax_carry_attr(d, name, error);
    if (v == NULL)
        return FALSE;
    g_autoptr(GError) local = NULL;
    if (!ms_parse_u64(v, name, out, &local) || *out > max) {
        g_autofree char *shown = ms_printable(v);
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "<dax %s='%s'>: not an integer up to %" G_GUINT64_FORMAT,
                    name, shown, max);
        return FALSE;
    }
    return TRUE;
}

/* Everything but these could change the meaning of a QEMU option value
 * (a comma starts the next property). */
static gboolean
ms_dax_carry_word_ok(const char *s, gsize max)
{
    gsize n = strlen(s);
    if (n == 0 || n > max)
        return FALSE;
    for (const char *p = s; *p; p++)
        if (!g_ascii_isalnum(*p) && *p != '.' && *p != '_' && *p != '-')
            return FALSE;
    return TRUE;
}

static MsDaxCarry *
ms_dax_carry_parse_one(xmlNode *d, GError **error)
{
    g_autoptr(MsDaxCarry) c = g_new0(MsDaxCarry, 1);
    guint64 v;
    if (!(c->name = ms_dax_carry_attr(d, "name", error)) || !(c->sha256 = ms_dax_carry_attr(d, "sha256", error)) ||
        !(c->bus = ms_dax_carry_attr(d, "bus", error)))
        return NULL;
    gboolean hex = strlen(c->sha256) == 64;
    for (const char *p = c->sha256; hex && *p; p++)
        hex = g_ascii_isxdigit(*p) && !g_ascii_isupper(*p);
    if (!hex) {
        g_autofree char *shown = ms_printable(c->sha256);
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "<dax sha256='%s'>: not 64 lowercase hex digits", shown);
        return NULL;
    }
    if (!ms_dax_carry_word_ok(c->bus, 64)) {
        g_autofree char *shown = ms_printable(c->bus);
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "<dax bus='%s'>: not a device id (letters, digits, '.', '_', '-')", shown);
        return NULL;
    }
    if (!ms_dax_carry_u64(d, "size", G_MAXINT64, &c->size, error) ||
        !ms_dax_carry_u64(d, "memaddr", G_MAXINT64, &c->memaddr, error))
        return NULL;
    if (c->size == 0 || c->size % MS_DAX_CARRY_ALIGN != 0) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "<dax size='%" G_GUINT64_FORMAT "'>: not a multiple of 2 MiB",
                    c->size);
        return NULL;
    }
    if (!ms_dax_carry_u64(d, "index", MS_DAX_CARRY_MAX_INDEX - 1, &v, error))
        return NULL;
    c->index = (guint)v;
    /* devfn: slot 0-31, function 0-7 */
    if (!ms_dax_carry_u64(d, "addr", 255, &v, error))
        return NULL;
    c->addr = (guint)v;
    return g_steal_pointer(&c);
}

GPtrArray *
ms_dax_carry_parse(xmlNode *element, GError **error)
{
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func((GDestroyNotify)ms_dax_carry_free);
    for (xmlNode *d = element->children; d; d = d->next) {
        if (d->type != XML_ELEMENT_NODE || !xmlStrEqual(d->name, BAD_CAST "dax"))
            continue;
        g_autoptr(GError) local = NULL;
        MsDaxCarry *c = ms_dax_carry_parse_one(d, &local);
        if (c == NULL) {
            g_propagate_prefixed_error(error, g_steal_pointer(&local), "<migration xmlns='%s'>: ",
                                       MS_DAX_CARRY_NS);
            return NULL;
        }
        for (guint i = 0; i < out->len; i++) {
            if (((MsDaxCarry *)g_ptr_array_index(out, i))->index == c->index) {
                g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                            "<migration xmlns='%s'>: two <dax> elements with index %u", MS_DAX_CARRY_NS, c->index);
                ms_dax_carry_free(c);
                return NULL;
            }
        }
        g_ptr_array_add(out, c);
    }
    return g_steal_pointer(&out);
}

/* A JSON string: quotes, backslashes and control characters escaped,
 * UTF-8 as is. */
static void
ms_dax_carry_json_string(GString *out, const char *s)
{
    g_string_append_c(out, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            g_string_append_printf(out, "\\%c", *p);
        else if (*p < 0x20)
            g_string_append_printf(out, "\\u%04x", *p);
        else
            g_string_append_c(out, (char)*p);
    }
    g_string_append_c(out, '"');
}

void
ms_dax_carry_qemu_args(const MsDaxCarry *c, const char *blob, char **object, char **device)
{
    /* JSON, as libvirt 9.0 writes its own -device options: QEMU 7.2 creates
     * the key=value -devices before all JSON ones, so a key=value device
     * could not find its root port (observed: "Bus 'pci.3' not found") */
    GString *o = g_string_new(NULL);
    g_string_append_printf(o, "{\"qom-type\":\"memory-backend-file\",\"id\":\"ms-img%u\",\"mem-path\":", c->index);
    ms_dax_carry_json_string(o, blob);
    /* share: the host page cache is the one copy every guest maps;
     * readonly: QEMU opens and maps the file read-only (ms-images.c) */
    g_string_append_printf(o, ",\"size\":%" G_GUINT64_FORMAT ",\"share\":true,\"readonly\":true}", c->size);
    *object = g_string_free(o, FALSE);
    *device = g_strdup_printf("{\"driver\":\"virtio-pmem-pci\",\"id\":\"ms-pmem%u\",\"memdev\":\"ms-img%u\","
                              "\"bus\":\"%s\",\"addr\":\"0x%x\",\"memaddr\":%" G_GUINT64_FORMAT "}",
                              c->index, c->index, c->bus, c->addr, c->memaddr);
}

static gboolean
ms_dax_carry_is_ours(const char *value)
{
    return g_str_has_prefix(value, "{\"qom-type\":\"memory-backend-file\",\"id\":\"ms-img") ||
           g_str_has_prefix(value, "{\"driver\":\"virtio-pmem-pci\",\"id\":\"ms-pmem");
}

static xmlChar *
ms_dax_carry_arg_value(xmlNode *n)
{
    return n && n->type == XML_ELEMENT_NODE && xmlStrEqual(n->name, BAD_CAST "arg") ? xmlGetProp(n, BAD_CAST "value")
                                                                                    : NULL;
}

static xmlNode *
ms_dax_carry_next_element(xmlNode *n)
{
    for (n = n->next; n && n->type != XML_ELEMENT_NODE; n = n->next)
        ;
    return n;
}

gboolean
ms_dax_carry_apply(xmlDoc *doc, GPtrArray *args, GError **error)
{
    xmlNode *root = xmlDocGetRootElement(doc);
    if (root == NULL || !xmlStrEqual(root->name, BAD_CAST "domain")) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "the domain XML has no <domain> root element");
        return FALSE;
    }
    xmlNs *ns = xmlSearchNsByHref(doc, root, BAD_CAST MS_DAX_CARRY_QEMU_NS);
    if (ns == NULL)
        ns = xmlNewNs(root, BAD_CAST MS_DAX_CARRY_QEMU_NS, BAD_CAST "qemu");
    if (ns == NULL) {
        /* the prefix is taken by another namespace */
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "cannot declare the namespace '%s' on <domain>: prefix 'qemu' is in use", MS_DAX_CARRY_QEMU_NS);
        return FALSE;
    }
    xmlNode *cmdline = NULL;
    for (xmlNode *n = root->children; n && cmdline == NULL; n = n->next)
        if (n->type == XML_ELEMENT_NODE && n->ns && xmlStrEqual(n->ns->href, BAD_CAST MS_DAX_CARRY_QEMU_NS) &&
            xmlStrEqual(n->name, BAD_CAST "commandline"))
            cmdline = n;
    if (cmdline == NULL)
        cmdline = xmlNewChild(root, ns, BAD_CAST "commandline", NULL);

    /* an earlier leg's pairs name the other host's store: they go */
    for (xmlNode *n = cmdline->children; n;) {
        xmlChar *opt = ms_dax_carry_arg_value(n);
        xmlNode *val = opt ? ms_dax_carry_next_element(n) : NULL;
        xmlChar *v = ms_dax_carry_arg_value(val);
        gboolean ours = opt && v && (xmlStrEqual(opt, BAD_CAST "-object") || xmlStrEqual(opt, BAD_CAST "-device")) &&
                        ms_dax_carry_is_ours((const char *)v);
        xmlFree(opt);
        xmlFree(v);
        if (!ours) {
            n = n->next;
            continue;
        }
        xmlNode *after = val->next;
        xmlUnlinkNode(n);
        xmlFreeNode(n);
        xmlUnlinkNode(val);
        xmlFreeNode(val);
        n = after;
    }
    for (guint i = 0; i < args->len; i++) {
        xmlNode *a = xmlNewChild(cmdline, ns, BAD_CAST "arg", NULL);
        xmlNewProp(a, BAD_CAST "value", BAD_CAST g_ptr_array_index(args, i));
    }
    return TRUE;
}
