"""Every verb's --help: each flag has its one-line help (docker's words), and an
unknown verb says docker's message with the verbs it may have meant."""

from __future__ import annotations

import argparse

import pytest

import cli


def _parsers() -> list[tuple[str, argparse.ArgumentParser]]:
    """Every verb's and group sub-verb's parser, as its own command line builds it."""
    found: list[tuple[str, argparse.ArgumentParser]] = []
    for verb, (module, _) in cli.VERBS.items():
        words = [[verb, names.split()[0]] for names in cli.GROUPS[verb]] if module == cli.GROUP else [[verb]]
        for argv in words:
            parser, _ = cli.build_parser(argv)
            p = parser
            for word in argv:
                sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
                p = sub.choices[word]
            found.append((" ".join(argv), p))
    return found


def test_every_flag_of_every_verb_has_help() -> None:
    missing = [
        f"{name} {'/'.join(a.option_strings)}"
        for name, p in _parsers()
        for a in p._actions
        if a.option_strings and a.help != argparse.SUPPRESS and not (a.help or "").strip()
    ]
    assert not missing, f"{len(missing)} flags without help:\n" + "\n".join(missing)


def test_an_unknown_verb_suggests(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["pul", "busybox"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("dockyard: unknown command: dockyard pul\n")
    assert "Did you mean this?\n\tpull\n" in err and err.endswith(
        "Run 'dockyard --help' for more information\n"
    )
    assert cli.main(["image", "lss"]) == 1
    assert "Did you mean this?\n\tls\n" in capsys.readouterr().err
    assert cli.main(["frobnicate"]) == 1
    assert "Did you mean" not in capsys.readouterr().err
