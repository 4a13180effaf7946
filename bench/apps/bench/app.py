#!/usr/bin/env python3
"""The benchmark app: ``echo`` answers an RPC with the bytes it was sent; ``http`` answers an
HTTP request (payload ``[method, uri, version, headers, body]``) with its body, or ``hello``
when it has none, as ``200 text/plain`` with a Content-Length (so the proxy does not chunk)."""

import msgpack

from cocaine.worker import Worker

_unpackb = msgpack.unpackb
# One packer for every reply, as the baseline's worker has.
_pack = msgpack.Packer(use_bin_type=False, autoreset=True).pack


async def echo(request, response):
    data = await request.read()
    response.write(data)
    response.close()


async def http(request, response):
    _method, _uri, _version, _headers, body = _unpackb(await request.read(), raw=True)
    body = body or b"hello"
    response.write(
        _pack([200, [[b"Content-Type", b"text/plain"], [b"Content-Length", b"%d" % len(body)]]])
    )
    response.write(body)
    response.close()


if __name__ == "__main__":
    Worker().run({"echo": echo, "http": http})
