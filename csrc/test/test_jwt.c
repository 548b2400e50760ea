/* test_jwt.c - unit tests of json.c and jwt.c (run under ASan+UBSan by
 * `make ctest`). Tokens are signed here with libcrypto's one-shot calls
 * (HMAC, EVP_DigestSign), not with the code under test. */
#include "check.h"
#include "json.h"
#include "jwt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

static const char SECRET[] = "0123456789abcdef0123456789abcdef";
static const double NOW = 1800000000;

/* --- json ------------------------------------------------------------- */

static int check(const char *s) {
  sse_json_val v;
  return sse_json_check(s, strlen(s), 4, &v);
}

static void test_json_check(void) {
  static const char *const good[] = {
    "{}", "[]", " {\"a\" : [1, -0.5e+3, true, false, null, \"x\"]} ", "0", "-0", "1E9",
    "\"\\u00e9\\ud83d\\ude00\\/\\b\\f\\n\\r\\t\"", "\"\xc3\xa9\xf0\x9f\x98\x80\"",
    "{\"a\":{\"a\":1},\"b\":{\"a\":2}}", "[[[[1]]]]",
  };
  for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
    if (check(good[i]) != 0) fprintf(stderr, "refused: %s\n", good[i]);
    CHECK_INT(check(good[i]), 0);
  }
  static const char *const bad[] = {
    "", " ", "{", "}", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "[1 2]", "01", "1.", ".5",
    "1e", "+1", "-", "tru", "nul", "True", "{a:1}", "'a'", "\"a", "\"\\x\"", "\"\\u12\"",
    "\"\\ud800\"", "\"\\udc00\"", "\"\\ud800\\u0041\"", "\"\x01\"", "\"\xc0\xaf\"",
    "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xe2\x82\"", "\"\xff\"", "{} {}", "1 x",
    "[1]]", "{\"a\":1}}", "\xef\xbb\xbf{}", "NaN", "Infinity",
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    if (check(bad[i]) != SSE_JSON_E_SYNTAX) fprintf(stderr, "accepted: %s\n", bad[i]);
    CHECK_INT(check(bad[i]), SSE_JSON_E_SYNTAX);
  }
  CHECK_INT(check("[[[[[1]]]]]"), SSE_JSON_E_DEPTH);
  CHECK_INT(check("{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}"), SSE_JSON_E_DEPTH);
  CHECK_INT(check("{\"a\":1,\"b\":2,\"a\":3}"), SSE_JSON_E_DUP);
  CHECK_INT(check("{\"a\":1,\"\\u0061\":2}"), SSE_JSON_E_DUP);
  CHECK_INT(check("[{\"x\":{\"k\":1,\"k\":1}}]"), SSE_JSON_E_DUP);
  CHECK_INT(check("{\"ab\":1,\"a\":2,\"a\\u0062\":3}"), SSE_JSON_E_DUP);
  CHECK_INT(check("{\"ab\":1,\"a\":2,\"b\":3}"), 0);
  sse_json_val v = {99, NULL, 7};
  CHECK_INT(sse_json_check("{,}", 3, 4, &v), SSE_JSON_E_SYNTAX);
  CHECK(v.type == 99 && v.p == NULL && v.n == 7); /* untouched on failure */
}

