"""Issue 12's smaller CLI differences from docker: no flag abbreviations, capitals in a
name refused, date-only --since/--until, commit's Comment and Parent, info's container
counts and version's Server block."""

from __future__ import annotations

import json

from tests.conftest import Ctl, Dockyard


def test_flags_are_never_abbreviated(dy: Dockyard) -> None:
    """argparse would take ``--al`` for ``--all``; docker's CLI says unknown flag."""
    r = dy("ps", "--al")
    assert r.code == 125 and "unknown flag: --al" in r.err


def test_a_name_with_capitals_is_refused(dy: Dockyard, busybox: str) -> None:
    for name in ("UPPER/case:1", "Upper:1", "ok/Case:1", "localhost:5000/Up:1"):
        r = dy("tag", "busybox", name)
        assert r.code == 1 and "repository name must be lowercase" in r.err, name
    dy.ok("tag", "busybox", "localhost:5000/ok/case:1")  # a host part may not make it valid alone


def test_logs_since_and_until_take_a_date_alone(ctl: Ctl) -> None:
    cid = ctl.ok("run", "-d", "busybox", "echo", "hello").strip()
    assert ctl.ok("wait", cid) == "0\n"
    assert ctl.ok("logs", "--until", "2099-01-01", cid) == "hello\n"
    assert ctl.ok("logs", "--since", "2099-01-01", cid) == ""
    assert ctl.ok("logs", "--since", "2000-01-01T10:00", cid) == "hello\n"
    r = ctl("logs", "--until", "bogus", cid)
    assert r.code == 1
    assert 'invalid value for "until": failed to parse value as time or duration: "bogus"' in r.err


def test_commit_records_comment_and_parent(ctl: Ctl) -> None:
    ctl.ok("run", "--name", "c1", "busybox", "sh", "-c", "echo x > /f")
    ctl.ok("commit", "-m", "my message", "-a", "me", "c1", "c1:img")
    doc = json.loads(ctl.ok("image", "inspect", "c1:img"))[0]
    base = ctl.ok("image", "inspect", "-f", "{{.Id}}", "busybox").strip()
    assert (doc["Comment"], doc["Author"], doc["Parent"]) == ("my message", "me", base)


def test_info_counts_containers_and_version_has_a_server(ctl: Ctl) -> None:
    ctl.ok("create", "busybox", "true")
    running = ctl.ok("run", "-d", "busybox", "sleep", "30").strip()
    fmt = "{{.Containers}} {{.ContainersRunning}} {{.ContainersPaused}} {{.ContainersStopped}}"
    assert ctl.ok("info", "--format", fmt) == "2 1 0 1\n"
    assert " Containers: 2\n  Running: 1\n" in ctl.ok("info")
    ctl.ok("rm", "-f", running)
    version = ctl.ok("version", "--format", "{{.Server.Version}} {{.Server.ApiVersion}} {{.Client.Version}}")
    server, api, client = version.split()
    assert server == client and api == "1.41"
    assert "Server:\n Engine:\n" in ctl.ok("version")


def test_system_df_verbose_lists_each_object(ctl: Ctl) -> None:
    ctl.ok("volume", "create", "dfvol")
    ctl.ok(
        "run", "--name", "dfc", "-v", "dfvol:/data", "busybox", "sh", "-c", "echo x > /data/f; echo y > /g"
    )
    out = ctl.ok("system", "df", "-v")
    images, rest = out.split("Containers space usage:")
    containers, rest = rest.split("Local Volumes space usage:")
    volumes, cache = rest.split("Build cache usage:")
    assert "SHARED SIZE   UNIQUE SIZE   CONTAINERS" in images
    busybox = next(line.split() for line in images.splitlines() if line.startswith("busybox "))
    assert busybox[-1] == "1"  # the container made on it
    dfc = next(line for line in containers.splitlines() if line.endswith(" dfc"))
    assert '"sh -c \'echo x > /…"' in dfc or "sh -c" in dfc
    assert any(line.split() == ["dfvol", "1", "2B"] for line in volumes.splitlines())
    assert "CACHE ID" in cache
