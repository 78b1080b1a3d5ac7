"""`rackwatch mcp`: rackwatch's tools for an AI assistant over MCP on stdin/stdout
(docs/MCP.md). The assistant's client starts it; it reaches the `rackwatch run` that holds
the data directory through that server's REST API (found in `<data_dir>/server.json` on each
call, so it may start before the server), and never opens the store itself.

stdout is the protocol: everything else (logs, errors) goes to stderr. The token (--token or
RACKWATCH_TOKEN) is checked against the data directory's tokens at start, so a wrong one is
refused at once; the control tools are listed only with a control token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path
from typing import Annotated

import typer

from rackwatch.cli_options import ConfigOption

log = logging.getLogger(__name__)


def mcp(
    token: Annotated[
        str | None,
        typer.Option(
            envvar="RACKWATCH_TOKEN",
            help="A token of the data directory (`rackwatch token create`): read for the read "
            "tools, control to also change fans, maintenance, alerts and the twin \\[default: "
            "none: reads from this machine only, if the server allows them].",
            show_default=False,
            metavar="TOKEN",
        ),
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="The data directory of the `rackwatch run` to reach \\[default: "
            "./rackwatch-data].",
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Serve rackwatch's tools to an AI assistant over MCP (stdio): the devices, their state
    and history, alerts, incidents, health, energy, reports, server recommendations and, with
    a control token, fans, maintenance, acknowledgements and fault injection."""
    from rackwatch.errors import ConfigError
    from rackwatch.mcp_server.links import RemoteLink
    from rackwatch.mcp_server.server import serve_stdio
    from rackwatch.readout import server_file
    from rackwatch.settings import load_settings
    from rackwatch.tokens import TOKENS_FILE, TokenStore

    settings = load_settings(config, data_dir=data_dir)
    where = settings.data_dir
    secret = token.strip() if token else None
    is_control = False
    if secret:
        info = TokenStore(where / TOKENS_FILE).verify(secret)
        if info is None:
            raise ConfigError(
                f"the token is not one of {where}'s tokens (unknown or revoked): check it with "
                f"`rackwatch token list --data-dir {where}`, or create one with `rackwatch "
                "token create --scope read` (or control)"
            )
        if not info.allows("read"):
            raise ConfigError(
                f"token {info.id} has the {info.scope!r} scope, which reads nothing: give a "
                "read or control token (`rackwatch token create --scope read`)"
            )
        is_control = info.allows("control")

    def locate() -> str | None:
        found = server_file.find(where)
        return None if found is None else found.url

    if locate() is None:
        log.warning(
            "no `rackwatch run` is serving %s yet: the tools will answer once one is", where
        )
    link = RemoteLink(locate, str(where), secret or None, is_control=is_control)
    with contextlib.suppress(KeyboardInterrupt):  # the client stops it: no traceback
        asyncio.run(serve_stdio(link))
