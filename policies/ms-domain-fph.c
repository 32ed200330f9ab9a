/* policies/ms-domain-fph.c: switches virtio-balloon free-page-hint on or
 * off in a domain definition (see ms-domain-fph.h for the why). Works on
 * the XML libvirt gives back with VIR_DOMAIN_XML_INACTIVE; what it writes
 * is what bench/migration/run-bench.sh's variant (c) writes by hand and
 * what ms-policy.c's override_free_page_hint() recognises. */
#include "ms-domain-fph.h"
#include "ms-error.h"
#include "ms-util.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

#define QEMU_NS "http://libvirt.org/schemas/domain/qemu/1.0"
/* A definition is small; this bounds what we hand to libxml2. */
#define FPH_MAX_XML (4 * 1024 * 1024)

static gboolean
is_element(const xmlNode *n, const char *ns, const char *name)
{
    if (n == NULL || n->type != XML_ELEMENT_NODE || !xmlStrEqual(n->name, BAD_CAST name))
        return FALSE;
    if (ns == NULL)
        return n->ns == NULL;
    return n->ns != NULL && xmlStrEqual(n->ns->href, BAD_CAST ns);
}

static xmlNode *
find_child(xmlNode *parent, const char *ns, const char *name)
{
    for (xmlNode *c = parent ? parent->children : NULL; c; c = c->next)
        if (is_element(c, ns, name))
            return c;
    return NULL;
}

static char *
attr(const xmlNode *n, const char *name)
{
    xmlChar *v = xmlGetProp(n, BAD_CAST name);
    char *s = v ? g_strdup((const char *)v) : NULL;
    xmlFree(v);
    return s;
}

static xmlNode *
find_child_attr(xmlNode *parent, const char *ns, const char *name, const char *a, const char *value)
{
    for (xmlNode *c = parent ? parent->children : NULL; c; c = c->next) {
        g_autofree char *v = is_element(c, ns, name) ? attr(c, a) : NULL;
        if (g_strcmp0(v, value) == 0)
            return c;
    }
    return NULL;
}

/* The first element child named NAME, appended when missing. */
static xmlNode *
ensure_child(xmlNode *parent, xmlNs *ns, const char *name)
{
    xmlNode *c = find_child(parent, ns ? (const char *)ns->href : NULL, name);
    return c ? c : xmlNewChild(parent, ns, BAD_CAST name, NULL);
}

static gboolean
has_element_children(const xmlNode *n)
{
    for (const xmlNode *c = n->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE)
            return TRUE;
    return FALSE;
}

static void
remove_node(xmlNode *n)
{
    xmlUnlinkNode(n);
    xmlFreeNode(n);
}

/* The name libvirt gives the first iothread: <iothreadids> when present
 * (ids are the user's), else 1 (libvirt numbers them from 1). */
static char *
iothread_name(xmlNode *dom)
{
    xmlNode *ids = find_child(dom, NULL, "iothreadids");
    xmlNode *first = find_child(ids, NULL, "iothread");
    g_autofree char *id = first ? attr(first, "id") : NULL;
    return g_strdup_printf("iothread%s", id ? id : "1");
}

/* Sets <qemu:property name=NAME type=TYPE value=VALUE/> in FRONTEND,
 * replacing one of the same name. Returns whether anything changed. */
static gboolean
set_property(xmlNode *frontend, xmlNs *qns, const char *name, const char *type, const char *value)
{
    xmlNode *p = find_child_attr(frontend, QEMU_NS, "property", "name", name);
    if (p) {
        g_autofree char *t = attr(p, "type");
        g_autofree char *v = attr(p, "value");
        if (g_strcmp0(t, type) == 0 && g_strcmp0(v, value) == 0)
            return FALSE;
        remove_node(p);
    }
    p = xmlNewChild(frontend, qns, BAD_CAST "property", NULL);
    xmlNewProp(p, BAD_CAST "name", BAD_CAST name);
    xmlNewProp(p, BAD_CAST "type", BAD_CAST type);
    xmlNewProp(p, BAD_CAST "value", BAD_CAST value);
    return TRUE;
}

