"""The node-side readers: small Python programs run on a Gluster node (``GlusterNodeHook.python_json``).

Everything read from storage is hostile (a replica holds whatever geo-replication copied; a master can be
compromised), so the readers are written to one discipline:

- Python 3.6-compatible (EL8 nodes): no walrus, no ``capture_output``; ``python3`` is on every Gluster node
  (gsyncd needs it);
- paths come only from ``argv`` (validated by the caller); a name read from storage is data, never an
  argument of another program (the OVF_STORE tar is read with ``tarfile``, not by running ``tar`` on member
  names: a member named ``--use-compress-program=...`` would be a command on the node);
- each prints ONE JSON document (file content base64), so no file name or content can forge a record;
- files are opened with ``O_NOFOLLOW`` and only regular files count (a symlink is reported, not followed).

Used by ``ovirt_dr.replica.DomainFiles`` (images, OVF_STOREs, qemu-img check, sampled digests) and the
failover's replica inventory (``ovirt_dr.operators.recovery_gluster``: domains, the OVF_STORE's VM status).
"""

from __future__ import annotations

#: What every reader starts with: the UUID rule, the file kind of a mode, a bounded no-follow read.
PRELUDE = r"""
import base64, json, os, re, stat, sys
UUID = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
def kind(mode):
    if stat.S_ISREG(mode): return "file"
    if stat.S_ISLNK(mode): return "link"
    if stat.S_ISDIR(mode): return "dir"
    return "other"
def read_small(path, limit):
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        return f.read(limit + 1)
"""

LIST_IMAGES = (
    PRELUDE
    + r"""
root, limit, images = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
out = {}
for img in images:
    if not UUID.match(img):
        sys.exit("not an image id: %r" % img)
    d = os.path.join(root, "images", img)
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        out[img] = None
        continue
    if len(names) > 10000:
        sys.exit("image %s holds %d entries" % (img, len(names)))
    entries = {}
    for name in names:
        p = os.path.join(d, name)
        try:
            st = os.lstat(p)
        except OSError:
            continue
        e = {"type": kind(st.st_mode), "size": st.st_size}
        if e["type"] == "file" and name.endswith(".meta") and st.st_size <= limit:
            try:
                e["content"] = base64.b64encode(read_small(p, limit)).decode("ascii")
            except OSError as err:
                e["error"] = str(err)
        entries[name] = e
    out[img] = entries
sys.stdout.write(json.dumps(out))
"""
)

FIND_OVF_STORES = (
    PRELUDE
    + r"""
root, limit = sys.argv[1], int(sys.argv[2])
found = []
try:
    images = os.listdir(os.path.join(root, "images"))
except FileNotFoundError:
    images = []
for img in sorted(images):
    d = os.path.join(root, "images", img)
    if not UUID.match(img) or kind(os.lstat(d).st_mode) != "dir":
        continue
    for name in sorted(os.listdir(d)):
        if not (name.endswith(".meta") and UUID.match(name[:-5])):
            continue
        p = os.path.join(d, name)
        st = os.lstat(p)
        if kind(st.st_mode) != "file" or st.st_size > limit:
            continue
        data = read_small(p, limit)
        if b"OVF_STORE" in data:
            found.append({"image": img, "volume": name[:-5], "content": base64.b64encode(data).decode("ascii")})
sys.stdout.write(json.dumps(found))
"""
)

READ_OVF_STORE = (
    PRELUDE
    + r"""
import tarfile
path, max_member, max_total = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
out = {"ovfs": {}, "other": [], "error": None}
try:
    st = os.lstat(path)
    if kind(st.st_mode) != "file":
        raise ValueError("the OVF_STORE volume is a %s, not a regular file" % kind(st.st_mode))
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    total = 0
    with os.fdopen(fd, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
        for n, m in enumerate(tar):
            if n >= 100000:
                raise ValueError("more than 100000 members")
            name = m.name
            if m.isfile() and name.endswith(".ovf") and UUID.match(name[:-4]):
                if m.size > max_member:
                    raise ValueError("member %r is %d bytes" % (name, m.size))
                total += m.size
                if total > max_total:
                    raise ValueError("OVFs larger than %d bytes in all" % max_total)
                out["ovfs"][name[:-4]] = base64.b64encode(tar.extractfile(m).read()).decode("ascii")
            elif not (m.isfile() and name in ("info.json", "metadata.json")):
                out["other"].append(name[:300])
except (OSError, ValueError, tarfile.TarError, EOFError) as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
sys.stdout.write(json.dumps(out))
"""
)

