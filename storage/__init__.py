"""Dumb byte stores for ciphertext: fs, S3 and memory backends behind one interface."""

from typing import TYPE_CHECKING, Any

from storage.base import ByteStream, InvalidKey, ObjectNotFound, StorageError, Store
from storage.fs import FsStore
from storage.memory import MemoryStore

if TYPE_CHECKING:
    from storage.s3 import S3Store

__all__ = [
    "ByteStream",
    "FsStore",
    "InvalidKey",
    "MemoryStore",
    "ObjectNotFound",
    "S3Store",
    "StorageError",
    "Store",
]


def __getattr__(name: str) -> Any:
    if name == "S3Store":  # boto3 takes ~0.25 s to import; only the S3 backend needs it
        from storage.s3 import S3Store

        return S3Store
    raise AttributeError(f"module 'storage' has no attribute {name!r}")
