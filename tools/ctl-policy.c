/* tools/ctl-policy.c: placeholder, filled by its owner. */