QEMU_CHECK = (
    PRELUDE
    + r"""
import struct, subprocess
out = {}
for p in sys.argv[1:]:
    try:
        st = os.lstat(p)
        if kind(st.st_mode) != "file":
            out[p] = [-1, "not a regular file (%s)" % kind(st.st_mode)]
            continue
        head = read_small(p, 104)
        if head[:4] == b"QFI\xfb" and len(head) >= 80 and struct.unpack(">I", head[4:8])[0] >= 3:
            if struct.unpack(">Q", head[72:80])[0] & 4:
                out[p] = [-1, "qcow2 with an external data file: not an oVirt volume, not opened"]
                continue
        # json: spec with "backing": null: qemu-img never opens a backing file the header names
        spec = "json:" + json.dumps({"driver": "qcow2", "file": {"driver": "file", "filename": p}, "backing": None})
        r = subprocess.run(["qemu-img", "check", "--output=json", spec], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=3600)
        out[p] = [r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")[-4000:]]
    except Exception as e:
        out[p] = [-1, "%s: %s" % (type(e).__name__, e)]
sys.stdout.write(json.dumps(out))
"""
)

SAMPLED_DIGEST = (
    PRELUDE
    + r"""
import hashlib, random
block, count, seed = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
out = {}
for path in sys.argv[4:]:
    st = os.lstat(path)
    if kind(st.st_mode) != "file":
        out[path] = {"digest": None, "bytes": 0, "error": "not a regular file"}
        continue
    size = st.st_size
    blocks = max(1, (size + block - 1) // block)
    rng = random.Random(seed + os.path.basename(path))
    picks = sorted(set([0, blocks - 1] + [rng.randrange(blocks) for _ in range(count)]))
    h = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        for b in picks:
            f.seek(b * block)
            h.update(f.read(block))
    out[path] = {"digest": h.hexdigest(), "bytes": min(size, len(picks) * block)}
sys.stdout.write(json.dumps(out))
"""
)

READ_DOMAINS = (
    PRELUDE
    + r"""
root = sys.argv[1]
out = {}
for name in sorted(os.listdir(root)):
    if not UUID.match(name):
        continue
    md = os.path.join(root, name, "dom_md", "metadata")
    try:
        if not stat.S_ISREG(os.lstat(md).st_mode):
            continue
        data = read_small(md, 65536)
    except OSError:
        continue
    keys = {}
    for line in data[:65536].decode("utf-8", "replace").splitlines():
        k, sep, v = line.partition("=")
        if sep and k in ("SDUUID", "DESCRIPTION", "ROLE", "CLASS"):
            keys[k] = v[:300]
    out[name] = keys
sys.stdout.write(json.dumps(out))
"""
)

READ_VM_STATUS = (
    PRELUDE
    + r"""
import tarfile
path = sys.argv[1]
out = {"vm_status": None, "error": None}
try:
    if not stat.S_ISREG(os.lstat(path).st_mode):
        raise ValueError("the OVF_STORE volume is not a regular file")
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
        for n, m in enumerate(tar):
            if n >= 100000:
                raise ValueError("more than 100000 members")
            if m.name == "metadata.json" and m.isfile():
                if m.size > 4 * 1024 * 1024:
                    raise ValueError("metadata.json is %d bytes" % m.size)
                doc = json.loads(tar.extractfile(m).read().decode("utf-8"))
                out["vm_status"] = doc.get("VM Status") if isinstance(doc, dict) else None
                break
except (OSError, ValueError, tarfile.TarError, EOFError) as e:
    out["error"] = "%s: %s" % (type(e).__name__, e)
sys.stdout.write(json.dumps(out))
"""
)

__all__ = [
    "FIND_OVF_STORES",
    "LIST_IMAGES",
    "PRELUDE",
    "QEMU_CHECK",
    "READ_DOMAINS",
    "READ_OVF_STORE",
    "READ_VM_STATUS",
    "SAMPLED_DIGEST",
]
