"""What the functions share at run time: settings, AWS clients and the upstream client, each
made once per Lambda container (cold start) and reused by every invocation."""

from __future__ import annotations

from functools import cache, cached_property
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from zimage.jobs.store import JobStore
from zimage.settings import Settings
from zimage.upstream.errors import UpstreamKeyUnavailable

if TYPE_CHECKING:
    from zimage.images.store import ImageStore
    from zimage.jobs.quota import DailyQuota
    from zimage.upstream.novita import NovitaClient

KEY_CACHE_SECONDS = 300

# Presigned URLs name the host they are signed for. SigV4 is the only signature newer regions
# accept; virtual-hosted addressing makes botocore name the bucket's regional host
# (<bucket>.s3.<region>.amazonaws.com). Without it botocore signs for the global host
# <bucket>.s3.amazonaws.com, which answers 307 for up to a day after a bucket outside us-east-1
# is made (the redirected request then fails its signature) and never works in regions opened
# after March 2019: https://docs.aws.amazon.com/AmazonS3/latest/userguide/VirtualHosting.html
# An endpoint given by IP address (the local stack's moto) still gets path-style URLs.
S3_CLIENT_CONFIG = Config(signature_version="s3v4", s3={"addressing_style": "virtual"})


class Runtime:
    def __init__(self, settings: Settings | None = None):
        self.settings = settings or Settings.from_env()

    @cached_property
    def jobs_table(self):
        return boto3.resource("dynamodb").Table(self.settings.jobs_table)

    @cached_property
    def jobs(self) -> JobStore:
        return JobStore(self.jobs_table)

    def quota(self) -> DailyQuota:
        """The daily caps as the settings now say (a test may change them), on the jobs table."""
        from zimage.jobs.quota import DailyCaps, DailyQuota  # only the submitting functions count jobs

        caps = DailyCaps(self.settings.max_jobs_per_key_per_day, self.settings.max_jobs_per_day)
        return DailyQuota(self.jobs_table, caps)

    @cached_property
    def images(self) -> ImageStore:
        from zimage.images.store import ImageStore  # only the functions that store or sign images need it

        s3 = boto3.client("s3", config=S3_CLIENT_CONFIG)
        return ImageStore(s3, self.settings.images_bucket, retention_days=self.settings.image_retention_days)

    @cached_property
    def sfn(self):
        return boto3.client("stepfunctions")

    @cached_property
    def events(self):
        return boto3.client("events")

    @cached_property
    def sqs(self):
        return boto3.client("sqs")

    def webhook_signer(self) -> object:
        """A Standard Webhooks signer with this deployment's secret (cached like the API key)."""
        from aws_lambda_powertools.utilities import parameters
        from standardwebhooks import Webhook

        return Webhook(str(parameters.get_secret(self.settings.webhook_secret_arn, max_age=KEY_CACHE_SECONDS)))

    @cached_property
    def novita(self) -> NovitaClient:
        from zimage.upstream.novita import NovitaClient  # only the submitting functions and the poll step call it

        read_timeout = self.settings.upstream_read_timeout_seconds
        return NovitaClient(
            self.settings.novita_base_url, self.novita_api_key, read_timeout=read_timeout, body_seconds=3 * read_timeout
        )

    def novita_api_key(self) -> str:
        """The key lives in SSM (SecureString) or Secrets Manager, never in an environment
        value; Powertools caches it so a warm container reads it every few minutes at most."""
        from aws_lambda_powertools.utilities import parameters
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        name = self.settings.novita_key_parameter
        secrets_manager = self.settings.novita_key_source == "secretsmanager"
        try:
            if secrets_manager:
                return str(parameters.get_secret(name, max_age=KEY_CACHE_SECONDS))
            return str(parameters.get_parameter(name, decrypt=True, max_age=KEY_CACHE_SECONDS))
        except GetParameterError as exc:
            raise key_unavailable(exc, where=f"{'secret' if secrets_manager else 'SSM parameter'} {name}") from None

    def warm(self) -> None:
        """Make every client now. A Lambda container serves one request at a time, so lazy
        creation is safe there; the local stack runs handlers on many threads and calls this
        once first, because boto3's default session must not build clients concurrently."""
        _ = self.jobs, self.images, self.sfn, self.novita, self.events, self.sqs
        self.novita_api_key()
        if self.settings.webhook_secret_arn:
            self.webhook_signer()


def key_unavailable(exc: Exception, *, where: str) -> UpstreamKeyUnavailable:
    """Name where the key should be and AWS's error code (ParameterNotFound, AccessDeniedException
    when the role or the KMS key denies it, ...). Powertools wraps the AWS error, keeping it as the
    context; its text is left out, since only the code says what to fix."""
    context = exc.__context__
    aws_error = context.response.get("Error", {}).get("Code", "") if isinstance(context, ClientError) else ""
    return UpstreamKeyUnavailable(f"{where}: {aws_error or type(exc).__name__}", aws_error=aws_error)


@cache
def shared_runtime() -> Runtime:
    """The one Runtime of this process: a Lambda container runs one function, so its modules
    share the clients and the cached key."""
    return Runtime()
