/* tests/attach/test-images-replay.c: the shared-image module (qmp-plugin/
 * ms-images.c) without a QEMU, against its QMP exchanges recorded from a
 * paused q35 QEMU 7.2 (tests/qmp/record-transcripts.py images; data/
 * images-*.txt), replayed by tests/lib/fake-qmp.c. The transcripts are the
 * expectation of what the module sends; this file checks what it makes of
 * QEMU's answers: the status file's [images] group, the runtime "images"
 * file and the warnings. The store is built here with the recorder's two
 * blobs (2 MiB of 'u' and of 'v'), so digests and paths match; its
 * temporary path replaces @STORE@. The module checks that a blob is owned
 * by root, so the test needs root (it skips otherwise). The blk path
 * through libvirt (virDomainAttachDeviceFlags) talks no QMP and is not
 * covered here. */
#include "fake-qmp.h"
#include "ms-error.h"
#include "ms-image-store.h"
#include "ms-images.h"
#include "ms-policy.h"
#include "ms-status-keys.h"

#include <glib/gstdio.h>
#include <string.h>
#include <unistd.h>

#define MiB ((gsize)1024 * 1024)
#define UUID "0b9f4c1e-7d2a-4e8b-9c31-5a6d2f8e1b47"

typedef struct {
    const char *name;
    char byte;
    char *sha256;
} StoreImage;

static StoreImage store_images[] = {
    { "usr", 'u', NULL },
    { "usr2", 'v', NULL },
};

typedef struct {
    const char *transcript;
    const char *modes[2];        /* usr's and usr2's <shared-image mode=> */
    guint ticks;                 /* the transcript's commands are those of this many periods */
    gboolean ok;                 /* what each tick returns */
    const char *errors[2];       /* a substring of each image's status error; NULL: attached */
    const char *warnings[2];     /* the module's warnings (patterns), in order */
} ReplayCase;

static const ReplayCase cases[] = {
    /* object-add + device_add, blockdev-add + device_add (QEMU 7.2 takes
     * both on pci.1, beside the balloon, at slot 1); a second period asks
     * QEMU nothing (any command past the transcript fails the fake) */
    { "images-attach.txt", { "dax", "blk" }, 2, TRUE, { NULL, NULL }, { NULL, NULL } },
    /* a restarted agent finds ms-img0 mapping the blob and the node
     * ms-blk1 reading it: nothing attached twice */
    { "images-reattach.txt", { "dax", "blk" }, 2, TRUE, { NULL, NULL }, { NULL, NULL } },
    /* ms-img0 maps a file outside the store; usr2's device_add is refused
     * by QEMU on both root ports (its command line has no memory-hotplug
     * slots, whatever the XML says) and its backend deleted again. One
     * period: the next one retries (not recorded). */
    { "images-refused.txt", { "dax", "dax" }, 1, FALSE,
      { "QEMU object ms-img0 exists but maps another file",
        "device_add (tried 2 buses): GenericError: memory devices (e.g. for memory hotplug) are not "
        "enabled, please specify the maxmem option" },
      { "image 'usr' (dax) not attached: QEMU object ms-img0 exists but maps another file*",
        "image 'usr2' (dax) not attached: device_add (tried 2 buses): *maxmem*" } },
};

/* The module's warnings, collected instead of aborting the test: the agent
 * logs structured (G_LOG_USE_STRUCTURED), which g_test_expect_message does
 * not see. */
static GPtrArray *warnings;

static GLogWriterOutput
log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer user_data)
{
    if (level & G_LOG_LEVEL_WARNING) {
        for (gsize i = 0; i < n_fields; i++)
            if (g_str_equal(fields[i].key, "MESSAGE"))
                g_ptr_array_add(warnings, g_strdup(fields[i].value));
        return G_LOG_WRITER_HANDLED;
    }
    return g_log_writer_default(level, fields, n_fields, user_data);
}

/* The recorder's store (record-transcripts.py images_store), with the
 * manifests the module resolves names by; one for the whole run, made
 * before any thread (the module finds it through the environment). */
static char *store_dir;
static char *store;

static char *
store_blob(const StoreImage *img)
{
    return g_strdup_printf("%s/blobs/sha256-%s.img", store, img->sha256);
}

