"""rackwatch's MCP server: the room's tools for AI assistants (docs/MCP.md), over the official
MCP Python SDK.

One set of tools (`server.build_server`) implemented over rackwatch's own REST API, so that
its bearer tokens decide what a caller may do, whatever the transport:

- streamable HTTP at `/mcp` of `rackwatch run` (`http.mount`, wired by `rackwatch.app`): the
  API is called in-process as the HTTP caller (`links.InProcessLink`);
- stdio, `rackwatch mcp` (`server.serve_stdio` with a `links.RemoteLink`, wired by
  `rackwatch.cli_mcp`): the API of the `rackwatch run` holding the data directory.

Nothing is imported here: `http.mount` must not load the SDK (it is loaded on the first
request to `/mcp`), so each user imports the module it needs. Named `mcp_server`, not `mcp`,
so that it never shadows the SDK's package.
"""
