/* tools/ctl-policy.c: memsharectl policy: validate a policy (a file or a
 * domain's own XML), get, set and remove a domain's policy through libvirt's
 * metadata API, print the defaults. The language is policies/ms-policy.c's;
 * this file owns the command line, how a policy is put into a domain (the
 * same way `virsh metadata --key memshare` does), the messages and the exit
 * codes (tools/ctl.h). docs/policy.md is the user reference. */
#include "ms-config.h"
#include "ctl.h"
#include "ms-error.h"
#include "ms-image-store.h"
#include "ms-domain-fph.h"
#include "ms-policy.h"
#include "ms-util.h"

#include <stdio.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/tree.h>

/* The parser refuses more than 4 MiB; read one byte more so that it, not
 * the reader, says so. */
#define CTL_POLICY_MAX_FILE (4 * 1024 * 1024 + 1)
#define CTL_POLICY_KEY "memshare"

/* One entry per command: its line in the group's help and its own help
 * (`memsharectl policy COMMAND --help`). */
typedef struct {
    const char *name;
    const char *synopsis; /* after "memsharectl [-c URI] policy " */
    const char *summary;
    const char *help;
} CtlPolicyHelp;

static const CtlPolicyHelp ctl_policy_help[] = {
    { "validate", "validate [--store DIR] [--no-image-check] [--print] FILE|DOMAIN",
      "check a policy file or a domain's policy",
      "FILE: a standalone <memshare:policy> or a whole domain XML.\n"
      "DOMAIN: a name or UUID; its persistent and, if running, live XML are checked.\n"
      "  --store DIR       image store that named shared images must exist in\n"
      "                    (default: [images] store= of memshare.conf)\n"
      "  --no-image-check  do not look for the named images\n"
      "  --print           print the policy with every default filled in\n" },
    { "get", "get DOMAIN [--live|--config]", "print the domain's policy",
      "Prints the <memshare:policy> element of the domain's metadata.\n"
      "  --live    the running domain's     --config  the persistent definition's\n"
      "  (default: live when the domain runs, else the persistent one)\n" },
    { "set", "set DOMAIN FILE [--live] [--config] [--current] [--store DIR] [--no-image-check]",
      "validate FILE against the domain, then store it in its metadata",
      "FILE holds a standalone <memshare:policy>. It is checked against each\n"
      "definition it will land in (sizes against <memory>, named images) and\n"
      "stored the way `virsh metadata --key memshare` does. A running domain's\n"
      "agent picks a live change up at once (docs/policy.md).\n"
      "<migration free-page-hint='on'/> also writes virtio-balloon free-page-hint\n"
      "(<qemu:override>, and an <iothreads>) into the persistent definition, used\n"
      "from the next start (docs/migration.md); set without it, that is removed.\n"
      "  --live, --config, --current  which definitions change, as with virsh\n"
      "  --store DIR, --no-image-check  as for validate\n" },
    { "remove", "remove DOMAIN [--live] [--config] [--current]",
      "remove the domain's policy",
      "Removed live, memshare stops its work on the running domain: the balloon\n"
      "returns to the domain's boot size, tracking stops, and shared images stay\n"
      "attached until the domain stops (the guest may have them mounted). The\n"
      "agent stays and idles: a policy set again live takes effect again.\n"
      "  --live, --config, --current  which definitions change, as with virsh\n" },
    { "defaults", "defaults", "print the canonical empty policy",
      "Prints a policy with every element and its default value.\n" },
};

static void
usage(FILE *f)
{
    fprintf(f, "Usage: memsharectl [-c URI] policy COMMAND ...\n");
    for (gsize i = 0; i < G_N_ELEMENTS(ctl_policy_help); i++)
        fprintf(f, "  %-9s %s\n", ctl_policy_help[i].name, ctl_policy_help[i].summary);
    fprintf(f, "`memsharectl policy COMMAND --help` gives each command's options.\n"
               "Exit status: 0 ok, 1 failure, 2 usage, 3 invalid policy, 4 no such domain/policy.\n");
}

static void
usage_command(FILE *f, const CtlPolicyHelp *h)
{
    fprintf(f, "Usage: memsharectl [-c URI] policy %s\n%s.\n\n%s", h->synopsis, h->summary, h->help);
}