static void
store_setup(void)
{
    g_autoptr(GError) error = NULL;
    store_dir = g_dir_make_tmp("ms-images-replay-XXXXXX", &error);
    g_assert_no_error(error);
    store = g_build_filename(store_dir, "store", NULL);
    g_autofree char *blobs = g_build_filename(store, "blobs", NULL);
    g_autofree char *names = g_build_filename(store, "names", NULL);
    g_assert_cmpint(g_mkdir_with_parents(blobs, 0755), ==, 0);
    g_assert_cmpint(g_mkdir_with_parents(names, 0755), ==, 0);
    g_autofree char *data = g_malloc(2 * MiB);
    for (gsize i = 0; i < G_N_ELEMENTS(store_images); i++) {
        StoreImage *img = &store_images[i];
        memset(data, img->byte, 2 * MiB);
        img->sha256 = g_compute_checksum_for_data(G_CHECKSUM_SHA256, (const guchar *)data, 2 * MiB);
        g_autofree char *blob = store_blob(img);
        g_assert_true(g_file_set_contents(blob, data, 2 * MiB, &error));
        g_assert_cmpint(g_chmod(blob, 0444), ==, 0);
        MsImageManifest man = { .name = (char *)img->name, .sha256 = img->sha256, .size = 2 * MiB,
                                .block_size = 4096, .files = 1 };
        g_autofree char *json = ms_image_manifest_to_json(&man);
        g_autofree char *file = g_strdup_printf("%s/%s.json", names, img->name);
        g_assert_true(g_file_set_contents(file, json, -1, &error));
    }
    g_setenv("MEMSHARE_IMAGE_STORE", store, TRUE);
}

static void
rm_rf(const char *path)
{
    g_autoptr(GDir) d = g_dir_open(path, 0, NULL);
    const char *e;
    while (d && (e = g_dir_read_name(d)) != NULL) {
        g_autofree char *p = g_build_filename(path, e, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_DIR) && !g_file_test(p, G_FILE_TEST_IS_SYMLINK))
            rm_rf(p);
        else
            g_unlink(p);
    }
    g_rmdir(path);
}

typedef struct {
    char *runtime_dir;
    MsPolicy *policy;
    MsAgentEnv env;
} Fixture;

static void
fixture_setup(Fixture *f, const ReplayCase *rc)
{
    g_autoptr(GError) error = NULL;
    f->runtime_dir = g_dir_make_tmp("ms-images-replay-run-XXXXXX", &error);
    g_assert_no_error(error);
    /* q35: the module looks for PCIe root ports with query-pci; dax
     * needs memory-hotplug slots, which the policy checks in the XML */
    g_autofree char *xml = g_strdup_printf(
        "<domain type='qemu'><name>replay</name><uuid>" UUID "</uuid>"
        "<maxMemory slots='2' unit='MiB'>1024</maxMemory><memory unit='KiB'>262144</memory>"
        "<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>"
        "<metadata><memshare:policy xmlns:memshare='https://memshare.dev/xmlns/policy/1.0'>"
        "<memshare:shared-image name='usr' mode='%s'/><memshare:shared-image name='usr2' mode='%s'/>"
        "</memshare:policy></metadata></domain>", rc->modes[0], rc->modes[1]);
    gboolean parsed = ms_policy_parse_domain_xml(xml, -1, MS_POLICY_CHECK_NONE, NULL, &f->policy, NULL, &error);
    g_assert_no_error(error);
    g_assert_true(parsed);
    f->env = (MsAgentEnv){
        .uuid = UUID,
        .name = "replay",
        .policy = f->policy,
        .runtime_dir = f->runtime_dir,
    };
}

static void
fixture_teardown(Fixture *f)
{
    rm_rf(f->runtime_dir);
    ms_policy_free(f->policy);
    g_free(f->runtime_dir);
}

static char *
status_string(GKeyFile *status, const char *image, const char *suffix)
{
    g_autofree char *key = g_strconcat(image, suffix, NULL);
    return g_key_file_get_string(status, MS_STATUS_IMAGES, key, NULL);
}

