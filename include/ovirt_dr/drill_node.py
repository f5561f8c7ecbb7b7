"""The DR drill's node-side programs: build, check and remove the drill's copy of a replica domain.

They run on a slave Gluster node (``python3 -c <program> <spec>``, over SSH, through
``GlusterGeoRepHook.run``) on the slave volume mounted there, in the discipline of ``ovirt_dr.replica``:
Python 3.6-compatible, the spec is ONE JSON argument made by the operator from validated ids, ONE JSON
document comes out, and nothing read from storage ever becomes an argument of a program or a path outside
the domain directories (names are checked to be UUIDs or volume file names first).

**The copy** (``MAKE_COPY``), next to the replica on the same volume, under a NEW storage domain id::

    <root>/<copy_id>/ovirt-dr-drill.json               marker: whose copy, which run (cleanup checks it)
    <root>/<copy_id>/dom_md/metadata                   the replica's, SDUUID/DESCRIPTION/POOL_UUID/ROLE
                                                       rewritten and resealed (vdsm's _SHA_CKSUM)
    <root>/<copy_id>/dom_md/{ids,leases,...}           new, zeroed, the replica's sizes (sanlock leases
                                                       are keyed by the domain id: the old ones are void)
    <root>/<copy_id>/images/<ovf img>/<vol>{,.meta,.lease}   new OVF_STORE volumes: the replica's tar with
                                                       every reference to the replica's domain id and to
                                                       each disk's active volume rewritten
    <root>/<copy_id>/images/<img>/<v>                  symlink ../../../<sd_id>/images/<img>/<v>: the
                                                       replica's volume itself, never copied
    <root>/<copy_id>/images/<img>/<v>.meta             the replica's .meta, DOMAIN=<copy_id>; the disk's
                                                       top volume INTERNAL
    <root>/<copy_id>/images/<img>/<v>.lease            new, zeroed
    <root>/<copy_id>/images/<img>/<overlay>{,.meta,.lease}   a new qcow2 LEAF, backing file <top> (bare
                                                       uuid, as vdsm writes it), the disk's active volume
                                                       in the rewritten OVF: every guest write lands here

Relative symlinks inside the one volume resolve on any host that mounts it, wherever; qemu opens the
volumes below a leaf read-only, so the replica's bytes are never written. Its volumes' qcow2 headers are
checked first (the backing file must be the ``.meta``'s parent, as a bare uuid, with no external data
file): the VMs and ``qemu-img`` then open exactly the chain the metadata describes, never a file or URL a
crafted header names.
"""

from __future__ import annotations

