"""Real builds on the busybox fixture: every instruction, the output, config and history."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import pytest

from tests.buildhelp import build, build_ok, config, created_by, image, make_context, mounts_under, read
from tests.buildhelp import stat as image_stat
from tests.conftest import Dockyard

pytestmark = pytest.mark.privileged

EVERYTHING = """\
ARG BASE=busybox
FROM $BASE AS first
MAINTAINER Jane <j@x>
ARG FOO=bar
ARG EMPTY
RUN echo "foo is $FOO"
ENV FOO=envwins
RUN echo "foo now $FOO"
ENV A=1 B="x y" C=$A
LABEL "k 1"=v1 k2="v 2"
EXPOSE 80 53/udp 8000-8001
VOLUME /data /other
VOLUME ["/j"]
USER nobody
WORKDIR /tmp/w
WORKDIR rel
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=4 CMD wget -q localhost || exit 1
ONBUILD RUN echo onbuild
SHELL ["/bin/sh", "-xc"]
RUN echo shell
ENTRYPOINT ["/bin/echo", "e"]
CMD echo hi
"""


def test_every_instruction_config_and_history(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", EVERYTHING)
    out = build_ok(dy, ctx, "--build-arg", "FOO=cli", "-t", "every")
    assert "foo is cli\n" in out and "foo now envwins\n" in out and "+ echo shell\n" in out
    cfg = config(dy, "every")
    assert cfg["Env"] == [
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "FOO=envwins",
        "A=1",
        "B=x y",
        "C=",
    ]
    assert cfg["Labels"] == {"k 1": "v1", "k2": "v 2"}
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}}
    assert cfg["Volumes"] == {"/data": {}, "/other": {}, "/j": {}}
    assert cfg["User"] == "nobody" and cfg["WorkingDir"] == "/tmp/w/rel" and cfg["StopSignal"] == "SIGINT"
    assert cfg["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q localhost || exit 1"],
        "Interval": 5_000_000_000,
        "Retries": 4,
    }
    assert cfg["OnBuild"] == ["RUN echo onbuild"] and cfg["Shell"] == ["/bin/sh", "-xc"]
    assert cfg["Entrypoint"] == ["/bin/echo", "e"] and cfg["Cmd"] == ["/bin/sh", "-xc", "echo hi"]
    assert image(dy, "every").config.doc["author"] == "Jane <j@x>"
    hist = created_by(dy, "every")[1:]
    assert hist == [
        "/bin/sh -c #(nop)  MAINTAINER Jane <j@x>",
        "/bin/sh -c #(nop)  ARG FOO=bar",
        "/bin/sh -c #(nop)  ARG EMPTY",
        '|1 FOO=cli /bin/sh -c echo "foo is $FOO"',
        "/bin/sh -c #(nop)  ENV FOO=envwins",
        '/bin/sh -c echo "foo now $FOO"',
        "/bin/sh -c #(nop)  ENV A=1 B=x y C=",
        "/bin/sh -c #(nop)  LABEL k 1=v1 k2=v 2",
        "/bin/sh -c #(nop)  EXPOSE 53/udp 80 8000-8001",
        "/bin/sh -c #(nop)  VOLUME [/data /other]",
        "/bin/sh -c #(nop)  VOLUME [/j]",
        "/bin/sh -c #(nop)  USER nobody",
        "/bin/sh -c #(nop) WORKDIR /tmp/w",
        "/bin/sh -c #(nop) WORKDIR /tmp/w/rel",
        "/bin/sh -c #(nop)  STOPSIGNAL SIGINT",
        "/bin/sh -c #(nop)  HEALTHCHECK "
        + '&{["CMD-SHELL" "wget -q localhost || exit 1"] "5s" "0s" "0s" \'\\x04\'}',
        "/bin/sh -c #(nop)  ONBUILD RUN echo onbuild",
        "/bin/sh -xc #(nop)  SHELL [/bin/sh -xc]",
        "/bin/sh -xc echo shell",
        '/bin/sh -xc #(nop)  ENTRYPOINT ["/bin/echo" "e"]',
        '/bin/sh -xc #(nop)  CMD ["/bin/sh" "-xc" "echo hi"]',
    ]
    empty = [h.get("empty_layer", False) for h in image(dy, "every").config.history[1:]]
    # the RUNs wrote nothing; only the two WORKDIRs made directories
    assert [i for i, e in enumerate(empty) if not e] == [12, 13]
    st = image_stat(dy, "every", "/tmp/w/rel")
    assert st is not None and stat.S_ISDIR(st.st_mode)
    assert stat.S_IMODE(image_stat(dy, "every", "/tmp").st_mode) == 0o1777  # type: ignore[union-attr]


def test_output_like_docker_and_rebuild_from_cache(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    ctx = make_context(
        tmp_path / "ctx",
        'FROM busybox\nLABEL a=b\nCOPY f /f\nRUN echo hi\nCMD ["sh"]\n',
        {"f": "data\n"},
    )
    out = build_ok(dy, ctx, "-t", "app", "-t", "app:v2")
    short = busybox[7:19]
    assert re.fullmatch(
        rf"Step 1/5 : FROM busybox\n ---> {short}\n"
        r"Step 2/5 : LABEL a=b\n ---> Running in ([0-9a-f]{12})\n"
        r"Removing intermediate container \1\n ---> [0-9a-f]{12}\n"
        r"Step 3/5 : COPY f /f\n ---> [0-9a-f]{12}\n"
        r"Step 4/5 : RUN echo hi\n ---> Running in ([0-9a-f]{12})\nhi\nRemoving intermediate container \2\n"
        r" ---> [0-9a-f]{12}\n"
        r"Step 5/5 : CMD \[\"sh\"\]\n ---> Running in ([0-9a-f]{12})\nRemoving intermediate container \3\n"
        r" ---> ([0-9a-f]{12})\nSuccessfully built \4\n"
        r"Successfully tagged app:latest\nSuccessfully tagged app:v2\n",
        out,
    ), out
    first = image(dy, "app").id
    again = build_ok(dy, ctx, "-t", "app")
    assert again.count(" ---> Using cache\n") == 4 and "Running in" not in again
    assert image(dy, "app").id == first
    q = dy("build", "-q", str(ctx))
    assert q.code == 0 and q.out == f"{first}\n"
    # the step images are hidden from 'images' but not from 'images -a'
    listed = dy.ok("images", "-q")
    assert first.hex[:12] in listed and len(listed.split()) == 2
    assert len(dy.ok("images", "-aq").split()) > 2


def test_copy_cache_follows_content_not_mtime(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    import os

    ctx = make_context(
        tmp_path / "ctx",
        "FROM busybox\nCOPY src/ /src/\nRUN cat /src/a\n",
        {"src/a": "one\n", "src/b": "b\n"},
    )
    build_ok(dy, ctx, "-t", "c")
    os.utime(ctx / "src/a", (1, 1))
    out = build_ok(dy, ctx, "-t", "c", "--progress", "plain")
    assert out.count("Using cache") == 2
    (ctx / "src/a").write_text("two\n")
    out = build_ok(dy, ctx, "-t", "c", "--progress", "plain")
    assert (
        out.count("Using cache") == 0
        and "Cache miss: changed the content of the source files" in out
        and "two\n" in out
    )
    (ctx / "src/a").chmod(0o600)
    assert build_ok(dy, ctx, "-t", "c").count("Using cache") == 0  # mode is content
    assert build_ok(dy, ctx, "-t", "c", "--no-cache").count("Using cache") == 0


def test_failing_run_stops_with_docker_message(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    ctx = make_context(
        tmp_path / "ctx", "FROM busybox\nRUN echo before > /x\nRUN echo oops; exit 3\nRUN echo never\n"
    )
    r = build(dy, ctx, "-t", "broken")
    assert r.code == 3
    assert "The command '/bin/sh -c echo oops; exit 3' returned a non-zero code: 3" in r.err
    assert "Dockerfile:3: RUN echo oops; exit 3" in r.err
    assert "oops\n" in r.out and "never" not in r.out and "Successfully" not in r.out
    assert dy("inspect", "broken").code != 0
    assert not list((dy.root / "tmp").iterdir())  # no half-written layer or upperdir
    assert not mounts_under(tmp_path)
    # the step before is cached; with -q the failing output comes with the error
    r = build(dy, ctx, "-q")
    assert r.code == 3 and r.out == "" and "    oops" in r.err


def test_run_waiting_for_input_fails(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN read answer\n")
    r = build(dy, ctx)
    assert r.code == 1 and "returned a non-zero code: 1" in r.err


def test_exec_form_and_missing_command(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", 'FROM busybox\nRUN ["echo", "exec", "$HOME"]\nRUN ["nonexist"]\n')
    r = build(dy, ctx)
    assert "exec $HOME\n" in r.out  # no substitution in the exec form
    assert r.code == 127 and "The command 'nonexist' returned a non-zero code: 127" in r.err
    last = re.findall(r" ---> ([0-9a-f]{12})\n", r.out)[-1]
    assert created_by(dy, last)[-1] == "echo exec $HOME"


def test_user_workdir_and_env_reach_run(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    ctx = make_context(
        tmp_path / "ctx",
        "FROM busybox\nWORKDIR /work\nRUN chmod 777 /work\nUSER nobody\nENV GREETING=hello\nARG WHO=world\n"
        'RUN id -un > out && pwd >> out && echo "$GREETING $WHO" >> out\n',
    )
    build_ok(dy, ctx, "-t", "uw")
    assert read(dy, "uw", "/work/out") == "nobody\n/work\nhello world\n"
    st = image_stat(dy, "uw", "/work/out")
    assert st is not None and st.st_uid == 65534


def test_arg_env_precedence_and_unused_warning(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    ctx = make_context(
        tmp_path / "ctx",
        "ARG V=global\nFROM busybox\nARG V\nARG D=default\nENV E=${V}-${D}\nARG E=ignored\n"
        'RUN echo "$V $D $E" > /out\nARG TARGETARCH\nRUN echo $TARGETARCH > /arch\n',
    )
    out = build_ok(dy, ctx, "-t", "args", "--build-arg", "D=cli", "--build-arg", "UNUSED=1")
    assert read(dy, "args", "/out") == "global cli global-cli\n"
    assert read(dy, "args", "/arch") in ("amd64\n", "arm64\n")
    assert "[Warning] One or more build-args [UNUSED] were not consumed" in out
    assert "E=global-cli" in config(dy, "args")["Env"]


def test_proxy_args_reach_run_but_not_history_or_keys(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", "FROM busybox\nRUN echo $http_proxy > /proxy\n")
    out = build_ok(dy, ctx, "-t", "px", "--build-arg", "http_proxy=http://a:3128")
    assert "[Warning]" not in out
    assert read(dy, "px", "/proxy") == "http://a:3128\n"
    assert created_by(dy, "px")[-1] == "/bin/sh -c echo $http_proxy > /proxy"
    out = build_ok(dy, ctx, "-t", "px", "--build-arg", "http_proxy=http://b:3128")
    assert "Using cache" in out


def test_heredocs(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    df = (
        "FROM busybox\nARG NAME=there\n"
        "RUN <<EOF\necho hello > /greeting\necho $NAME >> /greeting\nEOF\n"
        "COPY <<EOT /etc/motd\nhi $NAME\nEOT\n"
        "COPY <<'RAW' /raw\nkeep $NAME\nRAW\n"
        "RUN cat <<EOF > /via-shell\nline $NAME\nEOF\n"
        "RUN <<EOF\n#!/bin/sh -e\necho script >> /greeting\nEOF\n"
    )
    build_ok(dy, make_context(tmp_path / "ctx", df), "-t", "here")
    assert read(dy, "here", "/greeting") == "hello\nthere\nscript\n"
    assert read(dy, "here", "/etc/motd") == "hi there\n"
    assert read(dy, "here", "/raw") == "keep $NAME\n"
    assert read(dy, "here", "/via-shell") == "line there\n"


def test_onbuild_triggers_run_in_the_child(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    build_ok(
        dy,
        make_context(
            tmp_path / "p", "FROM busybox\nONBUILD COPY f /from-child\nONBUILD RUN echo t > /trig\n"
        ),
        "-t",
        "parent",
    )
    out = build_ok(
        dy, make_context(tmp_path / "c", "FROM parent\nRUN cat /trig\n", {"f": "x"}), "-t", "child"
    )
    assert re.search(
        r"Step 1/2 : FROM parent\n ---> [0-9a-f]{12}\n# Executing 2 build triggers\n"
        r" ---> Running in ([0-9a-f]{12})\nRemoving intermediate container \1\n ---> ([0-9a-f]{12})\n"
        r"Step 2/2 : RUN cat /trig\n",
        out,
    ), out
    assert read(dy, "child", "/trig") == "t\n"
    assert read(dy, "child", "/from-child") == "x"
    assert config(dy, "child").get("OnBuild") is None
    assert config(dy, "parent")["OnBuild"] == ["COPY f /from-child", "RUN echo t > /trig"]


def test_entrypoint_resets_inherited_cmd(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    build_ok(dy, make_context(tmp_path / "a", 'FROM busybox\nENTRYPOINT ["/bin/true"]\n'), "-t", "ep")
    assert config(dy, "ep")["Cmd"] is None
    build_ok(
        dy, make_context(tmp_path / "b", 'FROM busybox\nCMD ["x"]\nENTRYPOINT ["/bin/true"]\n'), "-t", "ep2"
    )
    assert config(dy, "ep2")["Cmd"] == ["x"]


def test_labels_from_the_command_line(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "a", "FROM busybox\n")
    out = build_ok(dy, ctx, "--label", "org=x", "--label", "b=y z", "-t", "lbl")
    assert "Step 2/3 : LABEL b=y z\n" in out and "Step 3/3 : LABEL org=x\n" in out
    assert config(dy, "lbl")["Labels"] == {"org": "x", "b": "y z"}


def test_stdin_dockerfile_without_context(dy: Dockyard, busybox: str) -> None:
    r = dy.run("build", "-t", "fromstdin", "-", input="FROM busybox\nRUN echo piped > /p\n")
    assert r.returncode == 0, r.stderr
    assert read(dy, "fromstdin", "/p") == "piped\n"
    r = dy.run("build", "-", input="FROM busybox\nCOPY x /x\n")
    assert r.returncode != 0 and "file not found in build context" in r.stderr


def test_scratch_and_empty_dockerfile(dy: Dockyard, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "s", 'FROM scratch\nCOPY hello /hello\nCMD ["/hello"]\n', {"hello": "hi"})
    out = build_ok(dy, ctx, "-t", "scr")
    assert "Step 1/3 : FROM scratch\n ---> \nStep 2/3" in out
    assert read(dy, "scr", "/hello") == "hi" and len(image(dy, "scr").manifest.layers) == 1
    r = build(dy, make_context(tmp_path / "e", "FROM scratch\n"))
    assert r.code != 0 and "No image was generated" in r.err


def test_tar_context_on_stdin_and_dockerfile_on_stdin(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY hello /hello\n"), ("hello", b"from tar\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    r = dy.run("build", "-t", "tarctx", "-", input=buf.getvalue(), text=False)
    assert r.returncode == 0, r.stderr
    assert read(dy, "tarctx", "/hello") == "from tar\n"
    ctx = make_context(tmp_path / "ctx", "FROM scratch\n", {"f": "from dir\n"})
    r = dy.run("build", "-t", "dfstdin", "-f", "-", str(ctx), input="FROM busybox\nCOPY f /f\n")
    assert r.returncode == 0, r.stderr
    assert read(dy, "dfstdin", "/f") == "from dir\n"


def test_run_network_modes(dy: Dockyard, busybox: str, tmp_path: Path) -> None:
    df = (
        "FROM busybox\nRUN --network=none tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' > /none\n"
        "RUN tail -n +3 /proc/net/dev | wc -l > /default\n"
    )
    build_ok(dy, make_context(tmp_path / "ctx", df), "-t", "net")
    assert read(dy, "net", "/none") == "lo\n"
    assert int(read(dy, "net", "/default") or 0) >= 2  # the host's interfaces by default
    build_ok(dy, make_context(tmp_path / "ctx", df), "-t", "net2", "--network", "none", "--no-cache")
    assert read(dy, "net2", "/default") == "1\n"
