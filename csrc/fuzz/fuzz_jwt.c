/* fuzz_jwt.c - libFuzzer target for the JWT verifier (jwt.c) and the strict
 * JSON validator under it (json.c). Built by mk/auth.mk (it needs libcrypto):
 *   make build/lua5.4/fuzz/fuzz_jwt && build/lua5.4/fuzz/fuzz_jwt csrc/fuzz/corpus/jwt
 *
 * The first input byte picks a mode; the rest is its data:
 * 0  the data is a token, verified with an HS256, an RS256 and an ES256 key.
 *    A token that verifies must be signed: its HS256 MAC is recomputed here
 *    with HMAC(), and an RS256/ES256 one must have the signing input of one
 *    of the tokens this target signed itself (nobody else holds the keys).
 * 1  a valid token (one of three, signed at start-up) edited by the data:
 *    pairs (position, byte) overwrite, a final odd byte cuts it there. The
 *    result verifies only if it is the original token, byte for byte --
 *    never for a changed signature, header or payload.
 * 2  the data, split at the first 0xff, is a header and a payload JSON text,
 *    HS256-signed here: the verifier's answer must agree with json.c's
 *    verdict on each part, and a verified token's claims are its payload.
 * Every mode also runs sse_json_check on the data and walks what it accepts.
 * Any result code must be one of jwt.h's; sanitizers catch the rest. */
#include "json.h"
#include "jwt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REQUIRE(cond)                                                   \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf(stderr, "invariant failed at line %d: %s\n", __LINE__, #cond); \
      __builtin_trap();                                                 \
    }                                                                   \
  } while (0)

static const char SECRET[] = "fuzz-secret-of-at-least-32-bytes!";
#define MAXTOK 4096

static sse_jwt_key *keys[3];
static char valid[3][MAXTOK];
static size_t valid_len[3];
static char scratch[MAXTOK * 2 + 64];

static size_t b64enc(const unsigned char *in, size_t n, char *out) {
  static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  size_t o = 0;
  for (size_t i = 0; i < n; i += 3) {
    unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                 (i + 2 < n ? in[i + 2] : 0);
    size_t k = n - i >= 3 ? 4 : n - i + 1;
    for (size_t j = 0; j < k; j++) out[o++] = A[v >> (18 - 6 * j) & 63];
  }
  return o;
}

/* HS256 MAC of in[0..n) into mac (32 bytes). */
static void hmac(const char *in, size_t n, unsigned char *mac) {
  unsigned len = 0;
  HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const unsigned char *)in, n, mac, &len);
}

/* "b64(h).b64(p)" at out; returns the length. */
static size_t join(const char *h, size_t hn, const char *p, size_t pn, char *out) {
  size_t o = b64enc((const unsigned char *)h, hn, out);
  out[o++] = '.';
  return o + b64enc((const unsigned char *)p, pn, out + o);
}

static size_t sign_pkey(EVP_PKEY *pk, int ec, const char *h, const char *p, char *out) {
  size_t n = join(h, strlen(h), p, strlen(p), out);
  unsigned char sig[512];
  size_t sl = sizeof sig;
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  REQUIRE(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pk) == 1);
  REQUIRE(EVP_DigestSign(ctx, sig, &sl, (unsigned char *)out, n) == 1);
  EVP_MD_CTX_free(ctx);
  if (ec) {
    const unsigned char *q = sig;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &q, (long)sl);
    const BIGNUM *r, *s;
    ECDSA_SIG_get0(es, &r, &s);
    BN_bn2binpad(r, sig, 32);
    BN_bn2binpad(s, sig + 32, 32);
    ECDSA_SIG_free(es);
    sl = 64;
  }
  out[n++] = '.';
  return n + b64enc(sig, sl, out + n);
}

static sse_jwt_key *pem_key(EVP_PKEY *pk) {
  BIO *b = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(b, pk);
  char *pem;
  long n = BIO_get_mem_data(b, &pem);
  sse_jwt_key *k = NULL;
  REQUIRE(sse_jwt_key_pem(pem, (size_t)n, &k) == 0);
  BIO_free(b);
  return k;
}

