"""The container engine behind one interface (:class:`~.base.Backend`).

- :mod:`.base`        the interface, its dataclasses and errors
- :mod:`.docker_sdk`  the Docker SDK implementation (the only module importing ``docker``)
- :mod:`.memory`      an in-memory implementation for tests of the rules
"""
