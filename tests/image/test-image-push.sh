#!/bin/bash
# tests/image/test-image-push.sh: memsharectl image push and receive between
# two stores on this host. --rsh points at a wrapper that drops HOST and
# the remote command's name and runs this build's memsharectl with the
# second store (as ssh would run the destination's); other wrappers damage
# the stream on its way (a flipped byte, a cut, a byte more). Checks: the
# copy, its digest and verify on the destination, a second push sending
# nothing, damaged streams refused with both digests and nothing left in
# the destination (no temp file, no name), a name clash refused (and
# --force), DOMAIN (its policy's images, through libvirt's test:/// driver),
# hostile operands and sizes refused by receive before it reads. Then
# fetch (C takes from A, which runs `image send`): the copy, nothing
# fetched twice, a digest the source lacks, a damaged stream, a name C
# maps to another digest (never replaced), a source that hangs (--timeout).
#   usage: test-image-push.sh MEMSHARECTL
set -uo pipefail
ctl=$1
source "$(dirname "$0")/../lib/tap.sh"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export MEMSHARE_RUNTIME_DIR=$tmp/run
export MEMSHARE_CONFIG=$tmp/none.conf
unset SOURCE_DATE_EPOCH
A=$tmp/a B=$tmp/b
a() { MEMSHARE_IMAGE_STORE=$A "$ctl" "$@"; }
b() { MEMSHARE_IMAGE_STORE=$B "$ctl" "$@"; }
bverify() { b image verify "$1" >/dev/null; }

# The stream filter: passes stdin on a chunk at a time (the handshake
# needs the manifest through before the blob follows), damaging it as told.
cat > "$tmp/filter.py" <<'PY'
import os, sys, time
mode, at = sys.argv[1], int(sys.argv[2])
pos, out = 0, True
while True:
    b = os.read(0, 65536)
    if not b:
        break
    n = len(b)
    # stall: hold the stream past byte AT until the file argv[3] exists
    while mode == "stall" and pos + n > at and not os.path.exists(sys.argv[3]):
        time.sleep(0.1)
    if mode == "flip" and pos <= at < pos + n:
        b = bytearray(b); b[at - pos] ^= 1; b = bytes(b)
    if mode == "cut":
        b = b[:max(0, at - pos)]
    if out and b:
        os.write(1, b)
    pos += n
    if mode == "cut" and out and pos >= at:
        os.close(1); out = False
if mode == "extra":
    os.write(1, b"X")
