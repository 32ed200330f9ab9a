/* policies/ms-alloc.c: placeholder, filled by its owner. */
