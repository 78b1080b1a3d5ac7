"""`rackwatch pdu`: read a PDU over SNMP once, the tool an operator reaches for when adding one.

`rackwatch pdu read HOST[:PORT] --community C --profile NAME` prints every outlet (number,
name, state, watts, amperes) and the total, as a table or as JSON (`--format json`). Exit
codes: 0 read, 1 the PDU did not answer (what to check is said), 2 bad arguments or profile.
"""

from __future__ import annotations

import asyncio
import enum
import json
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from rackwatch.errors import ConfigError
from rackwatch.sources.snmp.profiles import Profile, load_profile, shipped_profiles

if TYPE_CHECKING:
    from rackwatch.sources.snmp.client import SnmpTarget
    from rackwatch.sources.snmp.reader import PduReading

pdu_cli = typer.Typer(help="Read PDUs over SNMP (docs/SNMP.md).", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


def parse_address(address: str) -> tuple[str, int]:
    """`HOST`, `HOST:PORT` or `[IPv6]:PORT` as (host, port); ValueError when it is not one.

    >>> parse_address("10.0.0.5"), parse_address("pdu1:1161"), parse_address("[::1]:161")
    (('10.0.0.5', 161), ('pdu1', 1161), ('::1', 161))
    """
    host, port = address.strip(), "161"
    if host.startswith("["):
        inside, _, rest = host[1:].partition("]")
        host, port = inside, rest.removeprefix(":") or port
    elif host.count(":") == 1:
        host, port = host.split(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not HOST[:PORT] with a port 1..65535: {address!r}")
    return host, int(port)


@pdu_cli.command("read")
def pdu_read(
    address: Annotated[str, typer.Argument(help="The PDU's SNMP agent.", metavar="HOST[:PORT]")],
    profile: Annotated[
        str,
        typer.Option(
            help=f"A shipped profile ({', '.join(shipped_profiles())}) or a profile file.",
            metavar="NAME|FILE",
        ),
    ],
    community: Annotated[
        str,
        typer.Option(
            help="SNMP v1/v2c community (or RACKWATCH_PDU_COMMUNITY, kept out of `ps`).",
            envvar="RACKWATCH_PDU_COMMUNITY",
            show_default=False,
            metavar="TEXT",
        ),
    ] = "public",
    version: Annotated[str, typer.Option(help="SNMP version.", metavar="1|2c|3")] = "2c",
    outlets: Annotated[
        int | None,
        typer.Option(
            help="Outlet count (the generic profile; v1 reads them with GET).",
            min=1,
            max=512,
            metavar="N",
        ),
    ] = None,
    root_oid: Annotated[
        str | None, typer.Option(help="The generic profile's root OID.", metavar="OID")
    ] = None,
    user: Annotated[str, typer.Option(help="SNMP v3 user.", metavar="TEXT")] = "",
    auth_protocol: Annotated[
        str, typer.Option(help="SNMP v3: none, md5, sha, sha224…sha512.", metavar="NAME")
    ] = "none",
    auth_key: Annotated[
        str,
        typer.Option(envvar="RACKWATCH_PDU_AUTH_KEY", show_default=False, metavar="TEXT"),
    ] = "",
    priv_protocol: Annotated[
        str, typer.Option(help="SNMP v3: none, des, 3des, aes, aes192, aes256.", metavar="NAME")
    ] = "none",
    priv_key: Annotated[
        str,
        typer.Option(envvar="RACKWATCH_PDU_PRIV_KEY", show_default=False, metavar="TEXT"),
    ] = "",
    context: Annotated[
        str, typer.Option(help="SNMP v3 context name (most PDUs: none).", metavar="TEXT")
    ] = "",
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for each answer.", min=0.1, max=60, metavar="S")
    ] = 2.0,
    retries: Annotated[
        int, typer.Option(help="Retries after a timeout.", min=0, max=10, metavar="N")
    ] = 1,
    output: Annotated[
        OutputFormat, typer.Option("--format", "-f", help="table or json.", metavar="table|json")
    ] = OutputFormat.TABLE,
) -> None:
    """Read one PDU once: every outlet (number, name, state, watts, amperes) and the total."""
    from rackwatch.sources.snmp.client import SnmpError, SnmpTarget  # pysnmp: only here

    try:
        host, port = parse_address(address)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="ADDRESS") from None
    try:
        target = SnmpTarget(
            host=host,
            port=port,
            version=version,  # type: ignore[arg-type]  # checked by SnmpTarget
            community=community,
            user=user,
            auth_protocol=auth_protocol,
            auth_key=auth_key,
            priv_protocol=priv_protocol,
            priv_key=priv_key,
            context=context,
            timeout_s=timeout,
            retries=retries,
        )
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    try:
        resolved = load_profile(profile).resolve(root_oid)
    except ConfigError as e:
        err.print(f"[red]error:[/] {escape(str(e))}", highlight=False)
        raise typer.Exit(2) from None
    try:
        reading = asyncio.run(_read(target, resolved, outlets))
    except SnmpError as e:
        err.print(
            f"[red]error:[/] {escape(str(e))} (profile {escape(resolved.name)})", highlight=False
        )
        raise typer.Exit(1) from None
    if output is OutputFormat.JSON:
        document = {"address": target.address, "profile": resolved.name, **reading.as_dict()}
        typer.echo(json.dumps(document, indent=2))
    else:
        console.print(_table(target, resolved.name, reading))


async def _read(target: SnmpTarget, profile: Profile, outlets: int | None) -> PduReading:
    from rackwatch.sources.snmp.client import SnmpClient
    from rackwatch.sources.snmp.reader import read_pdu

    async with SnmpClient() as client:
        return await read_pdu(client, target, profile, outlets)


def _number(value: float | None, digits: int) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _table(target: SnmpTarget, profile: str, reading: PduReading) -> Table:
    table = Table(
        "outlet",
        "name",
        "state",
        "watts",
        "amperes",
        "problems",
        title=f"PDU {target.address} ({profile}, SNMP v{target.version})",
    )
    for outlet in reading.outlets:
        state = "" if outlet.is_on is None else ("on" if outlet.is_on else "off")
        table.add_row(
            str(outlet.number),
            escape(outlet.label or ""),
            state,
            _number(outlet.watts, 0),
            _number(outlet.amperes, 1),
            escape("; ".join(outlet.problems)),
        )
    total = "unknown" if reading.total_watts is None else f"{reading.total_watts:.0f} W"
    how = " (sum of the outlets)" if reading.total_is_sum else ""
    problems = f"; {'; '.join(reading.problems)}" if reading.problems else ""
    table.caption = escape(f"total {total}{how}{problems}")
    return table
