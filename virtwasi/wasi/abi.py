"""WASI preview 1 (wasi_snapshot_preview1) constants and struct layouts, in one place.

Values and offsets follow the witx definitions of the snapshot; every struct is a
precompiled little-endian ``struct.Struct`` whose size is checked against the ABI below.
"""

from __future__ import annotations

import enum
import struct


class Errno(enum.IntEnum):
    SUCCESS = 0
    TOOBIG = 1  # E2BIG
    ACCES = 2
    ADDRINUSE = 3
    ADDRNOTAVAIL = 4
    AFNOSUPPORT = 5
    AGAIN = 6
    ALREADY = 7
    BADF = 8
    BADMSG = 9
    BUSY = 10
    CANCELED = 11
    CHILD = 12
    CONNABORTED = 13
    CONNREFUSED = 14
    CONNRESET = 15
    DEADLK = 16
    DESTADDRREQ = 17
    DOM = 18
    DQUOT = 19
    EXIST = 20
    FAULT = 21
    FBIG = 22
    HOSTUNREACH = 23
    IDRM = 24
    ILSEQ = 25
    INPROGRESS = 26
    INTR = 27
    INVAL = 28
    IO = 29
    ISCONN = 30
    ISDIR = 31
    LOOP = 32
    MFILE = 33
    MLINK = 34
    MSGSIZE = 35
    MULTIHOP = 36
    NAMETOOLONG = 37
    NETDOWN = 38
    NETRESET = 39
    NETUNREACH = 40
    NFILE = 41
    NOBUFS = 42
    NODEV = 43
    NOENT = 44
    NOEXEC = 45
    NOLCK = 46
    NOLINK = 47
    NOMEM = 48
    NOMSG = 49
    NOPROTOOPT = 50
    NOSPC = 51
    NOSYS = 52
    NOTCONN = 53
    NOTDIR = 54
    NOTEMPTY = 55
    NOTRECOVERABLE = 56
    NOTSOCK = 57
    NOTSUP = 58
    NOTTY = 59
    NXIO = 60
    OVERFLOW = 61
    OWNERDEAD = 62
    PERM = 63
    PIPE = 64
    PROTO = 65
    PROTONOSUPPORT = 66
    PROTOTYPE = 67
    RANGE = 68
    ROFS = 69
    SPIPE = 70
    SRCH = 71
    STALE = 72
    TIMEDOUT = 73
    TXTBSY = 74
    XDEV = 75
    NOTCAPABLE = 76


class Filetype(enum.IntEnum):
    UNKNOWN = 0
    BLOCK_DEVICE = 1
    CHARACTER_DEVICE = 2
    DIRECTORY = 3
    REGULAR_FILE = 4
    SOCKET_DGRAM = 5
    SOCKET_STREAM = 6
    SYMBOLIC_LINK = 7


class Rights(enum.IntFlag):
    FD_DATASYNC = 1 << 0
    FD_READ = 1 << 1
    FD_SEEK = 1 << 2
    FD_FDSTAT_SET_FLAGS = 1 << 3
    FD_SYNC = 1 << 4
    FD_TELL = 1 << 5
    FD_WRITE = 1 << 6
    FD_ADVISE = 1 << 7
    FD_ALLOCATE = 1 << 8
    PATH_CREATE_DIRECTORY = 1 << 9
    PATH_CREATE_FILE = 1 << 10
    PATH_LINK_SOURCE = 1 << 11
    PATH_LINK_TARGET = 1 << 12
    PATH_OPEN = 1 << 13
    FD_READDIR = 1 << 14
    PATH_READLINK = 1 << 15
    PATH_RENAME_SOURCE = 1 << 16
    PATH_RENAME_TARGET = 1 << 17
    PATH_FILESTAT_GET = 1 << 18
    PATH_FILESTAT_SET_SIZE = 1 << 19
    PATH_FILESTAT_SET_TIMES = 1 << 20
    FD_FILESTAT_GET = 1 << 21
    FD_FILESTAT_SET_SIZE = 1 << 22
    FD_FILESTAT_SET_TIMES = 1 << 23
    PATH_SYMLINK = 1 << 24
    PATH_REMOVE_DIRECTORY = 1 << 25
    PATH_UNLINK_FILE = 1 << 26
    POLL_FD_READWRITE = 1 << 27
    SOCK_SHUTDOWN = 1 << 28
    SOCK_ACCEPT = 1 << 29


