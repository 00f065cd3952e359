"""Generated names do not run out at 100,000 containers."""

from pyctrd.core import namegen
from pyctrd.core.config import NAME_RE


def test_a_name_is_found_when_every_short_one_is_taken() -> None:
    plain = {f"{a}_{n}" for a in namegen.ADJECTIVES for n in namegen.NOUNS}
    taken = plain | {f"{name}{i}" for name in plain for i in range(10, 100)}
    for _ in range(20):
        name = namegen.generate_name(taken)
        assert name not in taken and NAME_RE.match(name)
        taken.add(name)
