/* jwt.c - JSON Web Token verification (see jwt.h). */
#include "jwt.h"
#include "json.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#define HS256_LEN 32
#define ES256_LEN 64
#define HEADER_DEPTH 4

struct sse_jwt_key {
  int alg;
  size_t sig_len;     /* the only signature length this key accepts */
  EVP_MAC_CTX *mac;   /* HS256: holds the secret; re-initialised per use */
  EVP_PKEY *pkey;     /* RS256, ES256 */
  EVP_MD *md;         /* RS256, ES256: SHA-256, fetched once */
};

static const char *const messages[] = {
  "ok",
  "empty token",
  "token too large",
  "token must have three segments",
  "bad base64url in header",
  "bad base64url in payload",
  "bad base64url in signature",
  "header too large",
  "header is not valid JSON",
  "header must be a JSON object",
  "duplicate member in header",
  "unsupported header member",
  "header has no 'alg'",
  "header 'alg' must be a string",
  "alg 'none' refused",
  "unsupported alg",
  "alg not allowed",
  "header 'typ' must be \"JWT\"",
  "header 'kid' must be a string",
  "bad signature",
  "claims are not valid JSON",
  "claims must be a JSON object",
  "duplicate member in claims",
  "claims nested too deep",
  "claim 'exp' must be a number",
  "claim 'nbf' must be a number",
  "claim 'iat' must be a number",
  "claim 'iss' must be a string",
  "claim 'sub' must be a string",
  "claim 'jti' must be a string",
  "claim 'aud' must be a string or an array of strings",
  "token has no 'exp'",
  "token expired",
  "token not yet valid",
  "wrong issuer",
  "wrong audience",
  "crypto failure",
  "invalid argument",
  "secret shorter than 32 bytes",
  "not a PEM public key or certificate",
  "a private key: give the public key",
  "unsupported key type (RSA or EC P-256)",
  "RSA key not within 2048..8192 bits",
  "EC key not on curve P-256",
};

const char *sse_jwt_message(int code) {
  if (code > 0 || code < SSE_JWT_E_LAST_) return "unknown error";
  return messages[-code];
}

const char *sse_jwt_alg_name(int alg) {
  switch (alg) {
  case SSE_JWT_HS256: return "HS256";
  case SSE_JWT_RS256: return "RS256";
  case SSE_JWT_ES256: return "ES256";
  default: return NULL;
  }
}

int sse_jwt_alg_parse(const char *name, size_t n) {
  for (int a = 1; a <= SSE_JWT_ES256; a <<= 1)
    if (n == 5 && memcmp(name, sse_jwt_alg_name(a), 5) == 0) return a;
  return 0;
}

/* --- base64url --------------------------------------------------------- */

static int b64v(unsigned c) {
  if (c >= 'A' && c <= 'Z') return (int)(c - 'A');
  if (c >= 'a' && c <= 'z') return (int)(c - 'a' + 26);
  if (c >= '0' && c <= '9') return (int)(c - '0' + 52);
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

long sse_jwt_b64url_decode(const char *in, size_t n, unsigned char *out) {
  if (n % 4 == 1 || n > (size_t)LONG_MAX) return -1;
  unsigned acc = 0, bits = 0;
  size_t o = 0;
  for (size_t i = 0; i < n; i++) {
    int v = b64v((unsigned char)in[i]);
    if (v < 0) return -1;
    acc = acc << 6 | (unsigned)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = (unsigned char)(acc >> bits);
      acc &= (1u << bits) - 1;
    }
  }
  if (acc) return -1; /* unused bits of the final character must be zero */
  return (long)o;
}

/* Decoded length of n base64url characters (n % 4 != 1). */
static size_t b64_len(size_t n) { return n / 4 * 3 + (n % 4 ? n % 4 - 1 : 0); }

/* --- keys ------------------------------------------------------------- */

static sse_jwt_key *key_alloc(int alg, size_t sig_len) {
  sse_jwt_key *k = calloc(1, sizeof *k);
  if (k) {
    k->alg = alg;
    k->sig_len = sig_len;
  }
  return k;
}

