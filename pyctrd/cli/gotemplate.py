"""Go text/template, as podman's --format takes it, for pyctr's reports.

No well-kept Python implementation of Go's templates exists on PyPI (the one
candidate wraps Go through CGo), so this is a small evaluator of the part
podman users write: text and {{actions}} with trim markers, comments, field
paths (.A.B, $, $var.A), method calls with arguments (.Label "k"),
pipelines (a | b), parentheses, variables ($x := ..., range $i, $v := ...),
if / else if / else, range / else, with / else, and the functions of Go
(and, or, not, len, index, slice, print, printf, println, eq, ne, lt, le,
gt, ge) and of podman's report package (json, join, lower, upper, title,
truncate, pad, split).

Values print as Go prints them: true/false, [a b], map[k:v], <no value>.
Reporters (pyctr's commands, and other verbs' modules) call render() or
Report; both load only when a --format is used.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyctrd.cli.errors import CliError
from pyctrd.cli.format import tabwrite  # ps's default table uses it without templates

__all__ = [
    "Report",
    "Template",
    "TemplateError",
    "go_str",
    "header_name",
    "normalize",
    "render",
    "render_table",
    "tabwrite",
]


class TemplateError(CliError):
    """A template that cannot be parsed or executed; the message says where (exit 125)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)


# -- values as Go prints them


def go_str(value: Any) -> str:
    """fmt.Sprint's %v of a value."""
    if value is None:
        return "<no value>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, Mapping):
        items = " ".join(f"{go_str(k)}:{go_str(v)}" for k, v in sorted(value.items(),
                                                                        key=lambda i: str(i[0])))
        return f"map[{items}]"
    if isinstance(value, list | tuple):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def _go_float(value: float) -> str:
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def truth(value: Any) -> bool:
    """Go template truth: false, 0, nil and empty strings, slices and maps are false."""
    if value is None:
        return False
    if isinstance(value, bool | int | float | str | list | tuple | dict | Mapping):
        return bool(value)
    return True


def _json(value: Any) -> str:
    return json.dumps(_plain(value), ensure_ascii=False, separators=(",", ":"))


def _plain(value: Any) -> Any:
    """What json should see: objects that know their JSON form give it."""
    to_json = getattr(value, "to_json", None)
    if callable(to_json):
        return _plain(to_json())
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- functions


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(item, Mapping):
            item = item.get(key)
        elif isinstance(item, list | tuple | str):
            if not isinstance(key, int) or not 0 <= key < len(item):
                raise TemplateError(f"error calling index: index out of range: {key}")
            item = item[key]
        else:
            raise TemplateError(f"error calling index: cannot index {go_str(item)}")
    return item


def _slice(item: Any, *bounds: int) -> Any:
    """Go's slice x 1 2 is x[1:2]; slice x 1 is x[1:]."""
    start = bounds[0] if bounds else 0
    end = bounds[1] if len(bounds) > 1 else None
    return item[start:end]


def _len(item: Any) -> int:
    try:
        return len(item)
    except TypeError:
        raise TemplateError(f"error calling len: len of {go_str(item)}") from None


