"""Sign-in with your identity provider (AUTH_ISSUER): its keys and the checks its tokens pass
(`provider.py`), and the rules its settings follow (`rules.py`)."""
