"""zimage: the command-line client of the image service (any deployment, local or AWS)."""
