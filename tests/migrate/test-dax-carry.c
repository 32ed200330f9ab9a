/* tests/migrate/test-dax-carry.c: the DAX placement a live migration
 * carries (formats/ms-dax-carry.c): the <migration> element round-trips,
 * every attribute that reaches a QEMU command line is refused with its name
 * when it could change the option's meaning, the options double commas in
 * the store path, and the <qemu:commandline> edit replaces an earlier
 * leg's pairs while keeping the user's own. */
#include "ms-dax-carry.h"
#include "ms-error.h"

#include <libxml/parser.h>

static xmlDoc *
parse(const char *xml)
{
    xmlDoc *doc = xmlReadMemory(xml, (int)strlen(xml), "t.xml", NULL, XML_PARSE_NONET);
    g_assert_nonnull(doc);
    return doc;
}

static GPtrArray *
parse_carry(const char *xml, GError **error)
{
    xmlDoc *doc = parse(xml);
    GPtrArray *r = ms_dax_carry_parse(xmlDocGetRootElement(doc), error);
    xmlFreeDoc(doc);
    return r;
}

#define SHA "4f85a0c1b2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9"

static void
test_roundtrip(void)
{
    g_autoptr(GPtrArray) in = g_ptr_array_new_with_free_func((GDestroyNotify)ms_dax_carry_free);
    MsDaxCarry *c = g_new0(MsDaxCarry, 1);
    c->name = g_strdup("usr");
    c->sha256 = g_strdup(SHA);
    c->size = 64 << 20;
    c->index = 1;
    c->bus = g_strdup("pci.2");
    c->addr = 0;
    c->memaddr = 4294967296;
    g_ptr_array_add(in, c);
    g_autofree char *xml = ms_dax_carry_format(in);
    g_assert_nonnull(strstr(xml, "xmlns=\"" MS_DAX_CARRY_NS "\""));
    g_autoptr(GError) error = NULL;
    g_autoptr(GPtrArray) out = parse_carry(xml, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(out->len, ==, 1);
    MsDaxCarry *o = g_ptr_array_index(out, 0);
    g_assert_cmpstr(o->name, ==, "usr");
    g_assert_cmpstr(o->sha256, ==, SHA);
    g_assert_cmpuint(o->size, ==, 64 << 20);
    g_assert_cmpuint(o->index, ==, 1);
    g_assert_cmpstr(o->bus, ==, "pci.2");
    g_assert_cmpuint(o->memaddr, ==, 4294967296);

    g_autofree char *obj = NULL, *dev = NULL;
    ms_dax_carry_qemu_args(o, "/srv/a,\"b/blobs/sha256-" SHA ".img", &obj, &dev);
    g_assert_cmpstr(obj, ==, "{\"qom-type\":\"memory-backend-file\",\"id\":\"ms-img1\",\"mem-path\":"
                    "\"/srv/a,\\\"b/blobs/sha256-" SHA ".img\",\"size\":67108864,\"share\":true,\"readonly\":true}");
    g_assert_cmpstr(dev, ==, "{\"driver\":\"virtio-pmem-pci\",\"id\":\"ms-pmem1\",\"memdev\":\"ms-img1\","
                    "\"bus\":\"pci.2\",\"addr\":\"0x0\",\"memaddr\":4294967296}");
}

/* each must fail, and the message must name what is wrong */
static void
test_invalid(void)
{
    static const struct { const char *dax, *expect; } cases[] = {
        { "name='usr' size='67108864' index='0' bus='pci.1' addr='0' memaddr='1'", "'sha256' is missing" },
        { "name='usr' sha256='" SHA "' size='67108864' index='0' bus='pci.1,addr=3' addr='0' memaddr='1'",
          "<dax bus='pci.1,addr=3'>: not a device id" },
        { "name='usr' sha256='4F85' size='67108864' index='0' bus='pci.1' addr='0' memaddr='1'",
          "<dax sha256='4F85'>" },
        { "name='usr' sha256='" SHA "' size='1000' index='0' bus='pci.1' addr='0' memaddr='1'",
          "<dax size='1000'>: not a multiple of 2 MiB" },
        { "name='usr' sha256='" SHA "' size='67108864' index='64' bus='pci.1' addr='0' memaddr='1'",
          "<dax index='64'>" },
        { "name='usr' sha256='" SHA "' size='67108864' index='0' bus='pci.1' addr='256' memaddr='1'",
          "<dax addr='256'>" },
        { "name='usr' sha256='" SHA "' size='67108864' index='0' bus='pci.1' addr='0' memaddr='1,x=y'",
          "<dax memaddr='1,x=y'>" },
    };
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *xml = g_strdup_printf("<migration xmlns='%s'><dax %s/></migration>", MS_DAX_CARRY_NS,
                                               cases[i].dax);
        g_autoptr(GError) error = NULL;
        g_autoptr(GPtrArray) r = parse_carry(xml, &error);
        g_assert_null(r);
        g_assert_error(error, MS_ERROR, MS_ERROR_INVALID);
        if (strstr(error->message, cases[i].expect) == NULL)
            g_error("case %" G_GSIZE_FORMAT ": '%s' lacks '%s'", i, error->message, cases[i].expect);
    }
    g_autofree char *twice = g_strdup_printf(
        "<migration xmlns='%s'><dax name='a' sha256='" SHA "' size='2097152' index='0' bus='pci.1' addr='0' "
        "memaddr='1'/><dax name='b' sha256='" SHA "' size='2097152' index='0' bus='pci.2' addr='0' memaddr='2'/>"
        "</migration>", MS_DAX_CARRY_NS);
    g_autoptr(GError) error = NULL;
    g_assert_null(parse_carry(twice, &error));
    g_assert_nonnull(strstr(error->message, "two <dax> elements with index 0"));
}