ALL_RIGHTS = (1 << 30) - 1


class Oflags(enum.IntFlag):
    CREAT = 1 << 0
    DIRECTORY = 1 << 1
    EXCL = 1 << 2
    TRUNC = 1 << 3


class Fdflags(enum.IntFlag):
    APPEND = 1 << 0
    DSYNC = 1 << 1
    NONBLOCK = 1 << 2
    RSYNC = 1 << 3
    SYNC = 1 << 4


class Lookupflags(enum.IntFlag):
    SYMLINK_FOLLOW = 1 << 0


class Fstflags(enum.IntFlag):
    ATIM = 1 << 0
    ATIM_NOW = 1 << 1
    MTIM = 1 << 2
    MTIM_NOW = 1 << 3


class Whence(enum.IntEnum):
    SET = 0
    CUR = 1
    END = 2


class Clockid(enum.IntEnum):
    REALTIME = 0
    MONOTONIC = 1
    PROCESS_CPUTIME_ID = 2
    THREAD_CPUTIME_ID = 3


class Eventtype(enum.IntEnum):
    CLOCK = 0
    FD_READ = 1
    FD_WRITE = 2


class Subclockflags(enum.IntFlag):
    SUBSCRIPTION_CLOCK_ABSTIME = 1 << 0


class Eventrwflags(enum.IntFlag):
    FD_READWRITE_HANGUP = 1 << 0


class Advice(enum.IntEnum):
    NORMAL = 0
    SEQUENTIAL = 1
    RANDOM = 2
    WILLNEED = 3
    DONTNEED = 4
    NOREUSE = 5


class Preopentype(enum.IntEnum):
    DIR = 0


class Sdflags(enum.IntFlag):
    RD = 1 << 0
    WR = 1 << 1


class Riflags(enum.IntFlag):
    RECV_PEEK = 1 << 0
    RECV_WAITALL = 1 << 1


# Struct layouts. The comment after each gives the witx fields at their offsets.
IOVEC = struct.Struct("<II")  # buf u32 @0, buf_len u32 @4
FILESTAT = struct.Struct("<QQB7xQQQQQ")  # dev @0 ino @8 filetype @16 nlink @24 size @32
#                                          atim @40 mtim @48 ctim @56
FDSTAT = struct.Struct("<BxH4xQQ")  # fs_filetype @0 fs_flags @2 rights_base @8 inheriting @16
DIRENT = struct.Struct("<QQIB3x")  # d_next @0 d_ino @8 d_namlen @16 d_type @20
PRESTAT = struct.Struct("<B3xI")  # tag @0 pr_name_len @4
SUBSCRIPTION_HEAD = struct.Struct("<QB")  # userdata @0 tag @8
SUBSCRIPTION_CLOCK = struct.Struct("<I4xQQH")  # (at @16) id, timeout @24, precision @32, flags @40
SUBSCRIPTION_FD = struct.Struct("<I")  # (at @16) file_descriptor
SUBSCRIPTION_SIZE = 48
EVENT = struct.Struct("<QHB5xQH6x")  # userdata @0 error @8 type @10 nbytes @16 flags @24
U8 = struct.Struct("<B")
U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
U64 = struct.Struct("<Q")
U32_PAIR = struct.Struct("<II")

