"""CQL for the emulator: a lark parser to a small AST, validation the way Confluence rejects queries, and an
index-assisted evaluator over a `Wiki`."""

from __future__ import annotations

import calendar
import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Literal

from lark import Lark, Token, Transformer
from lark.exceptions import LarkError, VisitError

from confluence_sandbox.confluence.attachments import Attachment
from confluence_sandbox.confluence.wiki import Page, Wiki

Platform = Literal["ONPREM", "CLOUD"]

EQUALITY_OPS = frozenset({"=", "!=", "in", "not in"})
TEXT_OPS = frozenset({"~", "!~"})
RANGE_OPS = frozenset({"=", "!=", ">", ">=", "<", "<="})
NEGATIVE_OPS = frozenset({"!=", "!~", "not in"})

# field -> operators it accepts; anything else is a 400, as in Confluence.
FIELD_OPERATORS: dict[str, frozenset[str]] = {
    "label": EQUALITY_OPS,
    "space": EQUALITY_OPS,
    "space.key": EQUALITY_OPS,
    "space.type": EQUALITY_OPS,
    "type": EQUALITY_OPS,
    "id": EQUALITY_OPS,
    "content": EQUALITY_OPS,
    "ancestor": EQUALITY_OPS,
    "parent": EQUALITY_OPS,
    "container": EQUALITY_OPS,
    "title": EQUALITY_OPS | TEXT_OPS,
    "text": TEXT_OPS,
    "lastmodified": RANGE_OPS,
    "created": RANGE_OPS,
}
ID_FIELDS = frozenset({"id", "content", "ancestor", "parent", "container"})
DATE_FIELDS = frozenset({"lastmodified", "created"})
SORT_FIELDS = frozenset({"lastmodified", "created", "id", "title", "type", "space"})
KNOWN_TYPES = frozenset(
    {"page", "blogpost", "attachment", "comment", "folder", "whiteboard", "database", "embed", "space", "user"}
)
DC_SPACE_TYPES = frozenset({"global", "personal"})
DATE_FUNCTIONS = frozenset(
    {
        "now",
        "startofday",
        "endofday",
        "startofweek",
        "endofweek",
        "startofmonth",
        "endofmonth",
        "startofyear",
        "endofyear",
    }
)
SearchOrder = Literal["id", "lastmodified_desc"]