/* A usage error ends with the command's own synopsis, not the whole list. */
static void
usage_error(const char *command)
{
    for (gsize i = 0; i < G_N_ELEMENTS(ctl_policy_help); i++) {
        if (g_str_equal(command, ctl_policy_help[i].name)) {
            fprintf(stderr, "Usage: memsharectl [-c URI] policy %s\n"
                            "(memsharectl policy %s --help for more)\n",
                    ctl_policy_help[i].synopsis, command);
            return;
        }
    }
    usage(stderr);
}

/* ---- options ------------------------------------------------------------ */

typedef struct {
    gboolean live, config, current;
    gboolean print;
    gboolean no_image_check;
    const char *store;
    const char *args[2];
    int nargs;
} CtlOpts;

/* Options may come anywhere after the subcommand, as with virsh. */
static gboolean
parse_opts(int argc, char **argv, int max_args, CtlOpts *o)
{
    memset(o, 0, sizeof(*o));
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (g_str_equal(a, "--live"))
            o->live = TRUE;
        else if (g_str_equal(a, "--config"))
            o->config = TRUE;
        else if (g_str_equal(a, "--current"))
            o->current = TRUE;
        else if (g_str_equal(a, "--print"))
            o->print = TRUE;
        else if (g_str_equal(a, "--no-image-check"))
            o->no_image_check = TRUE;
        else if (g_str_equal(a, "--store") && i + 1 < argc)
            o->store = argv[++i];
        else if (g_str_has_prefix(a, "--store="))
            o->store = a + strlen("--store=");
        else if (g_str_equal(a, "--") && i + 1 < argc) {
            for (i++; i < argc; i++) {
                if (o->nargs >= max_args)
                    return FALSE;
                o->args[o->nargs++] = argv[i];
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "memsharectl: policy %s: unknown option '%s'\n", argv[1], a);
            return FALSE;
        } else {
            if (o->nargs >= max_args) {
                fprintf(stderr, "memsharectl: policy %s: unexpected argument '%s'\n", argv[1], a);
                return FALSE;
            }
            o->args[o->nargs++] = a;
        }
    }
    if (o->current && (o->live || o->config)) {
        fprintf(stderr, "memsharectl: policy %s: --current excludes --live and --config\n", argv[1]);
        return FALSE;
    }
    return TRUE;
}

/* Which affect flags a subcommand refuses (validate reads files or both
 * definitions; get reads one). */
enum { CTL_REFUSE_AFFECT = 1, CTL_REFUSE_LIVE_AND_CONFIG = 2 };

/* A subcommand's options and exactly NARGS operands; on any error its usage
 * is printed and FALSE returned (exit MS_CTL_EXIT_USAGE). */
static gboolean
parse_cmd(int argc, char **argv, int nargs, int refuse, CtlOpts *o)
{
    gboolean ok = parse_opts(argc, argv, nargs, o) && o->nargs == nargs;
    if (ok && (refuse & CTL_REFUSE_AFFECT))
        ok = !o->live && !o->config && !o->current;
    if (ok && (refuse & CTL_REFUSE_LIVE_AND_CONFIG))
        ok = !(o->live && o->config);
    if (!ok)
        usage_error(argv[1]);
    return ok;
}

static unsigned int
affect_flags(const CtlOpts *o)
{
    unsigned int flags = VIR_DOMAIN_AFFECT_CURRENT;
    if (o->live)
        flags |= VIR_DOMAIN_AFFECT_LIVE;
    if (o->config)
        flags |= VIR_DOMAIN_AFFECT_CONFIG;
    return flags;
}

static char *
image_store(const CtlOpts *o)
{
    return o->store ? g_strdup(o->store) : ms_image_store_default_path();
}

static MsPolicyCheckFlags
check_flags(const CtlOpts *o)
{
    return o->no_image_check ? MS_POLICY_CHECK_NONE : MS_POLICY_CHECK_IMAGES;
}

/* ---- libvirt --------------------------------------------------------------- */

static void
quiet_libvirt(void *opaque, virErrorPtr err)
{
    (void)opaque;
    (void)err;
}

static const char *
libvirt_message(void)
{
    virErrorPtr e = virGetLastError();
    return e && e->message ? e->message : "unknown libvirt error";
}

static int
libvirt_exit_code(void)
{
    virErrorPtr e = virGetLastError();
    if (e && (e->code == VIR_ERR_NO_DOMAIN || e->code == VIR_ERR_NO_DOMAIN_METADATA))
        return MS_CTL_EXIT_NOT_FOUND;
    return MS_CTL_EXIT_FAILURE;
}

