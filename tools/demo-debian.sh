#!/bin/bash
# tools/demo-debian.sh: the second demo, with real Debian 12 guests, on a
# fresh Debian 12 machine as root. Installs what it needs, builds memshare
# and the Debian 12 test guest (tests/guest/debian/build-debian.sh: systemd,
# python3, jq; its /usr is not on its root disk), starts a private libvirtd
# (isolated in its own mount namespace: the host's libvirt is not touched)
# with the memshare hook installed, builds the guests' /usr as a shared image
# with `memsharectl image build --usr`, and boots three TCG guests, each on
# its own copy-on-write root disk, whose XML carries a memshare policy
# (/usr attached with DAX, used-page tracking, KSM balloon rebalancing) with
# `virsh start`. It shows what each guest sees (/usr mounted dax=always,
# python3 and jq running from it), `memsharectl domstats`, and the host side:
# the /usr image is in the host's page cache once, mapped by all three
# QEMUs. Everything is torn down at the end. About 2-3 minutes on 2 cores
# once the guest is built (building it first: 3-6 minutes more).
#   usage: bash tools/demo-debian.sh [--keep]   (--keep: leave it running, Ctrl-C ends)
set -euo pipefail
source "$(dirname "$0")/demo-lib.sh"
echo "== building memshare and the Debian 12 guest (cached in $builddir/tests/guest/debian;" \
     "the first time debootstraps from Debian's archive: 3-6 minutes)"
export MS_DEBIAN_DIR=$root/$builddir/tests/guest/debian
mkdir -p "$MS_DEBIAN_DIR"
if ! ninja -C "$builddir" all tests/guest/debian/stamp > "$builddir/demo-debian-build.log" 2>&1; then
    tail -20 "$builddir/demo-debian-build.log" >&2
    echo "demo-debian: the build failed ($builddir/demo-debian-build.log)" >&2
    exit 1
fi
grep -a 'build-debian: .*([0-9]* s)$' "$builddir/demo-debian-build.log" | sed 's/^/   /' || true

# the preamble of the libvirt tests (tests/lib/libvirt-test.sh, sourced by
# demo-lib.sh); on disk, not in /tmp (often tmpfs): the guests' overlays
# grow as they boot; the three guests are one tenant's, so they may share
# the image and KSM pages (docs/security.md: the default, one group per
# domain, would refuse the second guest)
source tests/guest/debian/lib-debian.sh
LVT_TMP=/var/tmp lvt_setup memshare-demo-debian "$LVT_CONF_ONE_TENANT"
lvt_start
ctl() { vmenv_exec env MEMSHARE_RUNTIME_DIR=/run/memshare "$root/$builddir/tools/memsharectl" "$@"; }

image=debian12-usr
echo "== the shared image: the guest's /usr, built with memsharectl image build --usr"
ctl image build --usr --from "$MS_DEBIAN_DIR/usr" --name "$image" | sed 's/^/   /'
sha=$(sed -n 's/.*"sha256" *: *"\([0-9a-f]*\)".*/\1/p' "$dir/lib-memshare/images/names/$image.json")
blob=$dir/lib-memshare/images/blobs/sha256-$sha.img
# the guests have not read it yet: drop what building it left in the page
# cache (written back first: dirty pages are not dropped), so the figure at
# the end is what the agents (each reads the whole blob to verify its sha256
# before attaching it) and the guests brought in
sync "$blob"
dd if="$blob" iflag=nocache count=0 status=none 2>/dev/null || true
echo "   in the host's page cache now: $(fincore -b -n -o RES "$blob" | tr -d ' ') bytes"
echo "   blob: /var/lib/memshare/images/blobs/sha256-$sha.img ($(($(stat -c %s "$blob") >> 20)) MiB)"

POLICY=$(debian_policy "$image" dax \
    "<memshare:tracking used-pages='on' period='5s'/><memshare:balloon mode='ksm-share' division='equal' period='5s'/>")
echo "== the policy every guest carries in its <metadata>:"
sed 's/></>\n  </g; s/\n  <\/memshare:policy/\n<\/memshare:policy/' <<< "$POLICY" | sed 's/^/   /'

