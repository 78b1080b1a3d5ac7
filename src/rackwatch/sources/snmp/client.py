"""Asynchronous SNMP reads (pysnmp 7, `pysnmp.hlapi.v3arch.asyncio`): GET of a list of OIDs
and WALK of a subtree, with SNMP v1 and v2c (a community) or v3 (USM: a user with
authentication and privacy protocols and keys).

A walk is GETBULK on v2c and v3 (many rows per request), GETNEXT on v1, which has no GETBULK.
A v1 GET that names an OID the agent lacks fails whole (`noSuchName`): the client takes that
OID out and asks again for the others, so one missing OID costs one more round trip, never
the other values. v2c/v3 answer it in place (`noSuchObject`/`noSuchInstance`).

Values come back as plain Python: `int` (Integer, Gauge32, Counter, TimeTicks…), `str`
(OctetString, as UTF-8; an OID as dotted text), or None (no such object or instance). An agent
that does not answer (down, unreachable, or a wrong community or v3 credentials, which an
agent answers with silence) raises `SnmpTimeout` after `timeout_s` x (1 + `retries`); any
other failure `SnmpError`. Each message names the agent and what to check.

One `SnmpClient` (one pysnmp engine: one UDP socket) serves any number of agents at once;
`close()` releases the socket. Secrets (community, keys) are never in a message or a repr.
"""

from __future__ import annotations

import contextlib
import importlib.util
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from rackwatch.errors import SourceError, SourceTimeout

with warnings.catch_warnings():
    # pysnmp 7.1 imports names pysmi (its optional MIB compiler) has deprecated
    # (getReadersFromUrls, smiV1Relaxed…): not ours to fix, and errors where warnings are
    # errors (the tests); only this import is spared
    warnings.simplefilter("ignore", DeprecationWarning)
    from pysnmp.error import PySnmpError
    from pysnmp.hlapi.v3arch.asyncio import (
        USM_AUTH_HMAC96_MD5,
        USM_AUTH_HMAC96_SHA,
        USM_AUTH_HMAC128_SHA224,
        USM_AUTH_HMAC192_SHA256,
        USM_AUTH_HMAC256_SHA384,
        USM_AUTH_HMAC384_SHA512,
        USM_AUTH_NONE,
        USM_PRIV_CBC56_DES,
        USM_PRIV_CBC168_3DES,
        USM_PRIV_CFB128_AES,
        USM_PRIV_CFB192_AES,
        USM_PRIV_CFB256_AES,
        USM_PRIV_NONE,
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        UsmUserData,
        bulk_walk_cmd,
        get_cmd,
        walk_cmd,
    )
    from pysnmp.hlapi.varbinds import CommandGeneratorVarBinds
    from pysnmp.proto.errind import RequestTimedOut
    from pysnmp.proto.rfc1902 import ObjectIdentifier, OctetString
    from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

SnmpVersion = Literal["1", "2c", "3"]
Value = int | str | None
"""A value read: int, str, or None (the agent has no such object or instance)."""

AUTH_PROTOCOLS: dict[str, Any] = {
    "none": USM_AUTH_NONE,
    "md5": USM_AUTH_HMAC96_MD5,
    "sha": USM_AUTH_HMAC96_SHA,
    "sha224": USM_AUTH_HMAC128_SHA224,
    "sha256": USM_AUTH_HMAC192_SHA256,
    "sha384": USM_AUTH_HMAC256_SHA384,
    "sha512": USM_AUTH_HMAC384_SHA512,
}
PRIV_PROTOCOLS: dict[str, Any] = {
    "none": USM_PRIV_NONE,
    "des": USM_PRIV_CBC56_DES,
    "3des": USM_PRIV_CBC168_3DES,
    "aes": USM_PRIV_CFB128_AES,
    "aes192": USM_PRIV_CFB192_AES,
    "aes256": USM_PRIV_CFB256_AES,
}
MAX_WALK_ROWS = 10_000
"""A walk stops there: a PDU has tens of outlets, never thousands of rows in one column."""
BULK_REPETITIONS = 50
GET_CHUNK = 40
"""OIDs per GET request: small enough for an agent's response size limit (snmpsim: 64)."""
MAX_CACHED_OIDS = 200_000
"""Request var-binds kept (`SnmpClient._object`): 200 PDUs x 24 outlets x 4 values is 19,200."""
_NO_SUCH_NAME = 2


