"""The ``emailflow`` operator command line (click). Never imported by a Lambda handler.

Commands find the relay's settings in a CloudFormation stack's outputs (``--stack``, ``EMAILFLOW_STACK``, default
``emailflow-local``: the stack ``emailflow local`` registers in its emulator) and act through the package's use
cases; no business rule lives here. Heavy imports (boto3, moto) happen inside the commands, so ``--help`` is quick.
"""
