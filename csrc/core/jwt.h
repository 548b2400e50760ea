/* jwt.h - verification of JSON Web Tokens (RFC 7519) in JWS compact form
 * (RFC 7515): HS256, RS256 and ES256 (RFC 7518) through libcrypto. Plain C,
 * no Lua; the only allocations are the keys and OpenSSL's own.
 *
 * The rules, in the order they are checked (the first failure is the
 * result, so a token with a wrong signature never reaches a claim check):
 * 1. size: 1..max_token_bytes bytes; exactly three '.'-separated segments,
 *    none empty; each canonical base64url without padding (RFC 7515 2): a
 *    final character with unused bits set is refused, so no two spellings
 *    of one signature exist. The header decodes to at most
 *    SSE_JWT_MAX_HEADER_BYTES.
 * 2. header: a JSON object (json.h: strict, unique names); "alg" a string
 *    naming one of the algorithms the caller allows ("none" is never
 *    allowed); "typ", when present, the string "JWT" (any case); "kid",
 *    when present, a string; the members that would change how the token
 *    is read or which key checks it (crit, jku, jwk, x5u, x5c, cty, b64,
 *    zip, enc) are refused; other members are ignored.
 * 3. signature over the ASCII bytes "header.payload", with each key bound to
 *    its one algorithm (a secret only HMACs, an RSA key only RS256, a P-256
 *    key only ES256: an RS256 public key is never used as an HMAC secret).
 *    HS256: 32 bytes compared in constant time; RS256: exactly the modulus
 *    size, RSASSA-PKCS1-v1_5; ES256: 64 bytes r||s (RFC 7518 3.4).
 * 4. claims: a JSON object (strict, unique names at every depth, at most
 *    SSE_JWT_MAX_DEPTH deep); exp, nbf, iat numbers when present; iss, sub,
 *    jti strings; aud a string or an array of strings.
 * 5. time: exp required unless require_exp is 0; now >= exp + leeway is
 *    expired; now + leeway < nbf is not yet valid.
 * 6. iss and aud, when the caller names them, must match (aud: the string,
 *    or one element of the array).
 * OpenSSL's error queue is left empty after every call. */
#ifndef SSE_JWT_H
#define SSE_JWT_H

#include <stddef.h>

#define SSE_JWT_MAX_TOKEN_BYTES 8192   /* default bound on a token */
#define SSE_JWT_MAX_TOKEN_LIMIT 65536  /* the largest bound a caller may set */
#define SSE_JWT_MAX_HEADER_BYTES 1024  /* decoded header */
#define SSE_JWT_MAX_DEPTH 16           /* nesting of the claims JSON */
#define SSE_JWT_MIN_SECRET_BYTES 32    /* RFC 7518 3.2: at least the hash size */
#define SSE_JWT_MIN_RSA_BITS 2048
#define SSE_JWT_MAX_RSA_BITS 8192

/* Algorithms, as bits of a set. */
enum { SSE_JWT_HS256 = 1, SSE_JWT_RS256 = 2, SSE_JWT_ES256 = 4, SSE_JWT_ALL_ALGS = 7 };

/* Results: 0 is success, everything else negative with a fixed message
 * (sse_jwt_message). The key errors come from the key constructors. */
enum {
  SSE_JWT_OK = 0,
  SSE_JWT_E_EMPTY = -1,
  SSE_JWT_E_TOO_LARGE = -2,
  SSE_JWT_E_SEGMENTS = -3,
  SSE_JWT_E_B64_HEADER = -4,
  SSE_JWT_E_B64_PAYLOAD = -5,
  SSE_JWT_E_B64_SIGNATURE = -6,
  SSE_JWT_E_HEADER_TOO_LARGE = -7,
  SSE_JWT_E_HEADER_JSON = -8,
  SSE_JWT_E_HEADER_OBJECT = -9,
  SSE_JWT_E_HEADER_DUP = -10,
  SSE_JWT_E_HEADER_MEMBER = -11,
  SSE_JWT_E_ALG_MISSING = -12,
  SSE_JWT_E_ALG_TYPE = -13,
  SSE_JWT_E_ALG_NONE = -14,
  SSE_JWT_E_ALG_UNSUPPORTED = -15,
  SSE_JWT_E_ALG_NOT_ALLOWED = -16,
  SSE_JWT_E_TYP = -17,
  SSE_JWT_E_KID = -18,
  SSE_JWT_E_SIGNATURE = -19,
  SSE_JWT_E_CLAIMS_JSON = -20,
  SSE_JWT_E_CLAIMS_OBJECT = -21,
  SSE_JWT_E_CLAIMS_DUP = -22,
  SSE_JWT_E_CLAIMS_DEPTH = -23,
  SSE_JWT_E_EXP_TYPE = -24,
  SSE_JWT_E_NBF_TYPE = -25,
  SSE_JWT_E_IAT_TYPE = -26,
  SSE_JWT_E_ISS_TYPE = -27,
  SSE_JWT_E_SUB_TYPE = -28,
  SSE_JWT_E_JTI_TYPE = -29,
  SSE_JWT_E_AUD_TYPE = -30,
  SSE_JWT_E_EXP_MISSING = -31,
  SSE_JWT_E_EXPIRED = -32,
  SSE_JWT_E_NOT_YET_VALID = -33,
  SSE_JWT_E_ISSUER = -34,
  SSE_JWT_E_AUDIENCE = -35,
  SSE_JWT_E_CRYPTO = -36,        /* libcrypto failed (out of memory) */
  SSE_JWT_E_INVAL = -37,         /* misuse: bad arguments to a function */
  SSE_JWT_E_KEY_SHORT = -38,
  SSE_JWT_E_KEY_PEM = -39,
  SSE_JWT_E_KEY_PRIVATE = -40,
  SSE_JWT_E_KEY_TYPE = -41,
  SSE_JWT_E_KEY_RSA_BITS = -42,
  SSE_JWT_E_KEY_CURVE = -43,
  SSE_JWT_E_LAST_ = -43
};

