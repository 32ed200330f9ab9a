# tests/migrate/lib-migrate-dax.sh: what test-migrate-dax.sh and
# repro-slow-kill.sh share, sourced after lvt_pair_setup and top=$dir: the
# domain's UUID and the helpers that read its state on host a or b, the
# `usr` image (a blob and a loop on the image itself that prints the blob's
# md5 to the console every 2 s) built into both hosts' stores, and the
# policy (tracking + the dax image) as $policy_dax.
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
