/* qmp-plugin/ms-qmp-socket.c: placeholder, filled by its owner. */
