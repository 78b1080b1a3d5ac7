# ruff: noqa: I001, T201
# The founding document's example Python client (section 5, "API WebSocket", "Connexion au
# Serveur"), line by line. One change, marked: the server's URL comes from the command line,
# since the tests' server listens on a free port of 127.0.0.1, not on localhost:8765.
# test_agent_protocol.py runs it in a subprocess and reads what it prints.

# Python avec websockets
import asyncio
import websockets
import json
import sys  # adapted: for the URL


async def client():
    async with websockets.connect(sys.argv[1]) as websocket:  # adapted: 'ws://localhost:8765'
        while True:
            data = await websocket.recv()
            message = json.loads(data)
            print(f"Reçu: {message}")


asyncio.run(client())