# <memory> 1 GiB is the balloon's ceiling, <currentMemory> 768 MiB its base;
# each guest boots its own qcow2 overlay over the one raw root disk
names=(deb1 deb2 deb3)
for i in 0 1 2; do
    n=${names[$i]}
    qemu-img create -q -f qcow2 -b "$MS_DEBIAN_DIR/root-dax.img" -F raw "$dir/$n.qcow2"
    debian_domain_xml "$n" "$(printf '3e9a1c5d-7b2f-4c8e-a0d1-%012d' $((i + 1)))" 1024 768 \
        "$dir/$n.serial" "$dir/$n.qcow2" initrd.img "$POLICY" > "$dir/$n.xml"
    V define "$dir/$n.xml" >/dev/null
    t0=$(date +%s%N)
    V start "$n" >/dev/null
    echo "== virsh start $n: $(( ($(date +%s%N) - t0) / 1000000 )) ms"
done

echo "== waiting for the guests to boot systemd to multi-user (TCG, 3 at once: 2-6 minutes)"
serial() { tr -d '\r' < "$dir/$1.serial" 2>/dev/null || true; }
# not grep -q: under pipefail, tr killed by SIGPIPE would fail the pipeline
has() { serial "$1" | grep -E "$2" > /dev/null; }
t0=$(date +%s)
for n in "${names[@]}"; do
    for _ in $(seq 1800); do has "$n" '^MS-DEBIAN-DONE' && break; sleep 0.5; done
    if ! has "$n" '^MS-DEBIAN-DONE'; then
        echo "   $n: no MS-DEBIAN-DONE after 15 minutes; its last console lines:"
        serial "$n" | tail -15 | sed 's/^/     /'
        continue
    fi
    echo "   $n: ready after $(($(date +%s) - t0)) s"
done
for n in "${names[@]}"; do
    echo "== $n: what the guest printed (tests/guest/debian/report.sh on its console)"
    serial "$n" | grep -E '^MS-(DEBIAN-READY|USR |USR-WRITE|PYTHON|JQ|USR-CACHE)' | sed 's/^/   /' || true
done
sleep 6   # one more tracking period once the guests are up

echo
echo "== memsharectl domstats --images --used"
ctl domstats --images --used | sed 's/^/   /'
echo "== memsharectl domstats --balloon deb1"
ctl domstats --balloon deb1 | grep -E 'mode|base|ceiling|target|actual|share|peers|reason' | sed 's/^/   /' || true
echo "   (ksm-share hands out what KSM saves host-wide; host KSM: run=$(cat /sys/kernel/mm/ksm/run)," \
     "pages_sharing=$(cat /sys/kernel/mm/ksm/pages_sharing); this demo leaves KSM as it found it)"

echo
echo "== host: one copy of /usr in host memory for three guests"
fincore -b -o RES,PAGES,SIZE,FILE "$blob" | sed "s|$dir/lib-memshare|/var/lib/memshare|; s/^/   /"
# the blob is a MAP_SHARED file mapping in each QEMU (memory-backend-file,
# share=on): its pages are counted once, each QEMU's PSS has a third of them
total_pss=0 blob_rss=0
for n in "${names[@]}"; do
    pid=$(cat "$dir/run-libvirt/qemu/$n.pid")
    pss=$(awk '/^Pss:/ { print $2 }' "/proc/$pid/smaps_rollup")
    # by the blob's name: the path smaps shows depends on the mount namespace
    read -r brss bpss < <(awk -v f="sha256-$sha.img" '
        /^[0-9a-f]+-[0-9a-f]+ / { m = (index($0, f) > 0) }
        m && /^Rss:/ { r += $2 } m && /^Pss:/ { p += $2 }
        END { print r + 0, p + 0 }' "/proc/$pid/smaps")
    total_pss=$((total_pss + pss)) blob_rss=$((blob_rss + brss))
    printf '   %s: QEMU pid %s  PSS %5d MiB  (of it the /usr blob: RSS %4d MiB, PSS %4d MiB)\n' \
        "$n" "$pid" $((pss >> 10)) $((brss >> 10)) $((bpss >> 10))
done
echo "   the three QEMUs together: PSS $((total_pss >> 10)) MiB, the blob's pages counted once;"
echo "   the guests map $((blob_rss >> 10)) MiB of /usr in all (their RSS summed); the host holds those pages"
echo "   once, in its page cache (fincore above: all of the blob, which each agent read to verify its"
echo "   sha256 before attaching it); without the shared image each guest would read its own copy"
echo "   of /usr into its own RAM"

if [ $keep = 1 ]; then
    echo "== running; enter with: nsenter -t $VMENV_PID -m virsh list   (Ctrl-C to end)"
    sleep infinity
fi
echo "== tearing down"