static void init(void) {
  static int done = 0;
  if (done) return;
  done = 1;
  const char *pay = "{\"exp\":4000000000,\"sse\":{\"subscribe\":[\"a\",\"b/*\"]},\"aud\":\"hub\"}";
  REQUIRE(sse_jwt_key_secret(SECRET, strlen(SECRET), &keys[0]) == 0);
  EVP_PKEY *rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
  EVP_PKEY *ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
  REQUIRE(rsa && ec);
  keys[1] = pem_key(rsa);
  keys[2] = pem_key(ec);
  const char *h = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
  size_t n = join(h, strlen(h), pay, strlen(pay), valid[0]);
  unsigned char mac[32];
  hmac(valid[0], n, mac);
  valid[0][n++] = '.';
  valid_len[0] = n + b64enc(mac, 32, valid[0] + n);
  valid_len[1] = sign_pkey(rsa, 0, "{\"alg\":\"RS256\"}", pay, valid[1]);
  valid_len[2] = sign_pkey(ec, 1, "{\"alg\":\"ES256\",\"kid\":\"k\"}", pay, valid[2]);
  EVP_PKEY_free(rsa);
  EVP_PKEY_free(ec);
}

static sse_jwt_check check_opts(void) {
  sse_jwt_check chk;
  memset(&chk, 0, sizeof chk);
  chk.algs = SSE_JWT_ALL_ALGS;
  chk.max_token_bytes = MAXTOK * 2;
  chk.now = 1800000000;
  chk.leeway = 30;
  chk.require_exp = 0;
  chk.aud = "hub";
  chk.aud_len = 3;
  return chk;
}

static int run(const char *tok, size_t n, sse_jwt_claims *c) {
  sse_jwt_check chk = check_opts();
  int rc = sse_jwt_verify(tok, n, keys, 3, &chk, scratch, sizeof scratch, c);
  REQUIRE(rc <= 0 && rc >= SSE_JWT_E_LAST_ && rc != SSE_JWT_E_INVAL && rc != SSE_JWT_E_CRYPTO);
  REQUIRE(sse_jwt_message(rc)[0] != 0);
  if (rc == 0) {
    REQUIRE(c->alg == SSE_JWT_HS256 || c->alg == SSE_JWT_RS256 || c->alg == SSE_JWT_ES256);
    REQUIRE(c->json >= scratch && c->json + c->json_len <= scratch + sizeof scratch);
    sse_json_val top;
    REQUIRE(sse_json_check(c->json, c->json_len, SSE_JWT_MAX_DEPTH, &top) == 0);
    REQUIRE(top.type == SSE_JSON_OBJECT);
  }
  return rc;
}

/* A verified token (mode 0) is one somebody holding the key signed. */
static void check_signed(const char *tok, size_t n, const sse_jwt_claims *c) {
  size_t in = n;
  while (in > 0 && tok[in - 1] != '.') in--;
  REQUIRE(in > 0);
  in--;
  const char *dot = tok + in;
  if (c->alg == SSE_JWT_HS256) {
    unsigned char mac[32], got[64];
    hmac(tok, in, mac);
    REQUIRE(sse_jwt_b64url_decode(dot + 1, n - in - 1, got) == 32);
    REQUIRE(memcmp(mac, got, 32) == 0);
    return;
  }
  int i = c->alg == SSE_JWT_RS256 ? 1 : 2;
  REQUIRE(in < valid_len[i] && memcmp(tok, valid[i], in) == 0 && valid[i][in] == '.');
}

