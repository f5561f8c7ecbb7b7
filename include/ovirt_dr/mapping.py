"""The DR mapping file: the oVirt Ansible ``disaster_recovery`` role's ``disaster_recovery_vars.yml``, read as-is.

Admins who already run the role bring their file unchanged: every key the role writes or reads is accepted
(``dr_sites_*``, ``dr_import_storages`` with every domain type's keys, ``dr_cluster_mappings``,
``dr_affinity_group_mappings``, ``dr_affinity_label_mappings``, ``dr_domain_mappings``, ``dr_role_mappings``,
``dr_network_mappings`` with ``*_profile_id`` / ``*_network_dc``, ``dr_lun_mappings``). What the role leaves
loose is read the way the role reads it: string booleans (``"True"``, ``"False"``) are booleans, a mapping list
may be ``null``, a value the generator left empty (``secondary_name: # cluster_prod``) is ``None``.

Differences from the role, on purpose:

- **No password is ever read from this file** (the role's LUN mappings and iSCSI entries have password keys,
  and its engine passwords come from a vault): engines are reached through Airflow ``ovirt`` connections named
  in the recovery side config, so a non-empty password key is refused, naming where it is.
- **Unknown keys are refused** with the key and its place named (a typo such as ``secondry_name`` would make
  the role silently fall back to "no mapping").
- The same file serves both directions: ``failover`` maps primary -> secondary, ``failback`` maps
  secondary -> primary (the role's ``dr_source_map`` / ``dr_target_host`` switch).

Loading checks structure and types only. What needs the engines (does each mapped name exist, do cluster
versions match, ...) is ``ovirt_dr.operators`` work; :meth:`DrMapping.static_problems` lists what can be
checked without them.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

if TYPE_CHECKING:
    import ovirtsdk4.types as otypes

Side = Literal["primary", "secondary"]
Direction = Literal["failover", "failback"]
DOMAIN_TYPES = ("nfs", "glusterfs", "posixfs", "iscsi", "fcp")
#: Domain types this product can recover: it replicates GlusterFS domains with geo-replication.
SUPPORTED_DOMAIN_TYPES = ("glusterfs",)
_UUID = re.compile(r"\A[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")
_TRUE = {"true", "yes", "on", "1", "y"}
_FALSE = {"false", "no", "off", "0", "n", ""}


class MappingError(ValueError):
    """The mapping file cannot be read: every problem found, each naming its place in the file."""

    def __init__(self, path: Path | str, problems: list[str]) -> None:
        self.path = str(path)
        self.problems = problems
        super().__init__(f"mapping file {path}: " + "; ".join(problems))


def sides(direction: Direction) -> tuple[Side, Side]:
    """(source, target) sides of a direction: failover reads primary names and maps them to secondary."""
    return ("primary", "secondary") if direction == "failover" else ("secondary", "primary")


def _bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return bool(value)
    if isinstance(value, str):
        low = value.strip().lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
    raise ValueError(f"{value!r} is not a boolean (use true/false)")


def _str(value: Any) -> str | None:
    """Scalars as the role's Jinja sees them: numbers become strings, empty strings are "not filled in"."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is a boolean, expected a name")
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        value = value.strip()
        return value or None
    raise ValueError(f"expected a string, got {type(value).__name__}")


def _no_secret(value: Any) -> None:
    if value not in (None, ""):
        raise ValueError(
            "passwords are never read from the mapping file: leave it empty and put the credential in an "
            "Airflow connection"
        )
    return None


def _bool_field(cls: type, v: Any) -> bool | None:
    return _bool(v)


def _str_field(cls: type, v: Any) -> str | None:
    return _str(v)


