"""The warning lists' compiled cache on disk: the built tables as raw arrays, read back in one go.

Building the tables from the package's JSON takes ~3 s and ~130 MB at its peak; reading them
back takes ~0.1 s. One file per exclusion (``warninglists_exclude``), named by a digest of what
it was built from: our format version, the package's version and its list files (path, size,
modification time), so a new package or format is a new name. The file starts with a header
(magic, format, the length of a JSON description), the description (that same key, the lists'
names, each array's type and length, a BLAKE2b digest of the arrays), then the arrays in native
byte order (the description says which). A file that does not match in every point — short,
corrupt, another key, another byte order — is ignored, and the caller rebuilds and rewrites it.

Written atomically (a temporary file in the same folder, then ``os.replace``); a folder that
cannot be written costs a rebuild per run, with an info line, never an error. Writing removes
the files of other package or format versions.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import struct
import sys
import tempfile
from array import array
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple

from importer.errors import ConfigError
from importer.policy.hashed import HashTable
from importer.policy.ranges import CompactRanges

__all__ = ["FORMAT", "Tables", "cache_path", "list_files", "read", "write"]

_log = logging.getLogger(__name__)

FORMAT = 1  # raise it whenever what is written changes
_MAGIC = b"TIWLCACHE\n"
_HEADER = struct.Struct("<II")  # format, length of the JSON description
_PREFIX = "misp-warninglists-"
_TABLES = ("exact", "certs", "hosts")
_MASK64 = (1 << 64) - 1


class Tables(NamedTuple):
    """What a cache file holds: the warning lists' tables and the names of the lists kept."""

    exact: HashTable
    certs: HashTable
    hosts: HashTable
    v4: CompactRanges
    v6: CompactRanges
    lists: tuple[str, ...]


def list_files() -> list[Path]:
    """The package's list files (``lists/*/list.json``, as ``pymispwarninglists`` reads them), sorted."""
    spec = importlib.util.find_spec("pymispwarninglists")
    if spec is None or spec.origin is None:
        raise ConfigError("warninglists = true needs the pymispwarninglists package, which is not installed")
    root = Path(spec.origin).parent / "data" / "misp-warninglists" / "lists"
    files = sorted(root.glob("*/list.json"))
    if not files:
        raise ConfigError(f"the pymispwarninglists package has no lists in {root}")
    return files


def _key(files: list[Path], excluded: frozenset[str]) -> dict[str, Any]:
    """What a cache file is valid for."""
    digest = hashlib.blake2b(digest_size=16)
    for file in files:
        status = file.stat()
        digest.update(f"{file.parent.name}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return {
        "format": FORMAT,
        "package": importlib.metadata.version("pymispwarninglists"),
        "files": digest.hexdigest(),
        "exclude": sorted(excluded),
        "byteorder": sys.byteorder,
    }


def cache_path(folder: Path, files: list[Path], excluded: frozenset[str]) -> Path:
    """The cache file in ``folder`` for these list files and this exclusion."""
    key = _key(files, excluded)
    digest = hashlib.blake2b(json.dumps(key, sort_keys=True).encode(), digest_size=8).hexdigest()
    return folder / f"{_PREFIX}{key['package']}-f{FORMAT}-{digest}.bin"


def read(path: Path, files: list[Path], excluded: frozenset[str]) -> Tables | None:
    """The tables the cache file at ``path`` holds, or None if it is missing, stale or corrupt."""
    try:
        with path.open("rb") as handle:
            meta = _read_meta(handle)
            if meta is None or meta["key"] != _key(files, excluded):
                _log.info("the warning lists' cache %s is stale: rebuilding it", path)
                return None
            arrays = _read_arrays(handle, meta)
    except FileNotFoundError:
        return None
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        _log.info("the warning lists' cache %s cannot be read (%s): rebuilding it", path, exc)
        return None
    if arrays is None:
        _log.info("the warning lists' cache %s is corrupt: rebuilding it", path)
        return None
    names = [str(name) for name in meta["names"]]
    exact, certs, hosts = (_table(arrays, meta["tables"][t], t, names) for t in _TABLES)
    v4 = CompactRanges(arrays["v4.starts"], arrays["v4.ends"], arrays["v4.ids"], names)
    v6 = CompactRanges(_wide(arrays, "v6.starts"), _wide(arrays, "v6.ends"), arrays["v6.ids"], names)
    return Tables(exact, certs, hosts, v4, v6, tuple(str(name) for name in meta["lists"]))


