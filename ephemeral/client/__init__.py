"""The Python client of ephemeral: `Client` for senders, `RecipientClient` for recipients.

```
from ephemeral.client import Client, RecipientClient

async with Client("http://127.0.0.1:8080", token) as client:
    sent = await client.send("photo.jpg", to=["bob", "carol"], views=2, expires_in=86400)
    async for event in client.watch(sent.id):
        ...
async with RecipientClient() as recipient, recipient.open(sent.recipients[0].url) as view:
    data = await view.read()
```
"""

from ephemeral.client.errors import (
    BadRequest,
    ClientError,
    Conflict,
    ConnectionFailed,
    Forbidden,
    Gone,
    InvalidField,
    NotFound,
    PayloadTooLarge,
    ProblemError,
    RangeNotSatisfiable,
    RateLimited,
    RequestTimeout,
    ServerError,
    Unauthorized,
    Unavailable,
    UnsupportedMediaType,
)
from ephemeral.client.models import (
    Event,
    MediaError,
    MediaStatus,
    MemberStatus,
    Peek,
    RecipientLink,
    SentMedia,
    View,
)
from ephemeral.client.recipient import RecipientClient, ViewReader, parse_link
from ephemeral.client.sender import Client
from ephemeral.client.upload import Progress

__all__ = [
    "BadRequest",
    "Client",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
    "Event",
    "Forbidden",
    "Gone",
    "InvalidField",
    "MediaError",
    "MediaStatus",
    "MemberStatus",
    "NotFound",
    "PayloadTooLarge",
    "Peek",
    "ProblemError",
    "Progress",
    "RangeNotSatisfiable",
    "RateLimited",
    "RecipientClient",
    "RecipientLink",
    "RequestTimeout",
    "SentMedia",
    "ServerError",
    "Unauthorized",
    "Unavailable",
    "UnsupportedMediaType",
    "View",
    "ViewReader",
    "parse_link",
]