def _secret_field(cls: type, v: Any) -> None:
    return _no_secret(v)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImportStorage(_Model):
    """One ``dr_import_storages`` entry: a storage domain as each site names and reaches it."""

    dr_domain_type: str | None = None
    dr_storage_domain_type: str | None = None
    dr_domain_id: str | None = None
    dr_wipe_after_delete: bool | None = None
    dr_backup: bool | None = None
    dr_discard_after_delete: bool | None = None
    dr_critical_space_action_blocker: int | None = None
    dr_warning_low_space: int | None = None
    # primary side
    dr_primary_name: str | None = None
    dr_primary_master_domain: bool | None = None
    dr_primary_dc_name: str | None = None
    dr_primary_address: str | None = None
    dr_primary_path: str | None = None
    dr_primary_mount_options: str | None = None
    dr_primary_version: str | None = None
    dr_primary_vfs_type: str | None = None
    dr_primary_port: int | None = None
    dr_primary_target: list[str] | None = None
    dr_primary_username: str | None = None
    dr_primary_password: None = None
    # secondary side
    dr_secondary_name: str | None = None
    dr_secondary_master_domain: bool | None = None
    dr_secondary_dc_name: str | None = None
    dr_secondary_address: str | None = None
    dr_secondary_path: str | None = None
    dr_secondary_mount_options: str | None = None
    dr_secondary_version: str | None = None
    dr_secondary_vfs_type: str | None = None
    dr_secondary_port: int | None = None
    dr_secondary_target: list[str] | None = None
    dr_secondary_username: str | None = None
    dr_secondary_password: None = None

    _bools = field_validator(
        "dr_wipe_after_delete",
        "dr_backup",
        "dr_discard_after_delete",
        "dr_primary_master_domain",
        "dr_secondary_master_domain",
        mode="before",
    )(_bool_field)
    _strs = field_validator(
        "dr_domain_type",
        "dr_storage_domain_type",
        "dr_domain_id",
        "dr_primary_name",
        "dr_primary_dc_name",
        "dr_primary_address",
        "dr_primary_path",
        "dr_primary_mount_options",
        "dr_primary_version",
        "dr_primary_vfs_type",
        "dr_primary_username",
        "dr_secondary_name",
        "dr_secondary_dc_name",
        "dr_secondary_address",
        "dr_secondary_path",
        "dr_secondary_mount_options",
        "dr_secondary_version",
        "dr_secondary_vfs_type",
        "dr_secondary_username",
        mode="before",
    )(_str_field)
    _secrets = field_validator("dr_primary_password", "dr_secondary_password", mode="before")(_secret_field)

    @field_validator("dr_primary_target", "dr_secondary_target", mode="before")
    @classmethod
    def _targets(cls, v: Any) -> list[str] | None:
        if v is None or v == "":
            return None
        if isinstance(v, str):
            return [v]
        if isinstance(v, list) and all(isinstance(t, str) for t in v):
            return list(v)
        raise ValueError("an iSCSI target name or a list of them")

    @field_validator("dr_domain_type")
    @classmethod
    def _type(cls, v: str | None) -> str | None:
        if v is not None and v.lower() not in DOMAIN_TYPES:
            raise ValueError(f"{v!r} is not one of {', '.join(DOMAIN_TYPES)}")
        return v.lower() if v else v

    @field_validator("dr_domain_id")
    @classmethod
    def _uuid(cls, v: str | None) -> str | None:
        if v is not None and not _UUID.match(v):
            raise ValueError(f"{v!r} is not a storage domain id (a UUID)")
        return v

    def side(self, side: Side, key: str) -> Any:
        """``dr_<side>_<key>``: ``storage.side('secondary', 'name')``."""
        return getattr(self, f"dr_{side}_{key}")

    def label(self) -> str:
        return self.dr_primary_name or self.dr_secondary_name or self.dr_domain_id or "?"


class NameMapping(_Model):
    """A cluster / affinity group / affinity label / aaa domain / role mapping: one name on each site."""

    primary_name: str | None = None
    secondary_name: str | None = None

    _strs = field_validator("primary_name", "secondary_name", mode="before")(_str_field)

    def side(self, side: Side) -> str | None:
        return self.primary_name if side == "primary" else self.secondary_name