PY
# rsh FILE STORE [FILTER ARGS]: an --rsh whose far end is this build's
# memsharectl on STORE (HOST and "memsharectl" dropped, as ssh would run
# the other host's). The filter damages what the far end reads (B: push's
# receiving end) or what it writes (A: fetch's sending end). exec, never a
# pipeline: bash waiting for a pipeline would hold the stream open, and the
# receiving end reads to its EOF.
rsh() {
    local f=$1 store=$2; shift 2
    local far; far=$(printf 'MEMSHARE_IMAGE_STORE=%q exec %q "$@"' "$store" "$ctl")
    if [ $# -eq 0 ]; then
        printf '#!/bin/bash\nshift 2\n%s\n' "$far" > "$f"
    elif [ "$store" = "$B" ]; then
        printf '#!/bin/bash\nshift 2\n%s < <(exec python3 %q %s)\n' "$far" "$tmp/filter.py" "$*" > "$f"
    else
        printf '#!/bin/bash\nshift 2\nexec python3 %q %s < <(%s)\n' "$tmp/filter.py" "$*" "$far" > "$f"
    fi
    chmod +x "$f"
}
wrapper() { rsh "$1" "$B" "${@:2}"; }
wrapper "$tmp/rsh"
wrapper "$tmp/rsh-flip" flip 200000
wrapper "$tmp/rsh-cut" cut 300000
wrapper "$tmp/rsh-extra" extra 0
wrapper "$tmp/rsh-stall" stall 1000000 "$tmp/go"
# nothing of a transfer left in B: no temp file, no name for the image
clean_b() { ! ls -A "$B/blobs" 2>/dev/null | grep -q '^\.tmp-' && [ ! -e "$B/names/$1.json" ]; }

mkdir -p "$tmp/tree/bin" "$tmp/tree2/bin"
head -c 400000 /dev/urandom > "$tmp/tree/bin/data"
head -c 400000 /dev/urandom > "$tmp/tree2/bin/data"
a image build --from "$tmp/tree" --name base >/dev/null || bail "image build failed"
a image build --from "$tmp/tree2" --name other >/dev/null || bail "image build failed"
sha=$(a image info base | sed -n 's/.*"sha256" : "\([0-9a-f]*\)".*/\1/p')
sha2=$(a image info other | sed -n 's/.*"sha256" : "\([0-9a-f]*\)".*/\1/p')
size=$(stat -c %s "$A/blobs/sha256-$sha.img")
check "two images in the source store" test ${#sha} = 64 -a ${#sha2} = 64 -a "$sha" != "$sha2"

# --- a push copies
out=$(a image push --rsh "$tmp/rsh" base qemu+ssh://root@hostb/system 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "push exits 0" test "$rc" = 0
check "push says what it sent, the digest and the host" \
    grep -q "image 'base' sha256 $sha: $size bytes sent to root@hostb, verified there" <<< "$out"
check "the destination has the blob under the same digest" \
    test "$(sha256sum < "$B/blobs/sha256-$sha.img" | cut -d' ' -f1)" = "$sha"
check "the destination's blob is mode 0444" test "$(stat -c %a "$B/blobs/sha256-$sha.img")" = 444
check "the destination's image verify passes" bverify base
check "the manifest is the source's" cmp -s "$A/names/base.json" "$B/names/base.json"

# --- a second push sends nothing
out=$(a image push --rsh "$tmp/rsh" base hostb 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "second push exits 0" test "$rc" = 0
check "second push says nothing was sent" grep -q "image 'base' sha256 $sha: hostb has it already, nothing sent" <<< "$out"

# --- damaged streams: refused, both digests named, nothing kept
out=$(a image push --rsh "$tmp/rsh-flip" other hostb 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "a flipped byte: push fails" test "$rc" != 0
check "a flipped byte: receive names the digest it got and the one announced" \
    bash -c "grep -q 'have sha256 [0-9a-f]\{64\}, the sender announced sha256 $sha2' <<< \"\$1\" && ! grep -q 'have sha256 $sha2,' <<< \"\$1\"" _ "$out"
check "a flipped byte: push names image, digest and host" grep -q "image 'other' sha256 $sha2 to hostb: " <<< "$out"
check "a flipped byte: nothing left in the destination" clean_b other
check "a flipped byte: no blob of that digest" test ! -e "$B/blobs/sha256-$sha2.img"

out=$(a image push --rsh "$tmp/rsh-cut" other hostb 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "a cut stream: push fails" test "$rc" != 0
check "a cut stream: receive says it ended early" grep -q "sha256 $sha2: the stream ended after .* of $size bytes" <<< "$out"
check "a cut stream: push names image, digest and host" grep -q "image 'other' sha256 $sha2 to hostb: " <<< "$out"
check "a cut stream: nothing left in the destination" clean_b other

out=$(a image push --rsh "$tmp/rsh-extra" other hostb 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "a byte more: push fails" test "$rc" != 0
check "a byte more: receive says so" grep -q "sha256 $sha2: the stream holds more than the $size bytes announced" <<< "$out"
check "a byte more: nothing left in the destination" clean_b other
check "the destination still verifies base" bverify base

# --- a name that maps to another digest
b image build --from "$tmp/tree2" --name clash >/dev/null || bail "image build failed"
a image build --from "$tmp/tree" --name clash >/dev/null || bail "image build failed"
digest() { sed -n 's/.*"sha256" : "\([0-9a-f]*\)".*/\1/p' "$1/names/$2.json"; }
csha_a=$(digest "$A" clash) csha_b=$(digest "$B" clash)
check "the two stores' images 'clash' differ" test ${#csha_a} = 64 -a ${#csha_b} = 64 -a "$csha_a" != "$csha_b"
out=$(a image push --rsh "$tmp/rsh" clash hostb 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "a name clash: push fails" test "$rc" != 0
check "a name clash: both digests named" grep -q "image 'clash' is sha256 $csha_b in $B, the one sent is sha256 $csha_a" <<< "$out"
check "a name clash: push names image, digest and host" grep -q "image 'clash' sha256 $csha_a to hostb: " <<< "$out"
check "a name clash: the destination's name is unchanged" test "$(digest "$B" clash)" = "$csha_b"
out=$(a image push --rsh "$tmp/rsh" --force clash hostb 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "--force replaces it" test "$rc" = 0 -a "$(digest "$B" clash)" = "$csha_a"
check "the replaced image verifies" bverify clash

# --- the store is not locked while the bytes arrive: a push held midway
# does not block gc or a build on the destination, and gc leaves its temp
# file alone (its writer holds it)
b image remove other >/dev/null 2>&1
a image push --rsh "$tmp/rsh-stall" other hostb > "$tmp/stall.out" 2>&1 &
spid=$!
tmp_present() { ls -A "$B/blobs" | grep -q '^\.tmp-other-'; }
check "a push held midway: its temp file is in the destination's blobs/" wait_for 60 tmp_present
out=$(timeout 60 env MEMSHARE_IMAGE_STORE=$B "$ctl" image gc 2>&1); rc=$?
diag "$out"
check "  gc runs meanwhile (not blocked by the transfer)" test "$rc" = 0
check "  and leaves the transfer's temp file alone" tmp_present
mkdir -p "$tmp/tree4/bin"; echo four > "$tmp/tree4/bin/x"
timeout 60 env MEMSHARE_IMAGE_STORE=$B "$ctl" image build --from "$tmp/tree4" --name four >/dev/null 2>&1; rc=$?
check "  a build on the destination runs meanwhile" test "$rc" = 0
touch "$tmp/go"
wait "$spid"; rc=$?
diag "$(cat "$tmp/stall.out")"
check "  the held push then completes" test "$rc" = 0
check "  and its image verifies" bverify other
check "  nothing of it left behind" bash -c "! ls -A '$B/blobs' | grep -q '^\.tmp-'"
b image remove four >/dev/null 2>&1; b image remove other >/dev/null 2>&1

# --- a missing image, a bad destination
out=$(a image push --rsh "$tmp/rsh" -- base -oProxyCommand 2>&1); rc=$?
check "a destination starting with '-' is refused (not an ssh option)" test "$rc" = 2
out=$(a image push --rsh "$tmp/rsh" base qemu:///system 2>&1); rc=$?
check "a URI without a host is refused" bash -c "test $rc = 2 && grep -q 'names no host' <<< \"\$1\"" _ "$out"
out=$(a image push --rsh /nonexistent/ssh base hostb 2>&1); rc=$?
check "an --rsh that cannot run: push fails naming image, digest and host" \
    bash -c "test $rc != 0 && grep -q \"image 'base' sha256 $sha to hostb: cannot run\" <<< \"\$1\"" _ "$out"

# --- DOMAIN: every shared image of its policy (libvirt's test:/// driver,
# in-process: no libvirtd)
cat > "$tmp/node.xml" <<XML
<node>
  <domain type='test'>
    <name>web1</name>
    <memory unit='MiB'>512</memory>
    <vcpu>1</vcpu>
    <os><type>hvm</type></os>
    <metadata>
      <memshare:policy xmlns:memshare='https://memshare.dev/xmlns/policy/1.0'>
        <memshare:shared-image name='base' mode='blk'/>
        <memshare:shared-image name='other' mode='blk'/>
      </memshare:policy>
    </metadata>
  </domain>
</node>
XML
out=$(a -c "test://$tmp/node.xml" image push --rsh "$tmp/rsh" web1 hostb 2>&1); rc=$?
echo "$out" | sed 's/^/# /'
check "push DOMAIN: exits 0" test "$rc" = 0
check "push DOMAIN: the image b has is not sent again" grep -q "image 'base' sha256 $sha: hostb has it already" <<< "$out"
check "push DOMAIN: the other image of its policy is sent" grep -q "image 'other' sha256 $sha2: $size bytes sent to hostb" <<< "$out"
check "push DOMAIN: b's 'other' verifies" bverify other
out=$(a -c test:///default image push --rsh "$tmp/rsh" test hostb 2>&1); rc=$?
check "push DOMAIN without a policy: fails saying so" \
    bash -c "test $rc = 1 && grep -q \"domain 'test' has no memshare policy\" <<< \"\$1\"" _ "$out"
out=$(a -c test:///default image push --rsh "$tmp/rsh" nosuch hostb 2>&1); rc=$?
check "neither image nor domain: fails saying so" \
    bash -c "test $rc = 1 && grep -q \"'nosuch' is neither an image in the store nor a domain\" <<< \"\$1\"" _ "$out"

# --- receive on its own: operands are checked before stdin is read
# (stdin is a pipe nobody writes to: a receive that read it would hang)
recv() { timeout 10 env MEMSHARE_IMAGE_STORE=$B "$ctl" image receive "$@" < <(exec 2>/dev/null; sleep 20) 2>&1; }
long=$(printf 'a%.0s' $(seq 1 65))
for bad in '../x' '/' '.hidden' "$long" 'a/b' ''; do
    out=$(recv "$bad" "$sha" "$size"); rc=$?
    check "receive refuses the name '${bad:0:20}' (exit 3)" \
        bash -c "test $rc = 3 && grep -q 'is not a valid image name' <<< \"\$1\"" _ "$out"
done
check "nothing was created for them" bash -c "! ls '$B' | grep -qv '^\(blobs\|names\|.lock\)$' && ! ls -A '$B/names' | grep -q '\.\.'"
out=$(recv base "${sha^^}" "$size"); rc=$?
check "receive refuses an upper-case digest" bash -c "test $rc = 3 && grep -q 'is not a sha256' <<< \"\$1\"" _ "$out"
out=$(recv base "${sha:0:63}" "$size"); rc=$?
check "receive refuses a short digest" test "$rc" = 3
out=$(recv newname "$sha" 68719476737); rc=$?
check "receive refuses a size over 64 GiB" bash -c "test $rc = 3 && grep -q 'size 68719476737 is outside 1 to 68719476736' <<< \"\$1\"" _ "$out"
out=$(recv --max-size 1M newname "$sha" "$size"); rc=$?
check "receive refuses a size over --max-size" test "$rc" = 3
for bad in 0 -1 12x 1e9 ' 5'; do
    out=$(recv newname "$sha" "$bad"); rc=$?
    # (exit 3; "-1" is an unknown option to the parser: exit 2)
    check "receive refuses the size '$bad'" test "$rc" = 3 -o \( "$bad" = -1 -a "$rc" = 2 \)
done
out=$(printf 'GET / HTTP/1.0\n' | timeout 10 env MEMSHARE_IMAGE_STORE=$B "$ctl" image receive newname "$sha" "$size" 2>&1); rc=$?
check "receive refuses a stream without the header" bash -c "test $rc = 3 && grep -q 'does not start with' <<< \"\$1\"" _ "$out"
man=$(cat "$A/names/base.json")
out=$( { printf 'memshare-image 1 %d\n' "${#man}"; printf '%s' "$man"; } | \
    timeout 10 env MEMSHARE_IMAGE_STORE=$B "$ctl" image receive newname "$sha" "$size" 2>&1); rc=$?
check "receive refuses a manifest of another name" bash -c "test $rc = 3 && grep -q \"the sent manifest says image 'base'\" <<< \"\$1\"" _ "$out"
check "nothing left after the refusals" clean_b newname

# --- fetch: the other way round (store C takes images from A, which runs
# `image send` through the wrapper); what the hook does at an incoming
# migration with <migration missing-images='fetch'/>
C=$tmp/c
c() { MEMSHARE_IMAGE_STORE=$C "$ctl" "$@"; }
clean_c() { ! ls -A "$C/blobs" 2>/dev/null | grep -q '^\.tmp-' && [ ! -e "$C/names/$1.json" ]; }
rsh "$tmp/frsh" "$A"
rsh "$tmp/frsh-flip" "$A" flip 200000
printf '#!/bin/bash\nexec sleep 600\n' > "$tmp/frsh-hang"; chmod +x "$tmp/frsh-hang"

out=$(c image fetch --rsh "$tmp/frsh" base qemu+ssh://root@hosta/system 2>&1); rc=$?
diag "$out"
check "fetch exits 0" test "$rc" = 0
check "fetch says what it took and from where" \
    grep -q "image 'base' sha256 $sha: $size bytes fetched from root@hosta, verified here" <<< "$out"
check "the fetched image verifies, same digest" bash -c "MEMSHARE_IMAGE_STORE='$C' '$ctl' image verify base >/dev/null && test \"\$(sed -n 's/.*\"sha256\" : \"\([0-9a-f]*\)\".*/\1/p' '$C/names/base.json')\" = $sha"
out=$(c image fetch --rsh "$tmp/frsh" "base@$sha" hosta 2>&1); rc=$?
check "fetch again (by digest): nothing fetched" \
    bash -c "test $rc = 0 && grep -q \"image 'base' sha256 $sha: this host has it already, nothing fetched\" <<< \"\$1\"" _ "$out"
out=$(c image fetch --rsh "$tmp/frsh" "other@$sha" hosta 2>&1); rc=$?
diag "$out"
check "fetch by a digest the source does not have under the name: refused, the source's words quoted" \
    bash -c "test $rc != 0 && grep -q \"fetch from hosta: .*(hosta said: memsharectl image send: image 'other' is sha256 $sha2 in .*, not the sha256 $sha asked for)\" <<< \"\$1\"" _ "$out"
check "  nothing left in C" clean_c other
out=$(c image fetch --rsh "$tmp/frsh" nosuch hosta 2>&1); rc=$?
diag "$out"
check "fetch of an image the source lacks: refused, naming it" \
    bash -c "test $rc != 0 && grep -q \"hosta said: .*image 'nosuch'\" <<< \"\$1\"" _ "$out"
out=$(c image fetch --rsh "$tmp/frsh-flip" other hosta 2>&1); rc=$?
diag "$out"
check "a flipped byte on the way: refused naming both digests" \
    bash -c "test $rc != 0 && grep -q \"sha256 $sha2\" <<< \"\$1\" && grep -qi 'digest\|sha256 [0-9a-f]\{64\}.*sha256 [0-9a-f]\{64\}' <<< \"\$1\"" _ "$out"
check "  nothing left in C" clean_c other
mkdir -p "$tmp/tree3/bin"; echo "C's own other" > "$tmp/tree3/bin/x"
c image build --from "$tmp/tree3" --name other >/dev/null || bail "image build in C failed"
osha_c=$(digest "$C" other)
out=$(c image fetch --rsh "$tmp/frsh" other hosta 2>&1); rc=$?
diag "$out"
check "fetch never replaces a name mapped to another digest" \
    bash -c "test $rc != 0 && grep -q \"image 'other' is sha256 $osha_c in $C, the one sent is sha256 $sha2\" <<< \"\$1\"" _ "$out"
check "  C's 'other' unchanged" test "$(digest "$C" other)" = "$osha_c"
# a far end that talks a lot on stderr first (ssh -v, a login banner): more
# than a pipe holds, so a fetch that read it only after stdout would block
# (--timeout 120: a hang guard, not a figure)
printf '#!/bin/bash\nhead -c 300000 /dev/zero | tr "\\0" x >&2\nshift 2\nMEMSHARE_IMAGE_STORE=%q exec %q "$@"\n' "$A" "$ctl" > "$tmp/frsh-noisy"
chmod +x "$tmp/frsh-noisy"
rm -rf "$tmp/c2"
out=$(MEMSHARE_IMAGE_STORE=$tmp/c2 "$ctl" image fetch --rsh "$tmp/frsh-noisy" --timeout 120 base hosta 2>&1); rc=$?
check "a far end that writes 300 KB to stderr first: the fetch completes" \
    bash -c "test $rc = 0 && grep -q \"image 'base' sha256 $sha: $size bytes fetched from hosta\" <<< \"\$1\"" _ "$out"
out=$(c image fetch --rsh "$tmp/frsh-hang" --timeout 1 other2 hosta 2>&1); rc=$?
diag "$out"
check "a source that never answers: --timeout ends the fetch, naming the host" \
    bash -c "test $rc != 0 && grep -q 'fetch from hosta: ' <<< \"\$1\"" _ "$out"
check "  nothing left in C" clean_c other2
out=$(c image fetch --rsh "$tmp/frsh" -- base -oProxyCommand=x 2>&1); rc=$?
check "fetch: a source starting with '-' is refused (not an ssh option)" test "$rc" = 2
out=$(c image fetch --rsh "$tmp/frsh" ../x hosta 2>&1); rc=$?
check "fetch: a hostile name is refused before anything runs" \
    bash -c "test $rc = 3 && grep -q 'is not a valid image name' <<< \"\$1\"" _ "$out"
out=$(timeout 10 env MEMSHARE_IMAGE_STORE=$A "$ctl" image send base "${sha:0:63}" < /dev/null 2>&1); rc=$?
check "send refuses a malformed digest" test "$rc" = 3

done_testing