def _table(arrays: dict[str, array[int]], bits: list[int], name: str, names: list[str]) -> HashTable:
    id_bits, dir_bits = bits
    return HashTable(arrays[f"{name}.words"], arrays[f"{name}.heads"], int(id_bits), int(dir_bits), names)


def write(path: Path, index: Tables, files: list[Path], excluded: frozenset[str]) -> None:
    """Writes ``index`` to ``path`` atomically; a failure is logged (the next run rebuilds)."""
    arrays = dict(_arrays(index))
    digest = hashlib.blake2b(digest_size=16)
    for values in arrays.values():
        digest.update(memoryview(values).cast("B"))
    meta = {
        "key": _key(files, excluded),
        "lists": list(index.lists),
        "names": list(index.exact.names),
        "tables": {t: [getattr(index, t).id_bits, getattr(index, t).dir_bits] for t in _TABLES},
        "arrays": [[name, values.typecode, len(values)] for name, values in arrays.items()],
        "digest": digest.hexdigest(),
    }
    text = json.dumps(meta).encode()
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{_PREFIX}", suffix=".tmp")
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(_MAGIC + _HEADER.pack(FORMAT, len(text)) + text)
            for values in arrays.values():
                values.tofile(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
        temporary = None
        _remove_other_versions(path)
    except OSError as exc:
        _log.info("the warning lists' cache %s cannot be written (%s): each run will build them", path, exc)
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def _arrays(index: Tables) -> Iterator[tuple[str, array[int]]]:
    for t in _TABLES:
        table: HashTable = getattr(index, t)
        yield f"{t}.words", table.words
        yield f"{t}.heads", table.heads
    yield "v4.starts", array("I", index.v4.starts)
    yield "v4.ends", array("I", index.v4.ends)
    yield "v4.ids", index.v4.ids
    for column in ("starts", "ends"):  # 128-bit: high and low halves
        values = getattr(index.v6, column)
        yield f"v6.{column}.high", array("Q", [value >> 64 for value in values])
        yield f"v6.{column}.low", array("Q", [value & _MASK64 for value in values])
    yield "v6.ids", index.v6.ids


def _read_meta(handle: BinaryIO) -> dict[str, Any] | None:
    if handle.read(len(_MAGIC)) != _MAGIC:
        return None
    header = handle.read(_HEADER.size)
    if len(header) != _HEADER.size:
        return None
    version, length = _HEADER.unpack(header)
    if version != FORMAT:
        return None
    meta = json.loads(handle.read(length))
    return meta if isinstance(meta, dict) else None


def _read_arrays(handle: BinaryIO, meta: dict[str, Any]) -> dict[str, array[int]] | None:
    """The arrays the description lists, or None if the file is short, long or its digest differs."""
    arrays: dict[str, array[int]] = {}
    digest = hashlib.blake2b(digest_size=16)
    for name, typecode, length in meta["arrays"]:
        values = array(typecode)
        values.fromfile(handle, length)  # EOFError when short
        digest.update(memoryview(values).cast("B"))
        arrays[name] = values
    if handle.read(1) or digest.hexdigest() != meta["digest"]:
        return None
    return arrays


def _wide(arrays: dict[str, array[int]], name: str) -> list[int]:
    return [high << 64 | low for high, low in zip(arrays[f"{name}.high"], arrays[f"{name}.low"], strict=True)]


def _remove_other_versions(path: Path) -> None:
    """Removes cache files of another package or format version (this one's other exclusions stay)."""
    current = path.name.rsplit("-", 1)[0]
    for other in path.parent.glob(f"{_PREFIX}*.bin"):
        if other.name.rsplit("-", 1)[0] != current:
            with contextlib.suppress(OSError):
                other.unlink()