_COMMON = r"""
import hashlib, io, json, os, re, stat, struct, subprocess, sys, tarfile, tempfile, time
UUID = re.compile(r"\A[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
VOLFILE = re.compile(r"\A([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(\.meta|\.lease)?\Z")
BLANK = "00000000-0000-0000-0000-000000000000"
MARKER = "ovirt-dr-drill.json"
MAX_META = 65536
def need_uuid(v, what):
    if not isinstance(v, str) or not UUID.match(v):
        raise SystemExit("%s is not a uuid: %r" % (what, v))
    return v
def kind(mode):
    if stat.S_ISREG(mode): return "file"
    if stat.S_ISLNK(mode): return "link"
    if stat.S_ISDIR(mode): return "dir"
    return "other"
def lkind(path):
    try:
        return kind(os.lstat(path).st_mode)
    except FileNotFoundError:
        return None
def read_small(path, limit):
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise ValueError("%s is larger than %d bytes" % (os.path.basename(path), limit))
    return data
def parse_meta(text):
    out = {}
    for line in text.splitlines():
        if line.strip() == "EOF":
            break
        if "=" in line:
            k, v = line.split("=", 1)
            out[k.strip()] = v
    return out
def set_key(text, key, value):
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith(key + "="):
            lines[i] = key + "=" + value
            return "\n".join(lines) + "\n"
    raise ValueError("no %s line" % key)
def md_seal(md):
    h = hashlib.sha1()
    for k in sorted(md):
        if k != "_SHA_CKSUM":
            h.update(("%s=%s" % (k, str(md[k]).strip())).encode("ascii", "xmlcharrefreplace"))
    return h.hexdigest()
def qcow2_header(path):
    # (is_qcow2, backing name or None, backing format or None, external data file?)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        head = f.read(104)
        if head[:4] != b"QFI\xfb":
            return (False, None, None, False)
        version = struct.unpack(">I", head[4:8])[0]
        boff, bsize = struct.unpack(">QI", head[8:20])
        ext_data = version >= 3 and bool(struct.unpack(">Q", head[72:80])[0] & 4)
        backing = None
        if boff and bsize:
            if bsize > 1023:
                raise ValueError("backing file name of %d bytes" % bsize)
            f.seek(boff)
            backing = f.read(bsize).decode("utf-8", "replace")
        hlen = struct.unpack(">I", head[100:104])[0] if version >= 3 else 72
        f.seek(hlen)
        fmt = None
        for _ in range(64):
            eh = f.read(8)
            if len(eh) < 8:
                break
            etype, elen = struct.unpack(">II", eh)
            if etype == 0:
                break
            data = f.read(elen)
            f.read((8 - elen % 8) % 8)
            if etype == 0xE2792ACA:
                fmt = data.decode("ascii", "replace")
            elif etype == 0x44415441:
                ext_data = True
    return (True, backing, fmt, ext_data)
def remove_tree(top):
    # delete a directory tree without ever following a symlink (a link is removed, not its target)
    n = 0
    for dirpath, dirnames, filenames in os.walk(top, topdown=False, followlinks=False):
        if not (dirpath == top or dirpath.startswith(top + os.sep)):
            raise SystemExit("refusing to remove %r outside %r" % (dirpath, top))
        for name in filenames:
            os.unlink(os.path.join(dirpath, name))
            n += 1
        for name in dirnames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                os.unlink(p)
                n += 1
            else:
                os.rmdir(p)
    os.rmdir(top)
    return n
def read_prefix(path, n):
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with os.fdopen(fd, "rb") as f:
        return f.read(n)
def load_spec(arg):
    # the spec: JSON in argv, or "@<path>" of a file the operator wrote (a large spec)
    if arg.startswith("@"):
        with open(arg[1:], "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    return json.loads(arg)
def read_marker(dst):
    try:
        return json.loads(read_small(os.path.join(dst, MARKER), MAX_META).decode("utf-8"))
    except (OSError, ValueError):
        return None
"""

