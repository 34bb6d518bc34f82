from typing import Any

import pytest

from imagefmt.changes import apply_change, parse_duration
from imagefmt.errors import Invalid


def apply(*lines: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"config": {"Env": ["PATH=/bin"]}}
    for line in lines:
        apply_change(doc, line)
    return doc["config"]  # type: ignore[no-any-return]


def test_cmd_and_entrypoint_forms() -> None:
    assert apply('CMD ["sh", "-c", "echo"]')["Cmd"] == ["sh", "-c", "echo"]
    assert apply("CMD echo hi")["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert apply('ENTRYPOINT ["/bin/top"]')["Entrypoint"] == ["/bin/top"]


def test_env_label_expose_volume_workdir_user() -> None:
    c = apply(
        'ENV A=1 B="two words"',
        "ENV PATH /usr/bin",
        "LABEL a=b",
        "EXPOSE 80 53/udp",
        'VOLUME ["/data"]',
        "VOLUME /a /b",
        "WORKDIR /app",
        "WORKDIR sub",
        "USER nobody",
        "STOPSIGNAL SIGINT",
        "ONBUILD RUN true",
    )
    assert c["Env"] == ["PATH=/usr/bin", "A=1", "B=two words"]  # replaced in place, as docker does
    assert c["Labels"] == {"a": "b"}
    assert c["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}
    assert c["Volumes"] == {"/data": {}, "/a": {}, "/b": {}}
    assert c["WorkingDir"] == "/app/sub"
    assert c["User"] == "nobody" and c["StopSignal"] == "SIGINT" and c["OnBuild"] == ["RUN true"]


def test_healthcheck() -> None:
    hc = apply("HEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost")["Healthcheck"]
    assert hc == {"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 5 * 10**9, "Retries": 3}
    assert apply('HEALTHCHECK CMD ["true"]')["Healthcheck"]["Test"] == ["CMD", "true"]
    assert apply("HEALTHCHECK NONE")["Healthcheck"] == {"Test": ["NONE"]}
    assert parse_duration("1m30s") == 90 * 10**9


@pytest.mark.parametrize("bad", ["RUN echo", "FROM x", "EXPOSE http", "ENV", "HEALTHCHECK --bogus=1 CMD x"])
def test_bad_changes(bad: str) -> None:
    with pytest.raises(Invalid):
        apply(bad)
