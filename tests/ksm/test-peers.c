/* tests/ksm/test-peers.c: qmp-plugin/ms-peers against a temporary runtime
 * directory with live, dead and malformed peers. */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <glib/gstdio.h>
#include "ms-peers.h"

static void
put(const char *root, const char *uuid, const char *file, const char *text)
{
    g_autofree char *dir = g_build_filename(root, "domains", uuid, NULL);
    g_assert_cmpint(g_mkdir_with_parents(dir, 0755), ==, 0);
    g_autofree char *p = g_build_filename(dir, file, NULL);
    g_assert_true(g_file_set_contents(p, text, -1, NULL));
}

static void
test_peers(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *root = g_dir_make_tmp("ms-peers-XXXXXX", &error);
    g_assert_no_error(error);
    const char *u1 = "00000000-0000-4000-8000-000000000001";
    const char *u2 = "00000000-0000-4000-8000-000000000002";
    const char *u3 = "00000000-0000-4000-8000-000000000003";
    const char *u4 = "00000000-0000-4000-8000-000000000004";
    g_autofree char *me = g_strdup_printf("%d\n", (int)getpid());
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0);
    g_autofree char *dead = g_strdup_printf("%d\n", (int)child);

    MsAllocDomain d = { .weight = 1, .base = 100, .floor = 50, .ceiling = 200 };
    MsAllocMode mode;
    const char *uuids[] = { u2, u1, u3 };
    for (guint i = 0; i < 3; i++) {
        g_strlcpy(d.uuid, uuids[i], sizeof d.uuid);
        g_autofree char *t = ms_alloc_input_to_keyfile(&d, i == 0 ? MS_ALLOC_EQUAL : MS_ALLOC_WEIGHTED);
        put(root, uuids[i], "inputs", t);
    }
    put(root, u1, "agent.pid", me);
    put(root, u2, "agent.pid", me);
    put(root, u3, "agent.pid", dead);               /* stale: ignored */
    put(root, u4, "agent.pid", me);
    put(root, u4, "inputs", "uuid=garbage\n");       /* malformed: ignored */

    g_autoptr(GArray) a = ms_peers_read_inputs(root, &mode, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(a->len, ==, 2);
    g_assert_cmpstr(g_array_index(a, MsAllocDomain, 0).uuid, ==, u1);
    g_assert_cmpstr(g_array_index(a, MsAllocDomain, 1).uuid, ==, u2);
    /* one equal, one weighted: the tie goes to equal */
    g_assert_cmpint(mode, ==, MS_ALLOC_EQUAL);

    g_autofree char *none = g_build_filename(root, "nothing-here", NULL);
    g_autoptr(GArray) b = ms_peers_read_inputs(none, &mode, &error);
    g_assert_no_error(error);
    g_assert_cmpuint(b->len, ==, 0);

    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", root);
    g_assert_true(g_spawn_command_line_sync(cmd, NULL, NULL, NULL, NULL));
}

int
main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/peers/read", test_peers);
    return g_test_run();
}