MAKE_COPY = (
    _COMMON
    + r"""
QEMU_FMT = {"COW": "qcow2", "RAW": "raw"}
spec = load_spec(sys.argv[1])
root = spec["root"]
sd = need_uuid(spec["sd_id"], "replica domain id")
cp = need_uuid(spec["copy_id"], "copy domain id")
if cp == sd:
    raise SystemExit("the copy must have its own domain id")
dry = bool(spec.get("dry_run", True))
src, dst = os.path.join(root, sd), os.path.join(root, cp)
out = {"copy_dir": dst, "dry_run": dry, "problems": [], "disks": {}, "stores": [], "created": 0,
       "existed": False, "others": []}
if lkind(src) != "dir":
    raise SystemExit("no replica domain directory %s" % src)
for name in sorted(os.listdir(root)):
    if UUID.match(name) and name not in (sd, cp) and lkind(os.path.join(root, name)) == "dir":
        m = read_marker(os.path.join(root, name))
        if isinstance(m, dict) and m.get("copy_of") == sd:
            out["others"].append({"copy_id": name, "run_id": str(m.get("run_id"))[:250]})

# the domain metadata: verified as the engine does before it imports a domain, then rewritten
md_path = os.path.join(src, "dom_md", "metadata")
md_text = read_small(md_path, MAX_META).decode("utf-8")
md, declared = {}, None
for line in md_text.splitlines():
    if "=" in line:
        k, v = line.split("=", 1)
        if k == "_SHA_CKSUM":
            declared = v.strip()
        else:
            md[k] = v.strip()
if declared is not None and declared != md_seal(md):
    raise SystemExit("the replica's dom_md/metadata seal is broken: an engine would refuse to import it")
if md.get("SDUUID") != sd:
    raise SystemExit("the replica's dom_md/metadata names SDUUID %r, not %s" % (md.get("SDUUID"), sd))
new_md = dict(md)
new_md.update({"SDUUID": cp, "DESCRIPTION": spec["copy_name"], "POOL_UUID": "", "ROLE": "Regular"})
new_md["_SHA_CKSUM"] = md_seal(new_md)
owner = os.lstat(md_path)
dom_md = {}
for name in ("ids", "leases", "inbox", "outbox", "xleases"):
    p = os.path.join(src, "dom_md", name)
    if lkind(p) == "file":
        dom_md[name] = os.lstat(p).st_size

# the OVF_STORE: the newest updated store's tar, rewritten for the copy
renames = {}
for d in spec["disks"]:
    if d.get("overlay"):
        renames[need_uuid(d["volume"], "volume id")] = need_uuid(d["overlay"], "overlay id")
stores = []
images_dir = os.path.join(src, "images")
for img in sorted(os.listdir(images_dir)) if lkind(images_dir) == "dir" else []:
    idir = os.path.join(images_dir, img)
    if not UUID.match(img) or lkind(idir) != "dir":
        continue
    for name in sorted(os.listdir(idir)):
        if not (name.endswith(".meta") and UUID.match(name[:-5])):
            continue
        p = os.path.join(idir, name)
        if lkind(p) != "file" or os.lstat(p).st_size > MAX_META:
            continue
        text = read_small(p, MAX_META).decode("utf-8", "replace")
        if "OVF_STORE" not in text:
            continue
        try:
            desc = json.loads(parse_meta(text).get("DESCRIPTION", ""))
        except ValueError:
            continue
        if isinstance(desc, dict) and desc.get("Disk Description") == "OVF_STORE":
            vol = name[:-5]
            stores.append({"image": img, "volume": vol, "meta": text, "desc": desc,
                           "size": os.lstat(os.path.join(idir, vol)).st_size
                           if lkind(os.path.join(idir, vol)) == "file" else None,
                           "lease": os.lstat(os.path.join(idir, vol + ".lease")).st_size
                           if lkind(os.path.join(idir, vol + ".lease")) == "file" else 1048576})
updated = [s for s in stores if s["desc"].get("Updated") is True and s["size"]]
if not updated:
    raise SystemExit("the replica has no updated OVF_STORE: nothing to register from")
newest = max(updated, key=lambda s: str(s["desc"].get("Last Updated", "")))
size = newest["desc"].get("Size")
if not isinstance(size, int) or size <= 0 or size > 256 * 1024 * 1024:
    raise SystemExit("the newest OVF_STORE declares Size %r" % (size,))
# only the tar's bytes: reading a sharded slave past a shard that was never written fails (read-only)
# or creates an empty shard (writable)
blob = read_prefix(os.path.join(images_dir, newest["image"], newest["volume"]), size)
members = []
with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as tar:
    for n, m in enumerate(tar):
        if n >= 100000:
            raise SystemExit("the OVF_STORE holds more than 100000 members")
        ok = m.isfile() and (m.name in ("info.json", "metadata.json") or
                             (m.name.endswith(".ovf") and UUID.match(m.name[:-4])))
        if not ok:
            out["problems"].append("OVF_STORE member %r left out of the copy" % m.name[:200])
            continue
        if m.size > 16 * 1024 * 1024:
            raise SystemExit("OVF_STORE member %s is %d bytes" % (m.name, m.size))
        data = tar.extractfile(m).read()
        if m.name != "metadata.json":
            data = data.replace(sd.encode(), cp.encode())
        if m.name.endswith(".ovf"):
            for old, new in renames.items():
                data = data.replace(old.encode(), new.encode())
        members.append((m.name, data))
buf = io.BytesIO()
now = int(spec.get("now") or time.time())
with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
    for name, data in members:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), now, 0o644
        tar.addfile(info, io.BytesIO(data))
new_tar = buf.getvalue()
for s in stores:
    if s["size"] is None or len(new_tar) > s["size"]:
        out["problems"].append("OVF_STORE %s/%s cannot hold the copy's OVFs" % (s["image"], s["volume"]))
        continue
    out["stores"].append({"image": s["image"], "volume": s["volume"], "size": s["size"]})
out["ovf_store"] = {"image": newest["image"], "volume": newest["volume"], "members": len(members),
                    "last_updated": str(newest["desc"].get("Last Updated"))[:100], "bytes": len(new_tar)}

# the disks: each image directory mirrored (volumes by symlink), an overlay on the active volume
plan = []
for d in spec["disks"]:
    img, vol = need_uuid(d["image"], "image id"), need_uuid(d["volume"], "volume id")
    info = {"vm": d.get("vm"), "volume": vol, "overlay": d.get("overlay"), "chain": None, "problems": [],
            "files": []}
    out["disks"][img] = info
    idir = os.path.join(images_dir, img)
    if lkind(idir) != "dir":
        info["problems"].append("image directory %s is missing on the replica" % img)
        continue
    metas, raw_metas, files = {}, {}, {}
    for name in sorted(os.listdir(idir)):
        m = VOLFILE.match(name)
        k = lkind(os.path.join(idir, name))
        if not m or k != "file":
            info["problems"].append("%r on the replica is not a volume file (%s): not mirrored" % (name[:100], k))
            continue
        files[name] = os.lstat(os.path.join(idir, name)).st_size
        if m.group(2) == ".meta":
            try:
                text = read_small(os.path.join(idir, name), MAX_META).decode("utf-8")
            except (OSError, ValueError) as e:
                info["problems"].append("%s unreadable: %s" % (name, e))
                continue
            raw_metas[m.group(1)] = text
            metas[m.group(1)] = parse_meta(text)
    info["files"] = sorted(files)
    chain, cur, seen = [], vol, set()
    while True:
        if cur not in metas:
            info["problems"].append("volume %s has no .meta on the replica" % cur)
            break
        chain.append(cur)
        seen.add(cur)
        for suffix in ("", ".lease"):
            if cur + suffix not in files:
                info["problems"].append("volume %s%s is missing on the replica" % (cur, suffix))
        parent = metas[cur].get("PUUID", BLANK)
        fmt = metas[cur].get("FORMAT")
        if cur in files:
            try:
                is_q, backing, bfmt, ext = qcow2_header(os.path.join(idir, cur))
            except (OSError, ValueError, struct.error) as e:
                info["problems"].append("volume %s: unreadable header: %s" % (cur, e))
                is_q, backing, bfmt, ext = False, None, None, False
            if fmt == "COW" and not is_q:
                info["problems"].append("volume %s: FORMAT=COW but no qcow2 header" % cur)
            if ext:
                info["problems"].append("volume %s: qcow2 with an external data file: not opened" % cur)
            want = None if parent in ("", BLANK) else parent
            if is_q and backing != want:
                info["problems"].append("volume %s: header backing file %r, .meta parent %s" %
                                        (cur, (backing or "")[:100], want or "none"))
            if is_q and want and bfmt not in (None, QEMU_FMT.get(metas.get(want, {}).get("FORMAT"))):
                info["problems"].append("volume %s: backing format %r" % (cur, bfmt))
        if fmt not in QEMU_FMT:
            info["problems"].append("volume %s: FORMAT=%r" % (cur, fmt))
        if parent in ("", BLANK):
            break
        if not UUID.match(parent) or parent in seen:
            info["problems"].append("volume %s: parent %r breaks the chain" % (cur, parent[:80]))
            break
        cur = parent
    info["chain"] = list(reversed(chain))
    if vol in metas and metas[vol].get("VOLTYPE") != "LEAF":
        info["problems"].append("volume %s is %s on the replica, not the LEAF" % (vol, metas[vol].get("VOLTYPE")))
    plan.append((img, vol, d.get("overlay"), raw_metas, metas, files))

if dst in (src,) or lkind(dst) not in (None, "dir"):
    raise SystemExit("%s exists and is not a directory" % dst)
if lkind(dst) == "dir":
    m = read_marker(dst)
    if not (isinstance(m, dict) and m.get("copy_of") == sd and m.get("copy_id") == cp):
        raise SystemExit("%s exists and is not this drill's copy of %s: refusing to touch it" % (dst, sd))
    out["existed"] = True
if dry:
    sys.stdout.write(json.dumps(out))
    sys.exit(0)

if out["existed"]:
    remove_tree(dst)  # an earlier try's copy, never imported (the operator checks): built again
# built under a temporary name and renamed when whole: an engine never sees a half-built copy, and a try
# that died half-way leaves only this directory, which the next try removes
final, dst = dst, os.path.join(root, ".ovirt-dr-drill-" + cp)
if lkind(dst) == "dir":
    m = read_marker(dst)
    if os.listdir(dst) and not (isinstance(m, dict) and m.get("copy_id") == cp):
        raise SystemExit("%s exists and is not this drill's: refusing to touch it" % dst)
    remove_tree(dst)
elif lkind(dst) is not None:
    raise SystemExit("%s exists and is not a directory" % dst)
def made(path):
    os.lchown(path, owner.st_uid, owner.st_gid)
    out["created"] += 1
def write_new(path, data, size=None):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o660)
    try:
        if data:
            os.write(fd, data)
        if size is not None:
            os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)
    made(path)
def mkdir(path):
    os.mkdir(path, 0o755)
    made(path)
mkdir(dst)
write_new(os.path.join(dst, MARKER), json.dumps({"copy_of": sd, "copy_id": cp, "run_id": spec.get("run_id"),
                                                 "created": now}).encode())
mkdir(os.path.join(dst, "dom_md"))
lines = ["%s=%s" % (k, new_md[k]) for k in sorted(new_md) if k != "_SHA_CKSUM"]
lines.append("_SHA_CKSUM=%s" % new_md["_SHA_CKSUM"])
write_new(os.path.join(dst, "dom_md", "metadata"), ("\n".join(lines) + "\n").encode())
for name, sz in sorted(dom_md.items()):
    write_new(os.path.join(dst, "dom_md", name), b"", sz)
mkdir(os.path.join(dst, "images"))
for s in stores:
    if s["size"] is None or len(new_tar) > s["size"]:
        continue
    ddir = os.path.join(dst, "images", s["image"])
    if lkind(ddir) is None:
        mkdir(ddir)
    desc = dict(s["desc"])
    desc.update({"Updated": True, "Size": len(new_tar), "Storage Domains": [{"uuid": cp}],
                 "Last Updated": newest["desc"].get("Last Updated")})
    meta = set_key(s["meta"], "DOMAIN", cp)
    meta = set_key(meta, "DESCRIPTION", json.dumps(desc, separators=(",", ":")))
    write_new(os.path.join(ddir, s["volume"]), new_tar, s["size"])
    write_new(os.path.join(ddir, s["volume"] + ".meta"), meta.encode())
    write_new(os.path.join(ddir, s["volume"] + ".lease"), b"", s["lease"])
for img, vol, overlay, raw_metas, metas, files in plan:
    ddir = os.path.join(dst, "images", img)
    mkdir(ddir)
    for name in sorted(files):
        m = VOLFILE.match(name)
        target = os.path.join(ddir, name)
        if m.group(2) is None:
            os.symlink("../../../%s/images/%s/%s" % (sd, img, name), target)
            made(target)
        elif m.group(2) == ".lease":
            write_new(target, b"", files[name])
        elif m.group(1) in raw_metas:
            text = set_key(raw_metas[m.group(1)], "DOMAIN", cp)
            if m.group(1) == vol and overlay:
                text = set_key(text, "VOLTYPE", "INTERNAL")
            write_new(target, text.encode())
    if overlay and vol in metas and metas[vol].get("CAP", "").isdigit():
        top = metas[vol]
        subprocess.check_call(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=1.1", "-b", vol,
                               "-F", QEMU_FMT.get(top.get("FORMAT"), "qcow2"), "-u", overlay, top["CAP"]],
                              cwd=ddir)
        made(os.path.join(ddir, overlay))
        meta = {"CAP": top["CAP"], "CTIME": str(now), "DESCRIPTION": top.get("DESCRIPTION", ""),
                "DISKTYPE": top.get("DISKTYPE", "DATA"), "DOMAIN": cp, "FORMAT": "COW", "GEN": "0",
                "IMAGE": img, "LEGALITY": "LEGAL", "PUUID": vol, "SEQ": "0", "TYPE": "SPARSE",
                "VOLTYPE": "LEAF"}
        write_new(os.path.join(ddir, overlay + ".meta"),
                  ("".join("%s=%s\n" % (k, meta[k]) for k in sorted(meta)) + "EOF\n").encode())
        write_new(os.path.join(ddir, overlay + ".lease"), b"", files.get(vol + ".lease", 1048576))
os.rename(dst, final)
sys.stdout.write(json.dumps(out))
"""
)

