"""``create`` and ``run`` (also as ``container create``/``run``): their flags, and
handlers that load the runtime (commands.container.runner) only once run's
warm-migrations thread is going."""

from __future__ import annotations

import argparse

from commands.container import both
from commands.parsing import OnlyVerb, Verbs, insecure_registry_flag
from runtime.kernel.cgroups import keep_migrations_warm

VERBS = Verbs()


@VERBS.flags
def _flags(sub: OnlyVerb) -> None:
    for p in both(sub, "create", add_help=False):
        container_flags(p, run=False)
    for p in both(sub, "run", add_help=False):
        container_flags(p, run=True)


def container_flags(p: argparse.ArgumentParser, run: bool) -> None:
    """``docker create``/``run`` flags (-h is --hostname, as in docker)."""
    a = p.add_argument
    a("--help", action="help", help="show this help message and exit")
    if run:
        a("-d", "--detach", action="store_true", help="run in the background and print the container ID")
        a("--sig-proxy", default="true", help="proxy received signals to the process")
        a("--detach-keys", default="", help="override the key sequence for detaching (ctrl-p,ctrl-q only)")
    a("-a", "--attach", action="append", default=[], choices=["stdin", "stdout", "stderr"])
    a("-i", "--interactive", action="store_true", help="keep STDIN open even if not attached")
    a("-t", "--tty", action="store_true", help="allocate a pseudo-TTY")
    a("--rm", action="store_true", help="remove the container when it exits")
    a("--name", default="")
    a("-e", "--env", action="append", default=[])
    a("--env-file", action="append", default=[])
    a("-w", "--workdir", default="")
    a("-u", "--user", default="")
    a("-h", "--hostname", default="")
    a("--entrypoint", default=None)
    a("--read-only", action="store_true")
    a("--init", action="store_true", help="run an init (tini) as pid 1 that reaps and forwards signals")
    a("-l", "--label", action="append", default=[])
    a("-v", "--volume", action="append", default=[])
    a("--mount", action="append", default=[], help="attach a filesystem mount (type=bind|volume|tmpfs,…)")
    a("--tmpfs", action="append", default=[], help="mount a tmpfs directory (/dest[:options])")
    a("--volumes-from", action="append", default=[])
    a("-p", "--publish", action="append", default=[])
    a("-P", "--publish-all", action="store_true")
    a("--expose", action="append", default=[])
    a("--network", "--net", default="bridge")
    a("--network-alias", "--net-alias", action="append", default=[])
    a("--ip", default="")
    a("-m", "--memory", default="")
    a("--memory-swap", default="")
    a("--cpus", default="")
    a("-c", "--cpu-shares", type=int, default=0)
    a("--cpuset-cpus", default="")
    a("--cpu-period", type=int, default=0)
    a("--cpu-quota", type=int, default=0)
    a("--pids-limit", type=int, default=0)
    a("--device-read-bps", action="append", default=[])
    a("--device-read-iops", action="append", default=[], help="limit read rate (IO per second) from a device")
    a("--device-write-iops", action="append", default=[], help="limit write rate (IO per second) to a device")
    a("--device-write-bps", action="append", default=[])
    a("--link", action="append", default=[], help="add a link to another container (NAME[:ALIAS])")
    a("--log-driver", default="")
    a("--log-opt", action="append", default=[])
    a("--cap-add", action="append", default=[], help="add Linux capabilities (or ALL)")
    a("--cap-drop", action="append", default=[], help="drop Linux capabilities (or ALL)")
    a("--group-add", action="append", default=[], help="add more groups to join")
    a("--add-host", action="append", default=[], help="add a custom host-to-IP mapping (host:ip)")
    a("--dns", action="append", default=[], help="set custom DNS servers")
    a("--dns-search", action="append", default=[], help="set custom DNS search domains")
    a("--dns-option", action="append", default=[], help="set DNS options")
    a("--ulimit", action="append", default=[], help="ulimit options (name=soft[:hard])")
    a("--shm-size", default="", help="size of /dev/shm")
    a("--cidfile", default="", help="write the container ID to the file")
    a("--pid", default="", help="PID namespace to use (host, container:NAME)")
    a("--ipc", default="", help="IPC mode to use (private, shareable, host, container:NAME)")
    a("--uts", default="", help="UTS namespace to use (host)")
    a("--privileged", action="store_true", help="give extended privileges to this container")
    a("--restart", default="", help="restart policy: no, on-failure[:N], always, unless-stopped")
    a("--health-cmd", default="", help="command to run to check health")
    a("--health-interval", default="", help="time between running the check (ms|s|m|h)")
    a("--health-timeout", default="", help="maximum time to allow one check to run (ms|s|m|h)")
    a("--health-start-period", default="", help="start period before failures count (ms|s|m|h)")
    a("--health-retries", type=int, default=0, help="consecutive failures needed to report unhealthy")
    a("--no-healthcheck", action="store_true", help="disable any container-specified HEALTHCHECK")
    a("--sysctl", action="append", default=[], help="namespaced kernel parameters (net.*, kernel.shm*, …)")
    a("--security-opt", action="append", default=[], help="no-new-privileges[:false], seccomp=unconfined, …")
    a("--label-file", action="append", default=[], help="read in a line delimited file of labels")
    a("--stop-signal", default="")
    a("--stop-timeout", type=int, default=None)
    a("--cgroup-parent", default="")
    a("--pull", default="missing", choices=["missing", "always", "never"], help="when to pull the image")
    a("--platform", default="", help="os/arch[/variant] to pull, for a multi-platform image")
    a("-q", "--quiet", action="store_true", help="suppress the pull output")
    insecure_registry_flag(p)
    a("image")
    a("command", nargs=argparse.REMAINDER)


@VERBS.command("create", "container create")
def cmd_create(args: argparse.Namespace) -> int:
    from commands.container import runner  # the runtime's modules, as for run
    from imagefmt import errors

    try:
        c = runner.create(args, run=False)
    except errors.DockyardError as exc:
        return runner.create_error(exc)
    print(c.id)
    return 0


@VERBS.command("run", "container run")
def cmd_run(args: argparse.Namespace) -> int:
    warm_off = keep_migrations_warm()  # while the runtime imports and the record is made

    def started() -> None:
        warm_off()
        args.collect_garbage()

    try:
        # The runtime's modules (~20 ms) load only now, while the thread above pays the
        # cgroup rwsem's grace period in the background (docs/benchmarks.md).
        from commands.container import runner

        return runner.run(args, started)
    finally:
        warm_off()
