"""emailflow: a masked e-mail relay for marketplaces, on AWS serverless.

The package is split the way the handlers need it: pure mail-domain modules (``codes``, ``addresses``,
``rewrite``, ``relay``) that import no AWS SDK, and ``adapters`` (the only code that talks to AWS).
"""

__version__ = "0.1.0"
