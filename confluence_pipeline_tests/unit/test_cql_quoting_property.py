"""Property test: any label or space key we quote parses back, through the emulator's CQL parser, to itself."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from confluence_pipeline.domain.cql import (
    descendants_cql,
    discovery_cql,
    ids_cql,
    is_quotable,
    newest_descendant_cql,
    newest_labelled_cql,
    space_labelled_cql,
)
from confluence_pipeline.domain.models import Platform
from confluence_sandbox.confluence.cql import And, Clause, Or, SortKey, Value, parse

# No deadlines: on a shared, loaded machine one example can take hundreds of milliseconds, and a deadline then
# fails a correct test as "flaky".
# Bias towards the characters that could break out of a literal, on top of arbitrary unicode.
HOSTILE = st.sampled_from(['"', "\\", "'", "(", ")", ",", " ", "=", "!", "~", "u", "0", "OR", "AND", "NOT", "IN"])
LABELS = (
    st.lists(st.one_of(HOSTILE, st.characters()), max_size=24)
    .map("".join)
    .filter(lambda label: is_quotable(label) and label.strip() != "")
)


def label_clause(label: str) -> Clause:
    return Clause("label", "=", (Value(label, quoted=True),))


NOT_ATTACHMENT = Clause("type", "!=", (Value("attachment", quoted=False),))
SPACE_TYPES = {
    Platform.ONPREM: Clause("space.type", "=", (Value("global", quoted=False),)),
    Platform.CLOUD: Or(
        (
            Clause("space.type", "=", (Value("global", quoted=False),)),
            Clause("space.type", "=", (Value("collaboration", quoted=False),)),
        )
    ),
}


@settings(max_examples=300, deadline=None)
@given(single=LABELS, all_=LABELS, platform=st.sampled_from(list(Platform)))
def test_discovery_labels_parse_back_unchanged(single: str, all_: str, platform: Platform) -> None:
    query = parse(discovery_cql(single, all_, platform))
    assert query.where == And((Or((label_clause(single), label_clause(all_))), SPACE_TYPES[platform], NOT_ATTACHMENT))
    assert query.order == ()


@settings(max_examples=200, deadline=None)
@given(single=LABELS, all_=LABELS, space_key=LABELS)
def test_confirming_query_parses_back_unchanged(single: str, all_: str, space_key: str) -> None:
    query = parse(space_labelled_cql(single, all_, space_key))
    assert query.where == And(
        (
            Or((label_clause(single), label_clause(all_))),
            Clause("space", "=", (Value(space_key, quoted=True),)),
            NOT_ATTACHMENT,
        )
    )


@settings(max_examples=200, deadline=None)
@given(single=LABELS, all_=LABELS, platform=st.sampled_from(list(Platform)))
def test_newest_labelled_query_parses_back_to_the_discovery_query_newest_first(
    single: str, all_: str, platform: Platform
) -> None:
    query = parse(newest_labelled_cql(single, all_, platform))
    assert query.where == parse(discovery_cql(single, all_, platform)).where
    assert query.order == (SortKey("lastmodified", descending=True),)


@settings(deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**18).map(str), min_size=1, max_size=100))
def test_id_lists_parse_back_unchanged(ids: list[str]) -> None:
    values = tuple(Value(content_id, quoted=False) for content_id in ids)
    assert parse(descendants_cql(ids)).where == And((Clause("ancestor", "in", values), NOT_ATTACHMENT))
    assert parse(ids_cql(ids)).where == Clause("id", "in", values)
    newest = parse(newest_descendant_cql(ids))
    assert newest.where == And((Clause("ancestor", "in", values), NOT_ATTACHMENT))
    assert newest.order == (SortKey("lastmodified", descending=True),)
