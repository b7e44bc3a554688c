"""The OData query options SensorThings API uses: ``$filter`` (a recursive-descent parser and an evaluator),
``$orderby``, ``$select``, ``$expand`` (with nested options), ``$top``, ``$skip``, ``$count``.

Why not a library: ``odata-query`` (PyPI, the maintained OData v4 ``$filter`` parser) was evaluated and does not
fit SensorThings' dialect — its lexer refuses ``@iot.id`` (every STA filter on ids), it rejects the ``st_*``
geospatial functions and ``substringof`` unless its module-level function table is edited, and it pins ``sly`` to
0.4. The subset heatwatch serves is small enough to parse here, with tests (``tests/api/sta/test_odata.py``).

Grammar (case-insensitive keywords; whitespace between tokens)::

    expr    := and ( "or" and )*
    and     := unary ( "and" unary )*
    unary   := "not" unary | compare
    compare := sum ( ("eq"|"ne"|"gt"|"ge"|"lt"|"le") sum )?
    sum     := product ( ("add"|"sub") product )*
    product := operand ( ("mul"|"div"|"mod") operand )*
    operand := "-" operand | "(" expr ")" | literal | function "(" [ expr ( "," expr )* ] ")" | path
    path    := name ( "/" name )*            names: identifiers, @iot.id
    literal := 'string' | number | true | false | null | date-time | date | geography'WKT'

Functions (OGC 18-088 §9.3.3.5.2, all of them): string ``substringof endswith startswith length indexof substring
tolower toupper trim concat`` (and OData's ``contains``), date ``year month day hour minute second
fractionalseconds date time totaloffsetminutes now mindatetime maxdatetime``, math ``round floor ceiling``,
geospatial ``geo.distance geo.length geo.intersects`` and ``st_equals st_disjoint st_touches st_within
st_overlaps st_crosses st_intersects st_contains st_relate`` (shapely, in the coordinates' own degrees).
Anything else is a 400 naming what is supported.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from ..errors import ApiError


class ODataError(ApiError):
    def __init__(self, message: str) -> None:
        super().__init__(400, "invalid_query_option", message)


# AST --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lit:
    value: Any


@dataclass(frozen=True, slots=True)
class Geo:
    wkt: str


@dataclass(frozen=True, slots=True)
class Prop:
    path: tuple[str, ...]  # "@iot.id" and "id" are the same property


@dataclass(frozen=True, slots=True)
class Func:
    name: str
    args: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Cmp:
    op: str  # eq ne gt ge lt le
    left: Any
    right: Any


@dataclass(frozen=True, slots=True)
class Arith:
    op: str  # add sub mul div mod neg
    left: Any
    right: Any = None


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # and, or
    items: tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Any


# Lexer ------------------------------------------------------------------------------------------------------------

_DT = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2})"
_TOKEN = re.compile(
    r"\s*(?:"
    r"(?P<geo>geography'(?:[^']|'')*')"
    r"|(?P<str>'(?:[^']|'')*')"
    r"|(?P<dt>" + _DT + r")"
    r"|(?P<date>\d{4}-\d{2}-\d{2})(?![\dT:])"
    r"|(?P<num>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)(?![\w.])"
    r"|(?P<name>@iot\.id|[A-Za-z_][A-Za-z0-9_.]*)"
    r"|(?P<punct>[(),/-])"
    r")")

_COMPARE = {"eq", "ne", "gt", "ge", "lt", "le"}
_ARITH = {"add", "sub", "mul", "div", "mod"}
#: function → number of arguments (a tuple: several counts allowed)
FUNCTIONS: dict[str, int | tuple[int, ...]] = {
    "substringof": 2, "contains": 2, "startswith": 2, "endswith": 2, "length": 1, "indexof": 2,
    "substring": (2, 3), "tolower": 1, "toupper": 1, "trim": 1, "concat": 2,
    "year": 1, "month": 1, "day": 1, "hour": 1, "minute": 1, "second": 1, "fractionalseconds": 1, "date": 1,
    "time": 1, "totaloffsetminutes": 1, "now": 0, "mindatetime": 0, "maxdatetime": 0,
    "round": 1, "floor": 1, "ceiling": 1,
    "geo.distance": 2, "geo.length": 1, "geo.intersects": 2,
    "st_equals": 2, "st_disjoint": 2, "st_touches": 2, "st_within": 2, "st_overlaps": 2, "st_crosses": 2,
    "st_intersects": 2, "st_contains": 2, "st_relate": 3,
}
MAX_FILTER = 2000  # characters: a filter is a query, not a document
MAX_DEPTH = 40


def _tokens(text: str) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    pos = 0
    text = text.rstrip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise ODataError(f"$filter: cannot read {text[pos:pos + 30]!r} (position {pos})")
        kind = m.lastgroup
        raw = m.group(kind)
        if kind == "geo":
            out.append(("lit", Geo(raw[10:-1].replace("''", "'"))))
        elif kind == "str":
            out.append(("lit", Lit(raw[1:-1].replace("''", "'"))))
        elif kind == "dt":
            out.append(("lit", Lit(parse_datetime(raw))))
        elif kind == "date":
            out.append(("lit", Lit(date.fromisoformat(raw))))
        elif kind == "num":
            out.append(("lit", Lit(float(raw) if any(c in raw for c in ".eE") else int(raw))))
        elif kind == "name":
            low = raw.lower()
            if low in ("true", "false"):
                out.append(("lit", Lit(low == "true")))
            elif low == "null":
                out.append(("lit", Lit(None)))
            elif low in _COMPARE or low in _ARITH or low in ("and", "or", "not"):
                out.append(("kw", low))
            else:
                out.append(("name", raw))
        else:
            out.append(("p", raw))
        pos = m.end()
    return out


def parse_datetime(text: str) -> datetime:
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ODataError(f"not an ISO 8601 date-time: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


# Parser -----------------------------------------------------------------------------------------------------------


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]]) -> None:
        self.t = tokens
        self.i = 0
        self.depth = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.t[self.i] if self.i < len(self.t) else None

    def take(self) -> tuple[str, Any]:
        tok = self.peek()
        if tok is None:
            raise ODataError("$filter ends too early")
        self.i += 1
        return tok

    def expect(self, kind: str, value: Any = None) -> None:
        tok = self.take()
        if tok[0] != kind or (value is not None and tok[1] != value):
            raise ODataError(f"$filter: expected {value or kind}, found {tok[1]!r}")

    def expr(self) -> Any:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ODataError("$filter nests too deep")
        items = [self.and_()]
        while self.peek() == ("kw", "or"):
            self.take()
            items.append(self.and_())
        self.depth -= 1
        return items[0] if len(items) == 1 else BoolOp("or", tuple(items))

    def and_(self) -> Any:
        items = [self.unary()]
        while self.peek() == ("kw", "and"):
            self.take()
            items.append(self.unary())
        return items[0] if len(items) == 1 else BoolOp("and", tuple(items))

    def unary(self) -> Any:
        if self.peek() == ("kw", "not"):
            self.take()
            return Not(self.unary())
        return self.compare()

    def compare(self) -> Any:
        left = self.sum()
        tok = self.peek()
        if tok is not None and tok[0] == "kw" and tok[1] in _COMPARE:
            self.take()
            return Cmp(tok[1], left, self.sum())
        return left

    def sum(self) -> Any:
        node = self.product()
        while (tok := self.peek()) is not None and tok[0] == "kw" and tok[1] in ("add", "sub"):
            self.take()
            node = Arith(tok[1], node, self.product())
        return node

    def product(self) -> Any:
        node = self.operand()
        while (tok := self.peek()) is not None and tok[0] == "kw" and tok[1] in ("mul", "div", "mod"):
            self.take()
            node = Arith(tok[1], node, self.operand())
        return node

    def operand(self) -> Any:
        kind, value = self.take()
        if (kind, value) == ("p", "-"):
            inner = self.operand()
            if isinstance(inner, Lit) and isinstance(inner.value, int | float) and not isinstance(inner.value, bool):
                return Lit(-inner.value)
            return Arith("neg", inner)
        if (kind, value) == ("p", "("):
            inner = self.expr()
            self.expect("p", ")")
            return inner
        if kind == "lit":
            return value
        if kind == "name":
            if self.peek() == ("p", "("):
                return self.function(value)
            path = [value]
            while self.peek() == ("p", "/"):
                self.take()
                k, v = self.take()
                if k != "name":
                    raise ODataError(f"$filter: a property name must follow '/', found {v!r}")
                path.append(v)
            return Prop(tuple("id" if p == "@iot.id" else p for p in path))
        raise ODataError(f"$filter: unexpected {value!r}")

    def function(self, name: str) -> Func:
        low = name.lower()
        if low not in FUNCTIONS:
            raise ODataError(f"$filter function {name!r} is not supported here; supported: "
                             f"{', '.join(sorted(FUNCTIONS))}")
        self.expect("p", "(")
        args = []
        if self.peek() != ("p", ")"):
            args.append(self.expr())
            while self.peek() == ("p", ","):
                self.take()
                args.append(self.expr())
        self.expect("p", ")")
        counts = FUNCTIONS[low] if isinstance(FUNCTIONS[low], tuple) else (FUNCTIONS[low],)
        if len(args) not in counts:  # type: ignore[operator]
            raise ODataError(f"{name}() takes {' or '.join(map(str, counts))} argument(s), got {len(args)}")  # type: ignore[arg-type]
        return Func(low, tuple(args))


def parse_filter(text: str) -> Any:
    if len(text) > MAX_FILTER:
        raise ODataError(f"$filter is longer than {MAX_FILTER} characters")
    tokens = _tokens(text)
    if not tokens:
        raise ODataError("$filter is empty")
    p = _Parser(tokens)
    node = p.expr()
    if p.peek() is not None:
        raise ODataError(f"$filter: unexpected {p.peek()[1]!r} after a complete expression")  # type: ignore[index]
    return node


# Evaluation -------------------------------------------------------------------------------------------------------

Getter = Callable[[tuple[str, ...]], Any]


def _comparable(a: Any, b: Any) -> tuple[Any, Any]:
    """Values of different JSON shapes made comparable: ISO strings against date-time literals, intervals by their
    start, ints against floats."""
    if isinstance(b, datetime) and isinstance(a, str):
        a = parse_datetime(a.split("/")[0])
    elif isinstance(a, datetime) and isinstance(b, str):
        b = parse_datetime(b.split("/")[0])
    if isinstance(a, date) and not isinstance(a, datetime) and isinstance(b, str):
        b = date.fromisoformat(b[:10])
    elif isinstance(b, date) and not isinstance(b, datetime) and isinstance(a, str):
        a = date.fromisoformat(a[:10])
    return a, b


def _compare(op: str, a: Any, b: Any) -> bool:
    if op in ("eq", "ne"):
        try:
            a, b = _comparable(a, b)
        except (ODataError, ValueError):
            return op == "ne"
        return (a == b) if op == "eq" else (a != b)
    if a is None or b is None:
        return False
    try:
        a, b = _comparable(a, b)
        if op == "gt":
            return a > b
        if op == "ge":
            return a >= b
        if op == "lt":
            return a < b
        return a <= b
    except (TypeError, ODataError, ValueError):
        return False


def _geometry(value: Any) -> Any:
    """A GeoJSON geometry (dict), a Location/FeatureOfInterest's value, or a WKT literal, as a shapely geometry."""
    from shapely import wkt
    from shapely.geometry import shape

    if isinstance(value, Geo):
        text = re.sub(r"^SRID=\d+;", "", value.wkt.strip(), flags=re.I)
        try:
            return wkt.loads(text)
        except Exception:  # shapely raises its own GEOSException for bad WKT
            raise ODataError(f"not a WKT geometry: {value.wkt[:80]!r}") from None
    if isinstance(value, dict) and "type" in value:
        try:
            return shape(value.get("geometry", value) if value.get("type") == "Feature" else value)
        except Exception:
            return None
    return None


