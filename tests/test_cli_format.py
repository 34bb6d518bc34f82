"""--format templates print what docker 20.10 prints for the same inspect JSON
(the expected strings were taken from `docker inspect -f` on this machine)."""

from __future__ import annotations

import pytest

from commands.errors import TemplateError
from commands.gotemplate import render_template

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
    assert render_template(template, CONTAINER) == expected


def test_missing_key_is_dockers_error() -> None:
    with pytest.raises(TemplateError) as exc:
        render_template("x {{.Config.Nope}}", CONTAINER)
    assert str(exc.value) == (
        'template parsing error: template: :1:11: executing "" at <.Config.Nope>: '
        'map has no entry for key "Nope"'
    )


RUNNING = {
    "Name": "/tpl",
    "State": {"Status": "running", "Running": True, "Paused": False, "Pid": 42},
    "Config": {"Cmd": ["sleep", "30"], "Env": ["A=1", "B=2"], "Labels": {"b": "2", "a": "1"}},
    "Mounts": [],
    "NetworkSettings": {
        "Networks": {"bridge": {"IPAddress": "10.89.0.2"}},
        "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8089"}]},
    },
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [  # each as `docker inspect -f` printed it for a container like RUNNING (20.10, this machine)
        ('{{index .Config.Labels "a"}}|{{index .Config.Labels "zz"}}|', "1||"),
        # a Go map's missing key (docker's Labels, an event's Attributes): no value, not an error
        ("{{.Config.Labels.a}}|{{.Config.Labels.zz}}|{{json .Config.Labels.zz}}", "1|<no value>|null"),
        ("{{len .Mounts}} {{len .Config.Cmd}}", "0 2"),
        ("{{if .State.Running}}yes{{else}}no{{end}}", "yes"),
        ('{{if eq .State.Status "exited"}}E{{else if .State.Running}}R{{end}}', "R"),
        ("{{with .State}}{{.Status}}{{end}}", "running"),
        ("{{range .Config.Env}}{{println .}}{{end}}", "A=1\nB=2\n"),
        ("a {{- .Name -}} b", "a/tplb"),
        ("{{and .State.Running (not .State.Paused)}}", "true"),
        ("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}", "a=1;b=2;"),
        ("{{range $i, $e := .Config.Cmd}}{{$i}}:{{$e}} {{end}}", "0:sleep 1:30 "),
        (
            '{{printf "%q %5s|%-5s| %t %x %03d" .Name "ab" "cd" true 255 7}}',
            '"/tpl"    ab|cd   | true ff 007',
        ),
        ('{{printf "%s-%d" .Name .State.Pid | len | printf "%v"}}', "7"),
        ("{{$n := .Name}}{{$n}}", "/tpl"),
        ("{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "10.89.0.2"),
        ('{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}', "8089"),
        (
            "{{range $p, $c := .NetworkSettings.Ports}}{{$p}}->{{(index $c 0).HostPort}}{{end}}",
            "80/tcp->8089",
        ),
        ("{{json .Config.Labels}} {{.Config.Labels}}", '{"a":"1","b":"2"} map[a:1 b:2]'),
        ("{{json .State}}", '{"Status":"running","Running":true,"Paused":false,"Pid":42}'),
        ('{{json "a>b & <c> é"}}', '"a>b & <c> é"'),  # docker's encoder escapes no HTML, keeps UTF-8
        ('{{print 1 2 "a" 3}} {{/* a comment */}}{{slice .Name 1 3}} {{split "a,b" ","}}', "1 2a3 tp [a b]"),
        ('{{truncate .Name 3}} {{title "hello world"}} {{join .Config.Cmd ","}}', "/tp Hello World sleep,30"),
    ],
)
def test_go_template_language(template: str, expected: str) -> None:
    assert render_template(template, RUNNING) == expected


def test_template_errors_are_dockers() -> None:
    with pytest.raises(TemplateError) as exc:
        render_template("{{nope .Name}}", RUNNING)
    assert str(exc.value) == 'template parsing error: template: :1: function "nope" not defined'
