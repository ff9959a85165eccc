"""Domain code shared by every function of the image service.

Nothing here touches AWS at import time: the functions build the clients they need and pass
them in, so each module is testable with plain objects.
"""
