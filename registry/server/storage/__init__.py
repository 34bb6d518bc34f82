"""The registry's storage: a driver seam (``driver.py``: the key/value interface;
``filesystem.py`` and ``inmemory.py``: the drivers; ``drivers.py``: them by name),
the layout of a store (``paths.py``) and the repository storage written over any
driver (``store.py``).  Upload sessions and GC, also written over the driver, are
``registry/server/uploads.py`` and ``registry/server/gc.py``."""
