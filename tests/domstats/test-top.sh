#!/bin/bash
# tests/domstats/test-top.sh: `memsharectl top` against the fixture runtime
# dir run/: --batch output against golden/top-batch.out, then the live view
# in a detached tmux (own server socket): rows appear, follow a status file
# that changes, lose a domain that goes away, and q quits with status 0.
# Usage: test-top.sh MEMSHARECTL SRCDIR   (TAP)
set -uo pipefail
ctl=$1 src=$2
n=0 fail=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
nok() { n=$((n + 1)); fail=1; echo "not ok $n - $1"; }
if ! "$ctl" top --help > /dev/null 2>&1; then
    echo "1..0 # SKIP this memsharectl has no top command"
    exit 0
fi
tmp=$(mktemp -d)
sock=ms-top-test-$$
cleanup() { tmux -L "$sock" kill-server 2> /dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
cp -r "$src/run" "$tmp/run"
for f in "$tmp"/run/domains/*/agent.pid; do echo $$ > "$f"; done
export MEMSHARE_RUNTIME_DIR=$tmp/run LC_ALL=C.UTF-8

# polls until CMD succeeds; the bound only stops a broken test from hanging
wait_for() {
    local tries=$(($1 * 5))
    shift
    while [ $tries -gt 0 ]; do
        "$@" && return 0
        sleep 0.2
        tries=$((tries - 1))
    done
    return 1
}

# batch: one frame, the clock and the run dir masked
"$ctl" top --batch --iterations 1 > "$tmp/batch.raw" 2> "$tmp/batch.err"
rc=$?
sed -e "s|$tmp/run|@RUN@|g" -e 's/^memsharectl top - [0-9:]*/memsharectl top - HH:MM:SS/' "$tmp/batch.raw" > "$tmp/batch"
[ -n "${MS_REGENERATE:-}" ] && cp "$tmp/batch" "$src/golden/top-batch.out"
if [ $rc = 0 ] && [ ! -s "$tmp/batch.err" ] && diff -u "$src/golden/top-batch.out" "$tmp/batch" > "$tmp/diff"; then
    ok "top --batch --iterations 1 matches golden/top-batch.out"
else
    nok "top --batch (rc $rc)"; sed 's/^/# /' "$tmp/diff" "$tmp/batch.err"
fi
"$ctl" top --delay 0 > /dev/null 2>&1
[ $? = 2 ] && ok "top --delay 0 is a usage error" || nok "top --delay 0 accepted"

# live view in tmux
tmux -L "$sock" -f /dev/null new-session -d -s top -x 132 -y 30 \
    "env MEMSHARE_RUNTIME_DIR='$tmp/run' TERM=xterm '$ctl' top --delay 1; echo \$? > '$tmp/top.rc'; sleep 60"
tmux -L "$sock" set-option -t top remain-on-exit on > /dev/null
pane() { tmux -L "$sock" capture-pane -p -t top > "$tmp/pane" 2> /dev/null; }
shows() { pane && grep -Eq "$1" "$tmp/pane"; }

if wait_for 20 shows "^web1 +running +384\.0M +144\.0M +832\.0M +832\.0M +768\.0M +56\.0M +no +tenant-a$"; then
    ok "tmux: web1's row (used, wss, actual, target, base, ksm, stuck, group)"
else
    nok "tmux: web1's row"; sed 's/^/# /' "$tmp/pane"
fi
if grep -Eq "domains: 2 running, 1 stale, 2 unreadable" "$tmp/pane" &&
    grep -Eq "^old1 +stale" "$tmp/pane" && grep -Eq "^db \"two\" ü +running .* yes -$" "$tmp/pane" &&
    grep -Eq "error +'.*5d05/status': \[balloon\] target" "$tmp/pane"; then
    ok "tmux: header counts, stale, stuck and unreadable domains"
else
    nok "tmux: header and other rows"; sed 's/^/# /' "$tmp/pane"
fi

# the agent publishes a new status (atomic replace, as the agent does)
st=$tmp/run/domains/6b1c4e2a-0f3d-4c51-9a7e-1d2f3b4c5d01/status
sed 's/^actual=872415232$/actual=1073741824/' "$st" > "$st.new" && mv "$st.new" "$st"
if wait_for 20 shows "^web1 +running +384\.0M +144\.0M +1\.0G +832\.0M"; then
    ok "tmux: the view follows a changed status file"
else
    nok "tmux: no refresh"; sed 's/^/# /' "$tmp/pane"
fi
rm -rf "$tmp/run/domains/6b1c4e2a-0f3d-4c51-9a7e-1d2f3b4c5d03"
if wait_for 20 shows "domains: 2 running, 0 stale" && ! grep -q "^old1" "$tmp/pane"; then
    ok "tmux: a domain that goes away leaves the view"
else
    nok "tmux: old1 still shown"; sed 's/^/# /' "$tmp/pane"
fi

tmux -L "$sock" send-keys -t top q
# the shell around top records its exit status (tmux's pane_dead_status is
# not always set by the time pane_dead is)
if wait_for 20 test -s "$tmp/top.rc"; then
    st=$(cat "$tmp/top.rc")
    [ "$st" = 0 ] && ok "tmux: q quits, exit status 0" || nok "tmux: exit status $st after q"
else
    nok "tmux: q did not quit"
fi
pane
# the alternate screen is left: the view does not stay on the terminal
if ! grep -q "^DOMAIN " "$tmp/pane"; then
    ok "tmux: the terminal's own screen is back after q"
else
    nok "tmux: the view is still on the screen after q"; sed 's/^/# /' "$tmp/pane"
fi

echo "1..$n"
exit $fail