char *
ms_domain_set_free_page_hint(const char *xml, gssize len, gboolean on, gboolean *changed, GError **error)
{
    gsize n = len < 0 ? strlen(xml) : (gsize)len;
    *changed = FALSE;
    if (n > FPH_MAX_XML) {
        g_set_error(error, MS_ERROR, MS_ERROR_TOO_BIG, "domain XML: %zu bytes, more than %d", n,
                    FPH_MAX_XML);
        return NULL;
    }
    xmlDoc *doc = xmlReadMemory(xml, (int)n, "domain.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    xmlNode *dom = doc ? xmlDocGetRootElement(doc) : NULL;
    if (!is_element(dom, NULL, "domain")) {
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID, "domain XML: %s",
                    doc ? "the root element is not <domain>" : "not well-formed");
        xmlFreeDoc(doc);
        return NULL;
    }
    xmlNode *name_node = find_child(dom, NULL, "name");
    xmlChar *raw = name_node ? xmlNodeGetContent(name_node) : NULL;
    g_autofree char *name = ms_printable(raw ? (const char *)raw : "(without <name>)");
    xmlFree(raw);

    xmlNode *mb = find_child(find_child(dom, NULL, "devices"), NULL, "memballoon");
    g_autofree char *model = mb ? attr(mb, "model") : NULL;
    if (on && (mb == NULL || g_strcmp0(model, "none") == 0)) {
        /* virtio-balloon's own property: nothing to hint through */
        g_set_error(error, MS_ERROR, MS_ERROR_INVALID,
                    "domain '%s': <migration free-page-hint='on'>: the domain has no virtio <memballoon> device",
                    name);
        xmlFreeDoc(doc);
        return NULL;
    }
    /* The override names the device by its alias: the user's (ua-...) when
     * the definition gives one, else libvirt's for the only balloon. */
    xmlNode *an = find_child(mb, NULL, "alias");
    g_autofree char *alias_attr = an ? attr(an, "name") : NULL;
    const char *alias = alias_attr ? alias_attr : "balloon0";

    xmlNs *qns = xmlSearchNsByHref(doc, dom, BAD_CAST QEMU_NS);
    xmlNode *ov = find_child(dom, QEMU_NS, "override");
    if (on) {
        if (qns == NULL) {
            /* "qemu" is libvirt's own prefix; another namespace may have
             * taken it in a hand-written file */
            const char *prefix = xmlSearchNs(doc, dom, BAD_CAST "qemu") ? "msqemu" : "qemu";
            qns = xmlNewNs(dom, BAD_CAST QEMU_NS, BAD_CAST prefix);
        }
        if (find_child(dom, NULL, "iothreads") == NULL) {
            xmlNode *io = xmlNewNode(NULL, BAD_CAST "iothreads");
            xmlNodeSetContent(io, BAD_CAST "1");
            xmlNode *vcpu = find_child(dom, NULL, "vcpu");
            if (vcpu)
                xmlAddNextSibling(vcpu, io);
            else
                xmlAddChild(dom, io);
            *changed = TRUE;
        }
        if (ov == NULL) {
            ov = xmlNewChild(dom, qns, BAD_CAST "override", NULL);
            *changed = TRUE;
        }
        xmlNode *dev = find_child_attr(ov, QEMU_NS, "device", "alias", alias);
        if (dev == NULL) {
            dev = xmlNewChild(ov, qns, BAD_CAST "device", NULL);
            xmlNewProp(dev, BAD_CAST "alias", BAD_CAST alias);
            *changed = TRUE;
        }
        if (find_child(dev, QEMU_NS, "frontend") == NULL)
            *changed = TRUE;
        xmlNode *fe = ensure_child(dev, qns, "frontend");
        g_autofree char *io = iothread_name(dom);
        *changed |= set_property(fe, qns, "free-page-hint", "bool", "true");
        *changed |= set_property(fe, qns, "iothread", "string", io);
    } else {
        xmlNode *dev = find_child_attr(ov, QEMU_NS, "device", "alias", alias);
        xmlNode *fe = find_child(dev, QEMU_NS, "frontend");
        static const char *const props[] = { "free-page-hint", "iothread" };
        for (gsize i = 0; fe && i < G_N_ELEMENTS(props); i++) {
            xmlNode *p = find_child_attr(fe, QEMU_NS, "property", "name", props[i]);
            if (p) {
                remove_node(p);
                *changed = TRUE;
            }
        }
        /* what only held those properties goes with them */
        if (fe && !has_element_children(fe))
            remove_node(fe);
        if (dev && !has_element_children(dev))
            remove_node(dev);
        if (ov && !has_element_children(ov))
            remove_node(ov);
    }

    xmlChar *buf = NULL;
    int size = 0;
    xmlDocDumpFormatMemory(doc, &buf, &size, 0);
    char *out = g_strndup((const char *)buf, size);
    xmlFree(buf);
    xmlFreeDoc(doc);
    return out;
}
