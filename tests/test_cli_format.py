"""--format templates print what docker 20.10 prints for the same inspect JSON
(the expected strings were taken from `docker inspect -f` on this machine)."""

from __future__ import annotations

import pytest

import cli

CONTAINER = {
    "Id": "abc",
    "State": {"Status": "created", "Running": False, "ExitCode": 0},
    "Config": {"Env": None, "Cmd": ["true"], "Labels": {}, "Volumes": None},
    "HostConfig": {
        "Binds": None,
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "LogConfig": {"Type": "json-file", "Config": {}},
    },
    "RootFS": {"Type": "layers", "Layers": ["sha256:aa"]},
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{.State.Status}} {{.State.Running}}", "created false"),
        ("{{.Config.Env}} {{.Config.Volumes}} {{.Config.Cmd}}", "[] map[] [true]"),
        ("{{.HostConfig.Binds}} {{.HostConfig.RestartPolicy}}", "[] {no 0}"),
        ("{{.HostConfig.LogConfig}}", "{json-file map[]}"),
        ("{{.RootFS}}", "{layers [sha256:aa]}"),
        # fields docker's JSON omits when empty still print their zero value
        ("{{.State.Health}} {{.Config.ExposedPorts}} {{.Config.StopSignal}}|", "<nil> map[] |"),
        ("{{json .Config.Cmd}} {{upper .State.Status}}", '["true"] CREATED'),
    ],
)
def test_templates_print_as_docker(template: str, expected: str) -> None:
    assert cli.render_template(template, CONTAINER) == expected


def test_missing_key_is_dockers_error() -> None:
    with pytest.raises(cli.TemplateError) as exc:
        cli.render_template("x {{.Config.Nope}}", CONTAINER)
    assert str(exc.value) == (
        'template parsing error: template: :1:11: executing "" at <.Config.Nope>: '
        'map has no entry for key "Nope"'
    )
