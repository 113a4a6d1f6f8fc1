#!/usr/bin/env python3
"""gen_validators.py -- writes the C validators of the bus messages from proto/schemas.

  gen_validators.py SCHEMAS_DIR OUT_DIR

writes OUT_DIR/proto_check.c and OUT_DIR/mindroom/proto_check.h: one function
`mr_code mr_proto_check_<type>(const json_t *msg, mr_err *err)` per <type>.schema.json, and the
table mr_proto_check (libs/proto) dispatches on. The build runs it, so a validator cannot drift
from its schema. A schema keyword or pattern this generator does not know stops the build with
a message naming it: a schema can never say more than its validator checks.

Exit 0 when written, 1 with the problem otherwise, 2 on bad usage.
"""
import json
import pathlib
import re
import sys

# Keywords that only document.
DOC_KEYWORDS = {"$schema", "$id", "title", "description", "$defs"}
KNOWN_KEYWORDS = DOC_KEYWORDS | {
    "type", "const", "enum", "required", "properties", "additionalProperties", "pattern",
    "minLength", "maxLength", "minimum", "maximum", "items", "uniqueItems", "$ref", "allOf",
}

# Patterns of identifiers, checked by the libs/core grammar of the Matrix spec's appendix
# "Identifier Grammar", which the pattern approximates (the grammar is the stricter of the two).
ID_PATTERNS = {
    "^@[^:]+:.+$": "proto_user_id",
    "^![^:]+(:.+)?$": "proto_room_id",
    "^#[^:]+:.+$": "proto_room_alias",
    "^\\$.+$": "proto_event_id",
}
# ^[<class>]+$ and ^[<class>]{m,n}$: a set of characters and a length.
CHARSET_PATTERN = re.compile(r"^\^\[([^\]\\]+)\](\+|\{(\d+),(\d+)\})\$$")


class SchemaError(Exception):
    pass


def c_string(s):
    """s as a C string literal."""
    out = []
    for ch in s:
        if ch in '\\"':
            out.append("\\" + ch)
        elif 0x20 <= ord(ch) < 0x7F:
            out.append(ch)
        else:
            out.extend(f"\\{b:03o}" for b in ch.encode())
    return '"' + "".join(out) + '"'


def charset(cls, where):
    """The characters of a regex class body such as A-Za-z0-9._~-."""
    chars = []
    i = 0
    while i < len(cls):
        if i + 2 < len(cls) and cls[i + 1] == "-":
            lo, hi = cls[i], cls[i + 2]
            if ord(lo) > ord(hi):
                raise SchemaError(f"{where}: bad range {lo}-{hi} in pattern class [{cls}]")
            chars.extend(chr(c) for c in range(ord(lo), ord(hi) + 1))
            i += 3
        else:
            chars.append(cls[i])
            i += 1
    return "".join(sorted(set(chars)))


