/* tools/ctl-image.c: placeholder, filled by its owner. */
