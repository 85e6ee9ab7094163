/* SPDX-License-Identifier: MIT */
/* Parsing the string forms of TLS settings: ALPN lists and key pins. */
#include "internal.h"
#include "tls.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

tcpkit_err tk_tls_parse_alpn(const char *s, unsigned char **wire, size_t *len, const char *op)
{
    *wire = NULL;
    *len = 0;
    if (!s || !*s)
        return TCPKIT_OK;
    size_t n = strlen(s);
    /* Each name gains a length byte and loses a comma: n + 1 bytes. */
    unsigned char *w = malloc(n + 1);
    if (!w)
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "%s: out of memory", op);
    size_t at = 0;
    for (const char *p = s;;) {
        size_t k = strcspn(p, ",");
        if (k == 0 || k > 255) {
            free(w);
            return tk_fail(TCPKIT_EINVAL, 0, "%s: empty or over-long protocol name in \"%s\"", op,
                           s);
        }
        w[at++] = (unsigned char)k;
        memcpy(w + at, p, k);
        at += k;
        if (!p[k])
            break;
        p += k + 1;
    }
    *wire = w;
    *len = at;
    return TCPKIT_OK;
}

/* One pin: 43 base64 characters and one '=' encode exactly 32 bytes. */
static bool parse_pin(const char *p, size_t k, unsigned char out[32])
{
    static const char prefix[] = "sha256//";
    if (k >= sizeof prefix - 1 && memcmp(p, prefix, sizeof prefix - 1) == 0) {
        p += sizeof prefix - 1;
        k -= sizeof prefix - 1;
    }
    if (k != 44 || p[43] != '=' || p[42] == '=')
        return false;
    unsigned char tmp[33];
    /* EVP_DecodeBlock rejects characters outside the alphabet (-1) and
     * counts the padding as zero bytes: 44 characters give 33. */
    if (EVP_DecodeBlock(tmp, (const unsigned char *)p, 44) != 33)
        return false;
    memcpy(out, tmp, 32);
    return true;
}

tcpkit_err tk_tls_parse_pins(const char *s, unsigned char **pins, size_t *n, const char *op)
{
    *pins = NULL;
    *n = 0;
    if (!s || !*s)
        return TCPKIT_OK;
    size_t max = 1;
    for (const char *p = s; *p; p++)
        max += *p == ';';
    unsigned char *out = malloc(max * 32);
    if (!out)
        return tk_fail(TCPKIT_ENOMEM, ENOMEM, "%s: out of memory", op);
    size_t count = 0;
    for (const char *p = s;; p++) {
        size_t k = strcspn(p, ";");
        if (!parse_pin(p, k, out + count * 32)) {
            free(out);
            return tk_fail(TCPKIT_EINVAL, 0,
                           "%s: pin %zu is not a base64 SHA-256 digest (44 characters)", op,
                           count + 1);
        }
        count++;
        p += k;
        if (!*p)
            break;
    }
    *pins = out;
    *n = count;
    return TCPKIT_OK;
}