class SnmpError(SourceError):
    """An SNMP read that failed; the message names the agent and what to check."""


class SnmpTimeout(SnmpError, SourceTimeout):
    """No answer in time: down, unreachable, or credentials the agent does not accept."""


@dataclass(frozen=True, slots=True)
class SnmpTarget:
    """How to reach one agent. Secrets are left out of the repr."""

    host: str
    port: int = 161
    version: SnmpVersion = "2c"
    community: str = field(default="public", repr=False)
    user: str = ""
    auth_protocol: str = "none"
    auth_key: str = field(default="", repr=False)
    priv_protocol: str = "none"
    priv_key: str = field(default="", repr=False)
    context: str = ""
    """SNMP v3 context name (most PDUs: empty; snmpsim: the recording's name)."""
    timeout_s: float = 2.0
    retries: int = 1

    def __post_init__(self) -> None:
        if not 0 < len(self.host) <= 255:
            raise ValueError("host must be a name or an address")
        if self.version not in ("1", "2c", "3"):
            raise ValueError(f"SNMP version must be 1, 2c or 3, not {self.version!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port must be 1..65535, not {self.port}")
        if not 0 < self.timeout_s <= 60 or not 0 <= self.retries <= 10:
            raise ValueError("timeout_s must be in (0, 60] and retries in 0..10")
        if self.auth_protocol not in AUTH_PROTOCOLS:
            raise ValueError(f"auth_protocol: one of {', '.join(AUTH_PROTOCOLS)}")
        if self.priv_protocol not in PRIV_PROTOCOLS:
            raise ValueError(f"priv_protocol: one of {', '.join(PRIV_PROTOCOLS)}")
        if self.version == "3":
            if not self.user:
                raise ValueError("SNMP v3 needs a user")
            if self.auth_protocol != "none" and len(self.auth_key) < 8:
                raise ValueError("SNMP v3 auth_key must be at least 8 characters")
            if self.priv_protocol != "none":
                if self.auth_protocol == "none":
                    raise ValueError("SNMP v3 privacy needs authentication (auth_protocol)")
                if len(self.priv_key) < 8:
                    raise ValueError("SNMP v3 priv_key must be at least 8 characters")
                if importlib.util.find_spec("cryptography") is None:
                    raise ValueError(
                        f"SNMP v3 privacy ({self.priv_protocol}) needs the Python package "
                        "`cryptography` (pysnmp ciphers with it): pip install cryptography"
                    )

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def uses_bulk(self) -> bool:
        return self.version != "1"

    def hint(self) -> str:
        """What to check when it does not answer."""
        if self.version == "3":
            return "check the address, the port, the v3 user, its protocols and keys"
        return "check the address, the port, the community and the SNMP version"


def _plain(value: Any) -> Value:
    """A pysnmp value as plain Python."""
    if isinstance(value, NoSuchObject | NoSuchInstance | EndOfMibView):
        return None
    if isinstance(value, OctetString):
        return bytes(value.asOctets()).decode("utf-8", errors="replace")
    if isinstance(value, ObjectIdentifier):
        return str(value)
    try:
        return int(value)
    except (TypeError, ValueError):
        return str(value.prettyPrint())


_MIB_VIEW = "mibViewController"
"""Where pysnmp keeps an engine's MIB view (`hlapi.varbinds`)."""
_shared_mib_view: Any = None


