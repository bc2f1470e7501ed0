"""The pairing honours people's wishes: a "never" pair is never grouped (whichever solver runs, even
when someone must sit out), and a group asked for again is formed without counting as a repeat."""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from matcher.model import Group, Member
from matcher.pairing import PastGroup, Person, make_pairing
from matcher.rounds import groups_of_round
from matcher.store import Store
from tests.test_rounds import add, month, person, started


def _check(pairing, ids: list[str], never: set[frozenset[str]]) -> None:
    placed = [p for g in pairing.groups for p in g.members] + pairing.unpaired
    assert sorted(placed) == sorted(ids)
    for group in pairing.groups:
        assert 2 <= len(group.members) <= 3 and group.host in group.members
        assert not any(frozenset(pair) in never for pair in combinations(group.members, 2))


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(min_value=0, max_value=13),
    pairs=st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), max_size=20),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_no_group_ever_holds_a_never_pair_whatever_the_seed(size: int, pairs, seed: int) -> None:
    ids = [f"p{i:02d}" for i in range(size)]
    never = {frozenset((ids[a], ids[b])) for a, b in pairs if a < size and b < size and a != b}
    people = [Person(i, f"org{n % 3}") for n, i in enumerate(ids)]
    history = [PastGroup(1, tuple(ids[i : i + 2])) for i in range(0, size - 1, 2)]
    pairing = make_pairing(people, history, seed, never=[tuple(p) for p in never])
    _check(pairing, ids, never)
    if not never and size >= 2:
        assert pairing.unpaired == []


def test_the_local_search_of_a_large_programme_honours_never_pairs() -> None:
    ids = [f"p{i:03d}" for i in range(201)]
    # p000 refuses two thirds of everyone: the random start puts them with one of those mostly.
    never = {frozenset(("p000", other)) for other in ids[1:135]}
    people = [Person(i, f"org{n % 7}") for n, i in enumerate(ids)]
    for seed in range(3):
        pairing = make_pairing(people, [], seed, never=[tuple(p) for p in never])
        _check(pairing, ids, never)
        assert pairing.unpaired == []


def test_someone_sits_out_only_when_nothing_else_works() -> None:
    people = [Person("a", ""), Person("b", ""), Person("c", "")]
    for seed in range(20):
        pairing = make_pairing(people, [], seed, never=[("a", "b")])
        assert len(pairing.groups) == 1 and len(pairing.unpaired) == 1
        assert pairing.unpaired[0] in ("a", "b")
    alone = make_pairing([Person("a", ""), Person("b", "")], [], 1, never=[("b", "a")])
    assert alone.groups == [] and alone.unpaired == ["a", "b"]


def test_a_group_asked_for_again_is_formed_and_not_counted_as_a_repeat() -> None:
    people = [Person(i, "") for i in "abcdef"]
    history = [PastGroup(1, ("a", "b")), PastGroup(1, ("c", "d")), PastGroup(1, ("e", "f"))]
    for seed in range(10):
        pairing = make_pairing(people, history, seed, again=[("b", "a")])
        assert ("a", "b") in [g.members for g in pairing.groups]
        assert pairing.again == 1 and pairing.repeats == 0
    # A never pair outweighs a wish to meet again.
    refused = make_pairing(people, history, 3, again=[("a", "b")], never=[("a", "b")])
    assert refused.again == 0 and ("a", "b") not in [g.members for g in refused.groups]


def test_a_never_pair_holds_round_after_round_in_the_store(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db.json") as store:
        add(store, person("ann"), person("bob"), person("cat"), person("dan"), person("eve"))
        with store.transaction():
            ann = store.get(Member, "ann")
            assert ann is not None
            ann.never_with = ["bob", "eve@example.org"]  # a member id, and an address
            store.put(ann)
        for index, seed in enumerate((7, 99, 12345, 3, 2**30, 42)):
            round_ = started(store, month(index + 1), seed=seed)
            groups = groups_of_round(store, round_.id)
            for group in groups:
                assert not {"ann", "bob"} <= set(group.members)
                assert not {"ann", "eve"} <= set(group.members)
            assert sorted(round_.unpaired + [m for g in groups for m in g.members]) == [
                "ann",
                "bob",
                "cat",
                "dan",
                "eve",
            ]


def test_meet_again_is_used_up_once_honoured(tmp_path: Path) -> None:
    with Store.open(tmp_path / "db.json") as store:
        add(store, *(person(i) for i in ("ann", "bob", "cat", "dan")))
        first = started(store, month(1), seed=5)
        pair = groups_of_round(store, first.id)[0]
        with store.transaction():
            for member_id in pair.members:
                member = store.get(Member, member_id)
                assert member is not None
                member.meet_again = [pair.key]
                store.put(member)
        second = started(store, month(2), seed=5)
        assert sorted(pair.members) in [sorted(g.members) for g in groups_of_round(store, second.id)]
        assert all(not m.meet_again for m in store.all(Member))
        third = started(store, month(3), seed=5)
        assert sorted(pair.members) not in [sorted(g.members) for g in groups_of_round(store, third.id)]
        assert isinstance(pair, Group)
