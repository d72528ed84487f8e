#!/usr/bin/env python3
"""An independent verifier of SV0's deployment attestations, written from
schemas/authority-assessment.schema.json and schemas/pack.md (Python standard library only;
Ed25519 from dsse_verify.py, RFC 8785 from pack_verify.py).

Usage: deployment_verify.py ATTESTATIONS.intoto.jsonl PUBLIC_KEY.pem PACK_DIR
For every envelope whose Statement has the predicate type
https://sv0.dev/attestation/authority-assessment/v1 it checks:
  - the DSSE signature over PAE("application/vnd.in-toto+json", payload) with the key;
  - the Statement: in-toto Statement v1, at least one subject, every subject digest a
    lowercase hex sha256 (64 digits) or gitCommit (40 or 64 digits);
  - the predicate: exactly the schema's fields with their types, grades summing to the total,
    a disposition of approved / requires_review / rejected;
  - against the evidence pack it names in PACK_DIR: the pack body's own SHA-256 (recomputed
    from its RFC 8785 bytes) equals evidence_pack_sha256, and the tenant, assessment kind,
    time, scope, baseline version, disposition and grade counts are the pack's.
Prints one line per deployment attestation; exits 0 when there is at least one and all verify.
"""
import hashlib
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dsse_verify import b64, pae, verify  # noqa: E402
from pack_verify import jcs  # noqa: E402

PREDICATE = "https://sv0.dev/attestation/authority-assessment/v1"
REQUIRED = {
    "tenant_id": str,
    "deployment_id": str,
    "assessment_time": str,
    "authority_paths_total": int,
    "grade_a_paths": int,
    "grade_b_paths": int,
    "grade_c_paths": int,
    "new_paths_since_baseline": int,
    "disposition": str,
    "evidence_pack_sha256": str,
    "evidence_pack_id": str,
    "assessment_kind": str,
    "scan_id": str,
    "scope": str,
    "baseline_version": int,
    "deployment": dict,
}
OPTIONAL = {"verification": dict}
HEX64 = re.compile(r"^[0-9a-f]{64}$")
COMMIT = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")


def public_key(path):
    text = open(path).read()
    block = text.split("-----BEGIN PUBLIC KEY-----", 1)[1].split("-----END PUBLIC KEY-----", 1)[0]
    import base64

    return base64.b64decode("".join(block.split()))[-32:]


def packs_by_id(pack_dir):
    packs = {}
    for name in sorted(os.listdir(pack_dir)):
        if name.endswith(".json") and name[:6].isdigit():
            pack = json.load(open(os.path.join(pack_dir, name), encoding="utf-8"))
            packs[pack["pack_id"]] = pack["body"]
    return packs


def check(statement, packs):
    problems = []
    if statement.get("_type") != "https://in-toto.io/Statement/v1":
        problems.append("not an in-toto Statement v1")
    subjects = statement.get("subject") or []
    if not subjects:
        problems.append("no subject")
    for subject in subjects:
        digest = subject.get("digest") or {}
        if not subject.get("name") or not digest:
            problems.append("a subject without name or digest")
        for algorithm, value in digest.items():
            pattern = {"sha256": HEX64, "gitCommit": COMMIT}.get(algorithm)
            if pattern is None or not pattern.match(value):
                problems.append("subject digest %s:%s is not a digest" % (algorithm, value))
    p = statement["predicate"]
    for field, kind in REQUIRED.items():
        if not isinstance(p.get(field), kind) or (kind is int and isinstance(p.get(field), bool)):
            problems.append("field %s missing or not %s" % (field, kind.__name__))
    for field in p:
        if field not in REQUIRED and field not in OPTIONAL:
            problems.append("unknown field %s" % field)
    if problems:
        return problems
    if p["grade_a_paths"] + p["grade_b_paths"] + p["grade_c_paths"] != p["authority_paths_total"]:
        problems.append("grades do not sum to the total")
    if p["disposition"] not in ("approved", "requires_review", "rejected"):
        problems.append("disposition %s" % p["disposition"])
    if not HEX64.match(p["evidence_pack_sha256"]):
        problems.append("evidence_pack_sha256 is not 64 hex digits")
    body = packs.get(p["evidence_pack_id"])
    if body is None:
        return problems + ["pack %s is not in the pack directory" % p["evidence_pack_id"]]
    if hashlib.sha256(jcs(body).encode("utf-8")).hexdigest() != p["evidence_pack_sha256"]:
        problems.append("evidence_pack_sha256 is not the pack's digest")
    assessment = body["assessment"]
    scopes = [s for s in (assessment.get("scan") or {}).get("scopes", []) if s["scope"] == p["scope"]]
    expected = {
        "tenant_id": body["tenant"],
        "assessment_kind": body["kind"],
        "assessment_time": assessment["occurred_at"],
        "scan_id": (assessment.get("scan") or {}).get("scan", {}).get("scan_id"),
    }
    if scopes:
        scope = scopes[0]
        grades = scope["posture"]["by_grade"]
        expected.update(
            {
                "baseline_version": scope["baseline_version"],
                "disposition": (scope.get("disposition") or {}).get("decision"),
                "authority_paths_total": scope["posture"]["paths_total"],
                "grade_a_paths": grades["A"],
                "grade_b_paths": grades["B"],
                "grade_c_paths": grades["C"],
            }
        )
    else:
        problems.append("the pack judges no scope %s" % p["scope"])
    for field, value in expected.items():
        if p[field] != value:
            problems.append("%s is %r, the pack says %r" % (field, p[field], value))
    return problems


def main():
    lines = open(sys.argv[1]).read().splitlines()
    key = public_key(sys.argv[2])
    packs = packs_by_id(sys.argv[3])
    ok, seen = True, 0
    for line in lines:
        envelope = json.loads(line)
        payload = b64(envelope["payload"])
        statement = json.loads(payload)
        if statement.get("predicateType") != PREDICATE:
            continue
        seen += 1
        problems = []
        signed = envelope["payloadType"] == "application/vnd.in-toto+json" and any(
            verify(key, pae(envelope["payloadType"], payload), b64(s["sig"])) for s in envelope["signatures"]
        )
        if not signed:
            problems.append("signature does not verify")
        problems += check(statement, packs)
        p = statement["predicate"]
        name = "deployment %s scope %s" % (p.get("deployment_id"), p.get("scope"))
        if problems:
            ok = False
            print("%s: NOT VERIFIED: %s" % (name, "; ".join(problems)))
        else:
            print("%s: verified, %s, pack %s" % (name, p["disposition"], p["evidence_pack_id"]))
    if not seen:
        print("no deployment attestation")
    sys.exit(0 if ok and seen else 1)


if __name__ == "__main__":
    main()
