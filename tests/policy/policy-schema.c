/* tests/policy/policy-schema.c: see policy-schema.h. */
#include "policy-schema.h"
#include "ms-policy.h"

#include <string.h>

#include <libxml/parser.h>
#include <libxml/xmlversion.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

/* Entities are expanded as xmllint does, so the schema judges what a user's
 * validator would see; external entities (a file, a URL) are never
 * fetched, whatever the document says. */
static xmlParserInputPtr
no_external_entities(const char *url, const char *id, xmlParserCtxtPtr ctxt)
{
    (void)url;
    (void)id;
    (void)ctxt;
    return NULL;
}

static void
ignore_error(void *data, const char *msg, ...)
{
    (void)data;
    (void)msg;
}

/* Keeps the validator's first complaint, for the disagreement message.
 * (libxml2 2.12 made the error const.) */
#if LIBXML_VERSION >= 21200
static void
first_error(void *data, const xmlError *e)
#else
static void
first_error(void *data, xmlErrorPtr e)
#endif
{
    char **reason = data;
    if (*reason == NULL && e && e->message) {
        *reason = g_strdup(e->message);
        g_strchomp(*reason);
    }
}

xmlRelaxNGPtr
ms_test_schema_load(const char *path)
{
    xmlRelaxNGParserCtxtPtr pctx = xmlRelaxNGNewParserCtxt(path);
    if (pctx == NULL)
        return NULL;
    xmlRelaxNGPtr s = xmlRelaxNGParse(pctx);
    xmlRelaxNGFreeParserCtxt(pctx);
    if (s == NULL)
        g_printerr("%s: not a valid RelaxNG schema\n", path);
    return s;
}

static xmlDoc *
read_expanded(const char *xml, gsize len, int extra)
{
    xmlExternalEntityLoader old = xmlGetExternalEntityLoader();
    xmlSetExternalEntityLoader(no_external_entities);
    xmlDoc *doc = xmlReadMemory(xml, (int)MIN(len, (gsize)G_MAXINT), "policy.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOENT | XML_PARSE_NOERROR |
                                XML_PARSE_NOWARNING | extra);
    xmlSetExternalEntityLoader(old);
    return doc;
}

gboolean
ms_test_is_domain_document(const char *xml, gsize len)
{
    /* RECOVER, as memsharectl: a broken domain XML is still a domain. */
    xmlDoc *doc = read_expanded(xml, len, XML_PARSE_RECOVER);
    const xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    gboolean is_domain = root && root->ns == NULL && strcmp((const char *)root->name, "domain") == 0;
    xmlFreeDoc(doc);
    return is_domain;
}

static gboolean
is_policy(const xmlNode *n)
{
    return n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
           strcmp((const char *)n->ns->href, MS_POLICY_NAMESPACE) == 0 &&
           strcmp((const char *)n->name, "policy") == 0;
}

/* The policy element of a domain in a document of its own (as `virsh
 * metadata` prints it; the copy reconciles the namespace declarations of
 * its ancestors). NULL when the domain has none. */
static xmlDoc *
extract_policy(xmlDoc *domain)
{
    xmlNode *root = xmlDocGetRootElement(domain);
    if (root == NULL || root->ns != NULL || strcmp((const char *)root->name, "domain") != 0)
        return NULL;
    for (xmlNode *m = root->children; m; m = m->next) {
        if (m->type != XML_ELEMENT_NODE || m->ns != NULL || strcmp((const char *)m->name, "metadata") != 0)
            continue;
        for (xmlNode *p = m->children; p; p = p->next) {
            if (!is_policy(p))
                continue;
            xmlDoc *doc = xmlNewDoc((const xmlChar *)"1.0");
            xmlNode *copy = xmlDocCopyNode(p, doc, 1);
            xmlDocSetRootElement(doc, copy);
            xmlReconciliateNs(doc, copy);
            return doc;
        }
        break;      /* the parser reads the first <metadata> only */
    }
    return NULL;
}

MsSchemaVerdict
ms_test_schema_judge(xmlRelaxNGPtr schema, const char *xml, gsize len, gboolean is_domain, char **reason)
{
    g_autofree char *why = NULL;
    MsSchemaVerdict verdict;

    xmlDoc *doc = read_expanded(xml, len, 0);
    if (doc == NULL) {
        why = g_strdup("not well-formed XML");
        verdict = MS_SCHEMA_REFUSES;
    } else {
        if (is_domain) {
            xmlDoc *pdoc = extract_policy(doc);
            xmlFreeDoc(doc);
            doc = pdoc;
        }
        if (doc == NULL) {
            verdict = MS_SCHEMA_NO_POLICY;
        } else {
            xmlRelaxNGValidCtxtPtr v = xmlRelaxNGNewValidCtxt(schema);
            xmlRelaxNGSetValidErrors(v, ignore_error, ignore_error, NULL);
            xmlRelaxNGSetValidStructuredErrors(v, first_error, &why);
            int rc = xmlRelaxNGValidateDoc(v, doc);
            xmlRelaxNGFreeValidCtxt(v);
            xmlFreeDoc(doc);
            if (rc < 0 && why == NULL)
                why = g_strdup("internal error of the validator");
            verdict = rc == 0 ? MS_SCHEMA_ACCEPTS : MS_SCHEMA_REFUSES;
        }
    }
    if (reason)
        *reason = verdict == MS_SCHEMA_REFUSES ? g_steal_pointer(&why) : NULL;
    return verdict;
}

const char *
ms_test_schema_verdict_name(MsSchemaVerdict v)
{
    switch (v) {
    case MS_SCHEMA_ACCEPTS:
        return "accepts";
    case MS_SCHEMA_REFUSES:
        return "refuses";
    case MS_SCHEMA_NO_POLICY:
        return "has no policy element to judge";
    }
    return "?";
}
