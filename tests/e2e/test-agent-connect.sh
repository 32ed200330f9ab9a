#!/bin/bash
# tests/e2e/test-agent-connect.sh: which libvirt an agent started the way
# the systemd unit starts it (only --uuid) talks to. The unit cannot pass
# --connect, so the agent must read [agent] connect= of memshare.conf itself,
# the same setting the hook hands its detached agents; --connect still wins.
# Real libvirt client code against libvirt's built-in test driver
# (test:///default: one running domain 'test', no daemon), so it runs in
# the unit suite.
# Usage: test-agent-connect.sh MEMSHARE_AGENT   (TAP)
set -u
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../lib/tap.sh"
agent=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export MEMSHARE_RUNTIME_DIR=$tmp/run
export MEMSHARE_CONFIG=$tmp/memshare.conf
# the test driver's built-in domain 'test'
TEST_UUID=6695eb01-f6a4-8304-79aa-97f2502e193f

# run_agent NAME ARGS...: the agent's exit status in $tmp/NAME.rc, its log
# in $tmp/NAME.log. --once: attach, report, exit.
run_agent() {
    local name=$1; shift
    local rc=0
    timeout 60 "$agent" --once "$@" > "$tmp/$name.log" 2>&1 || rc=$?
    echo "$rc" > "$tmp/$name.rc"
    sed "s/^/# $name: /" "$tmp/$name.log"
}

# --- [agent] connect= names the test driver: the agent uses it ---------------
printf "[agent]\nconnect = test:///default   # as README writes its example\n" > "$MEMSHARE_CONFIG"
run_agent conf --uuid $TEST_UUID
check "only --uuid: the agent connects to the URI of [agent] connect=" \
    grep -q "connecting to libvirt at 'test:///default' (\[agent\] connect= in $MEMSHARE_CONFIG)" "$tmp/conf.log"
# it got as far as the domain's XML: domain 'test' of the test driver has
# no policy, which only that libvirt can have said
check "...and found the domain there by its UUID (it has no policy)" \
    grep -q "domain 'test'.*carries no memshare policy" "$tmp/conf.log"

# --- a bogus URI in the config: fails, naming the URI and the file ------------
printf '[agent]\nconnect=bogus+nowhere:///system\n' > "$MEMSHARE_CONFIG"
run_agent bogus --uuid $TEST_UUID
check "a bogus [agent] connect= URI: the agent fails (exit 1)" test "$(cat "$tmp/bogus.rc")" = 1
check "...with a message naming the URI and the config file" \
    grep -q "cannot connect to 'bogus+nowhere:///system' (\[agent\] connect= in $MEMSHARE_CONFIG)" "$tmp/bogus.log"

# --- --connect wins over the config ------------------------------------------
run_agent cmdline --uuid $TEST_UUID --connect test:///default
check "--connect wins over [agent] connect=" \
    grep -q "connecting to libvirt at 'test:///default' (--connect)" "$tmp/cmdline.log"
check "...and the config's URI is not tried" bash -c "! grep -q bogus '$tmp/cmdline.log'"

# --- an unreadable config is an error, not another libvirt --------------------
printf '[agent\nconnect=test:///default\n' > "$MEMSHARE_CONFIG"
run_agent broken --uuid $TEST_UUID
check "a config that does not parse: the agent fails (exit 1)" test "$(cat "$tmp/broken.rc")" = 1
check "...naming the config file" grep -q "config '$MEMSHARE_CONFIG'" "$tmp/broken.log"
check "...and connects nowhere" bash -c "! grep -q 'connecting to libvirt' '$tmp/broken.log'"

# --- no setting: libvirt's system URI, said so --------------------------------
printf '[agent]\nlog-dir=/var/log/memshare\n' > "$MEMSHARE_CONFIG"
run_agent default --uuid $TEST_UUID
check "no [agent] connect=: qemu:///system, logged as the default" \
    grep -q "connecting to libvirt at 'qemu:///system' (the default)" "$tmp/default.log"

done_testing