static void test_json_read(void) {
  const char *s = " { \"k\\u0031\" : [ \"a\" , 2 ] , \"n\":-12.5e1,\"t\":true } ";
  sse_json_val top, k, v, e;
  CHECK_INT(sse_json_check(s, strlen(s), 4, &top), 0);
  CHECK_INT(top.type, SSE_JSON_OBJECT);
  size_t pos = 0, ep = 0;
  CHECK(sse_json_next_member(&top, &pos, &k, &v));
  CHECK(sse_json_str_eq(&k, "k1", 2) && !sse_json_str_eq(&k, "k", 1));
  CHECK_INT(sse_json_str_len(&k), 2);
  CHECK_INT(v.type, SSE_JSON_ARRAY);
  CHECK(sse_json_next_elem(&v, &ep, &e) && e.type == SSE_JSON_STRING && sse_json_str_eq(&e, "a", 1));
  CHECK(sse_json_next_elem(&v, &ep, &e) && e.type == SSE_JSON_NUMBER && e.n == 1);
  CHECK(!sse_json_next_elem(&v, &ep, &e));
  CHECK(sse_json_next_member(&top, &pos, &k, &v) && v.type == SSE_JSON_NUMBER);
  double d = 0;
  CHECK(sse_json_number(&v, &d) == 0 && d == -125.0);
  CHECK(sse_json_next_member(&top, &pos, &k, &v) && v.type == SSE_JSON_TRUE);
  CHECK(!sse_json_next_member(&top, &pos, &k, &v));
  sse_json_val ci = {SSE_JSON_STRING, "jWt", 3};
  CHECK(sse_json_str_eq_ci(&ci, "JWT", 3) && !sse_json_str_eq(&ci, "JWT", 3));

  struct { const char *t; double want; int rc; } nums[] = {
    {"1800000000", 1800000000.0, 0}, {"1.8e9", 1800000000.0, 0}, {"18000000000e-1", 1800000000.0, 0},
    {"0", 0, 0}, {"-0.25", -0.25, 0}, {"0.000001", 1e-6, 0}, {"1e400", 0, -1}, {"-1e400", 0, -1},
    {"1e-400", 0, 0}, {"12345678901234567890123", 1.2345678901234568e22, 0},
  };
  for (size_t i = 0; i < sizeof nums / sizeof nums[0]; i++) {
    sse_json_val n;
    CHECK_INT(sse_json_check(nums[i].t, strlen(nums[i].t), 1, &n), 0);
    double x = 12345;
    CHECK_INT(sse_json_number(&n, &x), nums[i].rc);
    if (nums[i].rc == 0) {
      double rel = nums[i].want ? (x - nums[i].want) / nums[i].want : x;
      if (!(rel < 1e-15 && rel > -1e-15)) fprintf(stderr, "%s -> %.17g\n", nums[i].t, x);
      CHECK(rel < 1e-15 && rel > -1e-15);
    } else {
      CHECK(x == 12345);
    }
  }
}

/* --- base64url --------------------------------------------------------- */

static void test_b64(void) {
  unsigned char out[16];
  CHECK_INT(sse_jwt_b64url_decode("", 0, out), 0);
  CHECK_INT(sse_jwt_b64url_decode("YQ", 2, out), 1);
  CHECK(out[0] == 'a');
  CHECK_INT(sse_jwt_b64url_decode("YWI", 3, out), 2);
  CHECK(memcmp(out, "ab", 2) == 0);
  CHECK_INT(sse_jwt_b64url_decode("YWJj", 4, out), 3);
  CHECK_INT(sse_jwt_b64url_decode("-_-_", 4, out), 3);
  CHECK(out[0] == 0xfb && out[1] == 0xff && out[2] == 0xbf);
  CHECK_INT(sse_jwt_b64url_decode("YR", 2, out), -1);   /* unused bits set */
  CHECK_INT(sse_jwt_b64url_decode("YWJ", 3, out), -1);  /* unused bits set */
  CHECK_INT(sse_jwt_b64url_decode("YWJjZ", 5, out), -1); /* length 1 mod 4 */
  CHECK_INT(sse_jwt_b64url_decode("YQ==", 4, out), -1);
  CHECK_INT(sse_jwt_b64url_decode("Y+Q", 3, out), -1);
  CHECK_INT(sse_jwt_b64url_decode("Y/Q", 3, out), -1);
}

/* --- tokens ------------------------------------------------------------ */

static size_t b64enc(const unsigned char *in, size_t n, char *out) {
  static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                 (i + 2 < n ? in[i + 2] : 0);
    size_t k = n - i >= 3 ? 4 : n - i + 1;
    for (size_t j = 0; j < k; j++) out[o++] = A[v >> (18 - 6 * j) & 63];
  }
  out[o] = 0;
  return o;
}

/* "b64(header).b64(payload)" into buf; returns its length. */
static size_t signing_input(const char *header, const char *payload, char *buf) {
  size_t n = b64enc((const unsigned char *)header, strlen(header), buf);
  buf[n++] = '.';
  n += b64enc((const unsigned char *)payload, strlen(payload), buf + n);
  return n;
}

static char *hs256(const char *header, const char *payload, const char *secret) {
  char *buf = malloc(4096);
  size_t n = signing_input(header, payload, buf);
  unsigned char mac[32];
  unsigned len = 0;
  HMAC(EVP_sha256(), secret, (int)strlen(secret), (unsigned char *)buf, n, mac, &len);
  buf[n++] = '.';
  b64enc(mac, len, buf + n);
  return buf;
}

