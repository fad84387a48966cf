"""Local mode and test support: the relay's resources on an AWS emulator, created from ``template.yaml``.

Never imported by a Lambda handler. Needs the ``local`` extra (moto, aiosmtpd, PyYAML).
"""
