"""An emulated oVirt engine that the unmodified ovirtsdk4 drives, with real qcow2 storage.

Modules:

- ``server``: :class:`EngineServer` (HTTPS, HTTP/1.1, threaded) -- ``start()``, ``stop()``, ``url``, ``ca_file``, ``lab``.
- ``api``: SSO, REST routes, faults, counters, fault injection, lab-only JSON endpoints.
- ``core``: :class:`Engine`, the engine without HTTP, put together from one mixin per job on
  ``state.EngineState`` (the inventory: JSON state in ``<state_dir>/state.json``, lookups):
  ``jobs`` (events, jobs, ``finish_job``), ``vms`` (power with status transitions, freeze/thaw log, guest
  writer), ``snapshots`` (creation and live merge), ``ovfstore`` (OVF_STORE updates, unregistered entities),
  ``domains`` (import/attach/activate/deactivate/detach/remove), ``registration`` (with the DR mappings);
  ``common`` (faults, constants) and ``scheduler`` (latencies as timers) serve them all.
- ``render``: XML written with the SDK's own writers. ``search``: the search grammar.
- ``storage`` / ``ovf`` (helper A2): vdsm's on-disk layout with ``qemu-img``/``qemu-io``; OVF descriptors.
- ``client``: :class:`LabEngineClient` for the lab-only endpoints. ``cli``: ``ovirt-dr-lab engine`` and
  ``ovirt-dr-lab gen-site``. ``testing``: helpers for tests that start an engine in-process.

State: an existing ``<state_dir>/state.json`` wins over the site file (a restarted engine keeps imported
domains, registrations, snapshots; a state of an older layout gets once what its layout lacked from the
site file, see ``state.STATE_SCHEMA``); remove the state dir to start again from the site. Site domains and
VM disks missing on disk are (re)created at start, and chains of existing ones are re-read from the files.

Site YAML (``include/ovirt_dr_lab/sites/primary.yaml`` is the example; values go through expandvars; ids
are derived from names unless given)::

    name, version, latency: {snapshot, merge, ovf_update, register, start, stop, attach, activate, deactivate}
    ovf_update_interval_s (3600), token_ttl_s (3600), workers (8)
    users: [{username: admin@internal, password}]   aaa_domains: [internal]
    roles: [{name, administrative}]   data_centers: [{name, version ("4.7"), status (derived)}]
    clusters: [{name, data_center, version ("4.7")}]
    hosts: [{name, cluster, address, status}]   networks: [{name, data_center}]
    vnic_profiles: [{name, network}]
    storage_domains: [{name, id, address, path, local_dir, data_center, master,
                       type: data|export|iso (data), storage_type: glusterfs|nfs|... (glusterfs)}]
                     # only GlusterFS data domains with a local_dir have files; the others are inventory
    luns: [{id, storage_type: iscsi|fcp, address, port, target, portal, size_gib}]  # every host sees them
    disks: [{alias, lun_id, description, shareable}]      # floating direct LUN disks
    gluster_mounts: {"host:/volume": local_dir}          # where an import finds a volume
    vms: [{name, cluster, status, memory_mib, cpus, description, ha, priority,
           permissions: [{user: name@domain, role}],    # written into the OVF (UserDomainsSection)
           nics: [{name, vnic_profile, mac}],
           disks: [{alias, size_mib, format: cow|raw, storage_domain, bootable, interface}
                   | {alias, lun_id, bootable, interface}]}]   # the second form: a direct LUN disk
    templates: [{name, cluster, memory_mib, cpus, description, disks: [...]}]
    affinity_groups: [{name, cluster, vms, positive, enforcing}]   affinity_labels: [{name, vms, hosts}]
"""
