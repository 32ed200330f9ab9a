/* common/ms-error.c: the MS_ERROR quark. */
#include "ms-error.h"

G_DEFINE_QUARK(memshare-error-quark, ms_error)
