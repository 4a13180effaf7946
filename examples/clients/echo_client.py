#!/usr/bin/env python3
"""Call the echo app: ``ping`` twice at once, printing every chunk, then two calls that fail.

    COCAINE_LOCATOR=127.0.0.1:10053 python3 echo_client.py [MESSAGE ...]

An app's service graph also has the control message ``ping``, so the event goes through
``enqueue("ping")``; ``echo.ping(...)`` would ping the app service itself.
"""

import asyncio
import sys

from cocaine.errors import EndOfStream, ServiceError
from cocaine.services import Service


async def invoke(app, event, message):
    """Send ``message`` to ``event`` and print each chunk of the reply as it arrives."""
    stream = await app.enqueue(event)
    await stream.write(message.encode())
    await stream.close()
    while True:
        try:
            chunk = await stream.get()
        except EndOfStream:
            return
        print(f"{event}({message!r}) -> {chunk!r}")


async def main(messages):
    echo = Service("echo")
    try:
        await asyncio.gather(*(invoke(echo, "ping", message) for message in messages))
        try:
            await invoke(echo, "no-such-event", "hello")
        except ServiceError as err:
            print(f"unknown event: error {list(err.pair)}: {err.reason}")
    finally:
        echo.close()

    missing = Service("42")
    try:
        await invoke(missing, "ping", "hello")
    except ServiceError as err:
        print(f"app '42': error {list(err.pair)}: {err.reason}")
    finally:
        missing.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:] or ["Hello World!", "Hello again!"]))