VERIFY = (
    _COMMON
    + r"""
QEMU_FMT = {"COW": "qcow2", "RAW": "raw"}
spec = load_spec(sys.argv[1])
root = spec["root"]
sd = need_uuid(spec["sd_id"], "replica domain id")
cp = need_uuid(spec["copy_id"], "copy domain id")
def guest_sha256(path, tmp):
    meta = parse_meta(read_small(path + ".meta", MAX_META).decode("utf-8"))
    fmt = QEMU_FMT.get(meta.get("FORMAT"))
    if fmt is None:
        raise ValueError("FORMAT=%r" % meta.get("FORMAT"))
    raw = os.path.join(tmp, "disk.raw")
    r = subprocess.run(["qemu-img", "convert", "-U", "-f", fmt, "-O", "raw", path, raw],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=spec.get("timeout", 3600))
    if r.returncode != 0:
        raise ValueError((r.stderr or r.stdout).decode("utf-8", "replace").strip()[-400:])
    h = hashlib.sha256()
    with open(raw, "rb") as f:
        for block in iter(lambda: f.read(4 << 20), b""):
            h.update(block)
    size = os.path.getsize(raw)
    os.unlink(raw)
    return h.hexdigest(), size
out = {}
tmp = tempfile.mkdtemp(prefix="ovirt-dr-drill-")
try:
    for d in spec["disks"]:
        img = need_uuid(d["image"], "image id")
        res = {"copy_sha256": None, "replica_sha256": None, "bytes": None, "errors": [], "links": []}
        out[img] = res
        cdir = os.path.join(root, cp, "images", img)
        if lkind(cdir) != "dir":
            res["errors"].append("the copy has no image directory %s" % img)
            continue
        for name in sorted(os.listdir(cdir)):
            p = os.path.join(cdir, name)
            if lkind(p) == "link":
                want = "../../../%s/images/%s/%s" % (sd, img, name)
                got = os.readlink(p)
                res["links"].append(name)
                if got != want:
                    res["errors"].append("%s links to %r, not to the replica's volume" % (name, got[:200]))
                elif lkind(os.path.join(root, sd, "images", img, name)) != "file":
                    res["errors"].append("%s: the replica's volume %s is missing" % (name, name))
        for side, dom, vol in (("copy", cp, d["copy_volume"]), ("replica", sd, d["replica_volume"])):
            path = os.path.join(root, dom, "images", img, need_uuid(vol, "volume id"))
            try:
                digest, size = guest_sha256(path, tmp)
            except (OSError, ValueError, subprocess.SubprocessError) as e:
                res["errors"].append("%s view of %s: %s" % (side, vol, e))
                continue
            res[side + "_sha256"] = digest
            res["bytes"] = size
finally:
    remove_tree(tmp)
sys.stdout.write(json.dumps(out))
"""
)

