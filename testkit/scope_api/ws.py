"""Opens a Scope topology websocket and prints "open", then each message it receives as one
line; or "refused <status>" when the server refuses the upgrade.

Usage: ws.py URL. Python's `websockets` (Debian's python3-websockets), as a script would.
"""

import asyncio
import sys

import websockets


async def main(url):
    try:
        async with websockets.connect(url, max_size=None) as socket:
            print("open", flush=True)
            async for message in socket:
                print(message, flush=True)
    except websockets.exceptions.InvalidStatusCode as refused:
        print("refused", refused.status_code, flush=True)


asyncio.run(main(sys.argv[1]))