static virConnectPtr
ctl_connect(void)
{
    virSetErrorFunc(NULL, quiet_libvirt);
    virConnectPtr conn = virConnectOpen(ms_ctl_connect_uri());
    if (conn == NULL)
        fprintf(stderr, "memsharectl: cannot connect to libvirt%s%s: %s\n",
                ms_ctl_connect_uri() ? " at " : "", ms_ctl_connect_uri() ? ms_ctl_connect_uri() : "",
                libvirt_message());
    return conn;
}

/* By UUID first when it looks like one (a domain may be named like a
 * UUID, but libvirt refuses that name for new domains anyway). */
static virDomainPtr
ctl_lookup(virConnectPtr conn, const char *what)
{
    virDomainPtr dom = NULL;
    if (ms_uuid_is_valid(what))
        dom = virDomainLookupByUUIDString(conn, what);
    if (dom == NULL)
        dom = virDomainLookupByName(conn, what);
    if (dom == NULL)
        fprintf(stderr, "memsharectl: %s: no such domain\n", what);
    return dom;
}

/* Connects and looks the domain up: MS_CTL_EXIT_OK with *conn and *dom
 * set (ctl_close), else the exit code with nothing left open. */
static int
ctl_open(const char *what, virConnectPtr *conn, virDomainPtr *dom)
{
    *conn = ctl_connect();
    if (*conn == NULL)
        return MS_CTL_EXIT_FAILURE;
    *dom = ctl_lookup(*conn, what);
    if (*dom == NULL) {
        virConnectClose(*conn);
        return MS_CTL_EXIT_NOT_FOUND;
    }
    return MS_CTL_EXIT_OK;
}

static void
ctl_close(virConnectPtr conn, virDomainPtr dom)
{
    virDomainFree(dom);
    virConnectClose(conn);
}

/* ---- XML plumbing ----------------------------------------------------------- */

