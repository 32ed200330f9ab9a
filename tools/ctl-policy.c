/* tools/ctl-policy.c: memsharectl policy (placeholder until its owner lands it). */
#include "ctl.h"
int ms_ctl_policy(int argc, char **argv)
{
    (void)argc; (void)argv;
    g_printerr("memsharectl: 'policy' is not available in this build\n");
    return MS_CTL_EXIT_FAILURE;
}