void sse_jwt_key_free(sse_jwt_key *k) {
  if (!k) return;
  EVP_MAC_CTX_free(k->mac);
  EVP_PKEY_free(k->pkey);
  EVP_MD_free(k->md);
  free(k);
}

int sse_jwt_key_alg(const sse_jwt_key *k) { return k->alg; }

int sse_jwt_key_secret(const void *secret, size_t n, sse_jwt_key **out) {
  if (!secret || !out || n > INT_MAX) return SSE_JWT_E_INVAL;
  if (n < SSE_JWT_MIN_SECRET_BYTES) return SSE_JWT_E_KEY_SHORT;
  sse_jwt_key *k = key_alloc(SSE_JWT_HS256, HS256_LEN);
  EVP_MAC *mac = k ? EVP_MAC_fetch(NULL, "HMAC", NULL) : NULL;
  if (mac) k->mac = EVP_MAC_CTX_new(mac);
  EVP_MAC_free(mac); /* the context keeps its own reference */
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
    OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
    OSSL_PARAM_construct_end(),
  };
  if (!k || !k->mac || EVP_MAC_init(k->mac, secret, n, params) != 1) {
    sse_jwt_key_free(k);
    ERR_clear_error();
    return SSE_JWT_E_CRYPTO;
  }
  *out = k;
  return 0;
}

/* 1 when needle occurs in h[0..n). */
static int contains(const char *h, size_t n, const char *needle) {
  size_t m = strlen(needle);
  for (size_t i = 0; i + m <= n; i++)
    if (memcmp(h + i, needle, m) == 0) return 1;
  return 0;
}

/* PEM callback: never ask for a passphrase (on a terminal or elsewhere). */
static int no_passphrase(char *buf, int size, int rwflag, void *u) {
  (void)buf, (void)size, (void)rwflag, (void)u;
  return -1;
}

/* The public key in the PEM text (a PUBLIC KEY block or a certificate). */
static EVP_PKEY *read_public_pem(const char *pem, size_t n) {
  BIO *bio = BIO_new_mem_buf(pem, (int)n);
  EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, no_passphrase, NULL) : NULL;
  BIO_free(bio);
  if (!pk && (bio = BIO_new_mem_buf(pem, (int)n))) {
    X509 *x = PEM_read_bio_X509(bio, NULL, no_passphrase, NULL);
    if (x) pk = X509_get_pubkey(x);
    X509_free(x);
    BIO_free(bio);
  }
  return pk;
}

int sse_jwt_key_pem(const char *pem, size_t n, sse_jwt_key **out) {
  if (!pem || !out || n > INT_MAX) return SSE_JWT_E_INVAL;
  if (contains(pem, n, "PRIVATE KEY-----")) return SSE_JWT_E_KEY_PRIVATE;
  EVP_PKEY *pk = read_public_pem(pem, n);
  int rc = 0, alg = 0;
  size_t sig_len = 0;
  if (!pk) {
    rc = SSE_JWT_E_KEY_PEM;
  } else if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA) {
    int bits = EVP_PKEY_get_bits(pk);
    if (bits < SSE_JWT_MIN_RSA_BITS || bits > SSE_JWT_MAX_RSA_BITS) rc = SSE_JWT_E_KEY_RSA_BITS;
    alg = SSE_JWT_RS256;
    sig_len = (size_t)EVP_PKEY_get_size(pk);
  } else if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC) {
    char group[64];
    size_t glen = 0;
    if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &glen) != 1 || strcmp(group, "prime256v1") != 0)
      rc = SSE_JWT_E_KEY_CURVE;
    alg = SSE_JWT_ES256;
    sig_len = ES256_LEN;
  } else {
    rc = SSE_JWT_E_KEY_TYPE;
  }
  sse_jwt_key *k = NULL;
  if (rc == 0) {
    k = key_alloc(alg, sig_len);
    if (k) k->md = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!k || !k->md) rc = SSE_JWT_E_CRYPTO;
  }
  if (rc) {
    sse_jwt_key_free(k);
    EVP_PKEY_free(pk);
  } else {
    k->pkey = pk;
    *out = k;
  }
  ERR_clear_error();
  return rc;
}

/* --- signatures ------------------------------------------------------- */

