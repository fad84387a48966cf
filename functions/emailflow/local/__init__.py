"""Local mode (``emailflow local``), the demo and test support: the relay on one machine with no AWS account.

``server.LocalRelay`` ties the pieces together: ``stack`` (the template's resources on moto), ``smtp`` (SES inbound),
``ses_inbound`` (S3 action and receipt event), ``lambda_runtime`` (asynchronous invocation), ``moto_ses`` (the
byte-exact SESv2 seam), ``delivery`` (Maildirs or a smarthost) and ``simulator`` (SES's mailbox simulator). See
docs/local.md. Never imported by a Lambda handler. Needs the ``local`` extra (moto, aiosmtpd, PyYAML, click).
"""
