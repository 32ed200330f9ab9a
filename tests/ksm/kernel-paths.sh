# tests/ksm/kernel-paths.sh: sourced (after tests/lib/tap.sh) by the qemu
# tests that run twice, as they are and with MEMSHARE_HIDE=linux-6.1 (the
# "-compat61" meson entries, Debian 12's 6.1 fallbacks on this newer host).
#   kernel_paths_expect QEMU_PID   sets want_pagemap (scan|read),
#       want_saved (general_profit|pages_sharing), want_contribution
#       (ksm_process_profit|ksm_merging_pages), want_advisor (true|false):
#       from this host's own files when the knob is unset, the 6.1 paths
#       when it is set. Never from the agent: a knob that does nothing, or a
#       fallback taken on a kernel that has the interface, fails.
#   kernel_paths_check STATUS LOG  checks the agent's [kernel] status group
#       and its start log line against them.
#   kernel_value STATUS KEY        one key of [kernel].
kernel_value() { sed -n '/^\[kernel\]/,/^\[/s/^'"$2"'=//p' "$1" 2>/dev/null | head -1; }

# PAGEMAP_SCAN arrived in Linux 6.7.
kernel_has_pagemap_scan() {
    local r maj min
    r=$(uname -r); maj=${r%%.*}; r=${r#*.}; min=${r%%[!0-9]*}
    [ "$maj" -gt 6 ] || { [ "$maj" -eq 6 ] && [ "$min" -ge 7 ]; }
}

kernel_paths_expect() {
    local qpid=$1 ksm=/sys/kernel/mm/ksm
    compat61=0
    case "${MEMSHARE_HIDE:-}" in
    "") ;;
    linux-6.1) compat61=1 ;;
    *) bail "kernel-paths.sh checks MEMSHARE_HIDE=linux-6.1 or unset, not '$MEMSHARE_HIDE'" ;;
    esac
    if [ "$compat61" = 1 ]; then
        want_hidden=pagemap-scan,general-profit,ksm-process-profit,ksm-advisor,ksm-counters,ksm-stat-fields
        want_pagemap=read want_saved=pages_sharing want_contribution=ksm_merging_pages want_advisor=false
        return
    fi
    want_hidden=
    if kernel_has_pagemap_scan; then want_pagemap=scan; else want_pagemap=read; fi
    if [ -e $ksm/general_profit ]; then want_saved=general_profit; else want_saved=pages_sharing; fi
    if grep -q '^ksm_process_profit' "/proc/$qpid/ksm_stat" 2>/dev/null; then
        want_contribution=ksm_process_profit
    else
        want_contribution=ksm_merging_pages
    fi
    if [ -e $ksm/advisor_mode ]; then want_advisor=true; else want_advisor=false; fi
}

kernel_paths_check() {
    local status=$1 log=$2 key var v
    echo "# kernel $(uname -r), MEMSHARE_HIDE='${MEMSHARE_HIDE:-}': want pagemap $want_pagemap," \
        "KSM saved from $want_saved, contribution from $want_contribution, advisor $want_advisor"
    for key in hidden pagemap ksm-saved ksm-contribution ksm-advisor; do
        case $key in
        hidden) var=$want_hidden ;; pagemap) var=$want_pagemap ;; ksm-saved) var=$want_saved ;;
        ksm-contribution) var=$want_contribution ;; ksm-advisor) var=$want_advisor ;;
        esac
        v=$(kernel_value "$status" "$key")
        check "status [kernel] $key='$var' (agent says '$v')" test "$v" = "$var"
    done
    # "kernel 6.18.x: pagemap pread, KSM saved from pages_sharing, contribution from
    # ksm_merging_pages, advisor no; hidden by MEMSHARE_HIDE: ... (as on Debian 12's Linux 6.1)"
    local line
    line=$(grep -m1 "kernel $(uname -r): pagemap " "$log" || true)
    echo "# agent: ${line#*: kernel }"
    if [ "$compat61" = 1 ]; then
        check "agent logged that MEMSHARE_HIDE hid the interfaces 6.1 lacks" \
            grep -q "; hidden by MEMSHARE_HIDE: $want_hidden (as on Debian 12's Linux 6.1)$" <<< "$line"
    else
        check "agent logged its kernel interfaces, none hidden" \
            bash -c '[ -n "$1" ] && ! grep -q "hidden by" <<< "$1"' _ "$line"
    fi
}
