"""The lab: oVirt engine emulator, Gluster geo-replication, sshd and SMTP on loopback. Never imported by ovirt_dr."""
