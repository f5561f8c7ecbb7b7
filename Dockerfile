# The image every Airflow service of docker-compose.yaml runs: the official Airflow image plus this
# project's pinned requirements (providers, ovirtsdk4) and the ovirt_dr package itself.
FROM apache/airflow:3.3.2

USER root
# ovirt-engine-sdk-python is an sdist with a C extension: it builds against libxml2.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev libxml2-dev pkg-config \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
USER airflow

COPY --chown=airflow:0 pyproject.toml README.md requirements.txt /opt/ovirt-dr/
COPY --chown=airflow:0 include /opt/ovirt-dr/include
RUN cd /opt/ovirt-dr && pip install --no-cache-dir -r requirements.txt