def _compare(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(a: Any, *others: Any) -> bool:
        if not others:
            raise TemplateError("missing argument for comparison")
        return any(op(a, b) for b in others) if op is _eq else op(a, others[0])
    return compare


def _eq(a: Any, b: Any) -> bool:
    return bool(a == b)


def _and(*args: Any) -> Any:
    for arg in args:
        if not truth(arg):
            return arg
    return args[-1]


def _or(*args: Any) -> Any:
    for arg in args:
        if truth(arg):
            return arg
    return args[-1]


_VERB = re.compile(r"%([-+# 0]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def _printf(fmt: str, *args: Any) -> str:
    """fmt.Sprintf for the verbs templates use: %s %v %d %q %t %x %f %%."""
    values = iter(args)
    out: list[str] = []
    pos = 0
    for match in _VERB.finditer(fmt):
        out.append(fmt[pos:match.start()])
        pos = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        try:
            value = next(values)
        except StopIteration:
            out.append(f"%!{verb}(MISSING)")
            continue
        if verb in "sv":
            text = go_str(value)
            if precision is not None and verb == "s":
                text = text[:int(precision)]
        elif verb == "q":
            text = json.dumps(go_str(value), ensure_ascii=False)
        elif verb == "t":
            text = go_str(bool(value))
        elif verb in "dxXof" and isinstance(value, int | float):
            spec = f"{'.' + precision if precision and verb == 'f' else ''}{verb}"
            text = format(int(value) if verb != "f" else float(value), spec)
        else:
            text = f"%!{verb}({go_str(value)})"
        if width:
            text = text.ljust(int(width)) if "-" in flags else \
                text.rjust(int(width), "0" if "0" in flags and verb in "dxf" else " ")
        out.append(text)
    out.append(fmt[pos:])
    return "".join(out)


def _truncate(text: str, length: int) -> str:
    return text if len(text) < length else text[:length]


def _pad(text: str, prefix: int, suffix: int) -> str:
    return " " * prefix + text + " " * suffix


def _join(items: Any, sep: str) -> str:
    if isinstance(items, str):
        return items
    return sep.join(go_str(i) for i in items or [])


def _title(text: str) -> str:
    # strings.Title: the first letter of each word upper-cased, the rest as is
    return re.sub(r"(^|[\s])(\w)", lambda m: m.group(1) + m.group(2).upper(), go_str(text))


FUNCS: dict[str, Callable[..., Any]] = {
    "and": _and, "or": _or, "not": lambda v: not truth(v), "len": _len, "index": _index,
    "slice": _slice,
    "print": lambda *a: "".join(go_str(v) for v in a),
    "println": lambda *a: " ".join(go_str(v) for v in a) + "\n",
    "printf": _printf,
    "eq": _compare(_eq), "ne": _compare(lambda a, b: a != b), "lt": _compare(lambda a, b: a < b),
    "le": _compare(lambda a, b: a <= b), "gt": _compare(lambda a, b: a > b),
    "ge": _compare(lambda a, b: a >= b),
    "json": _json, "join": _join, "lower": lambda s: go_str(s).lower(),
    "upper": lambda s: go_str(s).upper(), "title": _title, "truncate": _truncate,
    "pad": _pad, "split": lambda s, sep: go_str(s).split(sep),
}


# -- parsing

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\]|\\.)')
  | (?P<number>-?(?:0x[0-9a-fA-F]+|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?))
  | (?P<declare>:=)
  | (?P<assign>=)
  | (?P<var>\$[A-Za-z0-9_]*)
  | (?P<field>(?:\.[A-Za-z_][A-Za-z0-9_]*)+)
  | (?P<dot>\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  """, re.VERBOSE)


@dataclass
class Token:
    kind: str
    text: str


def _tokens(source: str) -> list[Token]:
    out: list[Token] = []
    pos = 0
    while pos < len(source):
        match = _TOKEN.match(source, pos)
        if not match:
            raise TemplateError(f"unexpected {source[pos]!r} in command")
        touching = match.start() == pos
        pos = match.end()
        kind = match.lastgroup or ""
        text = match.group()
        if kind == "ws":
            continue
        # a field touching a variable or ")" is a field of its value: $x.A, (f).A
        if kind == "field" and touching and out and out[-1].kind in ("var", "rparen") \
                and not _spaced(source, match.start()):
            kind = "chain"
        out.append(Token(kind, text))
    return out


def _spaced(source: str, start: int) -> bool:
    return start > 0 and source[start - 1].isspace()


# Nodes: ("text", s) ("action", pipe) ("if", pipe, list, else) ("range", pipe, list, else)
# ("with", pipe, list, else); a pipe is (declared vars, [commands]); a command is [operands].

@dataclass
class Pipe:
    declare: list[str]
    commands: list[list[Any]]
    assign: bool = False


@dataclass
class Block:
    kind: str  # "if", "range", "with"
    pipe: Pipe
    body: list[Any] = field(default_factory=list)
    orelse: list[Any] = field(default_factory=list)
    chained: bool = False  # an "else if" block: it ends at its outer block's {{end}}


@dataclass
class Operand:
    kind: str  # "field", "var", "dot", "literal", "ident", "pipe"
    value: Any
    fields: tuple[str, ...] = ()


class _PipeParser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def pipeline(self, in_parens: bool = False) -> Pipe:
        declare: list[str] = []
        assign = False
        # "$x :=", "$i, $v :=" or "$x ="
        start = self.pos
        names = []
        while (tok := self.peek()) is not None and tok.kind == "var":
            names.append(self.take().text)
            if (tok := self.peek()) is not None and tok.kind == "comma":
                self.take()
                continue
            break
        if names and (tok := self.peek()) is not None and tok.kind in ("declare", "assign"):
            assign = self.take().kind == "assign"
            declare = names
        else:
            self.pos = start
        commands: list[list[Any]] = []
        command: list[Any] = []
        while (tok := self.peek()) is not None:
            if tok.kind == "rparen":
                if not in_parens:
                    raise TemplateError("unexpected right paren")
                break
            if tok.kind == "pipe":
                self.take()
                if not command:
                    raise TemplateError("missing command before |")
                commands.append(command)
                command = []
                continue
            command.append(self.operand())
        if command:
            commands.append(command)
        elif commands:
            raise TemplateError("missing command after |")
        return Pipe(declare, commands, assign)

    def operand(self) -> Operand:
        tok = self.take()
        kind, text = tok.kind, tok.text
        if kind == "field":
            return Operand("field", None, tuple(text[1:].split(".")))
        if kind == "dot":
            return Operand("dot", None)
        if kind == "var":
            fields: tuple[str, ...] = ()
            if (nxt := self.peek()) is not None and nxt.kind == "chain":
                fields = tuple(self.take().text[1:].split("."))
            return Operand("var", text, fields)
        if kind == "string":
            return Operand("literal", json.loads(text))
        if kind == "raw":
            return Operand("literal", text[1:-1])
        if kind == "char":
            return Operand("literal", ord(json.loads('"' + text[1:-1] + '"')))
        if kind == "number":
            value: Any = int(text, 0) if re.fullmatch(r"-?(0x[0-9a-fA-F]+|\d+)", text) \
                else float(text)
            return Operand("literal", value)
        if kind == "ident":
            if text in ("true", "false"):
                return Operand("literal", text == "true")
            if text == "nil":
                return Operand("literal", None)
            if text not in FUNCS:
                raise TemplateError(f'function "{text}" not defined')
            return Operand("ident", text)
        if kind == "lparen":
            inner = self.pipeline(in_parens=True)
            if (closing := self.peek()) is None or closing.kind != "rparen":
                raise TemplateError("unclosed left paren")
            self.take()
            fields = ()
            if (nxt := self.peek()) is not None and nxt.kind == "chain":
                fields = tuple(self.take().text[1:].split("."))
            return Operand("pipe", inner, fields)
        raise TemplateError(f"unexpected {text!r} in operand")


def _parse_pipe(source: str) -> Pipe:
    parser = _PipeParser(_tokens(source))
    pipe = parser.pipeline()
    if parser.peek() is not None:
        raise TemplateError(f"unexpected {parser.peek().text!r}")  # type: ignore[union-attr]
    return pipe


def _parse(text: str) -> list[Any]:
    """The template's tree: text, actions and blocks."""
    root: list[Any] = []
    stack: list[tuple[Block, list[Any]]] = []  # (block, the list being filled)
    current = root
    pos = 0
    trim_next = False
    for match in _ACTION.finditer(text):
        chunk = text[pos:match.start()]
        if trim_next:
            chunk = chunk.lstrip()
        if match.group(1):
            chunk = chunk.rstrip()
        if chunk:
            current.append(("text", chunk))
        pos = match.end()
        trim_next = bool(match.group(3))
        body = match.group(2).strip()
        if body.startswith("/*"):
            if not body.endswith("*/"):
                raise TemplateError("unclosed comment")
            continue
        word, _, rest = body.partition(" ")
        word = word.strip()
        if word in ("if", "range", "with"):
            block = Block(word, _parse_pipe(rest))
            current.append(block)
            stack.append((block, current))
            current = block.body
        elif word == "else":
            if not stack:
                raise TemplateError("unexpected {{else}}")
            block, parent = stack[-1]
            if current is block.orelse:
                raise TemplateError("expected end; found {{else}}")
            current = block.orelse
            rest = rest.strip()
            if rest:  # "else if ...", "else with ...": a block inside the else
                kind, _, pipe_text = rest.partition(" ")
                if kind not in ("if", "with"):
                    raise TemplateError(f"unexpected {rest!r} after else")
                inner = Block(kind, _parse_pipe(pipe_text))
                current.append(inner)
                # it shares our {{end}}: mark it so end pops both
                inner.chained = True
                stack.append((inner, current))
                current = inner.body
        elif word == "end":
            if not stack:
                raise TemplateError("unexpected {{end}}")
            while True:
                block, parent = stack.pop()
                current = parent
                if not block.chained:
                    break
        elif word in ("define", "template", "block", "break", "continue"):
            raise TemplateError(f"{{{{{word}}}}} is not supported by pyctr's templates")
        else:
            current.append(("action", _parse_pipe(body)))
    if stack:
        raise TemplateError(f"unexpected EOF: {{{{{stack[-1][0].kind}}}}} has no {{{{end}}}}")
    chunk = text[pos:]
    if "{{" in chunk:
        raise TemplateError("unclosed action")
    if trim_next:
        chunk = chunk.lstrip()
    if chunk:
        current.append(("text", chunk))
    return root


# -- execution


class _Scope:
    def __init__(self, root: Any) -> None:
        self.vars: list[dict[str, Any]] = [{"$": root}]

    def get(self, name: str) -> Any:
        for frame in reversed(self.vars):
            if name in frame:
                return frame[name]
        raise TemplateError(f"undefined variable: {name}")

    def set(self, name: str, value: Any, declare: bool) -> None:
        if declare:
            self.vars[-1][name] = value
            return
        for frame in reversed(self.vars):
            if name in frame:
                frame[name] = value
                return
        raise TemplateError(f"undefined variable: {name}")


def field_of(value: Any, name: str, args: Sequence[Any] = ()) -> Any:
    """The field (map key, attribute or method) ``name`` of ``value``."""
    getter = getattr(value, "go_field", None)
    if callable(getter):
        return getter(name, *args)
    if isinstance(value, Mapping):
        if name in value:
            found = value[name]
        elif getattr(value, "is_map", False):
            return None
        else:
            raise TemplateError(f"can't evaluate field {name} in type "
                                f"{getattr(value, 'go_type', 'map')}")
    elif value is None:
        raise TemplateError(f"nil pointer evaluating .{name}")
    elif isinstance(value, str | int | float | list | tuple):
        raise TemplateError(f"can't evaluate field {name} in type {_go_type(value)}")
    else:
        if name.startswith("_") or not hasattr(value, name):
            raise TemplateError(f"can't evaluate field {name} in type {type(value).__name__}")
        found = getattr(value, name)
    if callable(found):
        return found(*args)
    if args:
        raise TemplateError(f"{name} is not a method but has arguments")
    return found


def _go_type(value: Any) -> str:
    return {str: "string", int: "int", float: "float64", bool: "bool"}.get(type(value), "[]")


class Template:
    """A parsed template; execute() runs it on one value."""

    def __init__(self, text: str, funcs: Mapping[str, Callable[..., Any]] | None = None) -> None:
        self.text = text
        self.funcs = {**FUNCS, **(funcs or {})}
        try:
            self.tree = _parse(text)
        except TemplateError as err:
            raise TemplateError(f"template: {err}") from None

    def execute(self, data: Any, funcs: Mapping[str, Callable[..., Any]] | None = None) -> str:
        out: list[str] = []
        scope = _Scope(data)
        self._funcs = {**self.funcs, **(funcs or {})}
        try:
            self._run(self.tree, data, scope, out)
        except TemplateError as err:
            raise TemplateError(f"template: {err}") from None
        except (TypeError, ValueError, KeyError, IndexError) as err:
            raise TemplateError(f"template: error calling function: {err}") from None
        return "".join(out)

    def _run(self, nodes: list[Any], dot: Any, scope: _Scope, out: list[str]) -> None:
        for node in nodes:
            if isinstance(node, tuple):
                if node[0] == "text":
                    out.append(node[1])
                else:
                    pipe: Pipe = node[1]
                    value = self._pipe(pipe, dot, scope)
                    if not pipe.declare:
                        out.append(go_str(value))
                continue
            self._block(node, dot, scope, out)

    def _block(self, block: Block, dot: Any, scope: _Scope, out: list[str]) -> None:
        scope.vars.append({})
        try:
            if block.kind == "range":
                self._range(block, dot, scope, out)
                return
            value = self._pipe(block.pipe, dot, scope, declare_only=block.kind == "if")
            if truth(value):
                self._run(block.body, value if block.kind == "with" else dot, scope, out)
            else:
                self._run(block.orelse, dot, scope, out)
        finally:
            scope.vars.pop()

    def _range(self, block: Block, dot: Any, scope: _Scope, out: list[str]) -> None:
        pipe = block.pipe
        value = self._pipe(Pipe([], pipe.commands), dot, scope)
        items: Iterable[tuple[Any, Any]]
        if value is None:
            items = []
        elif isinstance(value, Mapping):
            items = [(k, value[k]) for k in sorted(value, key=str)]
        elif isinstance(value, list | tuple | str):
            items = list(enumerate(value))
        elif isinstance(value, int):
            items = [(i, i) for i in range(value)]
        else:
            raise TemplateError(f"range can't iterate over {go_str(value)}")
        items = list(items)
        if not items:
            self._run(block.orelse, dot, scope, out)
            return
        for key, item in items:
            if len(pipe.declare) == 1:
                scope.set(pipe.declare[0], item, True)
            elif len(pipe.declare) == 2:
                scope.set(pipe.declare[0], key, True)
                scope.set(pipe.declare[1], item, True)
            self._run(block.body, item, scope, out)

    def _pipe(self, pipe: Pipe, dot: Any, scope: _Scope, declare_only: bool = False) -> Any:
        value: Any = None
        first = True
        for command in pipe.commands:
            value = self._command(command, dot, scope, None if first else (value,))
            first = False
        for name in pipe.declare:
            scope.set(name, value, not pipe.assign)
        return value

    def _command(self, command: list[Operand], dot: Any, scope: _Scope,
                 piped: tuple[Any, ...] | None) -> Any:
        head, rest = command[0], command[1:]
        extra = piped or ()
        if head.kind == "ident":
            args = [self._operand(o, dot, scope) for o in rest] + list(extra)
            name = head.value
            if name in ("and", "or") and not args:
                raise TemplateError(f"wrong number of args for {name}")
            return self._funcs[name](*args)
        if head.kind == "field" and (rest or extra):
            base = dot
            for name in head.fields[:-1]:
                base = field_of(base, name)
            args = [self._operand(o, dot, scope) for o in rest] + list(extra)
            return field_of(base, head.fields[-1], args)
        if rest or extra:
            raise TemplateError(f"can't give argument to non-function {self._describe(head)}")
        return self._operand(head, dot, scope)

    def _describe(self, operand: Operand) -> str:
        return go_str(operand.value) if operand.kind == "literal" else operand.kind

    def _operand(self, operand: Operand, dot: Any, scope: _Scope) -> Any:
        kind = operand.kind
        if kind == "literal":
            return operand.value
        if kind == "dot":
            return dot
        if kind == "ident":
            return self._funcs[operand.value]()
        if kind == "field":
            value = dot
        elif kind == "var":
            value = scope.get(operand.value)
        else:  # a parenthesized pipeline
            value = self._pipe(operand.value, dot, scope)
        for name in operand.fields:
            value = field_of(value, name)
        return value


# -- podman's --format: normalizing, tables, headers


def normalize(fmt: str) -> tuple[bool, str]:
    """(is a table, the template), as podman's report.NormalizeFormat: a leading
    "table" asks for headers; the two characters \\t and \\n are a tab and a
    newline; every row ends in a newline."""
    table = False
    text = fmt
    if text.startswith("table"):
        table = True
        text = text[len("table"):].lstrip(" ")
    text = text.replace("\\t", "\t").replace("\\n", "\n")
    if not text.endswith("\n"):
        text += "\n"
    return table, text


_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z]|\d|\b)|[A-Z]?[a-z]+|[A-Z]+|\d+")


