/* tests/policy/policy-schema.h: the schema's side of the parser/schema
 * agreement checks (tests/policy/test-policy.c, tests/fuzz/fuzz-policy.c).
 * Reads a document the way `xmllint --relaxng` does (entities expanded),
 * finds the policy element the parser would judge and validates it against
 * xml-schemas/memshare-policy.rng with libxml2's RelaxNG API. Test code:
 * it is never linked into the hook or the agent. */
#pragma once

#include <glib.h>
#include <libxml/relaxng.h>

typedef enum {
    MS_SCHEMA_ACCEPTS,      /* the policy element validates */
    MS_SCHEMA_REFUSES,      /* it does not, or the XML is not well-formed */
    MS_SCHEMA_NO_POLICY,    /* a domain without a policy element to judge */
} MsSchemaVerdict;

/* NULL (and a message on stderr) when the schema cannot be read. */
xmlRelaxNGPtr ms_test_schema_load(const char *path);

/* Judges xml as a whole domain (is_domain: its first memshare <policy> in
 * <metadata>, as the parser finds it) or as a standalone policy document.
 * *reason (may be NULL) gets the validator's first complaint on refusal. */
MsSchemaVerdict ms_test_schema_judge(xmlRelaxNGPtr schema, const char *xml, gsize len,
                                     gboolean is_domain, char **reason);

/* TRUE when the root element is an unqualified <domain>, as memsharectl
 * policy validate tells a domain from a standalone policy. */
gboolean ms_test_is_domain_document(const char *xml, gsize len);

const char *ms_test_schema_verdict_name(MsSchemaVerdict v);
