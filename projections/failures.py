"""Which ClickHouse failures are worth retrying: decided by the error's kind and code, never by its text.

A *transient* failure may pass with the same statement and the same rows (the server is down, busy,
out of memory, read-only for a while, has too many parts to merge): the runner retries it with backoff
and commits nothing. Anything else is *deterministic* (bad SQL, a value a column cannot hold, a type
mismatch): retrying cannot help, so the row goes to `dead_letters` and the partition moves on.

The ClickHouse code comes from the driver's exception (`code`), or from `Code: NNN` in its message
(chDB and older servers give only the text); an HTTP answer without a code is judged by its status.
"""

from __future__ import annotations

import re
import socket

from clickhouse_connect.driver.exceptions import Error, InterfaceError, OperationalError, ProgrammingError

# ClickHouse server error codes (src/Common/ErrorCodes.cpp) after which the same statement may succeed.
TRANSIENT_CODES: dict[int, str] = {
    3: "UNEXPECTED_END_OF_FILE",
    32: "ATTEMPT_TO_READ_AFTER_EOF",
    159: "TIMEOUT_EXCEEDED",
    160: "TOO_SLOW",
    164: "READONLY",
    173: "CANNOT_ALLOCATE_MEMORY",
    192: "UNKNOWN_USER",
    194: "REQUIRED_PASSWORD",
    201: "QUOTA_EXCEEDED",
    202: "TOO_MANY_SIMULTANEOUS_QUERIES",
    203: "NO_FREE_CONNECTION",
    209: "SOCKET_TIMEOUT",
    210: "NETWORK_ERROR",
    225: "NO_ZOOKEEPER",
    236: "ABORTED",
    241: "MEMORY_LIMIT_EXCEEDED",
    242: "TABLE_IS_READ_ONLY",
    243: "NOT_ENOUGH_SPACE",
    252: "TOO_MANY_PARTS",
    279: "ALL_CONNECTION_TRIES_FAILED",
    285: "TOO_FEW_LIVE_REPLICAS",
    286: "UNSATISFIED_QUORUM_FOR_PREVIOUS_WRITE",
    319: "UNKNOWN_STATUS_OF_INSERT",
    394: "QUERY_WAS_CANCELLED",
    425: "SYSTEM_ERROR",
    439: "CANNOT_SCHEDULE_TASK",
    473: "DEADLOCK_AVOIDED",
    497: "ACCESS_DENIED",
    516: "AUTHENTICATION_FAILED",
    999: "KEEPER_EXCEPTION",
    1000: "POCO_EXCEPTION",
}
TRANSIENT_HTTP_STATUSES = frozenset({408, 429, 502, 503, 504})

# Raised by the driver itself, without a server code, when its connection or engine handle is gone:
# the store reconnects on the next call. Matched whole, so a data error that merely mentions "closed" is not.
_CLIENT_GONE = ("The client has been closed", "Executing a streaming operation on a closed stream")

_CODE = re.compile(r"\bCode:\s*(\d+)")
_HTTP_STATUS = re.compile(r"\bHTTP status (\d{3})\b")


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse error code of a driver exception: its `code`, else `Code: NNN` in its message."""
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    match = _CODE.search(str(exc))
    return int(match.group(1)) if match else None


def is_transient_store_error(exc: BaseException) -> bool:
    """True when the same statement may succeed later unchanged (retry); False when it never will."""
    code = error_code(exc) if isinstance(exc, Error) else None
    if code is not None:
        return code in TRANSIENT_CODES
    if isinstance(exc, Error):
        status = _HTTP_STATUS.search(str(exc))
        if status:
            return int(status.group(1)) in TRANSIENT_HTTP_STATUSES or isinstance(exc, OperationalError)
        if isinstance(exc, (ProgrammingError, InterfaceError)) and str(exc) in _CLIENT_GONE:
            return True
        return isinstance(exc, OperationalError)  # a lost connection, a stream cut off mid-answer
    # Not from the driver's error family: the transport (a socket, a timeout) or the row serializer
    # (ValueError, TypeError, OverflowError on a value a column cannot hold, which is deterministic).
    return isinstance(exc, (ConnectionError, TimeoutError, socket.timeout))
