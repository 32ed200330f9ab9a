/* tools/ctl-image.c: memsharectl image (placeholder until its owner lands it). */
#include "ctl.h"
#include <string.h>
int ms_ctl_image(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "advise") == 0)
        return ms_ctl_image_advise(argc - 1, argv + 1);
    g_printerr("memsharectl: 'image' is not available in this build\n");
    return MS_CTL_EXIT_FAILURE;
}
