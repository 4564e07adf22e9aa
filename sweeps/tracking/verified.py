"""What `sweeps verify` leaves on a sweep's parent run: ``verify.json`` and the tag
``sweep.verified`` (their names are in `sweeps.tracking.contract`)."""

from __future__ import annotations

from sweeps.tracking.contract import VERIFIED, VERIFY_FILE
from sweeps.tracking.readback import SweepRead
from sweeps.tracking.store import make_client, write_artifact


def mark_verified(tracking_uri: str, read: SweepRead, verdict: str, report: bytes) -> None:
    """`report` as the parent's ``verify.json``, `verdict` as its ``sweep.verified`` tag.

    The file goes through the artifact repository, which also reaches artifacts behind an
    MLflow server while the runs are read from its database (`MlflowClient.log_dict` cannot).
    """
    write_artifact(read.parent_artifact_uri, tracking_uri, VERIFY_FILE, report)
    make_client(tracking_uri, create=False).set_tag(read.parent_run_id, VERIFIED, verdict)