REMOVE_COPY = (
    _COMMON
    + r"""
spec = load_spec(sys.argv[1])
root = spec["root"]
sd = need_uuid(spec["sd_id"], "replica domain id")
cp = need_uuid(spec["copy_id"], "copy domain id")
if cp == sd:
    raise SystemExit("refusing: the copy id is the replica's")
dst = os.path.join(root, cp)
tmp = os.path.join(root, ".ovirt-dr-drill-" + cp)
removed = 0
if lkind(tmp) == "dir" and not spec.get("dry_run", True):
    removed += remove_tree(tmp)  # a try that died while building the copy
k = lkind(dst)
if k is None:
    sys.stdout.write(json.dumps({"absent": True, "removed": removed}))
    sys.exit(0)
if k != "dir":
    raise SystemExit("%s is a %s, not a drill copy: not removed" % (dst, k))
m = read_marker(dst)
if not (isinstance(m, dict) and m.get("copy_of") == sd and m.get("copy_id") == cp):
    raise SystemExit("%s has no drill marker for a copy of %s: not removed" % (dst, sd))
if spec.get("dry_run", True):
    sys.stdout.write(json.dumps({"absent": False, "removed": 0, "dry_run": True}))
    sys.exit(0)
removed += remove_tree(dst)
sys.stdout.write(json.dumps({"absent": False, "removed": removed}))
"""
)

__all__ = ["MAKE_COPY", "REMOVE_COPY", "VERIFY"]
