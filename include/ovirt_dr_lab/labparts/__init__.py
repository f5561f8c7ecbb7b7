"""The parts of the lab that ``ovirt-dr-lab up/down/status/fault`` (``ovirt_dr_lab.lab``) puts together.

- ``common``: paths of the lab dir, the state file recording what ``up`` changed, commands, processes by PID
- ``system``: apt packages (rsync pin), /etc/hosts, root's SSH files for geo-replication's push-pem
- ``gluster``: glusterd, volumes, FUSE mounts, the geo-replication session
- ``sshd``: the lab's sshd for Airflow (127.0.0.1:2222) and the one geo-replication uses
- ``engines``: the two oVirt engine emulators
- ``smtpsink``: a tiny aiosmtpd server that keeps every mail as an .eml file (``python -m``)
"""
