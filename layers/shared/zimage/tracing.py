"""X-Ray tracing, configured once for every function and for the shared code they call.

Powertools' Tracer keeps one configuration per process, and a Tracer made without patch_modules
patches every library X-Ray knows (importing requests and more on each cold start), so every
module takes this one instead of making its own.
"""

from __future__ import annotations

from aws_lambda_powertools import Tracer

# botocore alone: every AWS call becomes a subsegment. X-Ray's http.client patch never sees
# urllib3 2's requests, so the upstream and webhook calls are traced where they are made, with
# tracer.capture_method.
tracer = Tracer(patch_modules=("botocore",))
