"""pyctr's parser built lazily (each verb's arguments made when it is used) is the
parser built at once: the same help for every verb at every depth, the same
namespace for the same words, the same refusals."""

import argparse
from collections.abc import Iterator

import pytest

from pyctrd.cli.parser import build_parser

SAMPLES = [
    ["ps", "-a", "--format", "{{.ID}}"],
    ["run", "--rm", "-e", "A=1", "--network", "none", "busybox", "sh", "-c", "true"],
    ["create", "--name", "x", "-p", "8080:80", "busybox"],
    ["container", "ls", "-q"],
    ["container", "inspect", "x"],
    ["image", "ls"],
    ["image", "inspect", "busybox"],
    ["stop", "--ignore", "a", "-t", "0", "b"],
    ["logs", "-f", "--tail", "3", "x"],
    ["network", "create", "n1"],
    ["volume", "ls"],
    ["system", "df"],
]


def verbs(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
          ) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*path, name), sub
                yield from verbs(sub, (*path, name))


def test_every_verb_s_help_is_the_same() -> None:
    eager = build_parser(lazy=False)
    lazy = build_parser()
    lazy_verbs = dict(verbs(lazy))
    eager_verbs = dict(verbs(eager))
    assert lazy_verbs.keys() == eager_verbs.keys()
    assert len(eager_verbs) > 60
    for path, parser in eager_verbs.items():
        assert lazy_verbs[path].format_help() == parser.format_help(), path
    assert lazy.format_help() == eager.format_help()


@pytest.mark.parametrize("argv", SAMPLES, ids=[" ".join(a[:2]) for a in SAMPLES])
def test_the_same_words_give_the_same_namespace(argv: list[str]) -> None:
    assert build_parser().parse_args(argv) == build_parser(lazy=False).parse_args(argv)


def test_a_lazy_verb_is_made_only_when_used() -> None:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    run = action.choices["run"]
    assert not any("--rm" in a.option_strings for a in run._actions)
    parser.parse_args(["run", "--rm", "busybox"])
    assert any("--rm" in a.option_strings for a in run._actions)