class NetworkMapping(_Model):
    """A vNIC profile mapping (``dr_network_mappings``): profile, network, optional DC, optional profile id."""

    primary_network_name: str | None = None
    primary_network_dc: str | None = None
    primary_profile_name: str | None = None
    primary_profile_id: str | None = None
    secondary_network_name: str | None = None
    secondary_network_dc: str | None = None
    secondary_profile_name: str | None = None
    secondary_profile_id: str | None = None

    _strs = field_validator(
        "primary_network_name",
        "primary_network_dc",
        "primary_profile_name",
        "primary_profile_id",
        "secondary_network_name",
        "secondary_network_dc",
        "secondary_profile_name",
        "secondary_profile_id",
        mode="before",
    )(_str_field)

    @field_validator("primary_profile_id", "secondary_profile_id")
    @classmethod
    def _uuid(cls, v: str | None) -> str | None:
        if v is not None and not _UUID.match(v):
            raise ValueError(f"{v!r} is not a vNIC profile id (a UUID)")
        return v

    def side(self, side: Side, key: str) -> str | None:
        return getattr(self, f"{side}_{key}")


class LunMapping(_Model):
    """A direct LUN disk mapping (``dr_lun_mappings``).

    ``logical_unit_alias``, ``logical_unit_description``, ``wipe_after_delete`` and ``shareable`` describe
    the disk (the role's generator writes them); only the ``primary_*`` / ``secondary_*`` keys map.
    """

    logical_unit_alias: str | None = None
    logical_unit_description: str | None = None
    wipe_after_delete: bool | None = None
    shareable: bool | None = None
    primary_logical_unit_id: str | None = None
    primary_storage_type: str | None = None
    primary_logical_unit_address: str | None = None
    primary_logical_unit_port: int | None = None
    primary_logical_unit_portal: str | None = None
    primary_logical_unit_target: str | None = None
    primary_logical_unit_username: str | None = None
    primary_logical_unit_password: None = None
    secondary_logical_unit_id: str | None = None
    secondary_storage_type: str | None = None
    secondary_logical_unit_address: str | None = None
    secondary_logical_unit_port: int | None = None
    secondary_logical_unit_portal: str | None = None
    secondary_logical_unit_target: str | None = None
    secondary_logical_unit_username: str | None = None
    secondary_logical_unit_password: None = None

    _bools = field_validator("wipe_after_delete", "shareable", mode="before")(_bool_field)
    _strs = field_validator(
        "logical_unit_alias",
        "logical_unit_description",
        "primary_logical_unit_id",
        "primary_storage_type",
        "primary_logical_unit_address",
        "primary_logical_unit_portal",
        "primary_logical_unit_target",
        "primary_logical_unit_username",
        "secondary_logical_unit_id",
        "secondary_storage_type",
        "secondary_logical_unit_address",
        "secondary_logical_unit_portal",
        "secondary_logical_unit_target",
        "secondary_logical_unit_username",
        mode="before",
    )(_str_field)
    _secrets = field_validator(
        "primary_logical_unit_password", "secondary_logical_unit_password", mode="before"
    )(_secret_field)

    @field_validator("primary_storage_type", "secondary_storage_type")
    @classmethod
    def _storage_type(cls, v: str | None) -> str | None:
        if v is not None and v.lower() not in ("iscsi", "fcp"):
            raise ValueError(f"{v!r} is not iscsi or fcp")
        return v.lower() if v else v

    def side(self, side: Side, key: str) -> Any:
        return getattr(self, f"{side}_{key}")


_NAME_LISTS = (
    "dr_cluster_mappings",
    "dr_affinity_group_mappings",
    "dr_affinity_label_mappings",
    "dr_domain_mappings",
    "dr_role_mappings",
)


