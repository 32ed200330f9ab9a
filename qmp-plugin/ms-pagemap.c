/* qmp-plugin/ms-pagemap.c: placeholder, filled by its owner. */