static void
test_replay(gconstpointer data)
{
    const ReplayCase *rc = data;
    if (geteuid() != 0) {
        g_test_skip("the module takes only blobs owned by root");
        return;
    }
    Fixture f = { 0 };
    fixture_setup(&f, rc);
    g_autoptr(GPtrArray) script = ms_fake_qmp_load(rc->transcript);
    ms_fake_qmp_substitute(script, "@STORE@", store);
    MsFakeQmp *fake = ms_fake_qmp_start(script, FALSE);
    MsQmpClient *client = ms_fake_qmp_connect(fake);
    f.env.qmp = client;

    g_autoptr(GError) error = NULL;
    g_assert_cmpuint(ms_images_module.period_ms(&f.env), >, 0);
    gpointer self = ms_images_module.create(&f.env, &error);
    g_assert_no_error(error);
    g_autoptr(GKeyFile) status = g_key_file_new();
    /* the agent's sharing module writes the domain's group before images
     * ticks; group host maps the store's blobs/ itself, which the
     * transcripts were recorded with (per-group copies: test-image-store) */
    g_key_file_set_string(status, MS_STATUS_SHARING, MS_STATUS_SHARING_GROUP, "host");
    g_ptr_array_set_size(warnings, 0);
    for (guint t = 0; t < rc->ticks; t++) {
        g_clear_error(&error);
        gboolean ok = ms_images_module.tick(self, &f.env, status, &error);
        if (ok != rc->ok) {
            /* most likely the module sent what the transcript does not
             * have: the monitor says what */
            ms_qmp_client_free(client);
            g_autofree char *why = ms_fake_qmp_finish_failure(fake);
            g_error("%s: period %u returned %s (%s); the monitor: %s", rc->transcript, t + 1,
                    ok ? "TRUE" : "FALSE", error ? error->message : "no error", why ? why : "no complaint");
        }
        if (!ok)
            g_assert_error(error, MS_ERROR, MS_ERROR_FAILED);
    }
    g_assert_cmpuint(ms_fake_qmp_commands_left(fake), ==, 0);
    /* each failure is logged once, naming the image and QEMU's reason */
    guint nwarn = 0;
    while (nwarn < G_N_ELEMENTS(rc->warnings) && rc->warnings[nwarn])
        nwarn++;
    g_assert_cmpuint(warnings->len, ==, nwarn);
    for (guint w = 0; w < nwarn; w++)
        if (!g_pattern_match_simple(rc->warnings[w], g_ptr_array_index(warnings, w)))
            g_error("warning '%s' does not match '%s'", (char *)g_ptr_array_index(warnings, w),
                    rc->warnings[w]);

    guint attached = 0;
    GString *runtime = g_string_new(NULL);
    GString *names = g_string_new(NULL);
    for (guint i = 0; i < G_N_ELEMENTS(store_images); i++) {
        const StoreImage *img = &store_images[i];
        g_autofree char *state = status_string(status, img->name, MS_STATUS_IMAGE_STATE);
        g_autofree char *err = status_string(status, img->name, MS_STATUS_IMAGE_ERROR);
        g_autofree char *mode = status_string(status, img->name, MS_STATUS_IMAGE_MODE);
        g_assert_cmpstr(mode, ==, rc->modes[i]);
        if (rc->errors[i]) {
            g_assert_cmpstr(state, ==, "failed");
            g_assert_nonnull(err);
            if (strstr(err, rc->errors[i]) == NULL)
                g_error("%s: status error '%s' lacks '%s'", img->name, err, rc->errors[i]);
            continue;
        }
        g_assert_cmpstr(state, ==, "attached");
        g_assert_null(err);
        /* the digest the guest maps, and its blob is still the one verified */
        g_autofree char *sha = status_string(status, img->name, MS_STATUS_IMAGE_SHA256);
        g_autofree char *blob = status_string(status, img->name, MS_STATUS_IMAGE_BLOB);
        g_assert_cmpstr(sha, ==, img->sha256);
        g_assert_cmpstr(blob, ==, "ok");
        attached++;
        g_string_append_printf(runtime, "%s %s %s host\n", img->name, img->sha256, rc->modes[i]);  /* NAME SHA MODE GROUP */
        g_string_append_printf(names, "%s%s", names->len ? "," : "", img->name);
    }
    g_assert_cmpuint(g_key_file_get_uint64(status, MS_STATUS_IMAGES, MS_STATUS_IMAGES_COUNT, NULL), ==, 2);
    g_assert_cmpuint(g_key_file_get_uint64(status, MS_STATUS_IMAGES, MS_STATUS_IMAGES_ATTACHED, NULL), ==,
                     attached);
    g_assert_cmpuint(g_key_file_get_uint64(status, MS_STATUS_IMAGES, MS_STATUS_IMAGES_BYTES, NULL), ==,
                     attached * 2 * MiB);
    g_autofree char *got_names = g_key_file_get_string(status, MS_STATUS_IMAGES, MS_STATUS_IMAGES_NAMES, NULL);
    g_assert_cmpstr(got_names, ==, names->str);
    /* what `memsharectl image remove` reads to refuse removing an image
     * in use: written when something was attached, absent otherwise */
    g_autofree char *rpath = g_build_filename(f.runtime_dir, "images", NULL);
    g_autofree char *rtext = NULL;
    if (attached > 0) {
        g_assert_true(g_file_get_contents(rpath, &rtext, NULL, NULL));
        g_assert_cmpstr(rtext, ==, runtime->str);
    } else {
        g_assert_false(g_file_test(rpath, G_FILE_TEST_EXISTS));
    }
    g_string_free(runtime, TRUE);
    g_string_free(names, TRUE);

    ms_images_module.free(self);
    ms_qmp_client_free(client);
    ms_fake_qmp_finish(fake);
    fixture_teardown(&f);
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_setenv("MEMSHARE_CONFIG", "/nonexistent/memshare.conf", TRUE);
    warnings = g_ptr_array_new_with_free_func(g_free);
    g_log_set_writer_func(log_writer, NULL, NULL);
    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *p = g_strdup_printf("/images/replay/%s", cases[i].transcript);
        g_test_add_data_func(p, &cases[i], test_replay);
    }
    if (geteuid() == 0)
        store_setup();
    int r = g_test_run();
    if (store_dir)
        rm_rf(store_dir);
    g_free(store_dir);
    g_free(store);
    for (gsize i = 0; i < G_N_ELEMENTS(store_images); i++)
        g_free(store_images[i].sha256);
    g_ptr_array_unref(warnings);
    return r;
}
