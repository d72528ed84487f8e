#!/usr/bin/env python3
"""An independent verifier of exported SV0 pack chains, written from schemas/pack.md alone
(Python standard library; Ed25519 from the RFC 8032 reference code in dsse_verify.py).

Usage: pack_verify.py PACK_DIR KEY_FILE
For the pack files of PACK_DIR in name order it recomputes the RFC 8785 canonical bytes of each
body (its own implementation), the SHA-256 digest, the index and links, checks the signing key's
validity lines, and the Ed25519 signature over the DSSE PAE. Prints one line per pack; exits 0
when the chain is intact, 1 at the first broken pack.
"""
import base64
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dsse_verify import pae, verify  # noqa: E402

PAYLOAD_TYPE = "application/vnd.sv0.pack+json"
BEGIN, END = "-----BEGIN PUBLIC KEY-----", "-----END PUBLIC KEY-----"


def jcs_string(s):
    out = ['"']
    short = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    for ch in s:
        if ch in short:
            out.append(short[ch])
        elif ord(ch) < 0x20:
            out.append("\\u%04x" % ord(ch))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def jcs(value):
    """RFC 8785 for the values pack bodies hold: no floating-point numbers."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        raise ValueError("pack bodies hold no floating-point numbers")
    if isinstance(value, str):
        return jcs_string(value)
    if isinstance(value, list):
        return "[" + ",".join(jcs(v) for v in value) + "]"
    keys = sorted(value, key=lambda k: k.encode("utf-16-be"))
    return "{" + ",".join(jcs_string(k) + ":" + jcs(value[k]) for k in keys) + "}"


def read_keys(path):
    """Key id -> (raw public key, [(tenant, from, to or None)])."""
    keys, pending, block = {}, [], None
    for line in open(path).read().splitlines():
        line = line.strip()
        if block is not None:
            if line == END:
                raw = base64.b64decode("".join(block))[-32:]
                keys.setdefault(hashlib.sha256(raw).hexdigest(), (raw, []))[1].extend(pending)
                pending, block = [], None
            else:
                block.append(line)
        elif line == BEGIN:
            block = []
        elif line.startswith("sv0-valid:"):
            fields = dict(f.split("=", 1) for f in line[len("sv0-valid:"):].split())
            pending.append((fields["tenant"], int(fields["from"]), int(fields["to"]) if "to" in fields else None))
    return keys


def main():
    pack_dir, keys = sys.argv[1], read_keys(sys.argv[2])
    names = sorted(n for n in os.listdir(pack_dir) if n.endswith(".json") and n[:6].isdigit() and n[6] == "-")
    previous, tenant = None, None
    for n, name in enumerate(names, start=1):
        pack = json.load(open(os.path.join(pack_dir, name), encoding="utf-8"))
        body = pack["body"]
        body_bytes = jcs(body).encode("utf-8")
        problems = []
        if "sha256:" + hashlib.sha256(body_bytes).hexdigest() != pack["digest"]:
            problems.append("digest mismatch")
        if body["index"] != n or pack["index"] != n:
            problems.append("index %s where %d was expected" % (body["index"], n))
        if (body["previous_pack_id"], body["previous_digest"]) != (previous or (None, None)):
            problems.append("does not link to the previous pack")
        if tenant is not None and body["tenant"] != tenant:
            problems.append("another tenant")
        if body["key_id"] != pack["key_id"] or body["pack_id"] != pack["pack_id"]:
            problems.append("file header and body disagree")
        key = keys.get(pack["key_id"])
        if key is None:
            problems.append("unknown key")
        else:
            raw, ranges = key
            if ranges and not any(t == body["tenant"] and f <= n and (to is None or n <= to) for t, f, to in ranges):
                problems.append("key used outside its validity")
            elif not verify(raw, pae(PAYLOAD_TYPE, body_bytes), base64.b64decode(pack["signature"])):
                problems.append("signature does not verify")
        if problems:
            print("pack %d (%s): BROKEN: %s" % (n, name, "; ".join(problems)))
            return 1
        print("pack %d (%s): %s %s" % (n, name, body["kind"], pack["digest"]))
        previous, tenant = (body["pack_id"], pack["digest"]), body["tenant"]
    print("chain intact: %d pack(s)" % len(names))
    return 0


if __name__ == "__main__":
    sys.exit(main())