/* DER INTEGER of the unsigned big-endian b[0..n) at out; returns its size. */
static size_t der_uint(unsigned char *out, const unsigned char *b, size_t n) {
  while (n > 1 && b[0] == 0) b++, n--;
  size_t pad = b[0] & 0x80 ? 1 : 0;
  out[0] = 0x02;
  out[1] = (unsigned char)(n + pad);
  out[2] = 0;
  memcpy(out + 2 + pad, b, n);
  return 2 + pad + n;
}

/* 1 valid, 0 invalid, -1 libcrypto failed. */
static int check_hmac(sse_jwt_key *k, const char *in, size_t n, const unsigned char *sig) {
  unsigned char mac[EVP_MAX_MD_SIZE];
  size_t len = 0;
  if (EVP_MAC_init(k->mac, NULL, 0, NULL) != 1 ||
      EVP_MAC_update(k->mac, (const unsigned char *)in, n) != 1 ||
      EVP_MAC_final(k->mac, mac, &len, sizeof mac) != 1 || len != HS256_LEN)
    return -1;
  return CRYPTO_memcmp(mac, sig, HS256_LEN) == 0;
}

/* RS256 / ES256 (sig already in the form OpenSSL reads): 1, 0 or -1. */
static int check_pkey(sse_jwt_key *k, const char *in, size_t n, const unsigned char *sig,
                      size_t siglen) {
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  int rc = -1;
  /* EVP_DigestVerify: 1 valid, 0 invalid, < 0 for a signature it cannot
   * even read (bad DER, r or s out of range): invalid too */
  if (ctx && EVP_DigestVerifyInit(ctx, NULL, k->md, NULL, k->pkey) == 1)
    rc = EVP_DigestVerify(ctx, sig, siglen, (const unsigned char *)in, n) == 1;
  EVP_MD_CTX_free(ctx);
  return rc;
}

/* Whether the signature sig[0..len) of in[0..n) verifies with k: 1, 0, -1. */
static int check_sig(sse_jwt_key *k, const char *in, size_t n, const unsigned char *sig,
                     size_t len) {
  if (len != k->sig_len) return 0;
  if (k->alg == SSE_JWT_HS256) return check_hmac(k, in, n, sig);
  if (k->alg == SSE_JWT_RS256) return check_pkey(k, in, n, sig, len);
  unsigned char der[2 + 2 * (3 + ES256_LEN / 2)];
  size_t dl = der_uint(der + 2, sig, ES256_LEN / 2);
  dl += der_uint(der + 2 + dl, sig + ES256_LEN / 2, ES256_LEN / 2);
  der[0] = 0x30;
  der[1] = (unsigned char)dl;
  return check_pkey(k, in, n, der, dl + 2);
}

/* --- header and claims ------------------------------------------------- */

#define LIT(s) (s), (sizeof(s) - 1)

/* Members a verifier that ignored them would read the token wrongly by. */
static int refused_member(const sse_json_val *key) {
  static const char *const names[] = {"crit", "jku", "jwk", "x5u", "x5c",
                                      "cty", "b64", "zip", "enc"};
  for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
    if (sse_json_str_eq(key, names[i], strlen(names[i]))) return 1;
  return 0;
}

/* Reads the header JSON; returns 0 with *alg, or an error. */
static int read_header(const char *h, size_t n, int *alg) {
  sse_json_val top, k, v;
  int rc = sse_json_check(h, n, HEADER_DEPTH, &top);
  if (rc) return rc == SSE_JSON_E_DUP ? SSE_JWT_E_HEADER_DUP : SSE_JWT_E_HEADER_JSON;
  if (top.type != SSE_JSON_OBJECT) return SSE_JWT_E_HEADER_OBJECT;
  int found = 0, a = 0;
  size_t pos = 0;
  while (sse_json_next_member(&top, &pos, &k, &v)) {
    if (sse_json_str_eq(&k, LIT("alg"))) {
      if (v.type != SSE_JSON_STRING) return SSE_JWT_E_ALG_TYPE;
      found = 1;
      if (sse_json_str_eq_ci(&v, LIT("none"))) return SSE_JWT_E_ALG_NONE;
      for (int i = SSE_JWT_HS256; i <= SSE_JWT_ES256 && !a; i <<= 1)
        if (sse_json_str_eq(&v, sse_jwt_alg_name(i), 5)) a = i;
      if (!a) return SSE_JWT_E_ALG_UNSUPPORTED;
    } else if (sse_json_str_eq(&k, LIT("typ"))) {
      if (v.type != SSE_JSON_STRING || !sse_json_str_eq_ci(&v, LIT("JWT"))) return SSE_JWT_E_TYP;
    } else if (sse_json_str_eq(&k, LIT("kid"))) {
      if (v.type != SSE_JSON_STRING) return SSE_JWT_E_KID;
    } else if (refused_member(&k)) {
      return SSE_JWT_E_HEADER_MEMBER;
    }
  }
  if (!found) return SSE_JWT_E_ALG_MISSING;
  *alg = a;
  return 0;
}

