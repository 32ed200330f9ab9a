/* qmp-plugin/ms-ksm.c: placeholder, filled by its owner. */
