#!/usr/bin/env python3
"""check.py -- checks proto/: schemas, topics.yaml, examples, and messages tests captured.

  check.py selftest                  every schema is valid, topics.yaml names only existing
                                     types, valid examples pass and invalid ones fail,
                                     gen_validators.py refuses what it has no C check for
  check.py messages TOPIC FILE       every line of FILE (JSON lines) is a valid message of TOPIC

Exit 0 when all is well, 1 with one line per problem otherwise, 2 on bad usage.
"""
import json
import pathlib
import re
import sys
import tempfile

import jsonschema
import yaml

HERE = pathlib.Path(__file__).resolve().parent
SCHEMAS = HERE / "schemas"
EXAMPLES = HERE / "examples"
# Before each invalid example: "// <field path>: why", the field the C validators must name.
FIELD_COMMENT = re.compile(r"^// [A-Za-z0-9_.\[\]]+: ")


def load_schemas():
    store = {}
    by_type = {}
    for path in sorted(SCHEMAS.glob("*.schema.json")):
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        store[schema["$id"]] = schema
        name = path.name[: -len(".schema.json")]
        if name != "common":
            by_type[name] = schema
    return store, by_type


def validator_for(schema, store):
    resolver = jsonschema.RefResolver.from_schema(schema, store=store)
    return jsonschema.Draft202012Validator(schema, resolver=resolver)


def message_problems(line, validators, allowed_types):
    try:
        msg = json.loads(line)
    except json.JSONDecodeError as e:
        return [f"not JSON: {e}"]
    mtype = msg.get("type") if isinstance(msg, dict) else None
    if mtype not in allowed_types:
        return [f"type {mtype!r} is not one of {sorted(allowed_types)}"]
    errors = sorted(validators[mtype].iter_errors(msg), key=lambda e: list(e.path))
    return [f"{'/'.join(map(str, e.path)) or '(message)'}: {e.message}" for e in errors]


def load_topics(by_type):
    topics = yaml.safe_load((HERE / "topics.yaml").read_text())["topics"]
    problems = []
    used = set()
    for name, spec in topics.items():
        for key in ("key", "types", "producers", "consumers"):
            if key not in spec:
                problems.append(f"topics.yaml: {name}: missing {key}")
        for t in spec.get("types", []):
            used.add(t)
            if t not in by_type:
                problems.append(f"topics.yaml: {name}: no schema for type {t} in schemas/")
    for t in by_type:
        if t not in used:
            problems.append(f"schemas/{t}.schema.json: no topic in topics.yaml carries it")
    return topics, problems


def generator_problems():
    """gen_validators.py writes the real schemas' validators, and refuses a schema that says more
    than it has a C check for, naming what."""
    sys.dont_write_bytecode = True  # no __pycache__ left in proto/
    sys.path.insert(0, str(HERE))
    import gen_validators

    problems = []
    base = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object"}
    refused = {
        "format": ({"properties": {"at": {"type": "string", "format": "date-time"}}}, "['format']"),
        "pattern": ({"properties": {"n": {"type": "string", "pattern": "^a|b$"}}}, "pattern ^a|b$"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        gen_validators.generate(SCHEMAS, tmp)
        if not (pathlib.Path(tmp) / "proto_check.c").exists():
            problems.append("gen_validators.py: wrote no proto_check.c for schemas/")
        for what, (extra, said) in refused.items():
            d = pathlib.Path(tmp) / what
            d.mkdir()
            schema = dict(base, **extra, **{"$id": f"https://mindroom.invalid/proto/{what}.schema.json"})
            (d / "x.schema.json").write_text(json.dumps(schema))
            try:
                gen_validators.generate(d, d)
                problems.append(f"gen_validators.py: a schema with {what} was not refused")
            except gen_validators.SchemaError as e:
                if said not in str(e):
                    problems.append(f"gen_validators.py: refusing {what}, the message does not name it: {e}")
    return problems


def selftest():
    store, by_type = load_schemas()
    validators = {t: validator_for(s, store) for t, s in by_type.items()}
    _, problems = load_topics(by_type)
    problems += generator_problems()
    checked = 0
    for t in by_type:
        for kind in ("valid", "invalid"):
            path = EXAMPLES / f"{t}.{kind}.jsonl"
            if not path.exists():
                problems.append(f"examples/{path.name}: missing")
                continue
            lines = path.read_text().splitlines()
            for n, line in enumerate(lines, 1):
                if not line.strip() or line.startswith("//"):
                    continue
                checked += 1
                if kind == "invalid" and (n < 2 or not FIELD_COMMENT.match(lines[n - 2])):
                    problems.append(f"examples/{path.name}:{n}: needs a '// <field path>: why' line before it")
                found = message_problems(line, validators, {t})
                if kind == "valid" and found:
                    problems.append(f"examples/{path.name}:{n}: should be valid: {found[0]}")
                if kind == "invalid" and not found:
                    problems.append(f"examples/{path.name}:{n}: should be invalid but passed")
    for p in problems:
        print(p)
    print(f"{checked - len(problems)} passed, {len(problems)} failed")
    return 1 if problems else 0


def check_messages(topic, path):
    store, by_type = load_schemas()
    topics, problems = load_topics(by_type)
    if topic not in topics:
        print(f"unknown topic {topic!r}; topics.yaml has {sorted(topics)}")
        return 2
    allowed = set(topics[topic]["types"])
    validators = {t: validator_for(by_type[t], store) for t in allowed}
    count = 0
    for n, line in enumerate(pathlib.Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        count += 1
        for p in message_problems(line, validators, allowed):
            problems.append(f"{path}:{n}: {p}")
    for p in problems:
        print(p)
    if count == 0:
        print(f"{path}: no messages to check")
        return 1
    return 1 if problems else 0


def main(argv):
    if len(argv) == 2 and argv[1] == "selftest":
        return selftest()
    if len(argv) == 4 and argv[1] == "messages":
        return check_messages(argv[2], argv[3])
    print(__doc__.strip(), file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