class DrMapping(_Model):
    """The whole mapping file. Lists the role allows to be ``null`` are empty lists here."""

    dr_sites_primary_url: str | None = None
    dr_sites_primary_username: str | None = None
    dr_sites_primary_ca_file: str | None = None
    dr_sites_primary_password: None = None
    dr_sites_secondary_url: str | None = None
    dr_sites_secondary_username: str | None = None
    dr_sites_secondary_ca_file: str | None = None
    dr_sites_secondary_password: None = None
    dr_import_storages: list[ImportStorage] = []
    dr_cluster_mappings: list[NameMapping] = []
    dr_affinity_group_mappings: list[NameMapping] = []
    dr_affinity_label_mappings: list[NameMapping] = []
    dr_domain_mappings: list[NameMapping] = []
    dr_role_mappings: list[NameMapping] = []
    dr_network_mappings: list[NetworkMapping] = []
    dr_lun_mappings: list[LunMapping] = []

    _strs = field_validator(
        "dr_sites_primary_url",
        "dr_sites_primary_username",
        "dr_sites_primary_ca_file",
        "dr_sites_secondary_url",
        "dr_sites_secondary_username",
        "dr_sites_secondary_ca_file",
        mode="before",
    )(_str_field)
    _secrets = field_validator("dr_sites_primary_password", "dr_sites_secondary_password", mode="before")(
        _secret_field
    )

    @field_validator(
        "dr_import_storages",
        *_NAME_LISTS,
        "dr_network_mappings",
        "dr_lun_mappings",
        mode="before",
    )
    @classmethod
    def _null_list(cls, v: Any) -> Any:
        # the role writes `dr_role_mappings:` with one all-empty entry, or leaves a list out / null
        if v is None:
            return []
        if not isinstance(v, list):
            raise ValueError(f"must be a list, got {type(v).__name__}")
        return [item for item in v if item is not None]

    # -- direction-aware views (used by failover and failback alike) ---------------------------------
    def storages(self, direction: Direction, names: list[str] | None = None) -> list[ImportStorage]:
        """The storages to recover, master domain first (the data center needs its master to activate).

        ``names`` (source-side domain names) restricts the list, e.g. to a failover form's subset.
        """
        source, target = sides(direction)
        chosen = [s for s in self.dr_import_storages if names is None or s.side(source, "name") in names]
        return sorted(
            chosen, key=lambda s: (not s.side(target, "master_domain"), s.side(source, "name") or "")
        )

    def name_map(self, key: str, direction: Direction) -> dict[str, str]:
        """``{source name: target name}`` of one of the name lists, complete entries only."""
        source, target = sides(direction)
        return {
            m.side(source): m.side(target)  # type: ignore[misc]
            for m in getattr(self, key)
            if m.side(source) and m.side(target)
        }

    def registration_configuration(
        self, direction: Direction, types: Any = None
    ) -> otypes.RegistrationConfiguration:
        """The SDK's ``RegistrationConfiguration`` for registering VMs/templates in ``direction``.

        Built like the Ansible ``ovirt_vm`` module builds it from the role's maps, but from complete entries
        only (the role sends ``EMPTY_ELEMENT`` placeholders to the engine for half-filled entries).
        """
        if types is None:
            import ovirtsdk4.types as types
        t = types
        source, target = sides(direction)
        cfg: dict[str, list[Any]] = {
            "cluster_mappings": [
                t.RegistrationClusterMapping(from_=t.Cluster(name=a), to=t.Cluster(name=b))
                for a, b in self.name_map("dr_cluster_mappings", direction).items()
            ],
            "affinity_group_mappings": [
                t.RegistrationAffinityGroupMapping(from_=t.AffinityGroup(name=a), to=t.AffinityGroup(name=b))
                for a, b in self.name_map("dr_affinity_group_mappings", direction).items()
            ],
            "affinity_label_mappings": [
                t.RegistrationAffinityLabelMapping(from_=t.AffinityLabel(name=a), to=t.AffinityLabel(name=b))
                for a, b in self.name_map("dr_affinity_label_mappings", direction).items()
            ],
            "domain_mappings": [
                t.RegistrationDomainMapping(from_=t.Domain(name=a), to=t.Domain(name=b))
                for a, b in self.name_map("dr_domain_mappings", direction).items()
            ],
            "role_mappings": [
                t.RegistrationRoleMapping(from_=t.Role(name=a), to=t.Role(name=b))
                for a, b in self.name_map("dr_role_mappings", direction).items()
            ],
            "vnic_profile_mappings": [],
            "lun_mappings": [],
        }
        for m in self.dr_network_mappings:
            src_profile, src_net = m.side(source, "profile_name"), m.side(source, "network_name")
            if not src_profile:
                continue
            to_id, to_name = m.side(target, "profile_id"), m.side(target, "profile_name")
            to_net = m.side(target, "network_name")
            if to_id:
                to = t.VnicProfile(id=to_id)
            elif to_name:
                to = t.VnicProfile(name=to_name, network=t.Network(name=to_net) if to_net else None)
            else:
                continue
            cfg["vnic_profile_mappings"].append(
                t.RegistrationVnicProfileMapping(
                    from_=t.VnicProfile(
                        name=src_profile, network=t.Network(name=src_net) if src_net else None
                    ),
                    to=to,
                )
            )
        for lun in self.dr_lun_mappings:
            src_id, dst_id = lun.side(source, "logical_unit_id"), lun.side(target, "logical_unit_id")
            if not src_id or not dst_id:
                continue
            src_type, dst_type = lun.side(source, "storage_type"), lun.side(target, "storage_type")
            cfg["lun_mappings"].append(
                t.RegistrationLunMapping(
                    from_=t.Disk(
                        lun_storage=t.HostStorage(
                            type=t.StorageType(src_type) if src_type else None,
                            logical_units=[t.LogicalUnit(id=src_id)],
                        )
                    ),
                    to=t.Disk(
                        lun_storage=t.HostStorage(
                            type=t.StorageType(dst_type) if dst_type else None,
                            logical_units=[
                                t.LogicalUnit(
                                    id=dst_id,
                                    address=lun.side(target, "logical_unit_address"),
                                    port=lun.side(target, "logical_unit_port"),
                                    portal=lun.side(target, "logical_unit_portal"),
                                    target=lun.side(target, "logical_unit_target"),
                                    username=lun.side(target, "logical_unit_username"),
                                )
                            ],
                        )
                    ),
                )
            )
        return t.RegistrationConfiguration(**cfg)

    def static_problems(self, direction: Direction) -> list[str]:
        """Every problem visible without an engine, each naming its place (``dr_cluster_mappings[2]``).

        Missing values on either side, duplicates, more than one master domain per side, unsupported domain
        types, storages without the keys an import needs.
        """
        problems: list[str] = []
        source, target = sides(direction)
        for key in _NAME_LISTS:
            entries = getattr(self, key)
            for i, m in enumerate(entries):
                for side in ("primary", "secondary"):
                    if not m.side(side):
                        problems.append(f"{key}[{i}]: {side}_name is empty")
            problems += _duplicates(key, [m.side(source) for m in entries], f"{source}_name")
        for i, m in enumerate(self.dr_network_mappings):
            for side in ("primary", "secondary"):
                if not m.side(side, "profile_name") and not m.side(side, "profile_id"):
                    problems.append(
                        f"dr_network_mappings[{i}]: {side}_profile_name and {side}_profile_id are empty"
                    )
                if not m.side(side, "network_name"):
                    problems.append(f"dr_network_mappings[{i}]: {side}_network_name is empty")
        problems += _duplicates(
            "dr_network_mappings",
            [
                f"{m.side(source, 'profile_name')}/{m.side(source, 'network_name')}/{m.side(source, 'network_dc') or ''}"
                for m in self.dr_network_mappings
            ],
            f"{source} profile/network/dc",
        )
        for i, lun in enumerate(self.dr_lun_mappings):
            for side in ("primary", "secondary"):
                if not lun.side(side, "logical_unit_id"):
                    problems.append(f"dr_lun_mappings[{i}]: {side}_logical_unit_id is empty")
                if not lun.side(side, "storage_type"):
                    problems.append(f"dr_lun_mappings[{i}]: {side}_storage_type is empty")
        problems += _duplicates(
            "dr_lun_mappings",
            [lun.side(source, "logical_unit_id") for lun in self.dr_lun_mappings],
            "logical unit id",
        )
        for i, s in enumerate(self.dr_import_storages):
            where = f"dr_import_storages[{i}] ({s.label()})"
            if s.dr_domain_type is None:
                problems.append(f"{where}: dr_domain_type is empty")
            elif s.dr_domain_type not in SUPPORTED_DOMAIN_TYPES:
                problems.append(
                    f"{where}: dr_domain_type {s.dr_domain_type!r} is not replicated by ovirt-dr "
                    f"(only {', '.join(SUPPORTED_DOMAIN_TYPES)}); recover it with its own tooling"
                )
            if s.dr_storage_domain_type not in (None, "data"):
                problems.append(
                    f"{where}: dr_storage_domain_type {s.dr_storage_domain_type!r}: only data domains are recovered "
                    "(export and ISO domains must not be mapped)"
                )
            for side in ("primary", "secondary"):
                for key in ("name", "dc_name"):
                    if not s.side(side, key):
                        problems.append(f"{where}: dr_{side}_{key} is empty")
                if s.dr_domain_type in ("nfs", "glusterfs", "posixfs"):
                    for key in ("address", "path"):
                        if not s.side(side, key):
                            problems.append(f"{where}: dr_{side}_{key} is empty")
                    path = s.side(side, "path")
                    if path and not path.startswith("/"):
                        problems.append(f"{where}: dr_{side}_path {path!r} must start with '/'")
                if s.side(side, "master_domain") is None:
                    problems.append(f"{where}: dr_{side}_master_domain is empty (true or false)")
            if "hosted_storage" in (s.dr_primary_name, s.dr_secondary_name):
                problems.append(f"{where}: the hosted-engine domain must never be part of a recovery")
        problems += _duplicates(
            "dr_import_storages",
            [s.side(source, "name") for s in self.dr_import_storages],
            f"dr_{source}_name",
        )
        problems += _duplicates(
            "dr_import_storages",
            [s.side(target, "name") for s in self.dr_import_storages],
            f"dr_{target}_name",
        )
        for side in ("primary", "secondary"):
            by_dc: Counter[str] = Counter(
                s.side(side, "dc_name") or "?"
                for s in self.dr_import_storages
                if s.side(side, "master_domain")
            )
            for dc, n in sorted(by_dc.items()):
                if n > 1:
                    problems.append(
                        f"dr_import_storages: {n} master domains for {side} data center {dc!r} (one at most)"
                    )
        return problems


