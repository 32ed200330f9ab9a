# tests/guest/scenarios/ksm-fill.sh: fills ms.fill= MiB (default 128) of
# guest RAM with identical pages (all 'A'), so KSM on the host can merge
# them within and across guests. Keeps them (until the guest dies).
#   MS-FILLED N on the console
fill=$(ms_param ms.fill 128)
if dd if=/dev/zero bs=1M count="$fill" 2>/dev/null | tr '\0' 'A' > /dev/shm/fill; then
    echo "MS-FILLED $fill"
else
    echo "MS-ERROR ksm-fill: could not fill $fill MiB"
fi