# The alignment wasmtime demands of a pointer to each layout (it traps on a misaligned one).
ALIGNMENT: dict[struct.Struct, int] = {
    IOVEC: 4, FILESTAT: 8, FDSTAT: 8, PRESTAT: 4, EVENT: 8, SUBSCRIPTION_HEAD: 8,
    U16: 2, U32: 4, U64: 8,
}

for _layout, _size in (
    (IOVEC, 8),
    (FILESTAT, 64),
    (FDSTAT, 24),
    (DIRENT, 24),
    (PRESTAT, 8),
    (SUBSCRIPTION_CLOCK, 26),
    (EVENT, 32),
):
    assert _layout.size == _size, (_layout.format, _layout.size, _size)

# Every wasi_snapshot_preview1 import: its parameters as read by the host ("u32" pointers,
# sizes and flags; "u64" offsets, rights and times; "i64" the signed seek delta). Each
# returns an errno (i32), except proc_exit, which returns nothing.
IMPORTS: dict[str, tuple[str, ...]] = {
    "args_get": ("u32", "u32"),
    "args_sizes_get": ("u32", "u32"),
    "environ_get": ("u32", "u32"),
    "environ_sizes_get": ("u32", "u32"),
    "clock_res_get": ("u32", "u32"),
    "clock_time_get": ("u32", "u64", "u32"),
    "fd_advise": ("u32", "u64", "u64", "u32"),
    "fd_allocate": ("u32", "u64", "u64"),
    "fd_close": ("u32",),
    "fd_datasync": ("u32",),
    "fd_fdstat_get": ("u32", "u32"),
    "fd_fdstat_set_flags": ("u32", "u32"),
    "fd_fdstat_set_rights": ("u32", "u64", "u64"),
    "fd_filestat_get": ("u32", "u32"),
    "fd_filestat_set_size": ("u32", "u64"),
    "fd_filestat_set_times": ("u32", "u64", "u64", "u32"),
    "fd_pread": ("u32", "u32", "u32", "u64", "u32"),
    "fd_prestat_get": ("u32", "u32"),
    "fd_prestat_dir_name": ("u32", "u32", "u32"),
    "fd_pwrite": ("u32", "u32", "u32", "u64", "u32"),
    "fd_read": ("u32", "u32", "u32", "u32"),
    "fd_readdir": ("u32", "u32", "u32", "u64", "u32"),
    "fd_renumber": ("u32", "u32"),
    "fd_seek": ("u32", "i64", "u32", "u32"),
    "fd_sync": ("u32",),
    "fd_tell": ("u32", "u32"),
    "fd_write": ("u32", "u32", "u32", "u32"),
    "path_create_directory": ("u32", "u32", "u32"),
    "path_filestat_get": ("u32", "u32", "u32", "u32", "u32"),
    "path_filestat_set_times": ("u32", "u32", "u32", "u32", "u64", "u64", "u32"),
    "path_link": ("u32", "u32", "u32", "u32", "u32", "u32", "u32"),
    "path_open": ("u32", "u32", "u32", "u32", "u32", "u64", "u64", "u32", "u32"),
    "path_readlink": ("u32", "u32", "u32", "u32", "u32", "u32"),
    "path_remove_directory": ("u32", "u32", "u32"),
    "path_rename": ("u32", "u32", "u32", "u32", "u32", "u32"),
    "path_symlink": ("u32", "u32", "u32", "u32", "u32"),
    "path_unlink_file": ("u32", "u32", "u32"),
    "poll_oneoff": ("u32", "u32", "u32", "u32"),
    "proc_exit": ("u32",),
    "proc_raise": ("u32",),
    "sched_yield": (),
    "random_get": ("u32", "u32"),
    "sock_accept": ("u32", "u32", "u32"),
    "sock_recv": ("u32", "u32", "u32", "u32", "u32", "u32"),
    "sock_send": ("u32", "u32", "u32", "u32", "u32"),
    "sock_shutdown": ("u32", "u32"),
}
assert len(IMPORTS) == 46
