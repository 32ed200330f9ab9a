/* qmp-plugin/ms-guestmem.c: placeholder, filled by its owner. */
