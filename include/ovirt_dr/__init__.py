"""ovirt_dr: disaster recovery for oVirt / OLVM on GlusterFS, orchestrated by Apache Airflow 3."""

__version__ = "0.1.0"
