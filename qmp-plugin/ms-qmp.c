/* qmp-plugin/ms-qmp.c: placeholder, filled by its owner. */
