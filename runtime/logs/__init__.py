"""Container logs: the log-driver interface (logger), the drivers by name (drivers) and
the drivers themselves, one module each (jsonfile, none)."""
