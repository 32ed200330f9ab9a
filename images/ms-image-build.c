/* images/ms-image-build.c: placeholder, filled by its owner. */