def header_name(field_name: str, overrides: Mapping[str, str] | None = None) -> str:
    """A column's heading for a field, as podman's report.Headers makes it:
    camel-case words upper-cased and spaced ("CreatedAt" → "CREATED AT")."""
    if overrides and field_name in overrides:
        return overrides[field_name]
    words = _CAMEL.findall(field_name) or [field_name]
    return " ".join(words).upper()


class _Header(str):
    """A heading in the header row: any field of it is a heading too."""

    overrides: Mapping[str, str] = {}

    def go_field(self, name: str, *args: Any) -> _Header:
        heading = _Header(header_name(name, self.overrides))
        heading.overrides = self.overrides
        return heading

    def to_json(self) -> str:
        return str(self)


def _header_funcs() -> dict[str, Callable[..., Any]]:
    # The header row passes headings through the functions unchanged.
    def same(value: Any, *_: Any) -> Any:
        return value
    return {name: same for name in ("json", "lower", "upper", "title", "truncate", "pad",
                                    "join", "split")}


def render(fmt: str, items: Iterable[Any], headers: Mapping[str, str] | None = None,
           noheading: bool = False) -> str:
    """podman's --format on a list of items: the template once per item, after a
    header row when it starts with "table"; columns aligned at tabs."""
    table, text = normalize(fmt)
    template = Template(text)
    parts: list[str] = []
    if table and not noheading:
        heading = _Header("")
        heading.overrides = dict(headers or {})
        parts.append(template.execute(heading, _header_funcs()))
    parts.extend(template.execute(item) for item in items)
    joined = "".join(parts)
    return tabwrite(joined) if table or "\t" in joined else joined


