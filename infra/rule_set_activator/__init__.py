"""CloudFormation custom resource that activates the stack's SES receipt rule set (see ``activator``)."""
