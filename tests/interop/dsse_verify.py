#!/usr/bin/env python3
"""An independent DSSE verifier (Python standard library only: Ed25519 from the RFC 8032
section 6 reference code) for the envelopes `sv0 export attestations` writes.

Usage: dsse_verify.py ATTESTATIONS.intoto.jsonl PUBLIC_KEY.pem
Prints the predicate type of each verified statement; exits 0 when every envelope verifies
over PAE("application/vnd.in-toto+json", payload), 1 otherwise.
"""
import base64
import hashlib
import json
import sys

p = 2**255 - 19
q = 2**252 + 27742317777372353535851937790883648493


def inv(x):
    return pow(x, p - 2, p)


d = -121665 * inv(121666) % p
SQRT_M1 = pow(2, (p - 1) // 4, p)


def add(P, Q):
    A, B = (P[1] - P[0]) * (Q[1] - Q[0]) % p, (P[1] + P[0]) * (Q[1] + Q[0]) % p
    C, D = 2 * P[3] * Q[3] * d % p, 2 * P[2] * Q[2] % p
    E, F, G, H = B - A, D - C, D + C, B + A
    return (E * F, G * H, F * G, E * H)


def mul(s, P):
    Q = (0, 1, 1, 0)
    while s > 0:
        if s & 1:
            Q = add(Q, P)
        P = add(P, P)
        s >>= 1
    return Q


def equal(P, Q):
    return (P[0] * Q[2] - Q[0] * P[2]) % p == 0 and (P[1] * Q[2] - Q[1] * P[2]) % p == 0


def recover_x(y, sign):
    if y >= p:
        return None
    x2 = (y * y - 1) * inv(d * y * y + 1)
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (p + 3) // 8, p)
    if (x * x - x2) % p != 0:
        x = x * SQRT_M1 % p
    if (x * x - x2) % p != 0:
        return None
    if (x & 1) != sign:
        x = p - x
    return x


GY = 4 * inv(5) % p
GX = recover_x(GY, 0)
BASE = (GX, GY, 1, GX * GY % p)


def decompress(s):
    if len(s) != 32:
        return None
    y = int.from_bytes(s, "little")
    sign = y >> 255
    y &= (1 << 255) - 1
    x = recover_x(y, sign)
    return None if x is None else (x, y, 1, x * y % p)


def verify(public, message, signature):
    if len(public) != 32 or len(signature) != 64:
        return False
    A = decompress(public)
    R = decompress(signature[:32])
    if A is None or R is None:
        return False
    s = int.from_bytes(signature[32:], "little")
    if s >= q:
        return False
    h = int.from_bytes(hashlib.sha512(signature[:32] + public + message).digest(), "little") % q
    return equal(mul(s, BASE), add(R, mul(h, A)))


def pae(payload_type, body):
    t = payload_type.encode()
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(body), body)


def b64(text):
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        return base64.urlsafe_b64decode(text)


def main():
    lines = open(sys.argv[1]).read().splitlines()
    # The first PEM block; text outside the boundaries (sv0's validity lines) is explanatory.
    text = open(sys.argv[2]).read()
    block = text.split("-----BEGIN PUBLIC KEY-----", 1)[1].split("-----END PUBLIC KEY-----", 1)[0]
    public = base64.b64decode("".join(block.split()))[-32:]
    ok = True
    for line in lines:
        envelope = json.loads(line)
        body = b64(envelope["payload"])
        good = envelope["payloadType"] == "application/vnd.in-toto+json" and any(
            verify(public, pae(envelope["payloadType"], body), b64(s["sig"])) for s in envelope["signatures"]
        )
        ok &= good
        print(("verified " if good else "NOT VERIFIED ") + json.loads(body)["predicateType"])
    sys.exit(0 if ok and lines else 1)


if __name__ == "__main__":
    main()