def _duplicates(key: str, values: list[str | None], what: str) -> list[str]:
    """One problem per value that appears more than once, naming the list indexes."""
    counts = Counter(v for v in values if v)
    out = []
    for value, n in sorted(counts.items()):
        if n > 1:
            where = [i for i, v in enumerate(values) if v == value]
            out.append(f"{key}{where}: {what} {value!r} appears {n} times")
    return out


# -- reading the file ------------------------------------------------------------------------------------
class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """Safe YAML loader that refuses duplicate keys (YAML keeps the last silently: a lost mapping)."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key]})", key_node.start_mark
            )
        seen[key] = line
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _format(e: ValidationError) -> Iterator[str]:
    for err in e.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".") or "(file)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key (not one the disaster_recovery role knows; a typo?)"
        elif err["type"] == "none_required":
            msg = "must be empty"
        yield f"{loc}: {msg}"


def parse_mapping(text: str, path: Path | str = "<mapping>") -> DrMapping:
    """Parse the text of a mapping file; raise ``MappingError`` listing every problem."""
    try:
        raw = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        raise MappingError(path, [f"not valid YAML: {e}"]) from e
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise MappingError(path, ["the top level must be a mapping of dr_* keys"])
    try:
        return DrMapping.model_validate(raw)
    except ValidationError as e:
        raise MappingError(path, list(_format(e))) from e


def load_mapping(path: Path | str) -> DrMapping:
    """Read a mapping file (UTF-8); raise ``MappingError`` naming the file and every problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MappingError(path, [f"cannot read: {e.strerror or e}"]) from e
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise MappingError(path, [f"line {line}: not UTF-8 text (byte {data[e.start]:#04x})"]) from e
    return parse_mapping(text, path)