typedef struct sse_jwt_key sse_jwt_key; /* opaque: one key bound to one algorithm */

/* What a verification checks besides the signature. */
typedef struct sse_jwt_check {
  unsigned algs;           /* the allowed algorithms (a set of SSE_JWT_*) */
  size_t max_token_bytes;  /* 1..SSE_JWT_MAX_TOKEN_LIMIT */
  double now;              /* seconds since the epoch */
  double leeway;           /* >= 0 seconds, applied to exp and nbf */
  int require_exp;         /* 1: a token without exp is refused */
  const char *iss;         /* NULL: not checked */
  size_t iss_len;
  const char *aud;         /* NULL: not checked */
  size_t aud_len;
} sse_jwt_check;

/* What a verified token says; json points into the caller's scratch. */
typedef struct sse_jwt_claims {
  int alg;                 /* the SSE_JWT_* that verified it */
  const char *json;        /* the claims JSON (the decoded payload) */
  size_t json_len;
  int has_exp, has_nbf, has_iat;
  double exp, nbf, iat;
} sse_jwt_claims;

/* A key for HS256 from secret[0..n) (copied). Returns 0 and *out (the
 * caller frees it with sse_jwt_key_free), SSE_JWT_E_KEY_SHORT below
 * SSE_JWT_MIN_SECRET_BYTES, or SSE_JWT_E_CRYPTO; *out untouched on failure. */
int sse_jwt_key_secret(const void *secret, size_t n, sse_jwt_key **out);

/* A key from a PEM public key ("BEGIN PUBLIC KEY") or certificate: RSA of
 * SSE_JWT_MIN_RSA_BITS..SSE_JWT_MAX_RSA_BITS bits (RS256) or EC on P-256
 * (ES256). Returns 0 and *out, or SSE_JWT_E_KEY_* (a private key, not PEM,
 * another key type, a short RSA key, another curve); *out untouched then. */
int sse_jwt_key_pem(const char *pem, size_t n, sse_jwt_key **out);

/* The algorithm (SSE_JWT_*) the key verifies. */
int sse_jwt_key_alg(const sse_jwt_key *k);

/* Frees the key (NULL is fine). */
void sse_jwt_key_free(sse_jwt_key *k);

/* Verifies tok[0..n) against keys[0..nkeys) (those of the token's algorithm
 * are tried in order) with the checks in *chk. scratch must hold at least n
 * bytes. Returns 0 and fills *out, or a negative code with *out untouched. */
int sse_jwt_verify(const char *tok, size_t n, sse_jwt_key *const *keys, size_t nkeys,
                   const sse_jwt_check *chk, char *scratch, size_t cap,
                   sse_jwt_claims *out);

/* The message of a result code ("token expired"); never NULL. */
const char *sse_jwt_message(int code);

/* The JWS name of an algorithm ("HS256"), or NULL for anything else. */
const char *sse_jwt_alg_name(int alg);

/* The SSE_JWT_* named by name[0..n) ("HS256"), or 0. */
int sse_jwt_alg_parse(const char *name, size_t n);

/* Strict base64url (no padding, canonical final character) of in[0..n)
 * into out (room for n * 3 / 4 bytes); returns the decoded length, or -1
 * with out partly written. Exposed for the tests. */
long sse_jwt_b64url_decode(const char *in, size_t n, unsigned char *out);

#endif
