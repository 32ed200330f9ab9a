/* qmp-plugin/ms-balloon.c: placeholder (being written) */
