#!/usr/bin/env python3
"""Checks (or rewrites) signature-vectors.json with Python's own json, hmac and base64.

Each vector's `name`, `secret_base64` and `payload` are the inputs; `canonical`,
`body_as_attendee_sends_it` and `x_webhook_signature` are derived from them exactly as
Attendee does. `python3 check_vectors.py` exits 1 naming any vector whose derived fields
disagree; `python3 check_vectors.py --write` recomputes them (after adding or editing a
vector's inputs). Standard library only.
"""
import base64
import hashlib
import hmac
import json
import pathlib
import sys

VECTORS = pathlib.Path(__file__).with_name("signature-vectors.json")


def derived(vector):
    payload = vector["payload"]
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    key = base64.b64decode(vector["secret_base64"], validate=True)
    mac = hmac.new(key, canonical.encode("utf-8"), hashlib.sha256).digest()
    return {
        "body_as_attendee_sends_it": json.dumps(payload),
        "canonical": canonical,
        "x_webhook_signature": base64.b64encode(mac).decode("ascii"),
    }


def main():
    vectors = json.loads(VECTORS.read_text(encoding="utf-8"))
    if not vectors:
        sys.exit(f"{VECTORS}: no vectors")
    if sys.argv[1:] == ["--write"]:
        for vector in vectors:
            vector.update(derived(vector))
        VECTORS.write_text(json.dumps(vectors, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {len(vectors)} vectors to {VECTORS}")
        return
    if sys.argv[1:]:
        sys.exit("usage: check_vectors.py [--write]")
    wrong = []
    for vector in vectors:
        for field, value in derived(vector).items():
            if vector.get(field) != value:
                wrong.append(f"{vector['name']}: {field} differs")
    if wrong:
        sys.exit("\n".join(wrong))
    print(f"{len(vectors)} vectors agree with Python's json and hmac")


if __name__ == "__main__":
    main()
