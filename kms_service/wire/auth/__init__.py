"""Who is calling: the credentials file (:mod:`.credentials`), SigV4 checked as AWS checks it
(:mod:`.sigv4`), and the :class:`Authenticator` that turns a request into a :class:`Caller`
(:mod:`.authenticator`). Callers import from those modules; this package re-exports nothing.
"""