/* Reads the claims JSON into *c (time claims) and checks types, then the
 * time, issuer and audience rules of chk. */
static int read_claims(const char *p, size_t n, const sse_jwt_check *chk, sse_jwt_claims *c) {
  sse_json_val top, k, v, iss = {0, NULL, 0}, aud = {0, NULL, 0};
  int rc = sse_json_check(p, n, SSE_JWT_MAX_DEPTH, &top);
  if (rc == SSE_JSON_E_DUP) return SSE_JWT_E_CLAIMS_DUP;
  if (rc == SSE_JSON_E_DEPTH) return SSE_JWT_E_CLAIMS_DEPTH;
  if (rc) return SSE_JWT_E_CLAIMS_JSON;
  if (top.type != SSE_JSON_OBJECT) return SSE_JWT_E_CLAIMS_OBJECT;
  size_t pos = 0;
  while (sse_json_next_member(&top, &pos, &k, &v)) {
    static const char *const times[] = {"exp", "nbf", "iat"};
    static const int type_err[] = {SSE_JWT_E_EXP_TYPE, SSE_JWT_E_NBF_TYPE, SSE_JWT_E_IAT_TYPE};
    int t = -1;
    for (int i = 0; i < 3; i++)
      if (sse_json_str_eq(&k, times[i], 3)) t = i;
    if (t >= 0) {
      double d;
      if (v.type != SSE_JSON_NUMBER || sse_json_number(&v, &d)) return type_err[t];
      if (t == 0) c->has_exp = 1, c->exp = d;
      if (t == 1) c->has_nbf = 1, c->nbf = d;
      if (t == 2) c->has_iat = 1, c->iat = d;
    } else if (sse_json_str_eq(&k, LIT("iss"))) {
      if (v.type != SSE_JSON_STRING) return SSE_JWT_E_ISS_TYPE;
      iss = v;
    } else if (sse_json_str_eq(&k, LIT("sub"))) {
      if (v.type != SSE_JSON_STRING) return SSE_JWT_E_SUB_TYPE;
    } else if (sse_json_str_eq(&k, LIT("jti"))) {
      if (v.type != SSE_JSON_STRING) return SSE_JWT_E_JTI_TYPE;
    } else if (sse_json_str_eq(&k, LIT("aud"))) {
      if (v.type == SSE_JSON_ARRAY) {
        sse_json_val e;
        size_t ep = 0;
        while (sse_json_next_elem(&v, &ep, &e))
          if (e.type != SSE_JSON_STRING) return SSE_JWT_E_AUD_TYPE;
      } else if (v.type != SSE_JSON_STRING) {
        return SSE_JWT_E_AUD_TYPE;
      }
      aud = v;
    }
  }
  if (chk->require_exp && !c->has_exp) return SSE_JWT_E_EXP_MISSING;
  if (c->has_exp && chk->now >= c->exp + chk->leeway) return SSE_JWT_E_EXPIRED;
  if (c->has_nbf && chk->now + chk->leeway < c->nbf) return SSE_JWT_E_NOT_YET_VALID;
  if (chk->iss && !(iss.type && sse_json_str_eq(&iss, chk->iss, chk->iss_len)))
    return SSE_JWT_E_ISSUER;
  /* RFC 7519 4.1.3: a token naming an audience is refused by a verifier
   * that does not identify itself with one of its values */
  if (aud.type || chk->aud) {
    int ok = 0;
    if (aud.type == SSE_JSON_STRING) {
      ok = chk->aud && sse_json_str_eq(&aud, chk->aud, chk->aud_len);
    } else if (aud.type == SSE_JSON_ARRAY && chk->aud) {
      sse_json_val e;
      size_t ep = 0;
      while (!ok && sse_json_next_elem(&aud, &ep, &e))
        ok = sse_json_str_eq(&e, chk->aud, chk->aud_len);
    }
    if (!ok) return SSE_JWT_E_AUDIENCE;
  }
  return 0;
}