static int verify(const char *tok, sse_jwt_key *const *keys, size_t nk, const sse_jwt_check *chk,
                  sse_jwt_claims *c) {
  static char scratch[SSE_JWT_MAX_TOKEN_BYTES]; /* c->json points into it */
  size_t n = strlen(tok);
  return sse_jwt_verify(tok, n, keys, nk, chk, scratch, sizeof scratch, c);
}

static sse_jwt_check default_check(void) {
  sse_jwt_check chk;
  memset(&chk, 0, sizeof chk);
  chk.algs = SSE_JWT_ALL_ALGS;
  chk.max_token_bytes = SSE_JWT_MAX_TOKEN_BYTES;
  chk.now = NOW;
  chk.leeway = 30;
  chk.require_exp = 1;
  return chk;
}

static void test_hs256(void) {
  sse_jwt_key *k = NULL;
  CHECK_INT(sse_jwt_key_secret("short", 5, &k), SSE_JWT_E_KEY_SHORT);
  CHECK(k == NULL);
  CHECK_INT(sse_jwt_key_secret(SECRET, 32, &k), 0);
  CHECK_INT(sse_jwt_key_alg(k), SSE_JWT_HS256);
  sse_jwt_check chk = default_check();
  sse_jwt_claims c;
  const char *pay = "{\"exp\":1800000600,\"nbf\":1799999990,\"iat\":1799999999,\"sub\":\"u\"}";
  char *good = hs256("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", pay, SECRET);
  char *wrong = hs256("{\"alg\":\"HS256\"}", pay, "0123456789abcdef0123456789abcdeX");
  /* the same key verifies again and again, wrong signatures in between */
  for (int i = 0; i < 3; i++) {
    memset(&c, 0, sizeof c);
    CHECK_INT(verify(good, &k, 1, &chk, &c), 0);
    CHECK_INT(c.alg, SSE_JWT_HS256);
    CHECK(c.has_exp && c.exp == 1800000600 && c.has_nbf && c.nbf == 1799999990 && c.has_iat);
    CHECK(c.json_len == strlen(pay) && memcmp(c.json, pay, c.json_len) == 0);
    CHECK_INT(verify(wrong, &k, 1, &chk, &c), SSE_JWT_E_SIGNATURE);
  }
  /* a failed verification leaves *out alone */
  memset(&c, 0x5a, sizeof c);
  sse_jwt_claims before = c;
  CHECK_INT(verify(wrong, &k, 1, &chk, &c), SSE_JWT_E_SIGNATURE);
  CHECK(memcmp(&c, &before, sizeof c) == 0);

  chk.algs = SSE_JWT_RS256;
  CHECK_INT(verify(good, &k, 1, &chk, &c), SSE_JWT_E_ALG_NOT_ALLOWED);
  chk = default_check();
  CHECK_INT(verify(good, NULL, 0, &chk, &c), SSE_JWT_E_ALG_NOT_ALLOWED);
  chk.now = 1800000600 + 30;
  CHECK_INT(verify(good, &k, 1, &chk, &c), SSE_JWT_E_EXPIRED);
  chk.now = 1799999990 - 31;
  CHECK_INT(verify(good, &k, 1, &chk, &c), SSE_JWT_E_NOT_YET_VALID);
  chk = default_check();
  chk.max_token_bytes = strlen(good) - 1;
  CHECK_INT(verify(good, &k, 1, &chk, &c), SSE_JWT_E_TOO_LARGE);

  /* misuse */
  chk = default_check();
  char scratch[8];
  CHECK_INT(sse_jwt_verify(good, strlen(good), &k, 1, &chk, scratch, sizeof scratch, &c),
               SSE_JWT_E_INVAL);
  chk.now = 0.0 / 0.0;
  CHECK_INT(verify(good, &k, 1, &chk, &c), SSE_JWT_E_INVAL);
  chk = default_check();
  chk.leeway = -1;
  CHECK_INT(verify(good, &k, 1, &chk, &c), SSE_JWT_E_INVAL);

  /* issuer and audience */
  chk = default_check();
  char *aud = hs256("{\"alg\":\"HS256\"}",
                    "{\"exp\":1800000600,\"iss\":\"a\\u0075th\",\"aud\":[\"x\",\"hub\"]}", SECRET);
  CHECK_INT(verify(aud, &k, 1, &chk, &c), SSE_JWT_E_AUDIENCE);
  chk.aud = "hub";
  chk.aud_len = 3;
  CHECK_INT(verify(aud, &k, 1, &chk, &c), 0);
  chk.iss = "auth";
  chk.iss_len = 4;
  CHECK_INT(verify(aud, &k, 1, &chk, &c), 0);
  chk.iss_len = 3; /* "aut" */
  CHECK_INT(verify(aud, &k, 1, &chk, &c), SSE_JWT_E_ISSUER);
  chk.iss_len = 4;
  chk.aud = "hu";
  chk.aud_len = 2;
  CHECK_INT(verify(aud, &k, 1, &chk, &c), SSE_JWT_E_AUDIENCE);

  free(good);
  free(wrong);
  free(aud);
  sse_jwt_key_free(k);
}