def evaluate(node: Any, get: Getter) -> Any:
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, Geo):
        return node
    if isinstance(node, Prop):
        return get(node.path)
    if isinstance(node, BoolOp):
        if node.op == "and":
            return all(evaluate(i, get) is True for i in node.items)
        return any(evaluate(i, get) is True for i in node.items)
    if isinstance(node, Not):
        return evaluate(node.item, get) is not True
    if isinstance(node, Cmp):
        return _compare(node.op, evaluate(node.left, get), evaluate(node.right, get))
    if isinstance(node, Arith):
        return _arith(node.op, evaluate(node.left, get), None if node.right is None else evaluate(node.right, get))
    if isinstance(node, Func):
        return _call(node.name, [evaluate(a, get) for a in node.args])
    raise ODataError("$filter: unsupported expression")


def _num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _arith(op: str, a: Any, b: Any) -> Any:
    if op == "neg":
        return -a if _num(a) else None
    if a is None or b is None:
        return None
    if isinstance(a, datetime) and isinstance(b, timedelta) and op in ("add", "sub"):
        return a + b if op == "add" else a - b
    if not (_num(a) and _num(b)):
        return None
    try:
        if op == "add":
            return a + b
        if op == "sub":
            return a - b
        if op == "mul":
            return a * b
        if not b:
            return None
        if isinstance(a, float) or isinstance(b, float):
            return a / b if op == "div" else math.fmod(a, b)
        # OData's integer div truncates toward zero and mod takes the dividend's sign (Python's // and % floor).
        q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
        return q if op == "div" else a - b * q
    except (ZeroDivisionError, OverflowError):
        return None


