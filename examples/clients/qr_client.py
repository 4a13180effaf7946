#!/usr/bin/env python3
"""Ask the QR app for a code and save it as a PNG (``qr.png`` in the current directory).

COCAINE_LOCATOR=127.0.0.1:10053 python3 qr_client.py [MESSAGE] [--size N] [--output FILE]
"""

import argparse
import asyncio
import io

import msgpack
from PIL import Image

from cocaine.errors import ServiceError
from cocaine.services import Service

QUOTE = (
    "What is best in life? To crush your enemies, see them driven before you, "
    "and to hear the lamentation of their women."
)


async def fetch_qr(message, size):
    """The PNG bytes the app's ``generate`` event returns for ``[message, size]``."""
    qr = Service("qr")
    try:
        stream = await qr.enqueue("generate")
        await stream.write(msgpack.packb([message, size]))
        await stream.close()
        return await stream.get()
    finally:
        qr.close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("message", nargs="?", default=QUOTE)
    parser.add_argument("--size", type=int, default=10, help="pixels per module (1-19)")
    parser.add_argument("--output", default="qr.png")
    args = parser.parse_args()
    try:
        png = await fetch_qr(args.message, args.size)
    except ServiceError as err:
        print(f"Error: {err.reason} {list(err.pair)}")
        return 1
    image = Image.open(io.BytesIO(png))
    image.save(args.output, "PNG")
    print(
        f"Result: a {image.width}x{image.height} QR code ({len(png)} bytes), saved to {args.output}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
