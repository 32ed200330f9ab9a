# tests/migrate/lib-migrate-dax.sh: what test-migrate-dax.sh and
# repro-slow-kill.sh share, sourced after lvt_pair_setup and top=$dir: the
# domain's UUID and the helpers that read its state on host a or b, the
# `usr` image (a blob and a loop on the image itself that prints the blob's
# md5 to the console every 2 s) built into both hosts' stores, and the
# policy (tracking + the dax image) as $policy_dax; `leg FROM TO [virsh
# options]`, one migration and its checks on both sides ($leg_mode: dax,
# the default; blk; or plain, no memshare: the guest's reads only;
# $leg_used_wait: seconds for the destination's tracking.used, 60).
U=6b1c7f52-3b0e-4c55-8f6e-2a9d0c4e5fa1
MIG_NS=https://memshare.dev/xmlns/migration/1.0
rt() { lvt_pair_rt "$1" $U; }
agent_pid() { lvt_pair_agent_pid "$1" $U; }
agent_alive() { lvt_pair_agent_alive "$1" $U; }
status_val() { sed -n "s/^$2=//p" "$(rt "$1")/status" 2>/dev/null | head -n1; }
serial() { echo "$top/$1/log-libvirt/qemu/mig5.serial"; }
runs_on() { grep -qx running <<< "$(V "$1" domstate mig5 2>&1)"; }
absent_on() { ! grep -qx mig5 <<< "$(V "$1" list --all --name)"; }
memdevs() { V "$1" qemu-monitor-command mig5 '{"execute":"query-memory-devices"}' 2>&1; }
# good_reads HOST: console lines where the guest read the image's blob intact
good_reads() { grep -c "^MS-DAXREAD [0-9]* $md5" "$(serial "$1")" 2>/dev/null; }
reads_grew() { [ "$(good_reads "$1")" -ge $(( $2 + 2 )) ]; }
# whole lines (the console ends them with CR LF) with another md5
bad_reads() { tr -d '\r' < "$(serial "$1")" 2>/dev/null | grep -E "^MS-DAXREAD [0-9]+ [0-9a-f]{32}\$" | grep -v " $md5\$"; }

# --- the image: a blob and a loop that reads it, on the image itself ---------------
mkdir -p "$top/src/bin" "$top/src/data"
head -c $((1 << 20)) /dev/urandom > "$top/src/data/blob"
md5=$(md5sum < "$top/src/data/blob" | cut -d' ' -f1)
cat > "$top/src/bin/ms-hello" <<'SH'
#!/bin/sh
# started by the guest's mount-shared scenario; the loop outlives it and
# reads through the DAX mapping every round (no guest page cache)
d=$(dirname "$0")/..
( i=0; while :; do i=$((i + 1)); echo "MS-DAXREAD $i $(md5sum < "$d/data/blob" | cut -d' ' -f1)"; sleep 2; done ) \
    > /dev/ttyS0 2>&1 < /dev/null &
echo "reader started"
SH
chmod 755 "$top/src/bin/ms-hello"
for h in a b; do
    out=$(vmenv_on $h vmenv_exec "$MS_CTL" image build --from "$top/src" --name usr 2>&1) ||
        bail "image build on host $h: $out"
done
sha=$(sed -n 's/.*"sha256" *: *"\([0-9a-f]*\)".*/\1/p' "$top/a/lib-memshare/images/names/usr.json")
check "both hosts' stores have the same 'usr'" \
    grep -q "\"sha256\" *: *\"$sha\"" "$top/b/lib-memshare/images/names/usr.json"

policy_dax="<memshare:policy xmlns:memshare='$NS'><memshare:tracking used-pages='on' period='1s'/><memshare:stats period='1s'/><memshare:shared-image name='usr' mode='dax'/></memshare:policy>"

