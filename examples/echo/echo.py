#!/usr/bin/env python3
"""The echo app: answers ``ping`` with what it was sent, then a second chunk."""

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


if __name__ == "__main__":
    Worker().run({"ping": ping, "reverse": reverse})