/* --- verify ----------------------------------------------------------- */

static int verify(const char *tok, size_t n, sse_jwt_key *const *keys, size_t nkeys,
                  const sse_jwt_check *chk, char *scratch, sse_jwt_claims *out) {
  if (n == 0) return SSE_JWT_E_EMPTY;
  if (n > chk->max_token_bytes) return SSE_JWT_E_TOO_LARGE;
  const char *end = tok + n;
  const char *d1 = memchr(tok, '.', n);
  const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
  if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1))) return SSE_JWT_E_SEGMENTS;
  size_t hl = (size_t)(d1 - tok), pl = (size_t)(d2 - d1 - 1), sl = (size_t)(end - d2 - 1);
  if (!hl || !pl || !sl) return SSE_JWT_E_SEGMENTS;
  if (hl % 4 != 1 && b64_len(hl) > SSE_JWT_MAX_HEADER_BYTES) return SSE_JWT_E_HEADER_TOO_LARGE;

  unsigned char *hb = (unsigned char *)scratch;
  long hn = sse_jwt_b64url_decode(tok, hl, hb);
  if (hn < 0) return SSE_JWT_E_B64_HEADER;
  unsigned char *pb = hb + hn;
  long pn = sse_jwt_b64url_decode(d1 + 1, pl, pb);
  if (pn < 0) return SSE_JWT_E_B64_PAYLOAD;
  unsigned char *sb = pb + pn;
  long sn = sse_jwt_b64url_decode(d2 + 1, sl, sb);
  if (sn < 0) return SSE_JWT_E_B64_SIGNATURE;

  int alg = 0;
  int rc = read_header((const char *)hb, (size_t)hn, &alg);
  if (rc) return rc;
  if (!(chk->algs & (unsigned)alg)) return SSE_JWT_E_ALG_NOT_ALLOWED;

  int verdict = 0, tried = 0, failed = 0;
  for (size_t i = 0; i < nkeys && verdict != 1; i++) {
    if (keys[i]->alg != alg) continue;
    tried = 1;
    verdict = check_sig(keys[i], tok, (size_t)(d2 - tok), sb, (size_t)sn);
    if (verdict < 0) failed = 1;
  }
  if (!tried) return SSE_JWT_E_ALG_NOT_ALLOWED;
  if (verdict != 1) return failed ? SSE_JWT_E_CRYPTO : SSE_JWT_E_SIGNATURE;

  sse_jwt_claims c;
  memset(&c, 0, sizeof c);
  if ((rc = read_claims((const char *)pb, (size_t)pn, chk, &c))) return rc;
  c.alg = alg;
  c.json = (const char *)pb;
  c.json_len = (size_t)pn;
  *out = c;
  return 0;
}

int sse_jwt_verify(const char *tok, size_t n, sse_jwt_key *const *keys, size_t nkeys,
                   const sse_jwt_check *chk, char *scratch, size_t cap,
                   sse_jwt_claims *out) {
  if (!tok || !chk || !out || !scratch || cap < n || (nkeys && !keys) ||
      chk->max_token_bytes < 1 || chk->max_token_bytes > SSE_JWT_MAX_TOKEN_LIMIT ||
      !isfinite(chk->now) || !isfinite(chk->leeway) || chk->leeway < 0 ||
      (chk->iss && chk->iss_len > INT_MAX) || (chk->aud && chk->aud_len > INT_MAX))
    return SSE_JWT_E_INVAL;
  int rc = verify(tok, n, keys, nkeys, chk, scratch, out);
  ERR_clear_error();
  return rc;
}
