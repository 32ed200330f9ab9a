/* tools/ctl-image.c: memsharectl image (placeholder until its owner lands it). */
#include "ctl.h"
int ms_ctl_image(int argc, char **argv)
{
    (void)argc; (void)argv;
    g_printerr("memsharectl: 'image' is not available in this build\n");
    return MS_CTL_EXIT_FAILURE;
}
