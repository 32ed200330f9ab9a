/* qmp-plugin/ms-export.c: placeholder (being written) */
