"""Images: the size a request asks for, the checks an upstream image must pass, our copy in S3."""
