"""What a job's container is called (no I/O).

The name is the launch's idempotency key (ARCHITECTURE.md) and carries the installation's id,
so two installations sharing a Docker engine can never create, adopt or remove each other's
containers by a clashing name.
"""

from __future__ import annotations

INSTALLATION_PREFIX_LEN = 12  # enough to tell installations apart in `docker ps`


def container_name(installation_id: str, job_id: int) -> str:
    return f"trainyard-{installation_id[:INSTALLATION_PREFIX_LEN]}-job-{job_id}"