static void test_shapes(void) {
  sse_jwt_key *k = NULL;
  CHECK_INT(sse_jwt_key_secret(SECRET, 32, &k), 0);
  sse_jwt_check chk = default_check();
  sse_jwt_claims c;
  CHECK_INT(verify("", &k, 1, &chk, &c), SSE_JWT_E_EMPTY);
  CHECK_INT(verify("a.b", &k, 1, &chk, &c), SSE_JWT_E_SEGMENTS);
  CHECK_INT(verify("a.b.c.d", &k, 1, &chk, &c), SSE_JWT_E_SEGMENTS);
  CHECK_INT(verify(".b.c", &k, 1, &chk, &c), SSE_JWT_E_SEGMENTS);
  CHECK_INT(verify("YQ.YQ.e", &k, 1, &chk, &c), SSE_JWT_E_B64_SIGNATURE);
  CHECK_INT(verify("a.cd.ef", &k, 1, &chk, &c), SSE_JWT_E_B64_HEADER);
  CHECK_INT(verify("YQ.c.ef", &k, 1, &chk, &c), SSE_JWT_E_B64_PAYLOAD);

  struct { const char *h, *p; int rc; } t[] = {
    {"{\"alg\":\"HS256\"}", "{\"exp\":1800000600}", 0},
    {"{\"alg\":\"none\"}", "{\"exp\":1800000600}", SSE_JWT_E_ALG_NONE},
    {"{\"alg\":\"NONE\"}", "{\"exp\":1800000600}", SSE_JWT_E_ALG_NONE},
    {"{\"alg\":\"hs256\"}", "{\"exp\":1800000600}", SSE_JWT_E_ALG_UNSUPPORTED},
    {"{\"alg\":\"HS256 \"}", "{\"exp\":1800000600}", SSE_JWT_E_ALG_UNSUPPORTED},
    {"{\"alg\":null}", "{\"exp\":1800000600}", SSE_JWT_E_ALG_TYPE},
    {"{\"alg\":\"HS256\",\"typ\":1}", "{\"exp\":1800000600}", SSE_JWT_E_TYP},
    {"{\"alg\":\"HS256\",\"x5u\":\"http://x\"}", "{\"exp\":1800000600}", SSE_JWT_E_HEADER_MEMBER},
    {"{\"alg\":\"HS256\",\"b64\":false}", "{\"exp\":1800000600}", SSE_JWT_E_HEADER_MEMBER},
    {"{\"alg\":\"HS256\",\"x\":{\"y\":{\"z\":{\"w\":{}}}}}", "{\"exp\":1800000600}",
     SSE_JWT_E_HEADER_JSON},
    {"{\"alg\":\"HS256\",\"x\":{\"y\":1,\"y\":2}}", "{\"exp\":1800000600}", SSE_JWT_E_HEADER_DUP},
    {"{\"alg\":\"HS256\"}", "{\"exp\":\"1800000600\"}", SSE_JWT_E_EXP_TYPE},
    {"{\"alg\":\"HS256\"}", "{\"exp\":1800000600,\"nbf\":null}", SSE_JWT_E_NBF_TYPE},
    {"{\"alg\":\"HS256\"}", "{\"exp\":1800000600,\"aud\":[]}", SSE_JWT_E_AUDIENCE},
    {"{\"alg\":\"HS256\"}", "{\"exp\":1800000600,\"aud\":{}}", SSE_JWT_E_AUD_TYPE},
    {"{\"alg\":\"HS256\"}", "{\"exp\":1800000600,\"x\":1,\"x\":1}", SSE_JWT_E_CLAIMS_DUP},
    {"{\"alg\":\"HS256\"}", "\"str\"", SSE_JWT_E_CLAIMS_OBJECT},
    {"{\"alg\":\"HS256\"}", "{\"exp\":1800000600} x", SSE_JWT_E_CLAIMS_JSON},
    {"{\"alg\":\"HS256\"}", "{}", SSE_JWT_E_EXP_MISSING},
    {"{\"alg\":\"HS256\"}", "{\"exp\":1799999970}", SSE_JWT_E_EXPIRED},
    {"{\"alg\":\"HS256\"}", "{\"exp\":1799999971}", 0},
  };
  for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
    char *tok = hs256(t[i].h, t[i].p, SECRET);
    int rc = verify(tok, &k, 1, &chk, &c);
    if (rc != t[i].rc) fprintf(stderr, "case %zu: %s\n", i, sse_jwt_message(rc));
    CHECK_INT(rc, t[i].rc);
    free(tok);
  }
  chk.require_exp = 0;
  char *tok = hs256("{\"alg\":\"HS256\"}", "{}", SECRET);
  CHECK_INT(verify(tok, &k, 1, &chk, &c), 0);
  CHECK(!c.has_exp && !c.has_nbf && !c.has_iat);
  free(tok);
  sse_jwt_key_free(k);

  for (int code = 0; code >= SSE_JWT_E_LAST_; code--) CHECK(sse_jwt_message(code)[0] != 0);
  CHECK(strcmp(sse_jwt_message(SSE_JWT_E_EXPIRED), "token expired") == 0);
  CHECK(strcmp(sse_jwt_message(SSE_JWT_E_KEY_CURVE), "EC key not on curve P-256") == 0);
  CHECK(strcmp(sse_jwt_message(1), "unknown error") == 0);
  CHECK(strcmp(sse_jwt_message(SSE_JWT_E_LAST_ - 1), "unknown error") == 0);
}

