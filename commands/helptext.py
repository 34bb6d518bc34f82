"""docker's one-line help of the flags a declaration leaves without ``help=``
(commands.parsing.Parser fills it in): by verb and flag first, then by flag alone.
The words are docker's CLI's (``docker VERB --help``); tests/test_cli_help.py fails
on a flag that has none."""

from __future__ import annotations

from collections.abc import Sequence

FORMAT = "Format output using a custom template"
NO_PROMPT = "Do not prompt for confirmation"
PRUNE_FILTER = 'Provide filter values (e.g. "until=<timestamp>")'
WHEN = '(e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)'

# "VERB --flag" (the verb as the parser's prog names it, less "dockyard ") or "--flag"
HELP: dict[str, str] = {
    # shared by many verbs
    "--format": FORMAT,
    "--no-trunc": "Don't truncate output",
    "--env-file": "Read in a file of environment variables",
    "--env": "Set environment variables",
    "--user": 'Username or UID (format: "<name|uid>[:<group|gid>]")',
    "--workdir": "Working directory inside the container",
    "--interactive": "Keep STDIN open even if not attached",
    "--tty": "Allocate a pseudo-TTY",
    "--detach-keys": "Override the key sequence for detaching a container",
    "--output": "Write to a file, instead of STDOUT",
    "--change": "Apply Dockerfile instruction to the created image",
    "--platform": "Set platform if server is multi-platform capable",
    "--time": "Seconds to wait before killing the container",
    "--label": "Set meta data on a container",
    # create / run (and update's resource flags)
    "--cgroup-parent": "Optional parent cgroup for the container",
    "--cpu-period": "Limit CPU CFS (Completely Fair Scheduler) period",
    "--cpu-quota": "Limit CPU CFS (Completely Fair Scheduler) quota",
    "--cpus": "Number of CPUs",
    "--cpuset-cpus": "CPUs in which to allow execution (0-3, 0,1)",
    "--cpu-shares": "CPU shares (relative weight)",
    "--memory": "Memory limit",
    "--memory-swap": "Swap limit equal to memory plus swap: '-1' to enable unlimited swap",
    "--pids-limit": "Tune container pids limit (set -1 for unlimited)",
    "--blkio-weight": "Block IO (relative weight), between 10 and 1000, or 0 to disable (default 0)",
    "--device-read-bps": "Limit read rate (bytes per second) from a device",
    "--device-write-bps": "Limit write rate (bytes per second) to a device",
    "--entrypoint": "Overwrite the default ENTRYPOINT of the image",
    "--expose": "Expose a port or a range of ports",
    "--ip": 'IPv4 address (e.g., "172.30.100.104")',
    "--log-driver": "Logging driver for the container",
    "--log-opt": "Log driver options",
    "--name": "Assign a name to the container",
    "--network": "Connect a container to a network",
    "--network-alias": "Add network-scoped alias for the container",
    "--read-only": "Mount the container's root filesystem as read only",
    "--stop-signal": "Signal to stop the container",
    "--stop-timeout": "Timeout (in seconds) to stop a container",
    "--volumes-from": "Mount volumes from the specified container(s)",
    "--publish-all": "Publish all exposed ports to random ports",
    "--publish": "Publish a container's port(s) to the host",
    "--hostname": "Container host name",
    "--volume": "Bind mount a volume",
    "run --attach": "Attach to STDIN, STDOUT or STDERR",
    "create --attach": "Attach to STDIN, STDOUT or STDERR",
    "update --restart": "Restart policy to apply when a container exits",
    # attach, start, exec
    "attach --no-stdin": "Do not attach STDIN",
    "attach --sig-proxy": "Proxy all received signals to the process",
    "start --attach": "Attach STDOUT/STDERR and forward signals",
    "start --interactive": "Attach container's STDIN",
    "exec --privileged": "Give extended privileges to the command",
    "exec --detach": "Detached mode: run command in the background",
    # commit, cp, import, export, save, load
    "commit --author": 'Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")',
    "commit --message": "Commit message",
    "commit --pause": "Pause container during commit",
    "cp --follow-link": "Always follow symbol link in SRC_PATH",
    "cp --archive": "Archive mode (copy all uid/gid information)",
    "cp --quiet": "Suppress progress output during copy",
    "import --message": "Set commit message for imported image",
    "load --input": "Read from tar archive file, instead of STDIN",
    "load --quiet": "Suppress the load output",
    # ps, images, history, inspect, logs, stats, kill, rm, rmi
    "ps --all": "Show all containers (default shows just running)",
    "ps --filter": "Filter output based on conditions provided",
    "ps --latest": "Show the latest created container (includes all states)",
    "ps --last": "Show n last created containers (includes all states)",
    "ps --quiet": "Only display container IDs",
    "ps --size": "Display total file sizes",
    "history --human": "Print sizes and dates in human readable format",
    "history --quiet": "Only show image IDs",
    "inspect --type": "Return JSON for specified type",
    "inspect --size": "Display total file sizes if the type is container",
    "logs --details": "Show extra details provided to logs",
    "logs --since": f"Show logs since timestamp {WHEN}",
    "logs --until": f"Show logs before a timestamp {WHEN}",
    "logs --tail": "Number of lines to show from the end of the logs",
    "logs --follow": "Follow log output",
    "logs --timestamps": "Show timestamps",
    "stats --all": "Show all containers (default shows just running)",
    "stats --no-stream": "Disable streaming stats and only pull the first result",
    "kill --signal": "Signal to send to the container",
    "rm --force": "Force the removal of a running container (uses SIGKILL)",
    "rm --link": "Remove the specified link",
    "rm --volumes": "Remove anonymous volumes associated with the container",
    "rmi --force": "Force removal of the image",
    "rmi --no-prune": "Do not delete untagged parents",
    # registry
    "login --username": "Username",
    "login --password": "Password",
    "pull --max-concurrent-downloads": "Set the max concurrent downloads for each pull (default 3)",
    "push --max-concurrent-uploads": "Set the max concurrent uploads for each push (default 5)",
    "search --format": "Pretty-print search using a Go template",
    "registry serve --tls-cert": "TLS certificate (PEM) to serve HTTPS with",
    "registry serve --tls-key": "private key (PEM) of --tls-cert",
    "--days": "days the certificates are valid (default 825)",
    # prune, df
    "container prune --filter": PRUNE_FILTER,
    "container prune --force": NO_PROMPT,
    "image prune --all": "Remove all unused images, not just dangling ones",
    "image prune --force": NO_PROMPT,
    "system prune --all": "Remove all unused images not just dangling ones",
    "system prune --force": NO_PROMPT,
    "system prune --volumes": "Prune anonymous volumes",
    "system df --verbose": "Show detailed information on space usage",
    "network prune --filter": PRUNE_FILTER,
    "network prune --force": NO_PROMPT,
    "volume prune --filter": 'Provide filter values (e.g. "label=<label>")',
    "volume prune --all": "Remove all unused volumes, not just anonymous ones",
    "volume prune --force": NO_PROMPT,
    # network, volume
    "network connect --alias": "Add network-scoped alias for the container",
    "network connect --link": "Add link to another container",
    "network create --gateway": "IPv4 or IPv6 Gateway for the master subnet",
    "network create --internal": "Restrict external access to the network",
    "network create --ip-range": "Allocate container ip from a sub-range",
    "network create --label": "Set metadata on a network",
    "network create --subnet": "Subnet in CIDR format that represents a network segment",
    "network create --driver": "Driver to manage the Network",
    "network create --opt": "Set driver specific options",
    "network disconnect --force": "Force the container to disconnect from a network",
    "network ls --no-trunc": "Do not truncate the output",
    "network ls --filter": 'Provide filter values (e.g. "driver=bridge")',
    "network ls --quiet": "Only display network IDs",
    "network rm --force": "Do not error if the network does not exist",
    "volume create --label": "Set metadata for a volume",
    "volume create --name": "Specify volume name",
    "volume create --driver": "Specify volume driver name",
    "volume create --opt": "Set driver specific options",
    "volume ls --filter": 'Provide filter values (e.g. "dangling=true")',
    "volume ls --quiet": "Only display volume names",
    "volume rm --force": "Force the removal of one or more volumes",
}

# a group's sub-verb whose flags are those of a verb of its own
SAME_AS = {
    "container ls": "ps",
    "container list": "ps",
    "container ps": "ps",
    "container rm": "rm",
    "container remove": "rm",
    "image ls": "images",
    "image list": "images",
    "image rm": "rmi",
    "image remove": "rmi",
    "system info": "info",
}


def flag_help(prog: str, flags: Sequence[str]) -> str | None:
    """docker's help line for the flag ``flags`` of the verb whose parser is ``prog``
    (``dockyard ps``, ``dockyard container ls``); None when the table has none."""
    name = next((f for f in flags if f.startswith("--")), flags[0])
    verb = prog.removeprefix("dockyard").strip()
    verbs = [verb, SAME_AS.get(verb, verb)]
    if verb.startswith(("container ", "image ")):
        verbs.append(verb.split(" ", 1)[1])
    for v in verbs:
        line = HELP.get(f"{v} {name}")
        if line is not None:
            return line
    return HELP.get(name)
