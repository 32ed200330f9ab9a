/* images/ms-image-store.c: placeholder, filled by its owner. */
