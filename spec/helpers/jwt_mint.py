"""Mints JSON Web Tokens for the specs with an implementation sse did not
write: PyJWT (Debian's python3-jwt) and, for tokens PyJWT refuses to make
(duplicate members, an RSA public key used as an HMAC secret, raw bytes),
Python's hmac module and the cryptography package.

Reads a JSON list of jobs on stdin, writes a JSON list of tokens on stdout.
A job is either
  {"alg": "HS256", "key": "<secret or private key PEM>", "claims": {...},
   "headers": {...}}                       -> jwt.encode(...)
or
  {"raw": true, "alg": "HS256"|"RS256"|"ES256"|"none", "key": "...",
   "header": "<JSON text>", "payload": "<JSON text>", "der": false}
                                           -> header.payload signed as given
("der": true gives an ES256 signature in DER instead of r||s)."""
import base64
import hashlib
import hmac
import json
import sys

import jwt
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def raw(job):
    signing_input = b64(job["header"].encode("utf-8", "surrogateescape")) + "." + b64(job["payload"].encode("utf-8", "surrogateescape"))
    msg = signing_input.encode("ascii")
    alg, key = job["alg"], job.get("key", "")
    if alg == "HS256":
        sig = hmac.new(key.encode(), msg, hashlib.sha256).digest()
    elif alg == "RS256":
        pk = serialization.load_pem_private_key(key.encode(), password=None)
        sig = pk.sign(msg, padding.PKCS1v15(), hashes.SHA256())
    elif alg == "ES256":
        pk = serialization.load_pem_private_key(key.encode(), password=None)
        der = pk.sign(msg, ec.ECDSA(hashes.SHA256()))
        if job.get("der"):
            sig = der
        else:
            r, s = decode_dss_signature(der)
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    else:
        sig = job.get("sig", "junk").encode()
    return signing_input + "." + b64(sig)


def main():
    out = []
    for job in json.load(sys.stdin):
        if job.get("raw"):
            out.append(raw(job))
        else:
            out.append(jwt.encode(job["claims"], job.get("key"), algorithm=job["alg"],
                                  headers=job.get("headers")))
    json.dump(out, sys.stdout)


main()
