"""``exec`` (also ``container exec``): a command in a running container."""

from __future__ import annotations

import argparse
import os
import socket
import sys

from commands.container import both
from commands.container.attach import window
from commands.errors import UsageError
from commands.output import err
from commands.parsing import OnlyVerb, Verbs
from imagefmt import errors
from runtime.container import attach as A
from runtime.container import events, execute, links
from runtime.container.create import read_env_file
from runtime.container.store import ContainerStore
from runtime.errors import StartFailed
from runtime.process import launch

VERBS = Verbs()


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    for p in both(sub, "exec"):
        p.add_argument("-d", "--detach", action="store_true")
        p.add_argument("-i", "--interactive", action="store_true")
        p.add_argument("-t", "--tty", action="store_true")
        p.add_argument("-e", "--env", action="append", default=[])
        p.add_argument("--env-file", action="append", default=[])
        p.add_argument("-u", "--user", default="")
        p.add_argument("-w", "--workdir", default="")
        p.add_argument("--privileged", action="store_true")
        p.add_argument("container")
        p.add_argument("command", nargs=argparse.REMAINDER)


@VERBS.command("exec", "container exec")
def cmd_exec(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command[:1] == ["--"]:
        command = command[1:]
    if not command:
        raise UsageError('"exec" requires at least 2 arguments')
    if args.tty and args.interactive and not args.detach and not os.isatty(0):
        print("the input device is not a TTY", file=sys.stderr)
        return 1
    cstore = ContainerStore(args.root)
    c = cstore.get(args.container)
    env = [e for f in args.env_file for e in read_env_file(f)] + list(args.env)
    link_env = links.env_of(cstore, c) if c.running else ()  # docker: before exec_create
    proc = execute.process_for(
        c,
        command,
        env=env,
        user=args.user,
        workdir=args.workdir,
        tty=args.tty,
        window=window() or (24, 80),
        privileged=args.privileged,
        link_env=link_env,
    )
    exec_id = os.urandom(32).hex()  # docker's exec events: create, start, then die with the exit code
    what = events.exec_action(command)
    events.container(cstore.root, c, f"exec_create: {what}", execID=exec_id)
    events.container(cstore.root, c, f"exec_start: {what}", execID=exec_id)
    try:
        if args.detach:  # a process of its own waits for it: its exec_die comes when it ends
            root = cstore.root
            try:
                execute.spawn_detached(
                    c,
                    proc,
                    lambda code: events.container(root, c, "exec_die", execID=exec_id, exitCode=str(code)),
                )
            except StartFailed as exc:  # docker: the daemon's refusal, exit 1
                err(str(exc))
                return 1
            return 0
        if args.tty:
            ours, theirs = socket.socketpair()
            try:
                pid = execute.spawn(c, proc, launch.Stdio(0, 0, 0, console=theirs.fileno()))
            finally:
                theirs.close()
            _, fds, _, _ = socket.recv_fds(ours, 16, 1)
            ours.close()
            code = A.pty_relay(fds[0], 0 if args.interactive else None, 1, pid)
            events.container(cstore.root, c, "exec_die", execID=exec_id, exitCode=str(code))
            return code
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        sys.stdout.flush()
        pid = execute.spawn(c, proc, launch.Stdio(0 if args.interactive else null, 1, 2))
        os.close(null)
    except StartFailed as exc:  # docker prints the runtime's refusal on stdout, unprefixed
        print(exc, flush=True)
        return exc.exit_code
    except errors.DockyardError as exc:
        err(str(exc))
        return int(args.exit_code_for(exc))
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)  # the exec helper already gives docker's code
    events.container(cstore.root, c, "exec_die", execID=exec_id, exitCode=str(code))
    return code
