"""rackwatch's exceptions. Every message says what to do next.

RackwatchError
├── ConfigError          a settings file, env variable or CLI option is wrong
├── SourceError
│   ├── SourceTimeout    a device did not answer in time
│   └── SourceUnavailable
├── StoreError           the store cannot be opened, read or written
│   └── StoreLocked      another store object (this process or another) has it open
└── CommandRejected      a command names an unknown target or an action it cannot do
"""

from __future__ import annotations


class RackwatchError(Exception):
    """Base of every error rackwatch raises on purpose."""


class ConfigError(RackwatchError):
    pass


class SourceError(RackwatchError):
    pass


class SourceTimeout(SourceError):
    pass


class SourceUnavailable(SourceError):
    pass


class StoreError(RackwatchError):
    pass


class StoreLocked(StoreError):
    pass


class CommandRejected(RackwatchError):
    pass