static xmlDoc *
read_xml(const char *xml, gsize len)
{
    return xmlReadMemory(xml, (int)len, "policy.xml", NULL,
                         XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
}

static gboolean
is_policy_node(const xmlNode *n)
{
    return n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
           strcmp((const char *)n->ns->href, MS_POLICY_NAMESPACE) == 0 &&
           strcmp((const char *)n->name, "policy") == 0;
}

static xmlNode *
child_element(xmlNode *parent, const char *name)
{
    for (xmlNode *c = parent ? parent->children : NULL; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE && c->ns == NULL && strcmp((const char *)c->name, name) == 0)
            return c;
    return NULL;
}

static char *
node_to_string(xmlDoc *doc, xmlNode *node)
{
    xmlBuffer *buf = xmlBufferCreate();
    xmlNodeDump(buf, doc, node, 0, 0);
    char *s = g_strdup((const char *)xmlBufferContent(buf));
    xmlBufferFree(buf);
    return s;
}

/* The domain XML with its memshare policies replaced by `policy` (a node
 * of another document). */
static char *
substitute_policy(const char *domain_xml, xmlNode *policy, GError **error)
{
    xmlDoc *doc = read_xml(domain_xml, strlen(domain_xml));
    if (doc == NULL || xmlDocGetRootElement(doc) == NULL) {
        g_set_error(error, MS_POLICY_ERROR, MS_POLICY_ERROR_XML, "libvirt returned unreadable domain XML");
        xmlFreeDoc(doc);
        return NULL;
    }
    xmlNode *root = xmlDocGetRootElement(doc);
    xmlNode *meta = child_element(root, "metadata");
    if (meta == NULL)
        meta = xmlNewChild(root, NULL, (const xmlChar *)"metadata", NULL);
    for (xmlNode *c = meta->children, *next; c; c = next) {
        next = c->next;
        if (is_policy_node(c)) {
            xmlUnlinkNode(c);
            xmlFreeNode(c);
        }
    }
    xmlNode *copy = xmlDocCopyNode(policy, doc, 1);
    xmlAddChild(meta, copy);
    xmlReconciliateNs(doc, copy);
    xmlChar *out = NULL;
    int n = 0;
    xmlDocDumpMemory(doc, &out, &n);
    char *s = g_strndup((const char *)out, n);
    xmlFree(out);
    xmlFreeDoc(doc);
    return s;
}

/* What virDomainSetMetadata wants: the element without our namespace
 * (libvirt adds it with the key as prefix, to every element that has no
 * namespace, and fails if the prefix is already bound). Elements of other
 * namespaces keep theirs, so the parser still refuses them by name
 * (a policy has no extension point). Two passes: elements still refer to a declaration
 * until the first pass is done with the whole tree. */
static void
unset_our_namespace(xmlNode *node)
{
    for (xmlNode *n = node; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (n->ns && n->ns->href && strcmp((const char *)n->ns->href, MS_POLICY_NAMESPACE) == 0)
            xmlSetNs(n, NULL);
        unset_our_namespace(n->children);
    }
}

static void
drop_our_declarations(xmlNode *node)
{
    for (xmlNode *n = node; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        for (xmlNs **pp = &n->nsDef; *pp;) {
            xmlNs *d = *pp;
            if (d->href && strcmp((const char *)d->href, MS_POLICY_NAMESPACE) == 0) {
                *pp = d->next;
                d->next = NULL;
                xmlFreeNs(d);
            } else {
                pp = &d->next;
            }
        }
        drop_our_declarations(n->children);
    }
}

static void
strip_our_namespace(xmlNode *root)
{
    unset_our_namespace(root);
    drop_our_declarations(root);
}

/* The reverse, for `get`: libvirt returns the element without its
 * namespace; put it back (as libvirt stores it, prefix memshare) so that
 * the output is a standalone policy that validate and set accept. */
static void
set_our_namespace(xmlNode *node, xmlNs *ns)
{
    for (xmlNode *n = node; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (n->ns == NULL)
            xmlSetNs(n, ns);
        set_our_namespace(n->children, ns);
    }
}

static char *
with_our_namespace(const char *xml)
{
    xmlDoc *doc = read_xml(xml, strlen(xml));
    xmlNode *root = doc ? xmlDocGetRootElement(doc) : NULL;
    if (root == NULL || root->ns != NULL) {
        xmlFreeDoc(doc);
        return g_strdup(xml);
    }
    xmlNs *ns = xmlNewNs(root, (const xmlChar *)MS_POLICY_NAMESPACE, (const xmlChar *)CTL_POLICY_KEY);
    if (ns == NULL) {
        xmlFreeDoc(doc);
        return g_strdup(xml);
    }
    set_our_namespace(root, ns);
    char *s = node_to_string(doc, root);
    xmlFreeDoc(doc);
    return s;
}

/* ---- validate ----------------------------------------------------------------- */

static int
report_invalid(const char *what, const GError *error)
{
    fprintf(stderr, "memsharectl: %s: %s\n", what, error->message);
    return MS_CTL_EXIT_INVALID;
}

/* A standalone policy or a domain XML, told apart by the root element. */
static int
validate_xml(const char *what, const char *xml, gsize len, const CtlOpts *o)
{
    g_autoptr(MsPolicy) policy = NULL;
    g_autoptr(GError) error = NULL;
    gboolean is_domain = FALSE;

    /* RECOVER: a broken domain XML is still judged as a domain, so that
     * its message reads "domain XML: not well-formed ...". */
    xmlDoc *doc = xmlReadMemory(xml, (int)MIN(len, (gsize)G_MAXINT), "input.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_RECOVER);
    if (doc) {
        const xmlNode *root = xmlDocGetRootElement(doc);
        is_domain = root && root->ns == NULL && strcmp((const char *)root->name, "domain") == 0;
        xmlFreeDoc(doc);
    }
    if (is_domain) {
        g_autofree char *store = image_store(o);
        MsOnError on_error;
        if (!ms_policy_parse_domain_xml(xml, len, check_flags(o), store, &policy, &on_error, &error)) {
            int rc = report_invalid(what, error);
            if (on_error == MS_ON_ERROR_IGNORE)
                fprintf(stderr, "memsharectl: %s: on-error='ignore': the domain would start without memshare\n", what);
            return rc;
        }
        if (policy == NULL) {
            printf("%s: no memshare policy\n", what);
            return MS_CTL_EXIT_OK;
        }
    } else if (!ms_policy_parse_standalone(xml, len, &policy, &error)) {
        return report_invalid(what, error);
    }
    if (o->print) {
        g_autofree char *canon = ms_policy_to_xml(policy);
        fputs(canon, stdout);
    } else {
        printf("%s: valid\n", what);
    }
    return MS_CTL_EXIT_OK;
}

static int
validate_domain(const char *name, const CtlOpts *o)
{
    virConnectPtr conn;
    virDomainPtr dom;
    int rc = ctl_open(name, &conn, &dom);
    if (rc != MS_CTL_EXIT_OK)
        return rc;
    /* The persistent definition is what the next start checks; the live
     * one is what the running agent follows. */
    struct { const char *label; unsigned int flags; gboolean want; } views[] = {
        { "config", VIR_DOMAIN_XML_INACTIVE, virDomainIsPersistent(dom) == 1 },
        { "live", 0, virDomainIsActive(dom) == 1 },
    };
    for (gsize i = 0; i < G_N_ELEMENTS(views); i++) {
        if (!views[i].want)
            continue;
        g_autofree char *xml = virDomainGetXMLDesc(dom, views[i].flags);
        g_autofree char *what = g_strdup_printf("%s (%s)", name, views[i].label);
        if (xml == NULL) {
            fprintf(stderr, "memsharectl: %s: %s\n", what, libvirt_message());
            rc = MS_CTL_EXIT_FAILURE;
            continue;
        }
        int r = validate_xml(what, xml, strlen(xml), o);
        if (r != MS_CTL_EXIT_OK && rc == MS_CTL_EXIT_OK)
            rc = r;
    }
    ctl_close(conn, dom);
    return rc;
}

/* Returns MS_CTL_EXIT_OK, or the exit code: an oversized file is invalid
 * input, an unreadable one a failure. */
static int
read_input(const char *path, char **xml, gsize *len)
{
    g_autoptr(GError) error = NULL;
    if (!ms_file_read_bounded(path, CTL_POLICY_MAX_FILE, xml, len, &error)) {
        fprintf(stderr, "memsharectl: %s: %s\n", path, error->message);
        return g_error_matches(error, MS_ERROR, MS_ERROR_TOO_BIG) ? MS_CTL_EXIT_INVALID
                                                                  : MS_CTL_EXIT_FAILURE;
    }
    return MS_CTL_EXIT_OK;
}

static int
cmd_validate(int argc, char **argv)
{
    CtlOpts o;
    if (!parse_cmd(argc, argv, 1, CTL_REFUSE_AFFECT, &o))
        return MS_CTL_EXIT_USAGE;
    const char *arg = o.args[0];
    /* A path when it names a file or looks like one; else a domain. */
    if (strchr(arg, '/') || g_file_test(arg, G_FILE_TEST_EXISTS)) {
        g_autofree char *xml = NULL;
        gsize len = 0;
        int rc = read_input(arg, &xml, &len);
        if (rc != MS_CTL_EXIT_OK)
            return rc;
        return validate_xml(arg, xml, len, &o);
    }
    return validate_domain(arg, &o);
}

/* ---- get / set / remove ----------------------------------------------------- */

static int
cmd_get(int argc, char **argv)
{
    CtlOpts o;
    if (!parse_cmd(argc, argv, 1, CTL_REFUSE_LIVE_AND_CONFIG, &o))
        return MS_CTL_EXIT_USAGE;
    g_autofree char *xml = NULL;
    virConnectPtr conn;
    virDomainPtr dom;
    int rc = ctl_open(o.args[0], &conn, &dom);
    if (rc != MS_CTL_EXIT_OK)
        return rc;
    xml = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, MS_POLICY_NAMESPACE, affect_flags(&o));
    if (xml == NULL) {
        virErrorPtr e = virGetLastError();
        if (e && e->code == VIR_ERR_NO_DOMAIN_METADATA)
            fprintf(stderr, "memsharectl: %s: no memshare policy\n", o.args[0]);
        else
            fprintf(stderr, "memsharectl: %s: %s\n", o.args[0], libvirt_message());
        rc = libvirt_exit_code();
    } else {
        g_autofree char *full = with_our_namespace(xml);
        printf("%s\n", full);
    }
    ctl_close(conn, dom);
    return rc;
}

/* Cross-checks the new policy against each definition it will land in. */
static int
check_against(virDomainPtr dom, const char *name, const char *label, unsigned int xml_flags,
              xmlNode *policy, const CtlOpts *o)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(MsPolicy) parsed = NULL;
    g_autofree char *xml = virDomainGetXMLDesc(dom, xml_flags);
    g_autofree char *what = g_strdup_printf("%s (%s)", name, label);

    if (xml == NULL) {
        fprintf(stderr, "memsharectl: %s: %s\n", what, libvirt_message());
        return MS_CTL_EXIT_FAILURE;
    }
    g_autofree char *merged = substitute_policy(xml, policy, &error);
    if (merged == NULL) {
        fprintf(stderr, "memsharectl: %s: %s\n", what, error->message);
        return MS_CTL_EXIT_FAILURE;
    }
    g_autofree char *store = image_store(o);
    if (!ms_policy_parse_domain_xml(merged, -1, check_flags(o), store, &parsed, NULL, &error))
        return report_invalid(what, error);
    return MS_CTL_EXIT_OK;
}

