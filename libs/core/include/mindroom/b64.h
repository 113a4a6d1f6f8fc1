/* b64.h -- unpadded base64: encoding in the URL alphabet, strict or lenient decoding. */
#ifndef MINDROOM_B64_H
#define MINDROOM_B64_H

#include <stddef.h>
#include "mindroom/err.h"

/* Characters mr_b64url_encode writes for n bytes, without the NUL. */
#define MR_B64URL_LEN(n) (((n) * 4 + 2) / 3)

/* Writes n bytes as unpadded base64url ('-' and '_' for 62 and 63; a last group of 1 or 2
 * bytes gives 2 or 3 characters) and a NUL into out, which holds MR_B64URL_LEN(n) + 1 bytes.
 * Returns the text's length. */
size_t mr_b64url_encode(const void *data, size_t n, char *out);

/* mr_b64_decode flags. */
#define MR_B64_STD_TOO 1u  /* also take the standard alphabet: '+' for 62, '/' for 63 */
#define MR_B64_STRICT 2u   /* refuse non-zero bits left over after the last whole byte */

/* Decodes len characters of unpadded base64url into out, writing at most cap bytes; *out_len
 * counts every byte, so a caller can tell text too long for out. Refuses (MR_EINVAL) a length
 * that cannot be whole bytes and a character outside the alphabet, naming its position. */
mr_code mr_b64_decode(const char *in, size_t len, unsigned flags, unsigned char *out, size_t cap,
                      size_t *out_len, mr_err *err);

#endif