def render_table(fmt: str, items: Iterable[Any], headers: Mapping[str, str] | None = None,
                 noheading: bool = False) -> str:
    """As render(), always with a header row unless ``noheading`` (a default table)."""
    if not fmt.startswith("table"):
        fmt = "table " + fmt
    return render(fmt, items, headers, noheading)


class Report:
    """How a listing verb prints its items: its default table, JSON, or a template.

    ``fmt`` is the --format value ("" for the default, "json", or a template);
    ``default`` the verb's default table template; ``json_of`` an item's JSON form.
    """

    def __init__(self, fmt: str, default: str, headers: Mapping[str, str] | None = None,
                 json_of: Callable[[Any], Any] | None = None, noheading: bool = False) -> None:
        self.fmt = fmt or ""
        self.default = default
        self.headers = headers or {}
        self.json_of = json_of or _plain
        self.noheading = noheading
        if self.fmt not in ("", "json", "table"):
            normalize_and_check(self.fmt)

    def lines(self, items: Sequence[Any]) -> str:
        """The whole output, ending in a newline unless empty."""
        if self.fmt == "json":
            return json.dumps([self.json_of(i) for i in items], indent=4,
                              ensure_ascii=False) + "\n"
        fmt = self.default if self.fmt in ("", "table") else self.fmt
        text = render(fmt, items, self.headers, self.noheading)
        return text


def normalize_and_check(fmt: str) -> Template:
    """Parse a --format template now, so a bad one fails before anything is done."""
    return Template(normalize(fmt)[1])