/* <migration free-page-hint='on'/> is a device property (virtio-balloon
 * free-page-hint, through <qemu:override>, with the iothread QEMU 7.2
 * requires): the hook may not change the XML at `prepare`, so it goes into
 * the persistent definition here, together with the policy, in one
 * virDomainDefineXML. Switched off only where the old policy asked for it
 * (an override written by hand for another reason is the user's). Sets
 * *defined when it defined the domain (the policy is then stored too). */
static int
apply_free_page_hint(virConnectPtr conn, virDomainPtr dom, const char *name, xmlNode *policy,
                     gboolean want, gboolean *defined)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *xml = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
    *defined = FALSE;
    if (xml == NULL) {
        fprintf(stderr, "memsharectl: %s (config): %s\n", name, libvirt_message());
        return MS_CTL_EXIT_FAILURE;
    }
    if (!want) {
        g_autoptr(MsPolicy) old = NULL;
        /* an old policy that no longer parses asked for nothing we know of */
        if (!ms_policy_parse_domain_xml(xml, -1, MS_POLICY_CHECK_NONE, NULL, &old, NULL, NULL) ||
            old == NULL || !old->migration.free_page_hint)
            return MS_CTL_EXIT_OK;
    }
    g_autofree char *merged = substitute_policy(xml, policy, &error);
    gboolean changed = FALSE;
    g_autofree char *edited = merged ? ms_domain_set_free_page_hint(merged, -1, want, &changed, &error) : NULL;
    if (edited == NULL) {
        fprintf(stderr, "memsharectl: %s (config): %s\n", name, error->message);
        return g_error_matches(error, MS_ERROR, MS_ERROR_INVALID) ? MS_CTL_EXIT_INVALID : MS_CTL_EXIT_FAILURE;
    }
    if (!changed)
        return MS_CTL_EXIT_OK;
    virDomainPtr d = virDomainDefineXML(conn, edited);
    if (d == NULL) {
        fprintf(stderr, "memsharectl: %s (config): free-page-hint: %s\n", name, libvirt_message());
        return libvirt_exit_code();
    }
    virDomainFree(d);
    *defined = TRUE;
    printf("%s: free-page-hint %s in the persistent definition (%s); the next start uses it\n", name,
           want ? "on" : "off",
           want ? "virtio-balloon property through <qemu:override>, with an iothread"
                : "the <qemu:override> properties removed");
    return MS_CTL_EXIT_OK;
}