_DATE_FORMATS: tuple[tuple[re.Pattern[str], str, timedelta], ...] = (
    (re.compile(r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}$"), "%Y/%m/%d %H:%M", timedelta(minutes=1)),
    (re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$"), "%Y-%m-%d %H:%M", timedelta(minutes=1)),
    (re.compile(r"^\d{4}/\d{2}/\d{2}$"), "%Y/%m/%d", timedelta(days=1)),
    (re.compile(r"^\d{4}-\d{2}-\d{2}$"), "%Y-%m-%d", timedelta(days=1)),
)
_OFFSET = re.compile(r"^\s*([+-]?)\s*(\d+)\s*([yMwdhm])\s*$")


class CqlError(ValueError):
    """The query does not parse or uses a field/operator/value Confluence rejects (HTTP 400)."""

    def __init__(self, cql: str, detail: str) -> None:
        super().__init__(f"Could not parse cql : {cql}")
        self.cql = cql
        self.detail = detail


class UnknownSpaceError(LookupError):
    """`space = KEY` names a space that does not exist (or that the caller cannot see)."""

    def __init__(self, key: str) -> None:
        super().__init__(f"unknown space key {key!r}")
        self.key = key


# -- AST --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Value:
    text: str
    quoted: bool


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Value, ...]


Operand = Value | Call


@dataclass(frozen=True)
class Clause:
    field: str
    op: str  # one of = != > >= < <= ~ !~ in, "not in"
    values: tuple[Operand, ...]


@dataclass(frozen=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Not:
    item: Node


Node = Clause | And | Or | Not


@dataclass(frozen=True)
class SortKey:
    field: str
    descending: bool


@dataclass(frozen=True)
class Query:
    text: str
    where: Node
    order: tuple[SortKey, ...]

    @property
    def time_dependent(self) -> bool:
        """Queries calling now() & co. cannot be cached."""
        return any(isinstance(v, Call) for clause in _clauses(self.where) for v in clause.values)

    @property
    def uses_now(self) -> bool:
        """Whether the query calls `now()`, which Cloud documents and Data Center may not accept."""
        return any(isinstance(v, Call) and v.name == "now" for clause in _clauses(self.where) for v in clause.values)


# -- parsing ----------------------------------------------------------------------------------
class _ToAst(Transformer[Token, object]):
    def start(self, items: list[object]) -> tuple[Node, tuple[SortKey, ...]]:
        where = items[0]
        order = items[1] if len(items) > 1 else ()
        return where, order  # type: ignore[return-value]

    def or_(self, items: list[Node]) -> Or:
        return Or(tuple(_flatten(items, Or)))

    def and_(self, items: list[Node]) -> And:
        return And(tuple(_flatten(items, And)))

    def not_(self, items: list[Node]) -> Not:
        return Not(items[0])

    def compare(self, items: list[object]) -> Clause:
        field, op, value = items
        return Clause(str(field).lower(), str(op), (value,))  # type: ignore[arg-type]

    def in_(self, items: list[object]) -> Clause:
        field, values = items
        return Clause(str(field).lower(), "in", values)  # type: ignore[arg-type]

    def not_in(self, items: list[object]) -> Clause:
        field, values = items
        return Clause(str(field).lower(), "not in", values)  # type: ignore[arg-type]

    def value_list(self, items: list[Operand]) -> tuple[Operand, ...]:
        return tuple(items)

    def quoted(self, items: list[Token]) -> Value:
        return Value(_unescape(str(items[0])[1:-1]), quoted=True)

    def bare(self, items: list[Token]) -> Value:
        return Value(str(items[0]), quoted=False)

    def call(self, items: list[object]) -> Call:
        name, *args = items
        return Call(str(name).lower(), tuple(a for a in args if isinstance(a, Value)))

    def order_by(self, items: list[SortKey]) -> tuple[SortKey, ...]:
        return tuple(items)

    def sort_key(self, items: list[Token]) -> SortKey:
        descending = len(items) > 1 and str(items[1]).lower() == "desc"
        return SortKey(str(items[0]).lower(), descending)


def _flatten(items: Iterable[Node], kind: type[And] | type[Or]) -> Iterable[Node]:
    for item in items:
        if isinstance(item, kind):
            yield from item.items
        else:
            yield item


def _unescape(raw: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i + 1 < len(raw):
            nxt = raw[i + 1]
            if nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", raw[i + 2 : i + 6]):
                out.append(chr(int(raw[i + 2 : i + 6], 16)))
                i += 6
                continue
            out.append(nxt)
            i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out)


_parser_lock = threading.Lock()


@functools.cache
def _parser() -> Lark:
    grammar = (Path(__file__).parent / "cql.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", maybe_placeholders=False)


@functools.lru_cache(maxsize=512)
def parse(cql: str) -> Query:
    """Parse and validate `cql`; raises `CqlError` for anything Confluence would answer with 400."""
    if not cql.strip():
        raise CqlError(cql, "empty query")
    try:
        with _parser_lock:
            tree = _parser().parse(cql)
        where, order = _ToAst().transform(tree)  # type: ignore[misc]
    except VisitError as exc:
        raise CqlError(cql, str(exc.orig_exc)) from None
    except LarkError as exc:
        raise CqlError(cql, str(exc).splitlines()[0]) from None
    query = Query(cql, where, order)
    _validate(query)
    return query


def _validate(query: Query) -> None:
    if _leftmost_is_negative(query.where):
        raise CqlError(query.text, "a negative expression cannot be the first clause")
    for clause in _clauses(query.where):
        allowed = FIELD_OPERATORS.get(clause.field)
        if allowed is None:
            raise CqlError(query.text, f"unknown field {clause.field!r}")
        if clause.op not in allowed:
            raise CqlError(query.text, f"operator {clause.op!r} is not supported by field {clause.field!r}")
        for value in clause.values:
            _validate_value(query.text, clause, value)
    for key in query.order:
        if key.field not in SORT_FIELDS:
            raise CqlError(query.text, f"cannot order by {key.field!r}")


def _validate_value(cql: str, clause: Clause, value: Operand) -> None:
    if clause.field in DATE_FIELDS:
        if isinstance(value, Call):
            if value.name not in DATE_FUNCTIONS:
                raise CqlError(cql, f"unknown function {value.name}()")
            if len(value.args) > 1 or (value.args and not _OFFSET.match(value.args[0].text)):
                raise CqlError(cql, f"bad arguments for {value.name}()")
            return
        if not value.quoted:
            raise CqlError(cql, "date values must be quoted")
        parse_date_literal(cql, value.text)
        return
    if isinstance(value, Call):
        raise CqlError(cql, f"function {value.name}() is not supported for {clause.field}")
    if clause.field in ID_FIELDS and not value.text.isdigit():
        raise CqlError(cql, f"{clause.field} expects a numeric id, got {value.text!r}")
    if clause.field == "type" and value.text.lower() not in KNOWN_TYPES:
        raise CqlError(cql, f"unknown content type {value.text!r}")


def parse_date_literal(cql: str, text: str) -> tuple[datetime, timedelta]:
    """Naive local start of the literal and its resolution; ISO `T…Z` and anything else is a 400."""
    for pattern, fmt, resolution in _DATE_FORMATS:
        if pattern.match(text):
            try:
                return datetime.strptime(text, fmt), resolution
            except ValueError:
                raise CqlError(cql, f"invalid date {text!r}") from None
    raise CqlError(cql, f"unsupported date format {text!r}")


def _clauses(node: Node) -> Iterable[Clause]:
    if isinstance(node, Clause):
        yield node
    elif isinstance(node, Not):
        yield from _clauses(node.item)
    else:
        for item in node.items:
            yield from _clauses(item)


def _leftmost_is_negative(node: Node) -> bool:
    while isinstance(node, And | Or):
        node = node.items[0]
    if isinstance(node, Not):
        return True
    return node.op in NEGATIVE_OPS


# -- evaluation -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SearchScope:
    """What a search runs against. `unknown_space` decides between DC's 400 ("error") and Cloud's empty result.

    `default_order` applies when the query has no ORDER BY. `include_hidden` keeps content the caller may not
    view, for servers that apply view permissions only after cutting out a result page.
    """

    wiki: Wiki
    platform: Platform = "ONPREM"
    timezone: tzinfo = UTC
    unknown_space: Literal["error", "empty"] = "error"
    now: datetime | None = None
    default_order: SearchOrder = "id"
    include_hidden: bool = False


Predicate = Callable[[Page], bool]


@dataclass(frozen=True)
class _Compiled:
    candidates: frozenset[str] | set[str] | None  # None: no index narrows this node
    test: Predicate


def evaluate(query: Query, scope: SearchScope) -> list[Page | Attachment]:
    """Visible, current content (pages, blog posts, attachments) matching `query`, in `ORDER BY` order (else
    `scope.default_order`, id ascending by default)."""
    wiki = scope.wiki
    with wiki.lock:
        compiled = _compile(query.where, scope)
        pool: Iterable[str] = compiled.candidates if compiled.candidates is not None else list(wiki.pages)
        found: list[Page | Attachment] = []
        for page_id in pool:
            page = wiki.pages.get(page_id)
            if page is None or page.status != "current":
                continue
            if not scope.include_hidden and not wiki.is_visible(page):
                continue
            if compiled.test(page):
                found.append(page)
        # The indexes hold pages only; attachments are few enough to test one by one.
        found.extend(
            a
            for a in wiki.attachments.values()
            if (wiki.attachment_live(a) if scope.include_hidden else wiki.attachment_visible(a)) and compiled.test(a)
        )
        found.sort(key=_numeric_id)
        if not query.order and scope.default_order == "lastmodified_desc":
            found.sort(key=lambda p: p.when, reverse=True)
        for key in reversed(query.order):
            found.sort(key=_sort_key(key.field, wiki), reverse=key.descending)
        return found


def _sort_key(field: str, wiki: Wiki) -> Callable[[Page], object]:
    if field == "lastmodified":
        return lambda p: p.when
    if field == "created":
        return lambda p: p.created
    if field == "title":
        return lambda p: p.title.lower()
    if field == "type":
        return lambda p: p.type
    if field == "space":
        return lambda p: p.space_key.lower()
    return _numeric_id


def _numeric_id(content: Page | Attachment) -> int:
    """Content ids share one sequence; an attachment's is the number after `att`."""
    return int(content.numeric_id if isinstance(content, Attachment) else content.id)


def _compile(node: Node, scope: SearchScope) -> _Compiled:
    if isinstance(node, Clause):
        return _compile_clause(node, scope)
    if isinstance(node, Not):
        inner = _compile(node.item, scope)
        return _Compiled(None, lambda p: not inner.test(p))
    parts = [_compile(item, scope) for item in node.items]
    tests = [part.test for part in parts]
    if isinstance(node, And):
        narrowing = [part.candidates for part in parts if part.candidates is not None]
        candidates: set[str] | None = None
        if narrowing:
            smallest, *rest = sorted(narrowing, key=len)
            candidates = set(smallest).intersection(*rest)
        return _Compiled(candidates, lambda p: all(test(p) for test in tests))
    union: set[str] | None = set()
    for part in parts:
        if part.candidates is None:
            union = None
            break
        union |= part.candidates  # type: ignore[operator]
    return _Compiled(union, lambda p: any(test(p) for test in tests))


def _compile_clause(clause: Clause, scope: SearchScope) -> _Compiled:
    negative = clause.op in NEGATIVE_OPS
    positive = _positive_clause(clause, scope)
    if negative:
        return _Compiled(None, lambda p: not positive.test(p))
    return positive


def _texts(clause: Clause) -> list[str]:
    return [v.text for v in clause.values if isinstance(v, Value)]


def _positive_clause(clause: Clause, scope: SearchScope) -> _Compiled:
    wiki = scope.wiki
    field = clause.field
    if field == "label":
        labels = {t.lower() for t in _texts(clause)}
        ids: set[str] = set().union(*(wiki.ids_with_label(label) for label in labels))
        return _Compiled(ids, lambda p: not p.labels.isdisjoint(labels))
    if field in ("space", "space.key"):
        keys: set[str] = set()
        for text in _texts(clause):
            space = wiki.visible_space(text)
            if space is None:
                if scope.unknown_space == "error":
                    raise UnknownSpaceError(text)
                continue
            keys.add(space.key)
        ids = set().union(*(wiki.ids_in_space(key) for key in keys))
        return _Compiled(ids, lambda p: p.space_key in keys)
    if field == "space.type":
        types = {t.lower() for t in _texts(clause)}
        if scope.platform == "ONPREM":
            types &= DC_SPACE_TYPES
        return _Compiled(None, lambda p: wiki.spaces[p.space_key].type in types)
    if field == "type":
        types = {t.lower() for t in _texts(clause)}
        return _Compiled(None, lambda p: p.type in types)
    if field in ("id", "content"):
        ids = set(_texts(clause))
        return _Compiled(ids, lambda p: str(_numeric_id(p)) in ids)
    if field == "ancestor":
        ids = set()
        for root in _texts(clause):
            if root in wiki.pages:
                ids.update(wiki.descendant_ids(root))
        # An attachment sits below its container, so the container's ancestors and the container are its own.
        containers = ids | set(_texts(clause))
        return _Compiled(ids, lambda p: p.container.id in containers if isinstance(p, Attachment) else p.id in ids)
    if field == "parent":
        ids = set()
        for parent in _texts(clause):
            if parent in wiki.pages:
                ids.update(wiki.child_ids(parent))
        return _Compiled(ids, lambda p: p.id in ids)
    if field == "container":
        # Only attachments (and comments, which the emulator lacks) have a content container; pages never match.
        ids = set(_texts(clause))
        return _Compiled(set(), lambda p: isinstance(p, Attachment) and p.container.id in ids)
    if field == "title":
        if clause.op in TEXT_OPS:
            return _Compiled(None, _text_match(clause, lambda p: p.title))
        titles = {t.lower() for t in _texts(clause)}
        ids = set().union(*(wiki.ids_with_title(t) for t in titles))
        return _Compiled(ids, lambda p: p.title.lower() in titles)
    if field == "text":
        return _Compiled(None, _text_match(clause, lambda p: f"{p.title} {re.sub(r'<[^>]+>', ' ', p.body)}"))
    if field in DATE_FIELDS:
        return _Compiled(None, _date_match(clause, scope))
    raise AssertionError(f"validated field {field!r} has no evaluator")  # pragma: no cover


def _text_match(clause: Clause, text_of: Callable[[Page], str]) -> Predicate:
    """Lucene-like: every word of the value must appear as a word (a trailing * makes it a prefix)."""
    terms = [t.lower() for t in re.findall(r"[\w*]+", " ".join(_texts(clause)))]

    def test(page: Page) -> bool:
        words = set(re.findall(r"\w+", text_of(page).lower()))
        for term in terms:
            if term.endswith("*"):
                if not any(w.startswith(term.rstrip("*")) for w in words):
                    return False
            elif term not in words:
                return False
        return bool(terms)

    return test


def _date_match(clause: Clause, scope: SearchScope) -> Predicate:
    """`=`/`!=` match the literal's whole minute or day; ranges compare against its start instant."""
    start, resolution = _instant(clause.values[0], scope, clause)
    end = start + resolution
    op = clause.op

    def when_of(page: Page) -> datetime:
        return page.when if clause.field == "lastmodified" else page.created

    comparisons: dict[str, Predicate] = {
        "=": lambda p: start <= when_of(p) < end,
        "!=": lambda p: start <= when_of(p) < end,  # negated by the caller
        ">": lambda p: when_of(p) > start,
        ">=": lambda p: when_of(p) >= start,
        "<": lambda p: when_of(p) < start,
        "<=": lambda p: when_of(p) <= start,
    }
    return comparisons[op]


def _instant(value: Operand, scope: SearchScope, clause: Clause) -> tuple[datetime, timedelta]:
    if isinstance(value, Value):
        naive, resolution = parse_date_literal(clause.field, value.text)
        return naive.replace(tzinfo=scope.timezone).astimezone(UTC), resolution
    zone = scope.timezone
    now = (scope.now or datetime.now(UTC)).astimezone(zone)
    # The increment moves the boundary, not the reference time: startOfMonth("+14d") is the 15th of this month.
    moment = now if value.name == "now" else _boundary(value.name, now.replace(tzinfo=None)).replace(tzinfo=zone)
    if value.args:
        moment = _shift(moment, value.args[0].text)
    return moment.astimezone(UTC), timedelta(minutes=1)


def _boundary(name: str, local: datetime) -> datetime:
    """The start or end of the server-local day, week (Sunday first), month or year around `local` (naive)."""
    day = datetime.combine(local.date(), datetime.min.time())
    last_ms = timedelta(milliseconds=1)
    week = day - timedelta(days=(local.weekday() + 1) % 7)  # Confluence weeks start on Sunday
    month = day.replace(day=1)
    year = day.replace(month=1, day=1)
    boundaries = {
        "startofday": day,
        "endofday": day + timedelta(days=1) - last_ms,
        "startofweek": week,
        "endofweek": week + timedelta(days=7) - last_ms,
        "startofmonth": month,
        "endofmonth": _add_months(month, 1) - last_ms,
        "startofyear": year,
        "endofyear": year.replace(year=year.year + 1) - last_ms,
    }
    return boundaries[name]


def _shift(moment: datetime, offset: str) -> datetime:
    """Calendar units move the local wall clock (a day stays a day across DST); hours and minutes move the instant."""
    match = _OFFSET.match(offset)
    if match is None:  # pragma: no cover - validated at parse time
        return moment
    sign = -1 if match.group(1) == "-" else 1
    amount = int(match.group(2)) * sign
    unit = match.group(3)
    if unit in ("h", "m"):
        step = timedelta(hours=1) if unit == "h" else timedelta(minutes=1)
        return (moment.astimezone(UTC) + step * amount).astimezone(moment.tzinfo)
    zone = moment.tzinfo
    local = moment.replace(tzinfo=None)
    if unit == "y":
        local = _add_months(local, 12 * amount)
    elif unit == "M":
        local = _add_months(local, amount)
    else:
        local += (timedelta(weeks=1) if unit == "w" else timedelta(days=1)) * amount
    return local.replace(tzinfo=zone)


def _add_months(moment: datetime, months: int) -> datetime:
    """Month arithmetic that clamps the day, as Java's Calendar does (31 May - 1M = 30 April)."""
    index = moment.month - 1 + months
    year, month = moment.year + index // 12, index % 12 + 1
    return moment.replace(year=year, month=month, day=min(moment.day, calendar.monthrange(year, month)[1]))


class SearchCache:
    """LRU of result lists keyed by query, scope knobs and wiki revision, so paging one query stays cheap.

    Page objects are cached, not ids: any change to the wiki bumps its revision and so misses the cache, and
    rebuilding a list of 80,000 pages from ids for every 200-result page took 40 ms of each request.
    """

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[object, ...], list[Page | Attachment]] = OrderedDict()

    def search(self, query: Query, scope: SearchScope) -> list[Page | Attachment]:
        wiki = scope.wiki
        with wiki.lock:
            if query.time_dependent:
                return evaluate(query, scope)
            key = (
                query.text,
                scope.platform,
                str(scope.timezone),
                scope.unknown_space,
                scope.default_order,
                scope.include_hidden,
                wiki.revision,
                id(wiki),
            )
            with self._lock:
                cached = self._entries.get(key)
                if cached is not None:
                    self._entries.move_to_end(key)
            if cached is None:
                pages = evaluate(query, scope)
                with self._lock:
                    self._entries[key] = pages
                    while len(self._entries) > self._size:
                        self._entries.popitem(last=False)
                cached = pages
            return list(cached)  # callers may reorder their copy
