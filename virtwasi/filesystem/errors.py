"""The implementation interface's failures: ``wasi:filesystem``'s ``error-code``.

Every implementation and layer answers a failed call with :class:`FsError` carrying an
:class:`ErrorCode`, or lets a storage's ``OSError`` through; :func:`code_of` names either.
Each code is tied to its POSIX name here, once: a host errno becomes a code by that name,
and a client adapter turns a code into its own errno numbers by the same name.
"""

from __future__ import annotations

import enum
import errno as host_errno


class ErrorCode(enum.Enum):
    """``wasi:filesystem/types@0.2`` ``error-code``; each value is the POSIX name."""

    ACCESS = "EACCES"
    WOULD_BLOCK = "EAGAIN"
    ALREADY = "EALREADY"
    BAD_DESCRIPTOR = "EBADF"
    BUSY = "EBUSY"
    DEADLOCK = "EDEADLK"
    QUOTA = "EDQUOT"
    EXIST = "EEXIST"
    FILE_TOO_LARGE = "EFBIG"
    ILLEGAL_BYTE_SEQUENCE = "EILSEQ"
    IN_PROGRESS = "EINPROGRESS"
    INTERRUPTED = "EINTR"
    INVALID = "EINVAL"
    IO = "EIO"
    IS_DIRECTORY = "EISDIR"
    LOOP = "ELOOP"
    TOO_MANY_LINKS = "EMLINK"
    MESSAGE_SIZE = "EMSGSIZE"
    NAME_TOO_LONG = "ENAMETOOLONG"
    NO_DEVICE = "ENODEV"
    NO_ENTRY = "ENOENT"
    NO_LOCK = "ENOLCK"
    INSUFFICIENT_MEMORY = "ENOMEM"
    INSUFFICIENT_SPACE = "ENOSPC"
    NOT_DIRECTORY = "ENOTDIR"
    NOT_EMPTY = "ENOTEMPTY"
    NOT_RECOVERABLE = "ENOTRECOVERABLE"
    UNSUPPORTED = "ENOTSUP"
    NO_TTY = "ENOTTY"
    NO_SUCH_DEVICE = "ENXIO"
    OVERFLOW = "EOVERFLOW"
    NOT_PERMITTED = "EPERM"
    PIPE = "EPIPE"
    READ_ONLY = "EROFS"
    INVALID_SEEK = "ESPIPE"
    TEXT_FILE_BUSY = "ETXTBSY"
    CROSS_DEVICE = "EXDEV"

    @property
    def wit_name(self) -> str:
        """The case's name in the WIT file (``no-entry``)."""
        return self.name.lower().replace("_", "-")


class FsError(Exception):
    """A call of the interface that answers ``code`` instead of succeeding."""

    __slots__ = ("code",)

    def __init__(self, code: ErrorCode, message: str = "") -> None:
        super().__init__(message or code.wit_name)
        self.code = code


ANSWERS: tuple[type[BaseException], ...] = (FsError, OSError)
"""What a call of the interface raises as its answer, the error case of its result: its own
:class:`FsError`, or a storage's ``OSError`` let through. The world passes these to the
caller as they are; anything else leaving an implementation is a trap."""


# A host errno number -> its code, derived by name (the host's ENOENT is no-entry).
HOST_CODES: dict[int, ErrorCode] = {
    getattr(host_errno, code.value): code for code in ErrorCode
}
HOST_CODES[host_errno.EOPNOTSUPP] = ErrorCode.UNSUPPORTED  # ENOTSUP's twin on Linux


def code_of(exc: BaseException) -> ErrorCode:
    """The code a client sees for ``exc`` (``io`` when nothing more precise fits)."""
    if isinstance(exc, FsError):
        return exc.code
    if isinstance(exc, OSError) and exc.errno is not None:
        return HOST_CODES.get(exc.errno, ErrorCode.IO)
    if isinstance(exc, MemoryError):
        return ErrorCode.INSUFFICIENT_MEMORY
    if isinstance(exc, NotImplementedError):
        return ErrorCode.UNSUPPORTED
    return ErrorCode.IO
