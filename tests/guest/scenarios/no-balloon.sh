# tests/guest/scenarios/no-balloon.sh: a guest without a balloon driver:
# unloads virtio_balloon if init loaded it (init skips it outright when
# ms.noballoon=1 is on the command line), then idles.
#   MS-NOBALLOON on the console once no driver is bound
if grep -q '^virtio_balloon ' /proc/modules; then
    rmmod virtio_balloon 2>/dev/null || echo "MS-ERROR no-balloon: rmmod virtio_balloon failed"
fi
grep -q '^virtio_balloon ' /proc/modules || echo "MS-NOBALLOON"
