"""Settings every function reads from its environment (set in template.yaml)."""

from __future__ import annotations

import os
from typing import NamedTuple

from zimage.jobs.durations import DEFAULT_TASK_SECONDS
from zimage.workflow.timing import WorkflowTiming, workflow_timing

DEFAULT_NOVITA_BASE_URL = "https://api.novita.ai"


def _int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def _float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


class Settings(NamedTuple):
    jobs_table: str
    idempotency_table: str
    idempotency_hours: int
    images_bucket: str
    state_machine_arn: str
    workflow_type: str
    novita_base_url: str
    novita_key_parameter: str
    novita_key_source: str  # "ssm" or "secretsmanager"
    execution_timeout_seconds: int
    poll_turn_seconds: int
    presigned_url_seconds: int
    max_image_bytes: int
    job_retention_days: int
    image_retention_days: int
    min_wait_seconds: int
    max_wait_seconds: int
    fast_poll_window_seconds: float
    fast_poll_interval_seconds: float
    # The typical task duration the poll schedule assumes before it has seen tasks end.
    task_seconds_prior: float
    max_consecutive_upstream_errors: int
    upstream_read_timeout_seconds: float
    base64_output: bool
    event_bus_name: str
    allow_loopback_webhooks: bool
    webhook_secret_arn: str
    webhook_timeout_seconds: float
    webhook_retry_base_seconds: int
    webhook_max_attempts: int
    # Hard daily caps on jobs (zimage.jobs.quota); 0 turns one off.
    max_jobs_per_key_per_day: int = 1000
    max_jobs_per_day: int = 10000
    # What the page says about the upstream when it is not Novita (the local stack's emulator).
    upstream_notice: str = ""
    # Submit by event (zimage.api.event_requests).
    request_queue_url: str = ""
    request_max_age_minutes: int = 30
    request_retry_base_seconds: int = 5

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            jobs_table=env.get("JOBS_TABLE", ""),
            idempotency_table=env.get("IDEMPOTENCY_TABLE", ""),
            idempotency_hours=_int("IDEMPOTENCY_HOURS", 24),
            images_bucket=env.get("IMAGES_BUCKET", ""),
            state_machine_arn=env.get("STATE_MACHINE_ARN", ""),
            workflow_type=env.get("WORKFLOW_TYPE", "STANDARD").upper(),
            novita_base_url=env.get("NOVITA_BASE_URL") or DEFAULT_NOVITA_BASE_URL,
            novita_key_parameter=env.get("NOVITA_API_KEY_PARAMETER", "/zimage/novita-api-key"),
            novita_key_source=env.get("NOVITA_API_KEY_SOURCE", "ssm").lower(),
            execution_timeout_seconds=_int("EXECUTION_TIMEOUT_SECONDS", 290),
            poll_turn_seconds=_int("POLL_TURN_SECONDS", 60),
            presigned_url_seconds=_int("PRESIGNED_URL_SECONDS", 900),
            max_image_bytes=_int("MAX_IMAGE_BYTES", 10 * 1024 * 1024),
            job_retention_days=_int("JOB_RETENTION_DAYS", 30),
            image_retention_days=_int("IMAGE_RETENTION_DAYS", 7),
            min_wait_seconds=_int("MIN_WAIT_SECONDS", 1),
            max_wait_seconds=_int("MAX_WAIT_SECONDS", 30),
            fast_poll_window_seconds=_float("FAST_POLL_WINDOW_SECONDS", 3.0),
            fast_poll_interval_seconds=_float("FAST_POLL_INTERVAL_SECONDS", 0.25),
            task_seconds_prior=_float("TASK_SECONDS_PRIOR", DEFAULT_TASK_SECONDS),
            max_consecutive_upstream_errors=_int("MAX_CONSECUTIVE_UPSTREAM_ERRORS", 5),
            upstream_read_timeout_seconds=_float("UPSTREAM_READ_TIMEOUT_SECONDS", 10.0),
            base64_output=env.get("NOVITA_BASE64_OUTPUT", "false").lower() == "true",
            event_bus_name=env.get("EVENT_BUS_NAME", "default"),
            # Loopback receivers are for the local stack alone: Lambda sets AWS_EXECUTION_ENV, and
            # there 127.0.0.1 is the function's own runtime API, so the variable counts for nothing.
            allow_loopback_webhooks=env.get("ALLOW_LOOPBACK_WEBHOOKS", "false").lower() == "true"
            and "AWS_EXECUTION_ENV" not in env,
            webhook_secret_arn=env.get("WEBHOOK_SECRET_ARN", ""),
            webhook_timeout_seconds=_float("WEBHOOK_TIMEOUT_SECONDS", 5.0),
            webhook_retry_base_seconds=_int("WEBHOOK_RETRY_BASE_SECONDS", 30),
            webhook_max_attempts=_int("WEBHOOK_MAX_ATTEMPTS", 9),
            max_jobs_per_key_per_day=_int("MAX_JOBS_PER_KEY_PER_DAY", 1000),
            max_jobs_per_day=_int("MAX_JOBS_PER_DAY", 10000),
            upstream_notice=env.get("UPSTREAM_NOTICE", ""),
            request_queue_url=env.get("REQUEST_QUEUE_URL", ""),
            request_max_age_minutes=_int("REQUEST_MAX_AGE_MINUTES", 30),
            request_retry_base_seconds=_int("REQUEST_RETRY_BASE_SECONDS", 5),
        )

    def workflow_timing(self) -> WorkflowTiming:
        """The job's deadline and every bound derived from the execution's timeout; raises
        InconsistentSettings where the parameters contradict each other."""
        return workflow_timing(
            execution_timeout_seconds=self.execution_timeout_seconds,
            poll_turn_seconds=self.poll_turn_seconds,
            workflow_type=self.workflow_type,
            min_wait_seconds=self.min_wait_seconds,
            max_wait_seconds=self.max_wait_seconds,
        )
