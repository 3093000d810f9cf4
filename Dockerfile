# The archiver as a batch image: every run is one `archiver ...` command, e.g.
#   docker run --rm --env-file archiver.env IMAGE --no-progress sync --json
# Kubernetes manifests and the systemd units that run it: deploy/.
#
# Python 3.11 slim: the oldest Python the package supports (requires-python >= 3.11).
# Pin it by digest (python:3.11-slim@sha256:...) for builds that must be reproducible.
FROM python:3.11-slim

# No .pyc written at run time (the root filesystem is read-only in Kubernetes; pip already
# compiled the installed modules); output unbuffered so log lines reach `kubectl logs` or
# the journal as they happen.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

# A fixed numeric uid/gid: Kubernetes' runAsNonRoot can only check a numeric USER, and
# deploy/kubernetes sets runAsUser to the same 10001.
RUN groupadd --system --gid 10001 archiver \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/archiver \
       --no-create-home --shell /usr/sbin/nologin archiver \
    && install -d -o 10001 -g 10001 -m 0750 /var/lib/archiver

# Only what the wheel is built from: the package (its data files - JSON Schemas, shipped
# retention policies, dossier fonts - live under archiver/), pyproject.toml and the README
# it names as the long description. The top-level schemas/ and retention_policies/ are
# copies for people to read and are not needed.
WORKDIR /src
COPY pyproject.toml README.md ./
COPY archiver/ ./archiver/
RUN pip install --no-cache-dir . \
    && rm -rf /src

# The catalog's default home ($XDG_DATA_HOME/getbill-archiver/BUCKET.db) when
# ARCHIVER_CATALOG is not set; Kubernetes mounts an emptyDir here.
ENV XDG_DATA_HOME=/var/lib/archiver
WORKDIR /var/lib/archiver
USER 10001:10001

# No HEALTHCHECK: this is a batch job, not a server. A run's health is its exit code
# (0 ok, 1 failure, 2 configuration error, 3 partial) and its JSON summary.
ENTRYPOINT ["archiver"]
CMD ["--help"]
