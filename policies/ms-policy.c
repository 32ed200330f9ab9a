/* policies/ms-policy.c: placeholder, filled by its owner. */
