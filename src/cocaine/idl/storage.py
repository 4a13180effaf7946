"""The storage service (version 1): blobs by collection and key, with tags."""

from cocaine.idl.interface import call, service
from cocaine.protocol.values import BLOB, TEXT, Args, list_of

STORAGE = service(
    "storage",
    1,
    call("read", Args((TEXT, TEXT)), returns=BLOB),
    call("write", Args((TEXT, TEXT, BLOB), (list_of(TEXT),))),
    call("remove", Args((TEXT, TEXT))),
    call("find", Args((TEXT, list_of(TEXT))), returns=list_of(TEXT)),
)

__all__ = ["STORAGE"]