static int
cmd_set(int argc, char **argv)
{
    CtlOpts o;
    if (!parse_cmd(argc, argv, 2, 0, &o))
        return MS_CTL_EXIT_USAGE;
    const char *name = o.args[0], *file = o.args[1];
    g_autofree char *xml = NULL;
    gsize len = 0;
    g_autoptr(MsPolicy) policy = NULL;
    g_autoptr(GError) error = NULL;
    g_autofree char *plain = NULL;

    int rrc = read_input(file, &xml, &len);
    if (rrc != MS_CTL_EXIT_OK)
        return rrc;
    if (!ms_policy_parse_standalone(xml, len, &policy, &error))
        return report_invalid(file, error);

    virConnectPtr conn;
    virDomainPtr dom;
    int rc = ctl_open(name, &conn, &dom);
    if (rc != MS_CTL_EXIT_OK)
        return rc;
    xmlDoc *doc = read_xml(xml, len);   /* parsed fine above */
    xmlNode *root = xmlDocGetRootElement(doc);

    /* Which definitions change, as libvirt resolves the flags. */
    gboolean active = virDomainIsActive(dom) == 1;
    gboolean to_live = o.live || (!o.live && !o.config && active);
    gboolean to_config = o.config || (!o.live && !o.config && !active);
    if (to_config && virDomainIsPersistent(dom) == 1)
        rc = check_against(dom, name, "config", VIR_DOMAIN_XML_INACTIVE, root, &o);
    if (rc == MS_CTL_EXIT_OK && to_live && active)
        rc = check_against(dom, name, "live", 0, root, &o);
    if (rc != MS_CTL_EXIT_OK)
        goto out;

    gboolean defined = FALSE;
    unsigned int flags = affect_flags(&o);
    if (to_config && virDomainIsPersistent(dom) == 1) {
        rc = apply_free_page_hint(conn, dom, name, root, policy->migration.free_page_hint, &defined);
        if (rc != MS_CTL_EXIT_OK)
            goto out;
    }
    if (defined) {
        /* the definition holds the policy already; the live one, if asked */
        if (!(to_live && active)) {
            printf("%s: policy set\n", name);
            goto out;
        }
        flags = VIR_DOMAIN_AFFECT_LIVE;
    }
    if (to_live && active && policy->migration.free_page_hint)
        printf("%s: <migration free-page-hint='on'>: a device property, the running QEMU keeps "
               "what it started with\n", name);

    strip_our_namespace(root);
    plain = node_to_string(doc, root);
    if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, plain, CTL_POLICY_KEY,
                             MS_POLICY_NAMESPACE, flags) < 0) {
        fprintf(stderr, "memsharectl: %s: %s\n", name, libvirt_message());
        rc = libvirt_exit_code();
        goto out;
    }
    printf("%s: policy set\n", name);