def _as_datetime(v: Any) -> datetime | None:
    if isinstance(v, datetime):
        return v
    if isinstance(v, str):
        try:
            return parse_datetime(v.split("/")[0])
        except ODataError:
            return None
    return None


def _call(name: str, args: list[Any]) -> Any:
    if name in ("now", "mindatetime", "maxdatetime"):
        return {"now": datetime.now(UTC), "mindatetime": datetime(1, 1, 1, tzinfo=UTC),
                "maxdatetime": datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)}[name]
    if name in ("substringof", "contains", "startswith", "endswith", "indexof", "concat"):
        a, b = args
        if not isinstance(a, str) or not isinstance(b, str):
            return None if name in ("indexof", "concat") else False
        if name == "substringof":
            return a in b
        if name == "contains":
            return b in a
        if name == "startswith":
            return a.startswith(b)
        if name == "endswith":
            return a.endswith(b)
        return a.find(b) if name == "indexof" else a + b
    if name in ("length", "tolower", "toupper", "trim", "substring"):
        s = args[0]
        if not isinstance(s, str):
            return None
        if name == "substring":
            start = args[1] if _num(args[1]) else 0
            return s[int(start):] if len(args) == 2 else s[int(start):int(start) + int(args[2])]
        return {"length": len, "tolower": str.lower, "toupper": str.upper, "trim": str.strip}[name](s)
    if name in ("round", "floor", "ceiling"):
        v = args[0]
        if not _num(v):
            return None
        # OData rounds half away from zero (Python's round() goes to even).
        return {"round": lambda x: int(math.copysign(math.floor(abs(x) + 0.5), x)), "floor": math.floor,
                "ceiling": math.ceil}[name](v)
    if name in ("year", "month", "day", "hour", "minute", "second", "fractionalseconds", "date", "time",
                "totaloffsetminutes"):
        d = _as_datetime(args[0])
        if d is None:
            return None
        if name == "fractionalseconds":
            return d.microsecond / 1e6
        if name == "date":
            return d.date()
        if name == "time":
            return d.time().isoformat()
        if name == "totaloffsetminutes":
            off = d.utcoffset()
            return int(off.total_seconds() // 60) if off is not None else 0
        return getattr(d, name)
    geoms = [_geometry(a) for a in args[:2]]
    if name == "geo.length":
        return geoms[0].length if geoms[0] is not None else None
    if any(g is None for g in geoms):
        return None if name == "geo.distance" else False
    a, b = geoms
    if name == "geo.distance":
        return a.distance(b)
    if name == "st_relate":
        pattern = args[2]
        return isinstance(pattern, str) and bool(a.relate_pattern(b, pattern))
    method = {"geo.intersects": "intersects", "st_equals": "equals", "st_disjoint": "disjoint",
              "st_touches": "touches", "st_within": "within", "st_overlaps": "overlaps", "st_crosses": "crosses",
              "st_intersects": "intersects", "st_contains": "contains"}[name]
    return bool(getattr(a, method)(b))


def properties_of(node: Any) -> set[tuple[str, ...]]:
    """Every property path a filter reads."""
    if isinstance(node, Prop):
        return {node.path}
    if isinstance(node, BoolOp):
        return set().union(*(properties_of(i) for i in node.items))
    if isinstance(node, Not):
        return properties_of(node.item)
    if isinstance(node, Cmp):
        return properties_of(node.left) | properties_of(node.right)
    if isinstance(node, Arith):
        return properties_of(node.left) | (properties_of(node.right) if node.right is not None else set())
    if isinstance(node, Func):
        return set().union(*(properties_of(a) for a in node.args)) if node.args else set()
    return set()


def time_hull(node: Any, names: tuple[str, ...] = ("phenomenonTime", "resultTime")
              ) -> tuple[datetime | None, datetime | None, bool, bool]:
    """The widest [lo, hi] of times a filter can accept (None: unbounded), from comparisons of the time properties
    with date-time literals, and whether each end is exclusive. Conservative: a row outside it can never match,
    a row inside may still not (the filter itself decides). What the database is asked for."""
    lo: datetime | None = None
    hi: datetime | None = None
    lo_x = hi_x = False
    if isinstance(node, Cmp):
        left, right, op = node.left, node.right, node.op
        if isinstance(right, Prop) and isinstance(left, Lit):
            left, right = right, left
            op = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge"}.get(op, op)
        if isinstance(left, Prop) and left.path in tuple((n,) for n in names) and isinstance(right, Lit) \
                and isinstance(right.value, datetime):
            v = right.value
            if op in ("gt", "ge"):
                return v, None, op == "gt", False
            if op in ("lt", "le"):
                return None, v, False, op == "lt"
            if op == "eq":
                return v, v, False, False
        return None, None, False, False
    if isinstance(node, BoolOp):
        hulls = [time_hull(i, names) for i in node.items]
        if node.op == "and":
            for h_lo, h_hi, h_lo_x, h_hi_x in hulls:
                if h_lo is not None and (lo is None or h_lo > lo):
                    lo, lo_x = h_lo, h_lo_x
                if h_hi is not None and (hi is None or h_hi < hi):
                    hi, hi_x = h_hi, h_hi_x
            return lo, hi, lo_x, hi_x
        # or: the hull of the hulls, unbounded as soon as one side is
        if any(h[0] is None for h in hulls):
            lo = None
        else:
            lo = min(h[0] for h in hulls)  # type: ignore[type-var]
        if any(h[1] is None for h in hulls):
            hi = None
        else:
            hi = max(h[1] for h in hulls)  # type: ignore[type-var]
        return lo, hi, False, False
    return None, None, False, False


# $orderby, $select, $expand ----------------------------------------------------------------------------------------

_NAME = re.compile(r"^(@iot\.id|[A-Za-z_][A-Za-z0-9_]*)(/[A-Za-z_@][A-Za-z0-9_.]*)*$")


def parse_orderby(text: str) -> list[tuple[tuple[str, ...], bool]]:
    """``phenomenonTime desc, @iot.id`` → [(path, descending)]."""
    out = []
    for part in _split_top(text, ","):
        bits = part.split()
        if not bits or len(bits) > 2 or not _NAME.match(bits[0]):
            raise ODataError(f"$orderby: cannot read {part!r}")
        direction = bits[1].lower() if len(bits) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise ODataError(f"$orderby: {bits[1]!r} is neither asc nor desc")
        out.append((tuple("id" if p == "@iot.id" else p for p in bits[0].split("/")), direction == "desc"))
    return out


def parse_select(text: str) -> list[str]:
    names = [s.strip() for s in _split_top(text, ",")]
    for n in names:
        if not _NAME.match(n) or "/" in n:
            raise ODataError(f"$select: cannot read {n!r}")
    return ["id" if n == "@iot.id" else n for n in names]


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside parentheses and quotes."""
    out, depth, quote, cur = [], 0, False, []
    for ch in text:
        if ch == "'":
            quote = not quote
        elif not quote and ch == "(":
            depth += 1
        elif not quote and ch == ")":
            depth -= 1
            if depth < 0:
                raise ODataError(f"unbalanced parentheses in {text!r}")
        if ch == sep and depth == 0 and not quote:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    if depth != 0 or quote:
        raise ODataError(f"unbalanced parentheses or quotes in {text!r}")
    out.append("".join(cur).strip())
    return [o for o in out if o]


@dataclass(slots=True)
class Options:
    """The query options of one (possibly nested) request."""

    top: int | None = None
    skip: int = 0
    count: bool = False
    filter: Any = None
    filter_text: str | None = None
    orderby: list[tuple[tuple[str, ...], bool]] = field(default_factory=list)
    select: list[str] | None = None
    expand: dict[str, Options] = field(default_factory=dict)
    skiptoken: str | None = None
    raw: dict[str, str | None] = field(default_factory=dict)  # as given: what next links repeat


MAX_TOP = 10_000
MAX_SKIP = 100_000


def _int(name: str, value: str, maximum: int) -> int:
    if not re.fullmatch(r"\d{1,9}", value.strip()):
        raise ODataError(f"{name} must be a non-negative integer, got {value!r}")
    n = int(value)
    if n > maximum:
        raise ODataError(f"{name}={n} is above the cap of {maximum}; follow @iot.nextLink instead")
    return n


def parse_options(raw: dict[str, str | None], *, nested: bool = False, depth: int = 0) -> Options:
    if depth > 4:
        raise ODataError("$expand nests deeper than 4 levels")
    o = Options(raw=dict(raw))
    if raw.get("$top") is not None:
        o.top = _int("$top", raw["$top"] or "", MAX_TOP)  # type: ignore[arg-type]
    if raw.get("$skip") is not None:
        o.skip = _int("$skip", raw["$skip"] or "", MAX_SKIP)  # type: ignore[arg-type]
    if raw.get("$count") is not None:
        v = (raw["$count"] or "").strip().lower()
        if v not in ("true", "false"):
            raise ODataError(f"$count must be true or false, got {raw['$count']!r}")
        o.count = v == "true"
    if raw.get("$filter") is not None:
        o.filter_text = raw["$filter"]
        o.filter = parse_filter(raw["$filter"] or "")
    if raw.get("$orderby") is not None:
        o.orderby = parse_orderby(raw["$orderby"] or "")
    if raw.get("$select") is not None:
        o.select = parse_select(raw["$select"] or "")
    if raw.get("$expand") is not None:
        o.expand = parse_expand(raw["$expand"] or "", depth)
    if not nested and raw.get("$skiptoken") is not None:
        o.skiptoken = raw["$skiptoken"]
    return o


def parse_expand(text: str, depth: int = 0) -> dict[str, Options]:
    """``Datastreams($top=1;$expand=Observations($top=2)),Locations`` and ``Datastreams/Observations``."""
    out: dict[str, Options] = {}
    for item in _split_top(text, ","):
        m = re.fullmatch(r"([A-Za-z]+)(?:/([A-Za-z/]+))?\s*(?:\((.*)\))?", item, re.S)
        if m is None:
            raise ODataError(f"$expand: cannot read {item!r}")
        name, rest, inner = m.group(1), m.group(2), m.group(3)
        opts = out.get(name) or Options()
        if inner:
            raw: dict[str, str | None] = {}
            for part in _split_top(inner, ";"):
                k, sep, v = part.partition("=")
                if not sep or not k.strip().startswith("$"):
                    raise ODataError(f"$expand: cannot read option {part!r} of {name}")
                raw[k.strip()] = v
            unknown = set(raw) - {"$top", "$skip", "$count", "$filter", "$orderby", "$select", "$expand"}
            if unknown:
                raise ODataError(f"$expand: unknown option(s) {', '.join(sorted(unknown))} of {name}")
            opts = parse_options(raw, nested=True, depth=depth + 1)
        if rest:
            opts.expand.update(parse_expand(rest.replace("/", "/", 1), depth + 1))
        out[name] = opts
    return out
