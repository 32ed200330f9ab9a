# tools/demo-lib.sh: what tools/demo.sh and tools/demo-debian.sh do before
# their own part (sourced, under set -euo pipefail): from the repository's
# root ($root), the dependencies installed, the build directory
# ($builddir, build-demo) set up, --keep read into $keep, and the shared
# preamble of the libvirt tests (tests/lib/libvirt-test.sh) sourced with
# the hook and agent of that build.
cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
keep=0; [ "${1:-}" = "--keep" ] && keep=1
bash tools/install-deps.sh
builddir=build-demo
[ -d "$builddir" ] || meson setup "$builddir" >/dev/null
source tests/lib/libvirt-test.sh
export MS_HOOK=$root/$builddir/hooks/memshare-hook MS_AGENT=$root/$builddir/qmp-plugin/memshare-agent
