#!/usr/bin/env python3
"""An independent RFC 9162 verifier (Python standard library only) for SV0's pack log proofs.

Usage: rfc9162_verify.py inclusion PROOF.json | consistency PROOF.json
Reads the JSON that `sv0 proof inclusion --json` / `sv0 proof consistency --json` print and
exits 0 when the proof verifies (RFC 9162 sections 2.1.3.2 and 2.1.4.2), 1 otherwise.
"""
import hashlib
import json
import sys


def node(left, right):
    return hashlib.sha256(b"\x01" + left + right).digest()


def verify_inclusion(index, size, leaf, path, root):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, first_hash, second_hash, proof):
    if first == second:
        return not proof and first_hash == second_hash
    if first == 0 or first > second or not proof:
        return False
    path = list(proof)
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node(c, fr)
            sr = node(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first_hash and sr == second_hash


def main():
    kind, file = sys.argv[1], sys.argv[2]
    with open(file) as f:
        doc = json.load(f)
    h = bytes.fromhex
    if kind == "inclusion":
        digest = h(doc["pack_digest"].removeprefix("sha256:"))
        leaf = hashlib.sha256(b"\x00" + digest).digest()
        ok = leaf == h(doc["leaf_hash"]) and verify_inclusion(
            doc["leaf_index"], doc["tree_size"], leaf, [h(p) for p in doc["audit_path"]], h(doc["root"])
        )
    elif kind == "consistency":
        ok = verify_consistency(
            doc["old_size"], doc["new_size"], h(doc["old_root"]), h(doc["new_root"]), [h(p) for p in doc["proof"]]
        )
    else:
        sys.exit(2)
    print("verified" if ok else "NOT verified")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