class Generator:
    def __init__(self, docs):
        self.docs = docs  # $id -> schema
        self.funcs = []  # C text of each node's function
        self.names = {}  # (doc id, json pointer) -> function name
        self.count = 0

    def resolve(self, ref, base):
        doc, _, pointer = ref.partition("#")
        doc_id = base if not doc else base.rsplit("/", 1)[0] + "/" + doc
        if doc_id not in self.docs:
            raise SchemaError(f"$ref {ref}: no schema with $id {doc_id}")
        node = self.docs[doc_id]
        for part in [p for p in pointer.split("/") if p]:
            if not isinstance(node, dict) or part not in node:
                raise SchemaError(f"$ref {ref}: {pointer} not found in {doc_id}")
            node = node[part]
        return node, doc_id, pointer

    def function(self, schema, base, pointer):
        """The name of the C function that checks a value against schema, writing it if new."""
        key = (base, pointer)
        if key in self.names:
            return self.names[key]
        if isinstance(schema, dict) and "$ref" in schema and set(schema) - DOC_KEYWORDS == {"$ref"}:
            # A reference and its description only: the referred check is this one.
            target, doc_id, ptr = self.resolve(schema["$ref"], base)
            self.names[key] = self.function(target, doc_id, ptr)
            return self.names[key]
        stem = pathlib.PurePosixPath(base).name.replace(".schema.json", "")
        tail = re.sub(r"[^A-Za-z0-9]+", "_", pointer.replace("/properties/", "/")).strip("_")
        name = f"check_{stem}_{tail}" if tail else f"check_{stem}"
        if name in self.names.values():
            self.count += 1
            name = f"{name}_{self.count}"
        self.names[key] = name
        where = f"{stem}{pointer or ''}"
        body = self.body(schema, base, pointer, where)
        self.funcs.append(
            f"/* {where} */\nstatic int {name}(const json_t *v, proto_path *p, mr_err *err)\n{{\n"
            + "".join("    " + line + "\n" for line in body)
            + "    return 0;\n}\n")
        return name

    def body(self, s, base, pointer, where):
        if not isinstance(s, dict):
            raise SchemaError(f"{where}: a schema must be an object")
        unknown = set(s) - KNOWN_KEYWORDS
        if unknown:
            raise SchemaError(f"{where}: keyword(s) {sorted(unknown)} have no C check in gen_validators.py")
        lines = []
        if "$ref" in s:
            target, doc_id, ptr = self.resolve(s["$ref"], base)
            lines.append(f"if ({self.function(target, doc_id, ptr)}(v, p, err) != 0)")
            lines.append("    return -1;")
        t = s.get("type")
        if t is not None:
            if t not in ("object", "string", "integer", "boolean", "array"):
                raise SchemaError(f"{where}: type {t!r} has no C check in gen_validators.py")
            lines.append(f"if (proto_type(v, PROTO_{t.upper()}, p, err) != 0)")
            lines.append("    return -1;")
        if "const" in s:
            lines += self.const(s["const"], where)
        if "enum" in s:
            values = s["enum"]
            if not all(isinstance(x, str) for x in values):
                raise SchemaError(f"{where}: only enums of strings have a C check")
            items = ", ".join(c_string(x) for x in values)
            lines.append(f"static const char *const allowed[] = {{{items}}};")
            lines.append(f"if (proto_enum(v, allowed, {len(values)}, p, err) != 0)")
            lines.append("    return -1;")
        lines += self.string(s, where)
        lines += self.integer(s, where)
        lines += self.obj(s, base, pointer, where)
        lines += self.array(s, base, pointer, where)
        for i, sub in enumerate(s.get("allOf", [])):
            lines += self.conditional(sub, base, f"{pointer}/allOf/{i}", where)
        return lines

    @staticmethod
    def const(value, where):
        if isinstance(value, bool):
            return [f"if (proto_const_bool(v, {'true' if value else 'false'}, p, err) != 0)", "    return -1;"]
        if isinstance(value, int):
            return [f"if (proto_const_int(v, {value}, p, err) != 0)", "    return -1;"]
        if isinstance(value, str):
            return [f"if (proto_const_string(v, {c_string(value)}, p, err) != 0)", "    return -1;"]
        raise SchemaError(f"{where}: const {value!r} has no C check")

    @staticmethod
    def string(s, where):
        keys = {"minLength", "maxLength", "pattern"} & set(s)
        if not keys:
            return []
        if s.get("type") != "string":
            raise SchemaError(f"{where}: {sorted(keys)} need \"type\": \"string\" beside them")
        lines = []
        if "minLength" in s or "maxLength" in s:
            lo, hi = s.get("minLength", 0), s.get("maxLength", -1)
            lines += [f"if (proto_length(v, {lo}, {hi}, p, err) != 0)", "    return -1;"]
        pattern = s.get("pattern")
        if pattern is None:
            return lines
        if pattern in ID_PATTERNS:
            lines += [f"if ({ID_PATTERNS[pattern]}(json_string_value(v), p, err) != 0)", "    return -1;"]
        else:
            m = CHARSET_PATTERN.match(pattern)
            if not m:
                raise SchemaError(f"{where}: pattern {pattern} has no C check: add it to gen_validators.py")
            chars = charset(m.group(1), where)
            lo, hi = (1, -1) if m.group(2) == "+" else (int(m.group(3)), int(m.group(4)))
            lines += [f"if (proto_charset(json_string_value(v), {c_string(chars)}, {lo}, {hi}, {c_string(pattern)}, p, err) != 0)",
                      "    return -1;"]
        return lines

    @staticmethod
    def integer(s, where):
        keys = {"minimum", "maximum"} & set(s)
        if not keys:
            return []
        if s.get("type") != "integer":
            raise SchemaError(f"{where}: {sorted(keys)} need \"type\": \"integer\" beside them")
        lo = s.get("minimum")
        hi = s.get("maximum")
        return [f"if (proto_range(v, {int(lo is not None)}, {lo or 0}, {int(hi is not None)}, {hi or 0}, p, err) != 0)",
                "    return -1;"]

    def obj(self, s, base, pointer, where):
        props = s.get("properties", {})
        required = s.get("required", [])
        extra = s.get("additionalProperties", True)
        if not props and not required and extra is True:
            return []
        # Without "type": "object" these keywords pass any other value, as JSON Schema says.
        lines = [] if s.get("type") == "object" else ["if (!json_is_object(v))", "    return 0;"]
        for key in required:
            if key not in props:
                lines += [f"if (!json_object_get(v, {c_string(key)}))",
                          f"    return proto_missing(p, {c_string(key)}, NULL, err);"]
        for key, sub in props.items():
            fn = self.function(sub, base, f"{pointer}/properties/{key}")
            lines.append(f"if (proto_field(v, {c_string(key)}, {int(key in required)}, {fn}, p, err) != 0)")
            lines.append("    return -1;")
        if extra is True:
            return lines
        names = ", ".join(c_string(k) for k in props) or "NULL"
        lines.append(f"static const char *const known[] = {{{names}}};")
        if extra is False:
            lines.append(f"if (proto_no_other_fields(v, known, {len(props)}, p, err) != 0)")
            lines.append("    return -1;")
        else:
            fn = self.function(extra, base, f"{pointer}/additionalProperties")
            lines.append(f"if (proto_other_fields(v, known, {len(props)}, {fn}, p, err) != 0)")
            lines.append("    return -1;")
        return lines

    def array(self, s, base, pointer, where):
        lines = []
        if ("items" in s or s.get("uniqueItems")) and s.get("type") != "array":
            lines += ["if (!json_is_array(v))", "    return 0;"]
        if "items" in s:
            fn = self.function(s["items"], base, f"{pointer}/items")
            lines += [f"if (proto_items(v, {fn}, p, err) != 0)", "    return -1;"]
        if s.get("uniqueItems"):
            lines += ["if (proto_unique(v, p, err) != 0)", "    return -1;"]
        return lines

    def conditional(self, sub, base, pointer, where):
        """allOf: [{if: {properties: {KEY: {const|enum}}}, then: {required: [...]}}], the one
        shape the schemas use: a field's value makes more fields required."""
        cond, then = sub.get("if"), sub.get("then")
        if set(sub) != {"if", "then"} or set(cond) != {"properties"} or len(cond["properties"]) != 1 \
                or set(then) != {"required"}:
            raise SchemaError(f"{where}{pointer}: only allOf of if/then on one field's value and required "
                              "fields has a C check")
        (key, test), = cond["properties"].items()
        if "const" in test:
            said = f"{key} is {json.dumps(test['const'])}"
        elif "enum" in test:
            said = f"{key} is one of " + ", ".join(test["enum"])
        else:
            raise SchemaError(f"{where}{pointer}: the if of an allOf tests const or enum")
        fn = self.function(cond, base, f"{pointer}/if")
        lines = [f"if (proto_holds(v, {fn}, p)) {{"]
        for r in then["required"]:
            lines += [f"    if (!json_object_get(v, {c_string(r)}))",
                      f"        return proto_missing(p, {c_string(r)}, {c_string(said)}, err);"]
        lines.append("}")
        return lines


