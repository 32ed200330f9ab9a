/* qmp-plugin/ms-qmp-stream.c: placeholder, filled by its owner. */
