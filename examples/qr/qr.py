#!/usr/bin/env python3
"""The QR app: renders a message as a QR code PNG, caching the big ones in storage.

Events:
  generate        the request chunk is msgpack ``[message, size]``; the reply is the PNG bytes.
  generate-http   behind cocaine-proxy: ``GET /qr/generate-http?message=…&size=…`` answers
                  ``200 image/png``, or ``400 text/plain`` with the reason.

``size`` is the pixel size of one QR module, 1 to 19 (default 10). Codes of size 10 and up are
kept in the storage service (collection ``qr-codes``, key ``<message>size=<size>``) and read
from there first. Both handlers are generators in the original framework's style: each
``yield`` waits for a service call, or for the rendering running in a thread.
"""

import asyncio
import io

import msgpack
import qrcode
from qrcode.exceptions import DataOverflowError

from cocaine.decorators import http
from cocaine.exceptions import ServiceError
from cocaine.logging import Logger
from cocaine.services import Service
from cocaine.worker import Worker

COLLECTION = "qr-codes"
DEFAULT_SIZE = 10
CACHED_FROM = 10  # sizes at least this big are cached
MAX_SIZE = 20  # exclusive

storage = Service("storage")
log = Logger()


class BadRequest(ValueError):
    """The caller asked for something we cannot draw; the message says why."""


def check_size(size):
    try:
        size = int(size)
    except (TypeError, ValueError):
        raise BadRequest(f"size must be an integer, not {size!r}") from None
    if not 0 < size < MAX_SIZE:
        raise BadRequest(f"size must be between 1 and {MAX_SIZE - 1}, not {size}")
    return size


def render_png(message, size):
    """The QR code of ``message`` as PNG bytes, ``size`` pixels per module."""
    buffer = io.BytesIO()
    try:
        image = qrcode.make(message, box_size=size)
    except (DataOverflowError, ValueError):  # qrcode 8 says ValueError("Invalid version …")
        raise BadRequest(
            f"the message is too long for a QR code ({len(message)} characters)"
        ) from None
    image.save(buffer, "PNG")
    return buffer.getvalue()


def qr_code(message, size):
    """A generator handlers delegate to (``yield from``): the PNG, from the cache if it is there."""
    if size < CACHED_FROM:
        return (yield asyncio.to_thread(render_png, message, size))
    key = f"{message}size={size}"
    try:
        png = yield storage.read(COLLECTION, key)
        log.debug(f"served {key!r} from the cache")
        return png
    except ServiceError:
        pass  # not cached yet
    png = yield asyncio.to_thread(render_png, message, size)
    try:
        yield storage.write(COLLECTION, key, png)
    except ServiceError as err:  # e.g. a message with "/" is no valid key: serve it uncached
        log.warning(f"cannot cache {key!r}: {err.reason}")
    return png


def generate(request, response):
    chunk = yield request.read()
    try:
        message, size = msgpack.unpackb(chunk)
        if isinstance(message, bytes):
            message = message.decode("utf-8")
        png = yield from qr_code(message, check_size(size))
        response.write(png)
    except Exception as err:
        response.error(1, str(err))
    finally:
        response.close()


@http
def generate_http(request, response):
    req = yield request.read()
    try:
        message = req.request.get("message")
        if not message:
            raise BadRequest('Query field "message" is required')
        png = yield from qr_code(message, check_size(req.request.get("size", DEFAULT_SIZE)))
        response.write_head(200, [("Content-Type", "image/png")])
        response.write(png)
    except BadRequest as err:
        response.write_head(400, [("Content-Type", "text/plain")])
        response.write(str(err))
    finally:
        response.close()


if __name__ == "__main__":
    Worker().run({"generate": generate, "generate-http": generate_http})