def load(schema_dir):
    docs, types = {}, {}
    for path in sorted(pathlib.Path(schema_dir).glob("*.schema.json")):
        schema = json.loads(path.read_text())
        docs[schema["$id"]] = schema
        name = path.name[: -len(".schema.json")]
        if name != "common":
            if not re.fullmatch(r"[a-z_]+", name):
                raise SchemaError(f"{path.name}: a type name is lower case letters and _")
            types[name] = schema
    if not types:
        raise SchemaError(f"{schema_dir}: no *.schema.json")
    return docs, types


def generate(schema_dir, out_dir):
    docs, types = load(schema_dir)
    gen = Generator(docs)
    entries = []
    for name, schema in types.items():
        entries.append((name, gen.function(schema, schema["$id"], "")))
    head = "/* proto_check.h -- generated by proto/gen_validators.py from proto/schemas: do not edit. */\n"
    header = [head, "#ifndef MINDROOM_PROTO_CHECK_H", "#define MINDROOM_PROTO_CHECK_H", "",
              "#include <jansson.h>", "#include \"mindroom/err.h\"", "",
              "/* Each returns MR_OK when msg is a valid message of its type (proto/schemas/<type>.schema.json),",
              " * else MR_EINVAL with the first problem found, prefixed with its field path (\"event.sender: ...\"). */"]
    header += [f"mr_code mr_proto_check_{n}(const json_t *msg, mr_err *err);" for n, _ in entries]
    header += ["", "#endif", ""]
    src = ["/* proto_check.c -- generated by proto/gen_validators.py from proto/schemas: do not edit. */",
           "#include \"mindroom/proto_check.h\"", "", "#include \"proto_internal.h\"", ""]
    src += gen.funcs
    for n, fn in entries:
        src.append(f"mr_code mr_proto_check_{n}(const json_t *msg, mr_err *err)\n{{\n"
                   f"    return proto_run(msg, {fn}, err);\n}}\n")
    table = ",\n".join(f"    {{{c_string(n)}, mr_proto_check_{n}}}" for n, _ in entries)
    src.append(f"const proto_entry proto_types[] = {{\n{table},\n}};")
    src.append(f"const size_t proto_n_types = {len(entries)};\n")
    out = pathlib.Path(out_dir)
    (out / "mindroom").mkdir(parents=True, exist_ok=True)
    write_if_changed(out / "mindroom" / "proto_check.h", "\n".join(header))
    write_if_changed(out / "proto_check.c", "\n".join(src))


def write_if_changed(path, text):
    """Leaves an unchanged file alone, so what includes it is not rebuilt."""
    if not path.exists() or path.read_text() != text:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)


def main(argv):
    if len(argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    try:
        generate(argv[1], argv[2])
    except (SchemaError, OSError, json.JSONDecodeError, KeyError) as e:
        print(f"gen_validators.py: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