static char *
dump(xmlDoc *doc)
{
    xmlChar *buf = NULL;
    int len = 0;
    xmlDocDumpMemory(doc, &buf, &len);
    char *s = g_strndup((const char *)buf, (gsize)len);
    xmlFree(buf);
    return s;
}

static GPtrArray *
two_args(const char *obj, const char *dev)
{
    GPtrArray *a = g_ptr_array_new();
    g_ptr_array_add(a, (gpointer) "-object");
    g_ptr_array_add(a, (gpointer)obj);
    g_ptr_array_add(a, (gpointer) "-device");
    g_ptr_array_add(a, (gpointer)dev);
    return a;
}

static void
test_apply(void)
{
    /* no qemu namespace yet: declared on <domain>, element added */
    xmlDoc *doc = parse("<domain type='qemu'><name>d</name></domain>");
    g_autoptr(GPtrArray) a = two_args("{\"qom-type\":\"memory-backend-file\",\"id\":\"ms-img0\",\"mem-path\":\"/b\"}",
                                     "{\"driver\":\"virtio-pmem-pci\",\"id\":\"ms-pmem0\"}");
    g_autoptr(GError) error = NULL;
    g_assert_true(ms_dax_carry_apply(doc, a, &error));
    g_autofree char *s1 = dump(doc);
    g_assert_nonnull(strstr(s1, "xmlns:qemu=\"" MS_DAX_CARRY_QEMU_NS "\""));
    g_assert_nonnull(strstr(s1, "<qemu:commandline><qemu:arg value=\"-object\"/><qemu:arg value=\"{&quot;qom-type&quot;:&quot;"
                                "memory-backend-file&quot;,&quot;id&quot;:&quot;ms-img0&quot;,&quot;mem-path&quot;:&quot;"
                                "/b&quot;}\"/><qemu:arg value=\"-device\"/><qemu:arg value=\"{&quot;driver&quot;:&quot;"
                                "virtio-pmem-pci&quot;,&quot;id&quot;:&quot;ms-pmem0&quot;}\"/></qemu:commandline>"));
    xmlFreeDoc(doc);

    /* the way back: the other host's pair goes, the user's own -object
     * and -device stay, whatever prefix the namespace has */
    doc = parse("<domain xmlns:q='" MS_DAX_CARRY_QEMU_NS "'><q:commandline>"
                "<q:arg value='-object'/><q:arg value='{\"qom-type\":\"memory-backend-file\",\"id\":\"ms-img0\",\"mem-path\":\"/a\"}'/>"
                "<q:arg value='-device'/><q:arg value='e1000,id=user0'/>"
                "<q:arg value='-device'/><q:arg value='{\"driver\":\"virtio-pmem-pci\",\"id\":\"ms-pmem0\",\"bus\":\"pci.1\"}'/>"
                "<q:arg value='-object'/><q:arg value='memory-backend-ram,id=user1,size=1M'/>"
                "</q:commandline></domain>");
    g_assert_true(ms_dax_carry_apply(doc, a, &error));
    g_autofree char *s2 = dump(doc);
    g_assert_null(strstr(s2, "/a&quot;"));
    g_assert_null(strstr(s2, "pci.1"));
    g_assert_nonnull(strstr(s2, "<q:arg value=\"-device\"/><q:arg value=\"e1000,id=user0\"/>"
                                "<q:arg value=\"-object\"/><q:arg value=\"memory-backend-ram,id=user1,size=1M\"/>"
                                "<q:arg value=\"-object\"/><q:arg value=\"{&quot;qom-type&quot;:&quot;memory-backend-"
                                "file&quot;,&quot;id&quot;:&quot;ms-img0&quot;,&quot;mem-path&quot;:&quot;/b&quot;}\"/>"));
    g_assert_null(strstr(s2, "xmlns:qemu"));
    xmlFreeDoc(doc);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/dax-carry/roundtrip", test_roundtrip);
    g_test_add_func("/dax-carry/invalid", test_invalid);
    g_test_add_func("/dax-carry/apply", test_apply);
    return g_test_run();
}