/* Signs "h.p" with pkey; for EC converts the DER signature to r||s. */
static char *pk_sign(EVP_PKEY *pkey, const char *header, const char *payload, int ec) {
  char *buf = malloc(4096);
  size_t n = signing_input(header, payload, buf);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  unsigned char sig[512];
  size_t sl = sizeof sig;
  CHECK(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pkey) == 1);
  CHECK(EVP_DigestSign(ctx, sig, &sl, (unsigned char *)buf, n) == 1);
  EVP_MD_CTX_free(ctx);
  if (ec) {
    const unsigned char *p = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sl);
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    BN_bn2binpad(r, sig, 32);
    BN_bn2binpad(s, sig + 32, 32);
    sl = 64;
    ECDSA_SIG_free(es);
  }
  buf[n++] = '.';
  b64enc(sig, sl, buf + n);
  return buf;
}

/* PEM of the public half of pkey (malloc'd, NUL-terminated). */
static char *pub_pem(EVP_PKEY *pkey) {
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(b, pkey);
  char *data;
  long n = BIO_get_mem_data(b, &data);
  char *out = malloc((size_t)n + 1);
  memcpy(out, data, (size_t)n);
  out[n] = 0;
  BIO_free(b);
  return out;
}

static void test_pkey(void) {
  EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  EVP_PKEY *ec384 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-384");
  CHECK(rsa && ec && ec384);
  char *rsa_pem = pub_pem(rsa), *ec_pem = pub_pem(ec), *ec384_pem = pub_pem(ec384);
  sse_jwt_key *keys[2] = {NULL, NULL}, *bad = NULL;
  CHECK_INT(sse_jwt_key_pem(rsa_pem, strlen(rsa_pem), &keys[0]), 0);
  CHECK_INT(sse_jwt_key_pem(ec_pem, strlen(ec_pem), &keys[1]), 0);
  CHECK_INT(sse_jwt_key_alg(keys[0]), SSE_JWT_RS256);
  CHECK_INT(sse_jwt_key_alg(keys[1]), SSE_JWT_ES256);
  CHECK_INT(sse_jwt_key_pem(ec384_pem, strlen(ec384_pem), &bad), SSE_JWT_E_KEY_CURVE);
  CHECK_INT(sse_jwt_key_pem("x", 1, &bad), SSE_JWT_E_KEY_PEM);
  CHECK_INT(sse_jwt_key_pem(rsa_pem, 40, &bad), SSE_JWT_E_KEY_PEM);
  CHECK(bad == NULL);

  const char *pay = "{\"exp\":1800000600}";
  char *rs = pk_sign(rsa, "{\"alg\":\"RS256\"}", pay, 0);
  char *es = pk_sign(ec, "{\"alg\":\"ES256\"}", pay, 1);
  char *es_as_rs = pk_sign(ec, "{\"alg\":\"RS256\"}", pay, 1);
  sse_jwt_check chk = default_check();
  sse_jwt_claims c;
  for (int i = 0; i < 2; i++) {
    CHECK_INT(verify(rs, keys, 2, &chk, &c), 0);
    CHECK_INT(c.alg, SSE_JWT_RS256);
    CHECK_INT(verify(es, keys, 2, &chk, &c), 0);
    CHECK_INT(c.alg, SSE_JWT_ES256);
  }
  CHECK_INT(verify(es_as_rs, keys, 2, &chk, &c), SSE_JWT_E_SIGNATURE);
  CHECK_INT(verify(rs, keys + 1, 1, &chk, &c), SSE_JWT_E_ALG_NOT_ALLOWED);
  /* flip one bit of each byte of the signatures in turn: never valid */
  char *toks[2] = {rs, es};
  for (int t = 0; t < 2; t++) {
    char *sig = strrchr(toks[t], '.') + 1;
    size_t sl = strlen(sig);
    for (size_t i = 0; i < sl; i++) {
      char orig = sig[i];
      sig[i] = orig == 'A' ? 'B' : 'A';
      int rc = verify(toks[t], keys, 2, &chk, &c);
      CHECK(rc == SSE_JWT_E_SIGNATURE || rc == SSE_JWT_E_B64_SIGNATURE);
      sig[i] = orig;
    }
    CHECK_INT(verify(toks[t], keys, 2, &chk, &c), 0);
  }
  /* RFC 8017 8.2.2: an RSA signature shorter than the modulus is invalid,
   * even the valid one with its leading zero byte left out (jwt.c checks
   * the length itself; OpenSSL 3 refuses it too): sign until a signature
   * starts with 0x00 */
  int stripped = 0;
  for (int i = 0; i < 5000 && !stripped; i++) {
    char p2[64];
    snprintf(p2, sizeof p2, "{\"exp\":1800000600,\"n\":%d}", i);
    char *buf = malloc(4096);
    size_t n = signing_input("{\"alg\":\"RS256\"}", p2, buf);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char sig[512];
    size_t sl = sizeof sig;
    CHECK(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, rsa) == 1);
    CHECK(EVP_DigestSign(ctx, sig, &sl, (unsigned char *)buf, n) == 1);
    EVP_MD_CTX_free(ctx);
    if (sig[0] == 0) {
      stripped = 1;
      buf[n++] = '.';
      b64enc(sig, sl, buf + n);
      CHECK_INT(verify(buf, keys, 2, &chk, &c), 0);
      b64enc(sig + 1, sl - 1, buf + n);
      CHECK_INT(verify(buf, keys, 2, &chk, &c), SSE_JWT_E_SIGNATURE);
    }
    free(buf);
  }
  CHECK(stripped);
  /* ES256 with r or s zero, or all-ones: invalid, never a crash */
  char *zero = hs256("{\"alg\":\"ES256\"}", pay, SECRET); /* replace its signature */
  char *dot = strrchr(zero, '.') + 1;
  unsigned char raw[64];
  memset(raw, 0, 64);
  b64enc(raw, 64, dot);
  CHECK_INT(verify(zero, keys, 2, &chk, &c), SSE_JWT_E_SIGNATURE);
  memset(raw, 0xff, 64);
  b64enc(raw, 64, dot);
  CHECK_INT(verify(zero, keys, 2, &chk, &c), SSE_JWT_E_SIGNATURE);
  free(zero);

  free(rs);
  free(es);
  free(es_as_rs);
  free(rsa_pem);
  free(ec_pem);
  free(ec384_pem);
  sse_jwt_key_free(keys[0]);
  sse_jwt_key_free(keys[1]);
  EVP_PKEY_free(rsa);
  EVP_PKEY_free(ec);
  EVP_PKEY_free(ec384);
}

int main(void) {
  test_json_check();
  test_json_read();
  test_b64();
  test_hs256();
  test_shapes();
  test_pkey();
  return check_summary("test_jwt");
}
