#!/usr/bin/python3
"""Checks an exported event catalogue with an independent JSON Schema
validator (Debian's python3-jsonschema, draft 2020-12).

usage: jsonschema_check.py DOC SAMPLES
  DOC      the catalogue document (JSON)
  SAMPLES  one sample a line: <event type> TAB <data as JSON text>
Prints "schema ok" when DOC is a valid 2020-12 schema, then one line per
sample: "ok" when {"event": type, "data": data} validates, "bad" otherwise.
"""
import json
import sys

from jsonschema import Draft202012Validator


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        doc = json.load(f)
    Draft202012Validator.check_schema(doc)
    print("schema ok")
    validator = Draft202012Validator(doc)
    with open(sys.argv[2], encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line:
                continue
            name, text = line.split("\t", 1)
            envelope = {"event": name, "data": json.loads(text)}
            print("ok" if validator.is_valid(envelope) else "bad")


if __name__ == "__main__":
    main()
