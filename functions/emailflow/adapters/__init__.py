"""AWS adapters: the only modules that import boto3. Each wraps one service behind a port of ``emailflow.ports``
and turns SDK errors into the domain's errors, so nothing above sees a ``ClientError``."""
