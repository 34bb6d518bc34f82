"""Container logs: the log-driver seam and the drivers by name (drivers), and the drivers
themselves, one module each (jsonfile, none)."""
