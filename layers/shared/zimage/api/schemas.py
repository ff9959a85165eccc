"""What the API answers, as models: they document the responses in the OpenAPI document.

The handlers answer with plain dicts, so these models are only read when the document is made:
`defer_build` leaves their validators unbuilt until then, which spares every cold start of the
API the time pydantic takes to build them (docs/performance.md)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from typing_extensions import TypeAliasType

from zimage.jobs.model import STATUSES

# Named types: each becomes one component of the document that every use refers to, so a
# generated client has one JobStatus enum rather than an inline enum per field or parameter.
# (typing_extensions, which pydantic depends on: typing.TypeAliasType is Python 3.12+.)
JobStatus = TypeAliasType(
    "JobStatus",
    Annotated[
        Literal[STATUSES],  # the job model's own, so the two cannot drift
        Field(description="queued -> processing -> succeeded | failed | canceled; the last three are final."),
    ],
)
WebhookState = TypeAliasType(
    "WebhookState",
    Annotated[
        Literal["pending", "delivered", "failed"],
        Field(description="Where the webhook's delivery stands; delivered and failed are final."),
    ],
)
# The API answers times as ISO 8601 strings in UTC with milliseconds (2026-11-24T06:00:00.000Z);
# the format only tells clients to read them as date-times. The value stays the string.
Timestamp = Annotated[str, Field(json_schema_extra={"format": "date-time"})]


class DocumentedModel(BaseModel):
    model_config = ConfigDict(defer_build=True)


class ImageView(DocumentedModel):
    url: str | None = Field(
        default=None, description="Presigned GET URL, made at this read; absent once kept_until has passed."
    )
    expires_at: Timestamp | None = Field(
        default=None, description="When the URL stops working (ISO 8601, UTC), never after kept_until."
    )
    download_url: str | None = Field(
        default=None,
        description="The same image presigned to be saved as a file (`Content-Disposition: attachment; "
        "filename=<id>.<ext>`), valid as long as url; absent with it.",
    )
    content_type: Literal["image/jpeg", "image/png", "image/webp"]
    width: int
    height: int
    bytes: int
    sha256: str
    kept_until: Timestamp | None = Field(
        default=None,
        description="The stored image is kept at least until then (ImageRetentionDays after it was made, "
        "ISO 8601, UTC); after it, the job keeps these facts but no URL.",
    )


class JobErrorView(DocumentedModel):
    code: str = Field(examples=["upstream_failed", "timeout", "invalid_image"])
    message: str


class WebhookView(DocumentedModel):
    url: str
    state: WebhookState
    attempts: int = Field(ge=0)
    last_status: int | None = Field(default=None, description="The receiver's last HTTP status.")
    last_error: str | None = None
    last_attempt_at: Timestamp | None = None
    delivered_at: Timestamp | None = None


class JobLinks(DocumentedModel):
    self: str = Field(description="The job's URL: `/v1/images/{id}`.")
    image: str | None = Field(
        default=None,
        description=(
            "Only while the job runs: a presigned GET URL of where its image will be stored. It answers "
            "403 or 404 until the job succeeds, then the image (ask for `Range: bytes=0-0` to only check). "
            "Checking it costs an S3 request, about a tenth of the price of reading the job: the cheap "
            "way to wait. It never tells that a job failed or was canceled: read the job for that. Valid as long "
            "as a succeeded job's url."
        ),
    )


class JobView(DocumentedModel):
    id: str = Field(examples=["img_01JD3Z5Q4W8V7N2K6M9P0R1S2T"])
    status: JobStatus
    prompt: str
    size: str = Field(examples=["1024*768"])
    seed: int = Field(description="The seed used, once the upstream reports it; -1 until then if random.")
    created_at: Timestamp
    updated_at: Timestamp
    completed_at: Timestamp | None = Field(default=None, description="When the job ended.")
    progress: int | None = Field(default=None, ge=0, le=100, description="While running, when known.")
    eta_seconds: int | None = Field(
        default=None,
        ge=0,
        description=(
            "While running, when known: the upstream's eta, or where it sends none the service's estimate "
            "from how long jobs took, counted down since it was made. A hint, not a promise."
        ),
    )
    image: ImageView | None = Field(default=None, description="Only when succeeded.")
    error: JobErrorView | None = Field(default=None, description="Only when failed.")
    webhook: WebhookView | None = Field(default=None, description="Only when a webhook_url was given.")
    metadata: dict[str, str] | None = Field(default=None, description="Only when given: as it was given.")
    links: JobLinks


class JobPage(DocumentedModel):
    items: list[JobView]
    next_cursor: str | None = Field(default=None, description="Absent on the last page.")


class ErrorDetail(DocumentedModel):
    code: str = Field(examples=["invalid_request"])
    message: str = Field(examples=["size must be W*H with each side 256..1536, got 2048*512"])
    field: str | None = None


class ErrorBody(DocumentedModel):
    error: ErrorDetail


class GatewayMessage(DocumentedModel):
    """API Gateway's own answer to a missing or unknown API key."""

    message: str = Field(examples=["Forbidden"])


class HealthView(DocumentedModel):
    """What GET /v1/health found: every check passed (a failed one answers its error instead)."""

    status: Literal["ok"]
    checks: dict[str, str] = Field(
        description="Each check and what it found.",
        examples=[{"settings": "consistent", "upstream_key": "accepted"}],
    )