def _mib_view() -> Any:
    """pysnmp's MIB view, built once per process and shared by every engine: building it
    loads the base MIB modules (half a second of CPU), and it is only read afterwards. Call
    `prepare()` before the event loop runs so that this half second does not hold it."""
    global _shared_mib_view
    if _shared_mib_view is None:
        cache: dict[str, Any] = {}
        with warnings.catch_warnings():
            # pysnmp sets up its MIB compiler (pysmi) on the first OID it resolves, through
            # names pysmi has deprecated: done here, the warnings spared, so that no request
            # in flight on the event loop runs under a changed warnings filter
            warnings.simplefilter("ignore", DeprecationWarning)
            CommandGeneratorVarBinds().make_varbinds(
                cache, (ObjectType(ObjectIdentity("1.3.6.1")),)
            )
        _shared_mib_view = cache[_MIB_VIEW]
    return _shared_mib_view


def prepare() -> None:
    """Build what every client shares (pysnmp's MIB view), now rather than on the event loop
    when the first client is made."""
    _mib_view()


class SnmpClient:
    """SNMP reads for any number of agents over one engine. Not thread-safe: one event loop."""

    def __init__(self) -> None:
        self._engine = SnmpEngine()
        self._engine.cache[_MIB_VIEW] = _mib_view()
        self._transports: dict[tuple[str, int, float, int], UdpTransportTarget] = {}
        self._auth: dict[SnmpTarget, CommunityData | UsmUserData] = {}
        self._contexts: dict[str, ContextData] = {}
        self._objects: dict[str, ObjectType] = {}
        self.n_requests = 0

    def close(self) -> None:
        self._engine.close_dispatcher()

    async def __aenter__(self) -> SnmpClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    async def _transport(self, target: SnmpTarget) -> UdpTransportTarget:
        key = (target.host, target.port, target.timeout_s, target.retries)
        transport = self._transports.get(key)
        if transport is None:
            try:
                transport = await UdpTransportTarget.create(
                    (target.host, target.port), timeout=target.timeout_s, retries=target.retries
                )
            except Exception as e:  # pysnmp wraps the resolver's error in its own
                raise SnmpError(
                    f"SNMP agent {target.address}: cannot resolve the host ({e}); check the address"
                ) from None
            self._transports[key] = transport
        return transport

    def _credentials(self, target: SnmpTarget) -> CommunityData | UsmUserData:
        auth = self._auth.get(target)
        if auth is None:
            if target.version == "3":
                auth = UsmUserData(
                    target.user,
                    authKey=target.auth_key or None,
                    privKey=target.priv_key or None,
                    authProtocol=AUTH_PROTOCOLS[target.auth_protocol],
                    privProtocol=PRIV_PROTOCOLS[target.priv_protocol],
                )
            else:
                auth = CommunityData(target.community, mpModel=0 if target.version == "1" else 1)
            self._auth[target] = auth
        return auth

    def _context(self, target: SnmpTarget) -> ContextData:
        found = self._contexts.get(target.context)
        if found is None:
            found = self._contexts[target.context] = ContextData(contextName=target.context)
        return found

    def _object(self, oid: str) -> ObjectType:
        """The request's var-bind for `oid`, kept: pysnmp resolves each one against its MIB
        view when it is new (most of a GET's CPU), and returns a resolved one as it is."""
        found = self._objects.get(oid)
        if found is None:
            if len(self._objects) >= MAX_CACHED_OIDS:
                self._objects.clear()
            found = self._objects[oid] = ObjectType(ObjectIdentity(oid))
        return found

    def _failed(self, target: SnmpTarget, indication: Any) -> SnmpError:
        if isinstance(indication, RequestTimedOut):
            total = target.timeout_s * (1 + target.retries)
            return SnmpTimeout(
                f"SNMP agent {target.address} (v{target.version}) did not answer within "
                f"{total:g} s; {target.hint()}"
            )
        if isinstance(indication, PySnmpError) and hasattr(indication, "get"):
            indication = indication.get("errorIndication", indication)  # StatusInformation
        return SnmpError(f"SNMP agent {target.address}: {indication}; {target.hint()}")

    async def get(self, target: SnmpTarget, oids: Sequence[str]) -> dict[str, Value]:
        """The value of each OID (None where the agent has none)."""
        found: dict[str, Value] = {}
        try:
            for start in range(0, len(oids), GET_CHUNK):
                chunk = list(oids[start : start + GET_CHUNK])
                found.update(await self._get_chunk(target, chunk))
        except PySnmpError as e:  # pysnmp raises some failures (v3 ciphers) instead
            raise self._failed(target, e) from None
        return found

    async def _get_chunk(self, target: SnmpTarget, oids: list[str]) -> dict[str, Value]:
        found: dict[str, Value] = {}
        asked = list(oids)
        transport = await self._transport(target)
        auth = self._credentials(target)
        while asked:
            self.n_requests += 1
            indication, status, index, binds = await get_cmd(
                self._engine,
                auth,
                transport,
                self._context(target),
                *(self._object(oid) for oid in asked),
                lookupMib=False,
            )
            if indication:
                raise self._failed(target, indication)
            if int(status) == _NO_SUCH_NAME and 0 < int(index) <= len(asked):
                found[asked.pop(int(index) - 1)] = None  # v1: ask again without it
                continue
            if int(status):
                raise SnmpError(
                    f"SNMP agent {target.address} refused the request: "
                    f"{status.prettyPrint()} at {asked[int(index) - 1] if index else '?'}; "
                    "check the profile's OIDs"
                )
            for name, value in binds:
                found[str(name)] = _plain(value)
            break
        return found

    async def walk(
        self, target: SnmpTarget, prefix: str, repetitions: int = BULK_REPETITIONS
    ) -> dict[str, Value]:
        """Every OID under `prefix` and its value (GETBULK on v2c/v3, GETNEXT on v1).

        `repetitions`: rows asked per GETBULK. The agent fills the answer with rows past the
        subtree too, each one decoded for nothing (pyasn1 is most of a read's CPU): a column
        of N outlets is cheapest asked with N + 1 (its rows and the one that ends it)."""
        try:
            return await self._walk(target, prefix, repetitions)
        except PySnmpError as e:  # pysnmp raises some failures (v3 ciphers) instead
            raise self._failed(target, e) from None

    async def _walk(self, target: SnmpTarget, prefix: str, repetitions: int) -> dict[str, Value]:
        transport = await self._transport(target)
        auth = self._credentials(target)
        start = self._object(prefix)
        if target.uses_bulk:
            rows = bulk_walk_cmd(
                self._engine,
                auth,
                transport,
                self._context(target),
                0,
                max(1, min(repetitions, BULK_REPETITIONS)),
                start,
                lookupMib=False,
                lexicographicMode=False,
            )
        else:
            rows = walk_cmd(
                self._engine,
                auth,
                transport,
                self._context(target),
                start,
                lookupMib=False,
                lexicographicMode=False,
            )
        found: dict[str, Value] = {}
        under = prefix + "."
        try:
            async for indication, status, index, binds in rows:
                self.n_requests += 1
                if indication:
                    raise self._failed(target, indication)
                if status and int(status) == _NO_SUCH_NAME:
                    break  # v1: the end of the agent's MIB
                if status and int(status):
                    raise SnmpError(
                        f"SNMP agent {target.address} refused the walk of {prefix}: "
                        f"{status.prettyPrint()} (index {index}); check the profile's OIDs"
                    )
                for name, value in binds:
                    oid = str(name)
                    if not oid.startswith(under) or isinstance(value, EndOfMibView):
                        return found
                    found[oid] = _plain(value)
                if len(found) >= MAX_WALK_ROWS:
                    break
        finally:
            await _aclose(rows)
        return found


async def _aclose(generator: Any) -> None:
    close = getattr(generator, "aclose", None)
    if close is not None:
        with contextlib.suppress(RuntimeError):  # already closed
            await close()
