/* common/ms-error.h: memshare's GError domain and codes, shared by the hook,
 * the agent and memsharectl. One domain per subsystem lives next to its code
 * (MS_QMP_ERROR, MS_POLICY_ERROR); this one is for what they share. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

#define MS_ERROR (ms_error_quark())
GQuark ms_error_quark(void);

typedef enum {
    MS_ERROR_FAILED,        /* generic failure, message says why */
    MS_ERROR_INVALID,       /* bad input: sysfs/proc contents, paths, args */
    MS_ERROR_NOT_SUPPORTED, /* the host kernel or QEMU lacks the feature */
    MS_ERROR_TIMEOUT,
    MS_ERROR_TOO_BIG,       /* an input exceeded its bound */
    MS_ERROR_NOT_FOUND,
} MsErrorCode;

G_END_DECLS