out:
    xmlFreeDoc(doc);
    ctl_close(conn, dom);
    return rc;
}

static int
cmd_remove(int argc, char **argv)
{
    CtlOpts o;
    if (!parse_cmd(argc, argv, 1, 0, &o))
        return MS_CTL_EXIT_USAGE;
    virConnectPtr conn;
    virDomainPtr dom;
    int rc = ctl_open(o.args[0], &conn, &dom);
    if (rc != MS_CTL_EXIT_OK)
        return rc;
    if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, NULL, NULL, MS_POLICY_NAMESPACE,
                             affect_flags(&o)) < 0) {
        fprintf(stderr, "memsharectl: %s: %s\n", o.args[0], libvirt_message());
        rc = libvirt_exit_code();
    } else {
        printf("%s: policy removed\n", o.args[0]);
    }
    ctl_close(conn, dom);
    return rc;
}

static int
cmd_defaults(int argc, char **argv)
{
    g_autoptr(MsPolicy) policy = NULL;
    g_autoptr(GError) error = NULL;

    if (argc != 2) {
        usage_error(argv[1]);
        return MS_CTL_EXIT_USAGE;
    }
    if (!ms_policy_parse_standalone("<policy xmlns='" MS_POLICY_NAMESPACE "'/>", -1, &policy, &error)) {
        fprintf(stderr, "memsharectl: defaults: %s\n", error->message);
        return MS_CTL_EXIT_FAILURE;
    }
    g_autofree char *xml = ms_policy_to_xml(policy);
    fputs(xml, stdout);
    return MS_CTL_EXIT_OK;
}

int
ms_ctl_policy(int argc, char **argv)
{
    static const struct {
        const char *name;
        int (*run)(int argc, char **argv);
    } cmds[] = { /* the order of ctl_policy_help */
        { "validate", cmd_validate }, { "get", cmd_get }, { "set", cmd_set },
        { "remove", cmd_remove }, { "defaults", cmd_defaults },
    };
    G_STATIC_ASSERT(G_N_ELEMENTS(cmds) == G_N_ELEMENTS(ctl_policy_help));

    if (argc < 2) {
        usage(stderr);
        return MS_CTL_EXIT_USAGE;
    }
    if (g_str_equal(argv[1], "-h") || g_str_equal(argv[1], "--help") || g_str_equal(argv[1], "help")) {
        usage(stdout);
        return MS_CTL_EXIT_OK;
    }
    for (gsize i = 0; i < G_N_ELEMENTS(cmds); i++) {
        if (!g_str_equal(argv[1], cmds[i].name))
            continue;
        if (ms_ctl_wants_help(argc - 1, argv + 1)) {
            usage_command(stdout, &ctl_policy_help[i]);
            return MS_CTL_EXIT_OK;
        }
        return cmds[i].run(argc, argv);
    }
    fprintf(stderr, "memsharectl: policy: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return MS_CTL_EXIT_USAGE;
}
