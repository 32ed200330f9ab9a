#!/bin/bash
# tests/image/test-image-update.sh: a security update of a /usr image, with
# the store logic only (the running domains are their agents' runtime files
# and pid files, as the agent writes them): a rebuild under the same name
# points the manifest to the new digest and keeps the old blob while a
# running domain lists it; `image list` shows the older digest in use and
# by whom; `image gc` keeps it and says why, and removes it once no domain
# maps it (restarted on the new build, or stopped: its agent.pid is stale).
# `image verify` notes a domain on an older build, and reports the blob a
# domain maps that changed or vanished under it, with the image, the domain
# and both digests (exit 3). `--help` of every image subcommand.
#   usage: test-image-update.sh MEMSHARECTL
set -uo pipefail
ctl=$1
source "$(dirname "$0")/../lib/tap.sh"
tmp=$(mktemp -d)
live=
cleanup() { [ -n "$live" ] && kill "$live" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
export MEMSHARE_IMAGE_STORE=$tmp/store MEMSHARE_RUNTIME_DIR=$tmp/run MEMSHARE_CONFIG=$tmp/none.conf
unset SOURCE_DATE_EPOCH
sleep 3600 & live=$!   # stands for a running agent
D1=11111111-2222-4333-8444-555555555501
D2=11111111-2222-4333-8444-555555555502
domain() {   # domain UUID NAME PID "IMAGE SHA MODE"...: what a running agent leaves in RUNTIME_DIR
    local d=$MEMSHARE_RUNTIME_DIR/domains/$1
    mkdir -p "$d"
    printf '[agent]\ndomain=%s\n' "$2" > "$d/status"
    echo "$3" > "$d/agent.pid"
    printf '%s\n' "${@:4}" > "$d/images"
}
sha_of() { sed -n 's/.*"sha256" : "\([0-9a-f]*\)".*/\1/p' "$MEMSHARE_IMAGE_STORE/names/$1.json"; }
blob() { echo "$MEMSHARE_IMAGE_STORE/blobs/sha256-$1.img"; }

mkdir -p "$tmp/usr/bin" "$tmp/usr/lib"
printf 'openssl 3.0.11\n' > "$tmp/usr/lib/libssl.so.3"
printf '#!/bin/sh\n' > "$tmp/usr/bin/sh"
"$ctl" image build --usr --from "$tmp/usr" --name usr-bookworm > /dev/null 2>&1 || bail "first build"
old=$(sha_of usr-bookworm)
domain $D1 web1 $live "usr-bookworm $old dax"
domain $D2 web2 $live "usr-bookworm $old dax"

# the security update: same name, new content
printf 'openssl 3.0.13\n' > "$tmp/usr/lib/libssl.so.3"
out=$("$ctl" image build --usr --from "$tmp/usr" --name usr-bookworm 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
new=$(sha_of usr-bookworm)
check "rebuild exits 0" test "$rc" = 0
check "the manifest points to the new digest" test -n "$new" -a "$new" != "$old"
check "the new blob is stored" test -f "$(blob "$new")"
check "the old blob is kept: running domains map it" test -f "$(blob "$old")"

out=$("$ctl" image list 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "list: exit 0" test "$rc" = 0
check "list: the name with its current digest" grep -Eq "^usr-bookworm .* ${new:0:12} " <<< "$out"
check "list: the older digest in use by web1" grep -q "^  older ${old:0:12} in use by domain 'web1' (dax, group host) until it restarts" <<< "$out"
check "list: and by web2" grep -q "^  older ${old:0:12} in use by domain 'web2'" <<< "$out"

out=$("$ctl" image gc 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "gc while in use: exit 0, nothing removed" bash -c "test $rc = 0 && grep -q '^0 unreferenced blob(s) removed' <<< \"\$1\"" _ "$out"
check "gc says which blob it keeps for which domains" \
    grep -q "sha256-$old.img: kept, in use by domain 'web1' (image 'usr-bookworm'), domain 'web2' (image 'usr-bookworm') until it stops" <<< "$out"
check "gc kept the old blob" test -f "$(blob "$old")"
"$ctl" image remove usr-bookworm > /dev/null 2>&1
check "remove while domains run: refused (exit 1)" test $? = 1

out=$("$ctl" image verify usr-bookworm 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "verify with domains on the older build: exit 0" test "$rc" = 0
check "verify notes web1 on the older build, and what it gets at restart" \
    grep -q "^usr-bookworm: domain 'web1' still maps the older build sha256 $old (OK); the name now points to $new" <<< "$out"

# web1 restarts: its new agent attached the new build
domain $D1 web1 $live "usr-bookworm $new dax"
"$ctl" image gc > "$tmp/gc" 2>&1
check "gc with web2 still on the old build keeps it" test -f "$(blob "$old")"
# web2 stops: its agent is gone, the pid file is stale
sleep 0 & dead=$!; wait $dead
domain $D2 web2 $dead "usr-bookworm $old dax"
out=$("$ctl" image gc 2>&1)
echo "$out" | sed 's/^/# /'
check "gc once nothing maps it: 1 removed" grep -q "^1 unreferenced blob(s) removed" <<< "$out"
check "the old blob is gone" test ! -e "$(blob "$old")"
check "the new blob stays" test -f "$(blob "$new")"
check "list: no older digest any more" bash -c "! '$ctl' image list | grep -q older"

# a blob that changed under a running domain
printf 'openssl 3.0.14\n' > "$tmp/usr/lib/libssl.so.3"
"$ctl" image build --usr --from "$tmp/usr" --name usr-bookworm > /dev/null 2>&1 || bail "third build"
third=$(sha_of usr-bookworm)
# web1 still maps $new; someone renames another image over that blob
cp "$(blob "$third")" "$tmp/intruder"
mv -f "$tmp/intruder" "$(blob "$new")"
out=$("$ctl" image verify usr-bookworm 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "verify: a changed blob under a running domain: exit 3" test "$rc" = 3
check "verify names the image, the domain and both digests" \
    grep -q "image 'usr-bookworm': domain 'web1' maps sha256 $new, but .*sha256-$new.img now has sha256 $third: the blob changed under its name" <<< "$out"
check "verify: the current build itself is fine" grep -q "^usr-bookworm: OK" <<< "$out"
rm -f "$(blob "$new")"
out=$("$ctl" image verify usr-bookworm 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "verify: a vanished blob under a running domain: exit 3" test "$rc" = 3
check "verify: says it is gone and that the guest keeps its mapping" \
    grep -q "image 'usr-bookworm': domain 'web1' maps sha256 $new, but .*sha256-$new.img is gone (removed or renamed behind the store's back): the guest keeps its mapping" <<< "$out"

# --help on every image subcommand: help on stdout, exit 0
for sub in build list info verify remove gc; do
    out=$("$ctl" image $sub --help 2>/dev/null); rc=$?
    check "image $sub --help: exit 0, usage and a description on stdout" \
        bash -c "test $rc = 0 && grep -q '^  memsharectl image $sub ' <<< \"\$1\" && test \$(wc -l <<< \"\$1\") -ge 6" _ "$out"
done
out=$("$ctl" image build --bogus --from-disk /nonexistent --help 2>/dev/null); rc=$?
check "image build --bogus ... --help: help wins (exit 0)" bash -c "test $rc = 0 && grep -q '^  memsharectl image build ' <<< \"\$1\"" _ "$out"
out=$("$ctl" image verify nosuch -h 2>/dev/null); rc=$?
check "image verify nosuch -h: help, exit 0" bash -c "test $rc = 0 && grep -q '^  memsharectl image verify ' <<< \"\$1\"" _ "$out"
out=$("$ctl" help image gc 2>/dev/null); rc=$?
check "memsharectl help image gc: the same help" bash -c "test $rc = 0 && grep -q '^  memsharectl image gc ' <<< \"\$1\"" _ "$out"
"$ctl" image verify -- --help >/dev/null 2>&1
check "image verify -- --help: an image named --help, not help (exit 3)" test $? = 3
out=$("$ctl" image build --help 2>/dev/null)
check "image build --help mentions --from-disk and --usr" bash -c "grep -q -- '--from-disk' <<< \"\$1\" && grep -q -- '--usr' <<< \"\$1\"" _ "$out"

done_testing