/* Walks a value accepted by sse_json_check, exercising the readers. */
static void walk(const sse_json_val *v, int depth) {
  REQUIRE(depth <= 8);
  size_t pos = 0, count = 0;
  sse_json_val k, e;
  if (v->type == SSE_JSON_OBJECT) {
    while (sse_json_next_member(v, &pos, &k, &e)) {
      REQUIRE(k.type == SSE_JSON_STRING && sse_json_str_len(&k) <= k.n);
      REQUIRE(sse_json_str_same(&k, &k));
      walk(&e, depth + 1);
      count++;
    }
  } else if (v->type == SSE_JSON_ARRAY) {
    while (sse_json_next_elem(v, &pos, &e)) {
      walk(&e, depth + 1);
      count++;
    }
  } else if (v->type == SSE_JSON_NUMBER) {
    double d;
    (void)sse_json_number(v, &d);
  } else if (v->type == SSE_JSON_STRING) {
    REQUIRE(sse_json_str_len(v) <= v->n);
  }
  REQUIRE(count <= v->n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  init();
  if (size == 0 || size > MAXTOK) return 0;
  int mode = data[0] % 3;
  const char *d = (const char *)data + 1;
  size_t dn = size - 1;
  sse_jwt_claims c;

  sse_json_val top;
  if (sse_json_check(d, dn, 8, &top) == 0) walk(&top, 0);

  if (mode == 0) {
    if (run(d, dn, &c) == 0) check_signed(d, dn, &c);
  } else if (mode == 1) {
    int which = dn ? (unsigned char)d[0] % 3 : 0;
    char tok[MAXTOK];
    size_t n = valid_len[which];
    memcpy(tok, valid[which], n);
    size_t i = dn ? 1 : 0;
    for (; i + 1 < dn; i += 2) tok[(unsigned char)d[i] * 7 % n] = d[i + 1];
    if (i < dn) n = (unsigned char)d[i] * 3 % (n + 1);
    int rc = run(tok, n, &c);
    int same = n == valid_len[which] && memcmp(tok, valid[which], n) == 0;
    REQUIRE(same ? rc == 0 : rc != 0);
  } else {
    const char *sep = memchr(d, 0xff, dn);
    size_t hn = sep ? (size_t)(sep - d) : dn;
    const char *p = sep ? sep + 1 : "";
    size_t pn = sep ? dn - hn - 1 : 0;
    char tok[MAXTOK * 2];
    size_t n = join(d, hn, p, pn, tok);
    unsigned char mac[32];
    hmac(tok, n, mac);
    tok[n++] = '.';
    n += b64enc(mac, 32, tok + n);
    int rc = run(tok, n, &c);
    sse_json_val hv, pv;
    int hj = sse_json_check(d, hn, 4, &hv);
    int pj = sse_json_check(p, pn, SSE_JWT_MAX_DEPTH, &pv);
    /* the verifier's verdict on each part is json.c's */
    if (hn == 0 || pn == 0) REQUIRE(rc == SSE_JWT_E_SEGMENTS);
    else if (hn > SSE_JWT_MAX_HEADER_BYTES) REQUIRE(rc == SSE_JWT_E_HEADER_TOO_LARGE);
    else if (hj == SSE_JSON_E_DUP) REQUIRE(rc == SSE_JWT_E_HEADER_DUP);
    else if (hj) REQUIRE(rc == SSE_JWT_E_HEADER_JSON);
    else if (hv.type != SSE_JSON_OBJECT) REQUIRE(rc == SSE_JWT_E_HEADER_OBJECT);
    if (rc == SSE_JWT_E_CLAIMS_JSON) REQUIRE(pj == SSE_JSON_E_SYNTAX);
    if (rc == SSE_JWT_E_CLAIMS_DUP) REQUIRE(pj == SSE_JSON_E_DUP);
    if (rc == SSE_JWT_E_CLAIMS_DEPTH) REQUIRE(pj == SSE_JSON_E_DEPTH);
    if (rc == SSE_JWT_E_CLAIMS_OBJECT) REQUIRE(pj == 0 && pv.type != SSE_JSON_OBJECT);
    if (rc == 0) {
      REQUIRE(pj == 0 && pv.type == SSE_JSON_OBJECT);
      REQUIRE(c.alg == SSE_JWT_HS256 && c.json_len == pn && memcmp(c.json, p, pn) == 0);
    }
  }
  return 0;
}
