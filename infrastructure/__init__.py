"""Technical shared kernel: databases, events, HTTP plumbing, auth tokens, logging.

It knows no bounded context; contexts and the composition root build on it.
"""
