"""The /etc/hostname, /etc/hosts and /etc/resolv.conf a container gets, as Docker writes them."""

from __future__ import annotations


def hostname_file(hostname: str) -> str:
    return hostname + "\n"


def hosts_file(hostname: str, address: str | None = None, extra: tuple[tuple[str, str], ...] = ()) -> str:
    """Docker's header plus ``address hostname`` for a container with an address,
    and ``--add-host``-style ``extra`` (name, address) entries."""
    lines = [
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        "fe00::0\tip6-localnet",
        "ff00::0\tip6-mcastprefix",
        "ff02::1\tip6-allnodes",
        "ff02::2\tip6-allrouters",
    ]
    lines += [f"{addr}\t{name}" for name, addr in extra]
    if address:
        lines.append(f"{address}\t{hostname}")
    return "\n".join(lines) + "\n"


def resolv_conf(mode: str, host_file: str = "/etc/resolv.conf", dns: str | None = None) -> str:
    """``host`` networking copies the host's file; ``dns`` (the embedded server of
    a user network) replaces its nameservers; otherwise local nameservers, which a
    container cannot reach, are dropped as Docker does."""
    try:
        with open(host_file, encoding="utf-8", errors="replace") as f:
            text = f.read()
    except OSError:
        text = ""
    if mode == "host":
        return text
    if dns:
        keep = [ln for ln in text.splitlines() if ln.strip().startswith(("search", "options"))]
        return "\n".join([f"nameserver {dns}", *keep, "options ndots:0"]) + "\n"
    kept = [ln for ln in text.splitlines() if not _local_nameserver(ln)]
    return "\n".join(kept).strip("\n") + "\n"


def with_dns(text: str, dns: list[str], search: list[str], options: list[str]) -> str:
    """``--dns``, ``--dns-search`` and ``--dns-option`` over a resolv.conf: each
    replaces what ``text`` has of its kind; written as docker's resolvconf.Build
    (search, then the nameservers, then options)."""
    rows = [line.split() for line in text.splitlines()]
    servers = dns or [r[1] for r in rows if len(r) > 1 and r[0] == "nameserver"]
    domains = search or next((r[1:] for r in reversed(rows) if r and r[0] in ("search", "domain")), [])
    opts = options or [w for r in rows if r and r[0] == "options" for w in r[1:]]
    lines = [f"search {' '.join(domains)}"] if domains else []
    lines += [f"nameserver {n}" for n in servers]
    lines += [f"options {' '.join(opts)}"] if opts else []
    return "\n".join(lines) + "\n"


def _local_nameserver(line: str) -> bool:
    words = line.split()
    return len(words) == 2 and words[0] == "nameserver" and (words[1].startswith("127.") or words[1] == "::1")
