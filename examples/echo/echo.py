#!/usr/bin/env python3
"""The echo app.

* ``ping``: answers with what it was sent, then a second chunk (the generator style of the
  original Python framework: each ``yield`` waits for what it is given);
* ``reverse``: answers with the message reversed (an ``async`` handler);
* ``http``: over the HTTP proxy, greets ``?name=`` and echoes the request line.
"""

from cocaine.decorators import http
from cocaine.logging import Logger
from cocaine.worker import Worker

log = Logger()


def ping(request, response):
    message = yield request.read()
    log.info(f"ping with {len(message)} bytes")
    response.write(message)
    response.write(b"and one more chunk")
    response.close()


async def reverse(request, response):
    message = await request.read()
    response.write(message[::-1])


@http
async def web(request, response):
    req = await request.read()
    name = req.request.get("name", "world")
    response.write_head(200, [("Content-Type", "text/plain; charset=utf-8")])
    response.write(f"Hello, {name}!\n{req.method} {req.uri}\n")


if __name__ == "__main__":
    Worker().run({"ping": ping, "reverse": reverse, "http": web})
