# demo: what tools/demo.sh shows: mounts the shared image the agent
# hot-plugs (mount-shared), runs a program from it, then fills ms.fill MiB
# with identical pages (ksm-fill) so that KSM has something to merge.
. /scenarios/mount-shared.sh
. /scenarios/ksm-fill.sh
