# SPDX-License-Identifier: Apache-2.0
"""What of the nvidia-pytriton wheel a CPU node image needs, and where it goes.

Plain Python (no Ansible imports). The wheel carries a complete Triton Inference Server
(``pytriton/tritonserver``: the server, the Python backend, stubs for several Python versions,
the local cache) and every library those need, grafted by auditwheel under renamed sonames
(``nvidia_pytriton.libs/lib*-<hash>.so*``). ``plan_unpack`` lays it out like NVIDIA's images
(``/opt/tritonserver/{bin,backends,caches,lib}``), with the stub of one Python version put
into ``backends/python`` (where the Python backend looks for it) and only the grafted
libraries the kept binaries need (``DT_NEEDED``, transitively): the bundled ``libpython`` of
other Python versions stays out, the image's own ``libpython3.X`` is used.
"""

from __future__ import annotations

import hashlib
import posixpath
import struct

SERVER_PREFIX = "pytriton/tritonserver/"
LIBS_PREFIX = "nvidia_pytriton.libs/"
STUB_NAME = "triton_python_backend_stub"

_PT_LOAD, _PT_DYNAMIC = 1, 2
_DT_NULL, _DT_NEEDED, _DT_STRTAB = 0, 1, 5


class ElfError(ValueError):
    """Bytes that are not a 64-bit little-endian ELF file with a readable dynamic section."""


def elf_needed(data):
    """The ``DT_NEEDED`` entries (sonames) of an ELF64 little-endian file, in order.

    A static binary (no ``PT_DYNAMIC``) needs nothing: ``[]``.
    """
    if len(data) < 64 or data[:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    if data[4] != 2 or data[5] != 1:
        raise ElfError("only 64-bit little-endian ELF files are read")
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    loads, dynamic = [], None
    for i in range(phnum):
        off = phoff + i * phentsize
        p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from("<IIQQQQ", data, off)
        if p_type == _PT_LOAD:
            loads.append((p_vaddr, p_offset, p_filesz))
        elif p_type == _PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:
        return []
    needed_offsets, strtab_addr = [], None
    off, end = dynamic[0], dynamic[0] + dynamic[1]
    while off + 16 <= end:
        tag, value = struct.unpack_from("<qQ", data, off)
        off += 16
        if tag == _DT_NULL:
            break
        if tag == _DT_NEEDED:
            needed_offsets.append(value)
        elif tag == _DT_STRTAB:
            strtab_addr = value
    if strtab_addr is None:
        raise ElfError("dynamic section without a string table")
    strtab = None
    for vaddr, offset, filesz in loads:
        if vaddr <= strtab_addr < vaddr + filesz:
            strtab = offset + (strtab_addr - vaddr)
            break
    if strtab is None:
        raise ElfError("string table outside every loaded segment")
    names = []
    for rel in needed_offsets:
        start = strtab + rel
        stop = data.index(b"\0", start)
        names.append(data[start:stop].decode("ascii", "replace"))
    return names


def plan_unpack(names, read, python_version):
    """Map wheel members to the image layout.

    ``names``: the wheel's member names; ``read(name) -> bytes``. Returns
    ``{dest: (member, mode)}`` with dest relative to the server root (``bin/tritonserver``,
    ``lib/libtritonserver-….so``, ...). Raises ValueError naming what the wheel lacks.
    """
    members = set(names)
    stub = "%spython_backend_stubs/%s/%s" % (SERVER_PREFIX, python_version, STUB_NAME)
    server = SERVER_PREFIX + "bin/tritonserver"
    for required in (server, stub, SERVER_PREFIX + "backends/python/libtriton_python.so"):
        if required not in members:
            versions = sorted({n.split("/")[3] for n in members
                               if n.startswith(SERVER_PREFIX + "python_backend_stubs/") and n.count("/") >= 4})
            raise ValueError("the wheel has no %s (Python backend stubs in it: %s)"
                             % (required, ", ".join(versions) or "none"))
    plan = {}
    for name in sorted(members):
        if name.endswith("/") or not name.startswith(SERVER_PREFIX):
            continue
        rel = name[len(SERVER_PREFIX):]
        top = rel.split("/", 1)[0]
        if top in ("bin", "backends", "caches"):
            plan[rel] = (name, 0o755 if top == "bin" else 0o644)
    plan["backends/python/" + STUB_NAME] = (stub, 0o755)

    libs = {posixpath.basename(n): n for n in members
            if n.startswith(LIBS_PREFIX) and not n.endswith("/")}
    todo = [member for member, _mode in plan.values() if member.endswith(".so") or "/bin/" in member
            or member == stub]
    seen = set()
    while todo:
        member = todo.pop()
        try:
            needed = elf_needed(read(member))
        except ElfError:
            continue
        for soname in needed:
            if soname in libs and soname not in seen:
                seen.add(soname)
                todo.append(libs[soname])
    for soname in sorted(seen):
        plan["lib/" + soname] = (libs[soname], 0o755)
    return plan


def sha256_bytes(data):
    return hashlib.sha256(data).hexdigest()
