"""emailflow: a masked e-mail relay for marketplaces, on AWS serverless.

The package is split the way the handlers need it: pure mail-domain modules (``codes``, ``addresses``,
``rewrite``, ``relay``) that import no AWS SDK, and ``adapters`` (the only code that talks to AWS).

For a marketplace backend in Python: ``from emailflow import Relay`` (``emailflow.client``). It is loaded on first
use, so the Lambda handlers, which import ``emailflow.<module>`` directly, never pay for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["ConversationError", "Relay", "RequestKeyReused", "ServiceError", "ServiceInfo", "ServiceNotFound",
           "__version__"]

if TYPE_CHECKING:
    from emailflow.client import Relay, ServiceInfo
    from emailflow.conversations import ConversationError
    from emailflow.services import RequestKeyReused, ServiceError, ServiceNotFound

_EXPORTS = {"Relay": "emailflow.client", "ServiceInfo": "emailflow.client",
            "ConversationError": "emailflow.conversations", "ServiceError": "emailflow.services",
            "ServiceNotFound": "emailflow.services", "RequestKeyReused": "emailflow.services"}


def __getattr__(name: str) -> Any:
    """``from emailflow import Relay``: imported on first use (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'emailflow' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