leg_mode=${leg_mode:-dax} leg_used_wait=${leg_used_wait:-60}
# leg FROM TO [virsh options]: migrate and check both sides
leg() {
    local from=$1 to=$2 out rc pid_from reads_to memaddr_from n seed seed_used used_to total; shift 2
    pid_from=$(agent_pid "$from")
    reads_to=$(good_reads "$to"); reads_to=${reads_to:-0}
    memaddr_from=$(grep -o '"memaddr": *[0-9]*' <<< "$(memdevs "$from")")
    out=$(lvt_pair_migrate "$from" "$to" mig5 "$@" 2>&1); rc=$?
    [ -n "$out" ] && sed 's/^/# virsh migrate: /' <<< "$out"
    check "$from -> $to: migration succeeds" test "$rc" = 0
    check "$from -> $to: mig5 runs on host $to" runs_on "$to"
    check "$from -> $to: mig5 is gone from host $from" wait_for 10 absent_on "$from"
    if [ "$leg_mode" = plain ]; then
        check "$from -> $to: the guest keeps reading the image's blob intact on host $to" \
            wait_for 60 reads_grew "$to" "$reads_to"
        return
    fi
    check "$from -> $to: an agent runs on host $to" wait_for 30 agent_alive "$to"
    check "$from -> $to: the agent on host $from is gone" wait_for 10 bash -c "! kill -0 $pid_from 2>/dev/null"
    check "$from -> $to: host $from's runtime directory is gone" wait_for 10 test ! -e "$(rt "$from")"
    n=$(for h in a b; do agent_alive $h && echo $h; done | grep -c .)
    check "$from -> $to: exactly one agent across both hosts ($n)" test "$n" = 1
    check "$from -> $to: policy identical on host $to" test "$(V "$to" metadata mig5 "$NS")" = "$pol_a"
    if [ "$leg_mode" = dax ]; then
        echo "# host $to memory devices: $(memdevs "$to")"
        check "$from -> $to: host $to's QEMU has exactly one virtio-pmem device, at the source's address" \
            bash -c "[ \$(grep -o '\"type\": *\"virtio-pmem\"' <<< '$(memdevs "$to")' | wc -l) = 1 ] &&
                     grep -q '$memaddr_from' <<< '$(memdevs "$to")'"
        # default-group=domain: the domain's own group copy, made on host $to by its hook
        check "$from -> $to: its backend is host $to's copy of the same digest for the domain's group" \
            grep -q "\"mem-path\":\"/var/lib/memshare/images/groups/domain:$U/sha256-$sha.img\"" "$top/$to/log-libvirt/qemu/mig5.log"
        check "$from -> $to: host $to's agent adopted the device and attached nothing more" \
            wait_for 30 grep -q "^attached=1" "$(rt "$to")/status"
    fi
    check "$from -> $to: the guest keeps reading the image's blob intact on host $to" \
        wait_for 60 reads_grew "$to" "$reads_to"
    check "$from -> $to: no read of the image returned other bytes" test -z "$(bad_reads "$to")"
    check "$from -> $to: history seeded from the source's last sample" \
        grep -q "^# migrated in to host 'memshare-test-$to'" "$(rt "$to")/history"
    seed=$(grep -v '^#' "$(rt "$to")/history" | head -n1)
    seed_used=$(awk '{print $7}' <<< "$seed")
    check "$from -> $to: the seed carries tracking.used ($seed_used)" bash -c "[ '${seed_used:--}' != - ]"
    used_dest() { local u; u=$(status_val "$to" used); [ -n "$u" ] && [ "$u" -gt 0 ]; }
    check "$from -> $to: host $to measures tracking.used again" wait_for "$leg_used_wait" used_dest
    used_to=$(status_val "$to" used) total=$(status_val "$to" total)
    echo "# tracking.used: carried $seed_used, host $to $used_to, guest RAM $total"
    # no lower bound from the carried figure: populated zero-filled pages
    # are not sent in full and arrive unpopulated (docs/migration.md; seen
    # here: 172 -> 94 MiB on the first leg); test-migrate-policy.sh checks
    # that what the guest touched stays covered
    check "$from -> $to: tracking.used within guest RAM" bash -c "[ $used_to -le ${total:-0} ]"
}
