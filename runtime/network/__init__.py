"""Bridge networks and what containers reach through them: the network store with its
address leases (bridge), published ports (ports, proxy), the embedded DNS (dns) and the
/etc files a container gets (etcfiles).  No container records here: container.wiring
plugs a container in."""
