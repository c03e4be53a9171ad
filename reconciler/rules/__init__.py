"""The sign-of-violation catalogue: declared in ``config/rules.yaml``, checked here."""
