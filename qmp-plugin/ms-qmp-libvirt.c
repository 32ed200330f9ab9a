/* qmp-plugin/ms-qmp-libvirt.c: placeholder, filled by its owner. */
